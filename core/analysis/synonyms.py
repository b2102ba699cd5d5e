"""Synonym sets per effect: the words text-anchor discovery writes into its templates.

Synonyms are data, not code, and belong to the effect they describe. Sources, merged in
this order (later sources extend earlier ones, or replace them with `replace: true`):

1. the effect class's own `synonyms` class attribute (any plugin can ship them);
2. the tables plugins ship as `synonyms.yaml` beside an effect's module, found through the
   registry (the built-in effects' table: `plugins/note_effects/synonyms.yaml`);
3. every `*.yaml` in `$DELTAV2A_HOME/synonyms/` (a user's additions), in name order;
4. the files or folders named in the analysis config (`discover.synonym_paths`).

A file maps modality -> effect -> list of words:

    image:
      blur: [blurry, out of focus]
    audio:
      lpf: [muffled]
    replace: false        # true: the lists of this file replace earlier ones

Duplicates are dropped, first occurrence kept, so the order stays meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import DeltaV2AError

MODALITIES = ("image", "audio")
KIND = {"image": "image_effect", "audio": "audio_effect"}


def shipped_files() -> list[Path]:
    """Synonym tables shipped by plugin packages, found through the registry.

    A plugin ships a table as `synonyms.yaml` beside the module of an effect it registers
    (the built-in effects' table sits beside the note effects); core names no plugin
    package, so a third-party package ships its words the same way. Registry order.
    """
    import sys

    from ..api.registry import get_registry

    found: list[Path] = []
    for rec in get_registry().all():
        if rec.kind not in KIND.values():
            continue
        module = sys.modules.get(getattr(rec.obj, "__module__", "") or "")
        where = getattr(module, "__file__", None)
        if where:
            path = Path(where).resolve().parent / "synonyms.yaml"
            if path not in found and path.is_file():
                found.append(path)
    return found


def _read(path: Path) -> tuple[dict[str, dict[str, list[str]]], bool]:
    from ..fileio import read_yaml

    raw = read_yaml(path, "synonym file", allow_empty=True)
    if raw is None:
        return {}, False
    replace = raw.pop("replace", False)
    if not isinstance(replace, bool):
        raise DeltaV2AError(f"synonym file {path}: 'replace' must be true or false")
    out: dict[str, dict[str, list[str]]] = {}
    for modality, table in raw.items():
        if modality not in MODALITIES:
            raise DeltaV2AError(f"synonym file {path}: unknown section {modality!r} (use image, audio)")
        if not isinstance(table, dict):
            raise DeltaV2AError(f"synonym file {path}: '{modality}' must map effect names to word lists")
        for effect, words in table.items():
            if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
                raise DeltaV2AError(f"synonym file {path}: {modality}.{effect} must be a list of words")
            out.setdefault(modality, {})[str(effect)] = [w.strip() for w in words]
    return out, replace


def _files(paths: Iterable[str | Path]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file()))
        elif p.is_file():
            found.append(p)
        else:
            raise DeltaV2AError(f"synonym path not found: {p}")
    return found


@dataclass
class SynonymTable:
    """modality -> effect -> ordered synonyms, plus where each list came from."""

    words: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    sources: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def _add(self, modality: str, effect: str, words: Sequence[str], source: str, replace: bool) -> None:
        cur = self.words.setdefault(modality, {})
        src = self.sources.setdefault(modality, {})
        if replace or effect not in cur:
            cur[effect], src[effect] = [], []
        for w in words:
            if w not in cur[effect]:
                cur[effect].append(w)
        src[effect].append(source)

    def get(self, modality: str, effect: str) -> list[str]:
        words = self.words.get(modality, {}).get(effect)
        if not words:
            raise DeltaV2AError(
                f"no synonyms for {modality} effect '{effect}': give the class a `synonyms` attribute "
                f"or add '{modality}: {{{effect}: [...]}}' to a YAML file in $DELTAV2A_HOME/synonyms/")
        return list(words)

    def as_dict(self) -> dict:
        return {"words": self.words, "sources": self.sources}


def load_synonyms(effects: dict[str, Sequence[str]], extra_paths: Iterable[str | Path] = ()) -> SynonymTable:
    """The merged synonym table for the named effects ({"image": [...], "audio": [...]})."""
    from ..api.registry import get, user_dir

    table = SynonymTable()
    for modality, names in effects.items():
        for name in names:
            cls = get(KIND[modality], name)
            own = getattr(cls, "synonyms", None)
            if own:
                table._add(modality, name, list(own), f"{cls.__module__}.{cls.__name__}.synonyms", False)
    files = shipped_files()
    home = user_dir() / "synonyms"
    if home.is_dir():
        files += _files([home])
    files += _files(extra_paths)
    for path in files:
        data, replace = _read(path)
        for modality, per_effect in data.items():
            for effect, words in per_effect.items():
                table._add(modality, effect, words, str(path), replace)
    return table
