"""Safe outputs: write-then-rename (never half a file), strict JSON, and the output guard
that refuses to overwrite an input and locks an output set against a concurrent writer."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator


class atomic_path:  # noqa: N801 - used as a function: `with atomic_path(target) as tmp:`
    """Yield a temporary path beside `target`; rename it onto `target` only on success.

    The temporary file keeps the target's suffix so format-sniffing writers (soundfile,
    Pillow, matplotlib) pick the right format.

    Written for signals. Python raises Ctrl-C's (or the CLI's SIGTERM) exception at the next
    check between bytecodes, which can fall right after the file was created and before its
    name was known (inside `tempfile.mkstemp`), or, with a generator context manager, after
    the generator yielded and before the `with` block owned it; either way the hidden
    temporary stayed behind (on a loaded machine, in about one run in twenty of the tests that
    signal the CLI as the file appears). Blocking the signals does not help: a process-directed signal is
    delivered to whichever thread does not block it (numpy's and pedalboard's pools), and
    Python then runs the handler in the main thread anyway. So the name is recorded before
    the file is created, every step up to `__enter__`'s return removes what exists on any
    exception, and after it `__exit__` always runs.
    """

    def __init__(self, target: str | os.PathLike, suffix: str | None = None) -> None:
        self.target = Path(target)
        self.suffix = suffix if suffix is not None else self.target.suffix
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        target = self.target
        if _INPUTS and _identity(target) in _INPUTS:
            from .errors import DeltaV2AError

            raise DeltaV2AError(f"refusing to overwrite {target}: this command read it as an input")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            for _ in range(_NAME_TRIES):
                # named first: an exception from here on removes whatever this name holds
                self.tmp = target.parent / f".{target.name}.{_random_tag()}{self.suffix}"
                try:
                    # mode 0o666 less the umask: what a plain open() would give the target
                    os.close(os.open(self.tmp, _CREATE_FLAGS, 0o666))
                    return self.tmp
                except FileExistsError:
                    self.tmp = None  # another writer's temporary: not ours to remove
            raise FileExistsError(f"no free temporary name beside {target}")
        except BaseException as exc:
            self._discard()
            if isinstance(exc, OSError):
                raise self._error(exc) from None
            raise

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is None:
            try:
                os.replace(self.tmp, self.target)
                return False
            except BaseException as failed:
                self._discard()
                if isinstance(failed, OSError):
                    raise self._error(failed) from None
                raise
        self._discard()
        if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
            raise self._error(exc) from None
        return False

    def _discard(self) -> None:
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()

    def _error(self, exc: OSError) -> Exception:
        """An OS error names the target, not the hidden temporary it mentions."""
        from .errors import DeltaV2AError

        return DeltaV2AError(f"cannot write {self.target}: {_os_reason(exc)}")


#: a temporary's tag: _TAG_LENGTH of these, as tempfile's names had it, and what `_stale_temps`
#: (and the database's shard cleanup) recognise; 37**8 names, so a clash is retried, not feared
_TAG_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"
_TAG_LENGTH = 8
_NAME_TRIES = 100
_CREATE_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


def _random_tag() -> str:
    import secrets

    return "".join(secrets.choice(_TAG_ALPHABET) for _ in range(_TAG_LENGTH))


def _os_reason(exc: OSError) -> str:
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on device (nothing was replaced)"
    if exc.errno == errno.EFBIG:
        return "file too large for this file system or limit (nothing was replaced)"
    return exc.strerror or str(exc)


#: identities of the media files this process has read (`note_input`); `atomic_path` never
#: replaces one of them, whatever command or path spelling asks it to
_INPUTS: set[tuple] = set()


def note_input(path: str | os.PathLike) -> None:
    """Record a file read as an input, so no later write of this process can replace it."""
    _INPUTS.add(_identity(Path(path)))


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike, obj, indent: int = 2) -> None:
    """Strict JSON (NaN/Inf written as null), atomically."""
    write_text(target, json_text(obj, indent) + "\n")


def _jsonable(obj):
    """NaN/Inf -> null and numpy scalars/arrays -> Python, so every file we write is JSON.

    `json.dumps` writes bare `NaN`/`Infinity` by default, which no strict JSON reader
    accepts; a metric that could not be computed is recorded as null instead.
    """
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {(k if isinstance(k, str) else str(k)): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    tolist = getattr(obj, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return _jsonable(tolist())
    return obj


def json_text(obj, indent: int | None = 2) -> str:
    """Strict JSON text (no bare NaN): the one serialiser behind every JSON file written."""
    import json

    return json.dumps(_jsonable(obj), indent=indent, ensure_ascii=False, allow_nan=False)


# ---------------------------------------------------------------- output safety

def _identity(path: Path) -> tuple:
    """What a path refers to: (device, inode) when it exists, else its resolved name."""
    resolved = path.resolve()
    try:
        st = resolved.stat()
    except OSError:
        return ("path", str(resolved))
    return ("inode", st.st_dev, st.st_ino)


def _writable_parent(target: Path) -> None:
    """A one-line error now, instead of an OSError after minutes of work."""
    from .errors import DeltaV2AError

    if target.is_dir():
        raise DeltaV2AError(f"output is a directory: {target}")
    parent = target.parent
    while not parent.exists():
        if parent.is_symlink():
            raise DeltaV2AError(f"cannot write {target}: {parent} is a broken link")
        parent = parent.parent
    if not parent.is_dir():
        raise DeltaV2AError(f"cannot write {target}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DeltaV2AError(f"cannot write {target}: folder {parent} is not writable")


def check_outputs(inputs: "Iterable[str | os.PathLike]", outputs: "Iterable[str | os.PathLike]") -> None:
    """Refuse an output that is one of the inputs or another output.

    "Is" covers the same name, `a/../a`, a symbolic link to it and a hard link to it
    (same device and inode): replacing any of them would destroy or shadow a file the
    command reads, or make two of its outputs overwrite each other. Derived names
    (sidecar JSON, summary PNG) must be passed here too. Each output's folder must be
    writable (or creatable) before any work starts.
    """
    from .errors import DeltaV2AError

    seen_in: dict[tuple, Path] = {}
    for p in inputs:
        p = Path(p)
        seen_in.setdefault(_identity(p), p)
        seen_in.setdefault(("path", str(p.resolve())), p)
    seen_out: dict[tuple, Path] = {}
    for o in outputs:
        o = Path(o)
        keys = {_identity(o), ("path", str(o.resolve()))}
        if o.is_symlink():
            raise DeltaV2AError(f"output {o} is a symbolic link; refusing to replace it "
                                "(write to the real path instead)")
        for k in keys:
            if k in seen_in:
                raise DeltaV2AError(f"output {o} would overwrite the input {seen_in[k]}")
            if k in seen_out:
                raise DeltaV2AError(f"two outputs resolve to the same file: {seen_out[k]} and {o}")
        for k in keys:
            seen_out[k] = o
        _writable_parent(o)


def _lock_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"deltav2a-locks-{os.getuid() if hasattr(os, 'getuid') else 0}"


def _stale_temps(target: Path) -> list[Path]:
    """Temporaries `atomic_path` left for `target` when its process was killed (-9)."""
    import re

    pattern = re.compile(re.escape(f".{target.name}.") + f"[{re.escape(_TAG_ALPHABET)}]{{{_TAG_LENGTH}}}"
                         + re.escape(target.suffix))
    try:
        return [p for p in target.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return []


@contextlib.contextmanager
def output_set(outputs: "Iterable[str | os.PathLike]",
               inputs: "Iterable[str | os.PathLike]" = ()) -> Iterator[None]:
    """Guard one command's outputs: checked against the inputs, locked, stale temps removed.

    Two processes writing the same output set would interleave (the WAV of one run, the PNG
    of the other); the second one fails at once with a clear message instead. The locks are
    advisory `flock`s on files in a per-user runtime folder (nothing is left beside the
    outputs) and vanish with the process, even after kill -9. While the lock is held no
    other deltav2a process can be writing these targets, so hidden temporaries left by a
    killed earlier run are removed.
    """
    from .errors import DeltaV2AError

    outs = [Path(o) for o in outputs]
    check_outputs(inputs, outs)
    with contextlib.ExitStack() as stack:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no cross-process guard
            fcntl = None
        if fcntl is not None:
            import hashlib

            folder = _lock_dir()
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            keys = sorted({hashlib.sha256(str(o.resolve()).encode()).hexdigest()[:32]: o
                           for o in outs}.items())
            for key, o in keys:  # sorted: two overlapping sets cannot deadlock
                fh = stack.enter_context(open(folder / f"{key}.lock", "a+"))
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    raise DeltaV2AError(f"another deltav2a process is writing {o} right now; "
                                        "wait for it or choose another output") from None
            for o in outs:
                for tmp in _stale_temps(o):
                    with contextlib.suppress(OSError):
                        tmp.unlink()
        yield


def input_files(*paths: "str | os.PathLike | None",
                outputs: "Iterable[str | os.PathLike]" = ()) -> list[Path]:
    """A command's inputs for `check_outputs`: each file given, and the files directly in each
    folder given (a model, a database, a folder of photos), so an output named like one of them
    (`-o MODEL/controller.json`, `-o DB` writing over a shard) is refused. None (an option not
    given) is skipped. A folder's file that is one of `outputs` is left out: it is what an
    earlier run of the command wrote there (`calibrate -m M -o M` twice), not something it
    reads; a media file read from the folder is still protected by `note_input`."""
    mine = {Path(o).resolve() for o in outputs}  # by name: a hard link elsewhere stays an input
    out: list[Path] = []
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        if p.is_dir():
            with contextlib.suppress(OSError):
                out += [f for f in p.iterdir() if f.is_file() and f.resolve() not in mine]
        else:
            out.append(p)
    return out


def claim(outputs: "Iterable[str | os.PathLike | None]", *inputs: "str | os.PathLike | None",
          fixed_names: bool = True) -> None:
    """`claim_outputs` for a CLI command: `outputs` (None skipped) against `input_files(*inputs)`.

    `fixed_names`: the outputs are the command's own file names inside an output folder
    (`-o DIR` -> DIR/metrics.json), so one already lying in an input folder is an earlier
    run's result (see `input_files`). False for a file path the user chose (`-o x.json`): it
    must not be any file of the input folders."""
    outs = [Path(o) for o in outputs if o is not None]
    claim_outputs(outs, inputs=input_files(*inputs, outputs=outs if fixed_names else ()))


_CLAIMED = contextlib.ExitStack()


def claim_outputs(outputs: "Iterable[str | os.PathLike]",
                  inputs: "Iterable[str | os.PathLike]" = ()) -> None:
    """`output_set` held while the running CLI command lasts: for a command, one line at its
    top. It is released when the command's click context closes (so a second command in the
    same process, e.g. under a test runner, can claim the same outputs), else at exit."""
    guard = output_set(outputs, inputs)
    ctx = _click_context()
    if ctx is not None:
        ctx.with_resource(guard)
    else:
        _CLAIMED.enter_context(guard)


def _click_context():
    """The current click context of whichever click the CLI runs on (typer >= 0.29 bundles
    its own copy), or None outside a command. Imports nothing that is not loaded already."""
    import sys

    for name in ("typer._click.globals", "click.globals"):
        mod = sys.modules.get(name)
        ctx = mod.get_current_context(silent=True) if mod is not None else None
        if ctx is not None:
            return ctx
    return None
