"""Plugin discovery: pluggy hooks fed by the `deltav2a` entry-point group.

Every entry point (built-ins included) is loaded and registered in isolation: a plugin
that fails to import, or whose hook raises, is recorded with its error and reported once
on stderr, and everything else keeps working. `DELTAV2A_STRICT_PLUGINS=1` turns such a
failure into an exception (for plugin authors); `DELTAV2A_PLUGINS=a,b` loads only the
named entry points or distributions (empty string: none).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from . import hookspecs
from ..errors import DeltaV2AError, PluginError

if TYPE_CHECKING:  # pragma: no cover
    from .vocabulary import Vocabulary

ENTRY_POINT_GROUP = "deltav2a"

# kind -> (hook name, human label)
KINDS: dict[str, tuple[str, str]] = {
    "image_effect": ("register_image_effects", "image effect"),
    "audio_effect": ("register_audio_effects", "audio effect"),
    "encoder": ("register_encoders", "encoder"),
    "vocabulary": ("register_vocabularies", "vocabulary"),
    "controller": ("register_controllers", "controller"),
}


@dataclass
class PluginRecord:
    kind: str
    name: str
    obj: Any
    plugin: str
    distribution: str
    version: str

    @property
    def summary(self) -> str:
        fn = getattr(self.obj, "summary", None)
        if callable(fn):
            try:
                return str(fn())
            except Exception as exc:  # a summary must never break a listing
                return f"(summary failed: {exc})"
        return str(fn or "")

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "distribution": self.distribution,
            "version": self.version,
            "plugin": self.plugin,
            "summary": self.summary,
        }


@dataclass
class PluginFailure:
    plugin: str
    distribution: str
    version: str
    error: str

    def as_dict(self) -> dict:
        return {"plugin": self.plugin, "distribution": self.distribution,
                "version": self.version, "error": self.error}


@dataclass
class VocabularyFile:
    """A registered vocabulary file, parsed on first use (registering imports no pydantic)."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.stem

    def load(self) -> "Vocabulary":
        from .vocabulary import parse_vocabulary

        vocab = parse_vocabulary(self.path)
        if vocab.name != self.name:
            raise DeltaV2AError(f"vocabulary {self.path} is named '{vocab.name}' but its file says '{self.name}'")
        return vocab

    def summary(self) -> str:
        try:
            return self.load().summary
        except DeltaV2AError as exc:
            return f"(unreadable: {exc})"


@dataclass
class Registry:
    records: dict[tuple[str, str], PluginRecord] = field(default_factory=dict)
    conflicts: dict[tuple[str, str], list[PluginRecord]] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    extra_hooks: list[tuple[str, Any]] = field(default_factory=list)
    modules: dict[str, str] = field(default_factory=dict)  # module -> "'plugin' (dist version)"

    def all(self, kind: str | None = None) -> list[PluginRecord]:
        recs = [r for r in self.records.values() if kind is None or r.kind == kind]
        order = list(KINDS)
        return sorted(recs, key=lambda r: (order.index(r.kind), r.name))

    def names(self, kind: str) -> list[str]:
        return [r.name for r in self.all(kind)]

    def record(self, kind: str, name: str) -> PluginRecord:
        if kind not in KINDS:
            raise DeltaV2AError(f"unknown plugin kind '{kind}' (known: {', '.join(KINDS)})")
        key = (kind, name)
        if key in self.conflicts:
            raise PluginError(_conflict_message(self.conflicts[key]))
        if key not in self.records:
            label = KINDS[kind][1]
            known = ", ".join(self.names(kind)) or "none installed"
            raise DeltaV2AError(f"unknown {label} '{name}' (available: {known})")
        return self.records[key]

    def get(self, kind: str, name: str) -> Any:
        return self.record(kind, name).obj

    def find(self, name: str, kind: str | None = None) -> PluginRecord:
        """Look a name up across kinds (for `plugin-info`)."""
        if kind is not None:
            return self.record(kind, name)
        hits = [k for k in KINDS if (k, name) in self.records or (k, name) in self.conflicts]
        if not hits:
            raise DeltaV2AError(f"no plugin named '{name}' (see `deltav2a list-plugins`)")
        if len(hits) > 1:
            raise DeltaV2AError(f"'{name}' names several kinds ({', '.join(hits)}): pass --kind")
        return self.record(hits[0], name)


def _conflict_message(recs: list[PluginRecord]) -> str:
    label = KINDS[recs[0].kind][1]
    who = " and ".join(f"{r.distribution} {r.version} (plugin '{r.plugin}')" for r in recs)
    return (f"{label} '{recs[0].name}' is registered by both {who}; "
            "uninstall one, or restrict loading with DELTAV2A_PLUGINS")


def _strict() -> bool:
    return os.environ.get("DELTAV2A_STRICT_PLUGINS", "").strip() not in ("", "0", "false", "no")


def _only() -> set[str] | None:
    raw = os.environ.get("DELTAV2A_PLUGINS")
    if raw is None:
        return None
    return {s.strip() for s in raw.split(",") if s.strip()}


def _warn(msg: str) -> None:
    print(f"deltav2a: warning: {msg}", file=sys.stderr)


def user_dir() -> Path:
    """Per-user folder for vocabularies and other drop-in data (`DELTAV2A_HOME`)."""
    home = os.environ.get("DELTAV2A_HOME")
    if home:
        return Path(home).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "deltav2a"


class _Loader:
    def __init__(self, strict: bool, only: set[str] | None) -> None:
        import pluggy

        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.strict = strict
        self.only = only
        self.meta: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, version)

    def fail(self, plugin: str, exc: BaseException, when: str) -> None:
        dist, version = self.meta.get(plugin, ("?", "?"))
        msg = f"{type(exc).__name__}: {exc}" if not isinstance(exc, DeltaV2AError) else str(exc)
        self.registry.failures.append(PluginFailure(plugin, dist, version, f"{when}: {msg}"))
        _warn(f"plugin '{plugin}' ({dist} {version}) failed to {when}: {msg}")
        if self.strict:
            raise PluginError(f"plugin '{plugin}' ({dist} {version}) failed to {when}: {msg}") from exc

    def add_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            dname = dist.name if dist is not None else "?"
            dversion = dist.version if dist is not None else "?"
            if self.only is not None and ep.name not in self.only and dname not in self.only:
                continue
            if ep.name in self.meta:
                # the same entry-point name from two distributions: keep both, disambiguated
                pname = f"{dname}:{ep.name}"
            else:
                pname = ep.name
            self.meta[pname] = (dname, dversion)
            self.registry.modules.setdefault(ep.module, f"'{pname}' ({dname} {dversion})")
            try:
                module = ep.load()
                self.pm.register(module, name=pname)
            except (Exception, SystemExit) as exc:  # sys.exit() at import must not end the CLI
                self.fail(pname, exc, "load")

    def add_object(self, obj: Any, name: str, distribution: str, version: str) -> None:
        self.meta[name] = (distribution, version)
        module = getattr(obj, "__name__", None) if isinstance(obj, type(os)) else getattr(obj, "__module__", None)
        if module:
            self.registry.modules.setdefault(module, f"'{name}' ({distribution} {version})".replace(" )", ")"))
        try:
            self.pm.register(obj, name=name)
        except (Exception, SystemExit) as exc:
            self.fail(name, exc, "load")

    def collect(self) -> None:
        """Call each plugin's hooks one plugin at a time, so a failure stays contained."""
        def impls(hook: str, plugin_name: str) -> list[Callable]:
            caller = getattr(self.pm.hook, hook)
            return [i.function for i in caller.get_hookimpls() if i.plugin_name == plugin_name]

        for plugin_name, _plugin in list(self.pm.list_name_plugin()):
            staged: list[PluginRecord] = []
            dist, version = self.meta.get(plugin_name, ("?", "?"))
            try:
                for kind, (hook, _label) in KINDS.items():
                    for fn in impls(hook, plugin_name):
                        fn(register=self._registrar(kind, plugin_name, dist, version, staged))
            except (Exception, SystemExit) as exc:
                self.fail(plugin_name, exc, "register")
                continue
            for rec in staged:
                self._commit(rec)
                module = getattr(rec.obj, "__module__", None)
                if isinstance(module, str) and module not in self.registry.modules:
                    self.registry.modules[module] = f"'{rec.plugin}' ({dist} {version})"
            for fn in impls("register_commands", plugin_name):
                self.registry.extra_hooks.append((plugin_name, fn))

    def _registrar(self, kind: str, plugin: str, dist: str, version: str,
                   staged: list[PluginRecord]) -> Callable[[Any], None]:
        def register(obj: Any, name: str | None = None) -> None:
            if kind == "vocabulary" and isinstance(obj, (str, os.PathLike)):
                obj = VocabularyFile(Path(obj))
            rname = name or getattr(obj, "name", None)
            if not rname or not isinstance(rname, str):
                raise PluginError(f"{KINDS[kind][1]} {obj!r} has no name")
            staged.append(PluginRecord(kind, rname, obj, plugin, dist, version))

        return register

    def _commit(self, rec: PluginRecord) -> None:
        key = (rec.kind, rec.name)
        if key in self.registry.conflicts:
            self.registry.conflicts[key].append(rec)
            return
        if key in self.registry.records:
            first = self.registry.records.pop(key)
            self.registry.conflicts[key] = [first, rec]
            msg = _conflict_message([first, rec])
            self.registry.failures.append(PluginFailure(rec.plugin, rec.distribution, rec.version, msg))
            _warn(msg)
            if self.strict:
                raise PluginError(msg)
            return
        self.registry.records[key] = rec

    def add_user_vocabularies(self) -> None:
        folder = user_dir() / "vocabularies"
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.y*ml")):
            self._commit(PluginRecord("vocabulary", path.stem, VocabularyFile(path),
                                      "user-directory", str(folder), ""))


_REGISTRY: Registry | None = None


def load_registry(
    extra: Iterable[tuple[Any, str]] = (),
    strict: bool | None = None,
    only: Iterable[str] | None = None,
    entry_points: bool = True,
) -> Registry:
    """Build a fresh registry. `extra` adds (plugin object, name) pairs, e.g. in tests."""
    loader = _Loader(_strict() if strict is None else strict,
                     _only() if only is None else set(only))
    if entry_points:
        loader.add_entry_points()
    for obj, name in extra:
        loader.add_object(obj, name, "(in-process)", "")
    loader.collect()
    loader.add_user_vocabularies()
    return loader.registry


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = load_registry()
    return _REGISTRY


def plugin_for_module(module: str) -> str | None:
    """Which loaded plugin a module belongs to ("'name' (dist version)"), for error messages.

    Looks only at an already-built registry: reporting an error must not load plugins.
    """
    reg = _REGISTRY
    if reg is None or not module:
        return None
    best = None
    for mod, label in reg.modules.items():
        if (module == mod or module.startswith(mod + ".")) and (best is None or len(mod) > len(best[0])):
            best = (mod, label)
    return best[1] if best else None


def reset_registry(registry: Registry | None = None) -> None:
    global _REGISTRY
    _REGISTRY = registry


def get(kind: str, name: str) -> Any:
    return get_registry().get(kind, name)


def provenance(uses: Iterable[tuple[str, str]]) -> list[dict]:
    """Which distribution provides each (kind, name) a trained model needs, for its metadata."""
    reg = get_registry()
    out = []
    for kind, name in dict.fromkeys(uses):
        try:
            rec = reg.record(kind, name)
        except DeltaV2AError:
            continue  # e.g. a vocabulary given as a file path: nothing to install
        out.append({"kind": kind, "name": name, "distribution": rec.distribution, "version": rec.version})
    return out


def check_provenance(entries: Iterable[dict], what: str = "model") -> None:
    """Refuse, naming the package, when a plugin a model needs is not registered.

    `model needs audio effect 'phaser' from package 'deltav2a-fx' (not installed)` says what
    to `pip install`, where the bare lookup would only say the effect is unknown.
    """
    from importlib import metadata

    reg = get_registry()
    problems = []
    for e in entries:
        kind, name = e.get("kind", ""), e.get("name", "")
        if kind not in KINDS or (kind, name) in reg.records or (kind, name) in reg.conflicts:
            continue
        dist = e.get("distribution") or "?"
        try:
            have = metadata.version(dist)
            state = f"{dist} {have} is installed but does not register it (the model was made with {e.get('version')})"
        except metadata.PackageNotFoundError:
            state = "not installed"
        problems.append(f"{KINDS[kind][1]} '{name}' from package '{dist}' ({state})")
    if problems:
        raise DeltaV2AError(f"{what} needs " + "; ".join(problems))
