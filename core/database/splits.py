"""Train/val/test splits of an audio folder, grouped by parent track so nothing leaks.

Several clips are usually cut from one recording ("blues - blues 001 - 2.mp3" is the third
10 s piece of GTZAN's blues.00001). Clips of one recording sound alike, so if they landed
in both train and test the test numbers would measure memory, not generalisation. The rule
here is therefore strict: **whole tracks** go to one split. (The notes say "8:1:1 per
track" and report 1,570 / 1,302 / 1,302 clips, which is neither 8:1:1 nor possible
without spreading a track over splits; the leakage-free reading wins.)

Track ids come from a manifest CSV (`file`, `track_id` columns) when one is given, and are
otherwise inferred from file names (`infer_track_id`).

Assignment (deterministic for a seed): tracks are sorted by id, shuffled with
`numpy.random.default_rng(seed)`, and taken one by one. A track of c clips goes to the
split whose squared distance from its clip target (`ratio * total_clips`) grows least,
i.e. the split s minimising c * (2 * (filled_s - target_s) + c) (ties: train, val, test),
except that once the tracks left are no more than the splits still empty, the choice is
limited to the empty splits. So no split with a positive ratio is empty whenever there
are at least as many tracks as such splits, and the clip counts end within about half a
track of their targets (the 169 clips / 55 tracks of the shared data, seed 0: 135 / 16 /
18 for targets 135.2 / 16.9 / 16.9; over 50 seeds the total miss averages 2.4 clips).
Which tracks land where is decided by the shuffle alone.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..artifact import Format
from ..errors import DeltaV2AError

SPLITS: tuple[str, ...] = ("train", "val", "test")
FORMAT = Format("deltav2a-splits", 1, "deltav2a splits file", fingerprint_keys=("content_sha256",),
                remedy="make one with `deltav2a splits`")

# "blues - blues 001 - 2" -> base "blues - blues 001", piece 2 (GTZAN cut into clips)
_DASH_PIECE = re.compile(r"^(?P<base>.*\S)\s+-\s+(?P<piece>\d+)$")
# "librosa__hungarian_dance__3" -> base "librosa__hungarian_dance" (our shared data)
_DUNDER_PIECE = re.compile(r"^(?P<base>.+?)__(?P<piece>\d+)$")
_NON_WORD = re.compile(r"[^0-9a-z]+")


class SplitWarning(UserWarning):
    """Something about the input was ignored (e.g. audio files the manifest does not list)."""


def _slug(text: str) -> str:
    return _NON_WORD.sub("_", text.lower()).strip("_")


def infer_track_id(file_name: str) -> str:
    """Parent track of a clip, from its file name alone.

    * GTZAN style `"<genre> - <name> - <n>.<ext>"`: `"blues - blues 001 - 2.mp3"` ->
      `"blues::blues_blues_001"` (genre, then the slug of everything before the piece number).
    * Shared-data style `"<collection>__<name>__<n>.<ext>"` -> `"<collection>::<name>"`, and
      `"<name>__<n>.<ext>"` -> `"<name>"` (matches the ids in data/music/manifest.csv).
    * Anything else is its own track (the file stem).
    """
    stem = Path(file_name).stem
    m = _DASH_PIECE.match(stem)
    if m:
        base = m.group("base")
        head = base.split(" - ", 1)[0]
        slug = _slug(base)
        if slug:
            return f"{_slug(head)}::{slug}" if " - " in base and _slug(head) else slug
    m = _DUNDER_PIECE.match(stem)
    if m:
        base = m.group("base")
        return base.replace("__", "::", 1)
    return stem


@dataclass(frozen=True)
class SplitClip:
    file: str       # path relative to the audio root, POSIX separators
    track_id: str
    split: str


@dataclass
class Splits:
    """A loaded (or freshly made) split file."""

    audio_root: Path
    clips: list[SplitClip]
    seed: int
    ratios: dict[str, float]
    track_source: str
    path: Path | None = None
    extra: dict = field(default_factory=dict)

    def clips_in(self, split: str) -> list[SplitClip]:
        if split not in SPLITS:
            raise DeltaV2AError(f"unknown split '{split}' (use one of {', '.join(SPLITS)})")
        return [c for c in self.clips if c.split == split]

    def path_of(self, clip: SplitClip) -> Path:
        return self.audio_root / clip.file

    def counts(self) -> dict[str, dict[str, int]]:
        return {s: {"clips": len(self.clips_in(s)),
                    "tracks": len({c.track_id for c in self.clips_in(s)})} for s in SPLITS}

    def content_hash(self) -> str:
        """Changes when any clip, track or split assignment changes (not with paths/format)."""
        return clips_hash(self.clips)

    def to_json(self, relative_to: Path | None = None) -> dict:
        root = self.audio_root.resolve()
        if relative_to is not None:
            try:
                root_text = os.path.relpath(root, relative_to.resolve())
            except ValueError:  # other drive on Windows
                root_text = str(root)
        else:
            root_text = str(root)
        return {
            **FORMAT.header(),
            "audio_root": Path(root_text).as_posix(),
            "seed": self.seed,
            "ratios": self.ratios,
            "track_source": self.track_source,
            "algorithm": ("tracks sorted by id, shuffled with numpy default_rng(seed); each "
                          "track goes to the split least filled relative to its clip target"),
            "counts": self.counts(),
            "content_sha256": self.content_hash(),
            "clips": [{"file": c.file, "track_id": c.track_id, "split": c.split}
                      for c in self.clips],
        }


def clips_hash(clips: Iterable[SplitClip]) -> str:
    blob = json.dumps([[c.file, c.track_id, c.split] for c in clips], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- discovery


def list_audio(audio_dir: Path) -> list[str]:
    """Audio files under `audio_dir`, as sorted POSIX paths relative to it."""
    from ..media.io import AUDIO_EXTENSIONS

    if not audio_dir.exists():
        raise DeltaV2AError(f"audio folder not found: {audio_dir}")
    if not audio_dir.is_dir():
        raise DeltaV2AError(f"not a folder: {audio_dir}")
    files = sorted(p.relative_to(audio_dir).as_posix() for p in audio_dir.rglob("*")
                   if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        exts = "/".join(e.lstrip(".") for e in AUDIO_EXTENSIONS)
        raise DeltaV2AError(f"no audio files ({exts}) in {audio_dir}")
    return files


def read_manifest(manifest: Path, audio_dir: Path) -> dict[str, str]:
    """`file` -> `track_id` from a CSV; files are relative to `audio_dir` and must exist.

    An empty `track_id` cell falls back to `infer_track_id`.
    """
    if not manifest.is_file():
        raise DeltaV2AError(f"manifest not found: {manifest}")
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in ("file", "track_id") if c not in columns]
            if missing:
                raise DeltaV2AError(
                    f"manifest {manifest} needs the columns file, track_id "
                    f"(missing: {', '.join(missing)}; found: {', '.join(columns) or 'none'})")
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()}
                    for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DeltaV2AError(f"cannot read manifest {manifest}: {exc}") from None
    out: dict[str, str] = {}
    not_found: list[str] = []
    for line, row in enumerate(rows, start=2):
        name = row.get("file", "")
        if not name:
            raise DeltaV2AError(f"manifest {manifest}, line {line}: empty 'file'")
        rel = Path(name).as_posix()
        if rel in out:
            raise DeltaV2AError(f"manifest {manifest} lists {rel} twice")
        if not (audio_dir / rel).is_file():
            not_found.append(rel)
        out[rel] = row.get("track_id", "") or infer_track_id(rel)
    if not_found:
        shown = ", ".join(not_found[:5]) + (" ..." if len(not_found) > 5 else "")
        raise DeltaV2AError(f"manifest {manifest} lists {len(not_found)} file(s) not found "
                            f"under {audio_dir}: {shown}")
    if not out:
        raise DeltaV2AError(f"manifest {manifest} lists no files")
    return out


# ----------------------------------------------------------------------------- assignment


def check_ratios(ratios: Mapping[str, float]) -> dict[str, float]:
    out = {s: float(ratios.get(s, 0.0)) for s in SPLITS}
    unknown = sorted(set(ratios) - set(SPLITS))
    if unknown:
        raise DeltaV2AError(f"unknown split(s) {', '.join(unknown)} (use {', '.join(SPLITS)})")
    if any(v < 0 for v in out.values()):
        raise DeltaV2AError(f"split ratios must not be negative, got {out}")
    if out["train"] <= 0:
        raise DeltaV2AError("the train split needs a positive ratio")
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise DeltaV2AError(f"split ratios must add up to 1, got {total:g}")
    return out


def assign_tracks(track_sizes: Mapping[str, int], ratios: Mapping[str, float],
                  seed: int) -> dict[str, str]:
    """track id -> split, whole tracks only (see the module docstring for the rule)."""
    import numpy as np

    ratios = check_ratios(ratios)
    wanted = [s for s in SPLITS if ratios[s] > 0]
    tracks = sorted(track_sizes)
    if len(tracks) < len(wanted):
        spell = ":".join(f"{ratios[s] * 10:g}" for s in SPLITS)
        raise DeltaV2AError(
            f"only {len(tracks)} parent track(s) found ({sum(track_sizes.values())} clips); "
            f"a {spell} split keeps each track in one split, so it needs at least "
            f"{len(wanted)} tracks ({', '.join(wanted)} each need one)")
    if seed < 0:
        raise DeltaV2AError(f"seed must be >= 0, got {seed}")
    total = float(sum(track_sizes.values()))
    target = {s: ratios[s] * total for s in wanted}
    filled = {s: 0 for s in wanted}
    out: dict[str, str] = {}
    order = np.random.default_rng(seed).permutation(len(tracks))
    for k, i in enumerate(order):
        t = tracks[int(i)]
        c = track_sizes[t]
        empty = [s for s in wanted if filled[s] == 0]
        allowed = empty if empty and len(tracks) - k <= len(empty) else wanted
        best = min(allowed, key=lambda s: (c * (2 * (filled[s] - target[s]) + c),
                                           SPLITS.index(s)))
        out[t] = best
        filled[best] += c
    return out


def make_splits(audio_dir: Path, manifest: Path | None = None, seed: int = 0,
                ratios: Mapping[str, float] | None = None) -> Splits:
    """Discover clips, group them by track, split 8:1:1 (or `ratios`) by track."""
    audio_dir = Path(audio_dir)
    ratios = check_ratios(ratios or {"train": 0.8, "val": 0.1, "test": 0.1})
    if manifest is not None:
        listed = list_audio(audio_dir) if audio_dir.is_dir() else []
        track_of = read_manifest(Path(manifest), audio_dir)
        ignored = sorted(set(listed) - set(track_of))
        if ignored:
            warnings.warn(f"{len(ignored)} audio file(s) under {audio_dir} are not in the "
                          f"manifest and were left out (e.g. {ignored[0]})", SplitWarning,
                          stacklevel=2)
        source = f"manifest {Path(manifest).name}"
    else:
        track_of = {f: infer_track_id(f) for f in list_audio(audio_dir)}
        source = "file names"
    sizes: dict[str, int] = {}
    for t in track_of.values():
        sizes[t] = sizes.get(t, 0) + 1
    split_of = assign_tracks(sizes, ratios, seed)
    clips = [SplitClip(f, track_of[f], split_of[track_of[f]]) for f in sorted(track_of)]
    return Splits(audio_root=audio_dir, clips=clips, seed=seed, ratios=ratios,
                  track_source=source)


def write_splits(splits: Splits, output: Path) -> Path:
    """Atomic JSON; the audio root is stored relative to the file, so both can move together."""
    from ..atomic import write_json

    output = Path(output)
    write_json(output, splits.to_json(relative_to=output.parent))
    splits.path = output
    return output


def load_splits(path: Path, audio_root: Path | None = None) -> Splits:
    """Read a split file, checking its structure and that no track spans two splits."""
    path = Path(path)
    if not path.is_file():
        raise DeltaV2AError(f"splits file not found: {path}")
    from ..artifact import read_json

    _, data = read_json(path, FORMAT)
    raw = data.get("clips")
    if not isinstance(raw, list):
        raise DeltaV2AError(f"splits file {path} has no 'clips' list")
    clips: list[SplitClip] = []
    seen: set[str] = set()
    track_split: dict[str, str] = {}
    for i, item in enumerate(raw):
        if not (isinstance(item, dict) and all(isinstance(item.get(k), str) and item.get(k)
                                               for k in ("file", "track_id", "split"))):
            raise DeltaV2AError(f"splits file {path}: clip {i} needs text fields file, track_id, split")
        c = SplitClip(item["file"], item["track_id"], item["split"])
        if c.split not in SPLITS:
            raise DeltaV2AError(f"splits file {path}: clip {c.file} has unknown split '{c.split}'")
        if c.file in seen:
            raise DeltaV2AError(f"splits file {path} lists {c.file} twice")
        seen.add(c.file)
        other = track_split.setdefault(c.track_id, c.split)
        if other != c.split:
            raise DeltaV2AError(f"splits file {path} puts track '{c.track_id}' in both {other} "
                                f"and {c.split}: clips of one track must share a split")
        clips.append(c)
    if audio_root is None:
        root_text = data.get("audio_root")
        if not isinstance(root_text, str) or not root_text:
            raise DeltaV2AError(f"splits file {path} has no audio_root (pass --audio-root)")
        root = Path(root_text)
        audio_root = root if root.is_absolute() else (path.parent / root)
    return Splits(audio_root=Path(os.path.normpath(audio_root)), clips=clips,
                  seed=int(data.get("seed", 0)), ratios=dict(data.get("ratios", {})),
                  track_source=str(data.get("track_source", "")), path=path)


def missing_files(splits: Splits, clips: Sequence[SplitClip]) -> list[str]:
    return [c.file for c in clips if not splits.path_of(c).is_file()]


__all__ = [
    "SPLITS", "SplitClip", "SplitWarning", "Splits", "assign_tracks", "clips_hash",
    "infer_track_id", "list_audio", "load_splits", "make_splits", "missing_files",
    "read_manifest", "write_splits",
]
