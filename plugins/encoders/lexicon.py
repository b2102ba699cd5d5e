"""The data side of the perceptual encoders: fixed descriptor normalisation and the lexicon.

The perceptual encoders have no weights; what a trained model depends on instead is (a)
how each raw descriptor is turned into a number (transform, centre, scale: the
normalisation table) and (b) how words are grounded in descriptor directions (the
lexicon). Both are shipped as YAML in `data/` so they can be read, reviewed and versioned
like the vocabularies, and both enter the encoder fingerprint, so a model trained against
one version refuses to run against another.

The normalisation constants are fixed: they were derived once from the development corpus
by `scripts/fit_perceptual_normalisation.py` and are never refit at runtime, because a
vector must mean the same thing on every machine and for every input set.

The text side maps free text to a direction in descriptor space: it sums the (unit)
directions of the lexicon words it finds, flips a word preceded by a negation, and
L2-normalises. Template words ("a", "photo", "music", ...) are known but carry no
direction, so "a {word} sound" embeds exactly as {word} does, which is what the 8-template
ensemble of the research notes expects.

numpy and yaml are imported inside functions: the encoder package is imported when the
plugin registry is built, and that must stay cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Sequence

from deltav2a.api.optionsref import OptionsRef
from deltav2a.errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

Modality = Literal["image", "audio"]

DATA_DIR = Path(__file__).resolve().parent / "data"
NORMALISATION_FILE = DATA_DIR / "perceptual_normalisation.yaml"
#: every shipped normalisation, by `normalisation_version`; version 2 (issue 16) adds the audio
#: descriptor `gap_depth` and keeps every constant of version 1
NORMALISATION_FILES = {"1": NORMALISATION_FILE, "2": DATA_DIR / "perceptual_normalisation_v2.yaml",
                       "3": DATA_DIR / "perceptual_normalisation_v3.yaml",
                       "4": DATA_DIR / "perceptual_normalisation_v4.yaml",
                       "5": DATA_DIR / "perceptual_normalisation_v5.yaml"}
#: version 3 (issue 15) keeps version 2's 24 audio descriptors but computes them with audio
#: analysis 2 (half the frames; see docs/perceptual_encoders.md, "Analysis versions"), so its
#: audio constants were refitted; its image section is version 2's. Picked by the encoder
#: option `normalisation_version`, or by lexicon v4, which names it.
#: version 4 (issue 15, decisions 15.50+) keeps the same 24 audio descriptors, computed by
#: audio analysis 3 (analysis 2 with cheaper flatness, floor and level passes), refitted the
#: same way (train split); image section as version 3. Picked by `normalisation_version: "4"`
#: with lexicon v3 or v4 (same descriptor names).
LEXICON_FILE = DATA_DIR / "perceptual_lexicon.yaml"
#: every shipped lexicon version, by `lexicon_version`: the newest is the default, older ones
#: stay loadable (encoder option `lexicon_version`) so models trained with them still run
LEXICON_FILES = {"1": DATA_DIR / "perceptual_lexicon_v1.yaml", "2": DATA_DIR / "perceptual_lexicon_v2.yaml",
                 "3": LEXICON_FILE, "4": DATA_DIR / "perceptual_lexicon_v4.yaml",
                 "5": DATA_DIR / "perceptual_lexicon_v5.yaml", "6": DATA_DIR / "perceptual_lexicon_v6.yaml"}
#: the encoders' default stays v3 (normalisation 2), so configs and models that name no lexicon
#: keep their meaning; the shipped model and the default config pin v4 (issue 16, third pass)
#: with audio normalisation 4 explicitly (decision 16.64: v4 alone names normalisation 3)
DEFAULT_LEXICON_VERSION = "3"
#: v5 (issue 16, sixth pass, decisions 16.50+) is v4 with *agitated* (and *fast*) grounded in
#: onset_rate, one of the two descriptors normalisation 5 adds (quiet_floor, the other, grounds
#: no word: decision 16.51); it reads normalisation 5 only (`normalisation_versions` in the
#: file). Not the default. v6 (decision 16.74) is v4 with *steady*'s audio side grounded in its
#: own gloss (an even level, an unwavering spectrum) instead of the mirror of *oscillating*; it
#: reads what v4 reads. Not the default: the shipped model stays on v4 (criterion 3 was not
#: reached). Both files say `extends: "4"` and hold only their re-grounded entries.

TRANSFORMS = ("identity", "log", "logit")

#: negation words: the next word with a direction (within NEGATION_REACH tokens) is flipped
NEGATIONS = frozenset({"not", "no", "non", "without", "never", "less"})
NEGATION_REACH = 3
MAX_PHRASE_WORDS = 3

_TOKEN = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def _read_yaml(path: Path, what: str) -> dict:
    from deltav2a.fileio import read_yaml

    return read_yaml(path, what)


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


# ------------------------------------------------------------------ normalisation table


@dataclass(frozen=True)
class DescriptorSpec:
    """One descriptor: how its raw value becomes a normalised coordinate."""

    name: str
    gloss: str
    unit: str
    transform: str
    offset: float
    centre: float
    scale: float

    def apply(self, raw: float) -> float:
        """raw -> transformed value (before centring); NaN stays NaN (undefined)."""
        if math.isnan(raw):
            return raw
        if self.transform == "identity":
            return raw
        if self.transform == "log":
            return math.log(max(raw, 0.0) + self.offset)
        # logit with the offset as the clip distance from 0 and 1
        p = min(max(raw, self.offset), 1.0 - self.offset)
        return math.log(p / (1.0 - p))

    def as_dict(self) -> dict:
        return {"name": self.name, "unit": self.unit, "transform": self.transform,
                "offset": self.offset, "centre": self.centre, "scale": self.scale}


@dataclass(frozen=True)
class NormalisationTable:
    """Fixed per-descriptor transform + centre/scale + soft clip for one modality."""

    modality: str
    version: str
    squash: float
    output_scale: float
    descriptors: tuple[DescriptorSpec, ...]
    source: Path
    #: how the raw descriptors are computed (`<modality>.analysis` in the file, default 1);
    #: the encoder refuses an analysis it does not implement
    analysis: int = 1

    @property
    def names(self) -> tuple[str, ...]:
        # memoised, like the centre and scale arrays below: every encode asks ~7 times
        # (decision 15.62); a table is never changed after loading
        memo = self.__dict__.get("_names_memo")
        if memo is None:
            memo = tuple(d.name for d in self.descriptors)
            object.__setattr__(self, "_names_memo", memo)  # frozen dataclass: not a field
        return memo

    def _centre_scale(self) -> tuple["np.ndarray", "np.ndarray"]:
        memo = self.__dict__.get("_centre_scale_memo")
        if memo is None:
            import numpy as np

            memo = (np.array([d.centre for d in self.descriptors]), np.array([d.scale for d in self.descriptors]))
            for a in memo:
                a.flags.writeable = False
            object.__setattr__(self, "_centre_scale_memo", memo)
        return memo

    def digest(self) -> str:
        doc = {"version": self.version, "squash": self.squash,
               "output_scale": self.output_scale, "descriptors": [d.as_dict() for d in self.descriptors]}
        if self.analysis != 1:  # absent for analysis 1, so older tables keep their digest
            doc["analysis"] = self.analysis
        return _digest(doc)

    def transformed(self, raw: "np.ndarray") -> "np.ndarray":
        """(N, D) raw -> (N, D) transformed values (NaN where undefined); used by the fit."""
        import numpy as np

        raw = np.asarray(raw, dtype=np.float64)
        descriptors = self.descriptors
        if raw.ndim != 2 or raw.shape[1] != len(descriptors):
            raise ValueError(f"expected (N, {len(descriptors)}) raw descriptors, got shape {raw.shape}")
        # row by row on Python floats: ~3x faster than column by column (decision 15.62)
        rows = [[d.apply(v) for d, v in zip(descriptors, row)] for row in raw.tolist()]
        return np.array(rows, dtype=np.float64).reshape(raw.shape)

    def normalise(self, raw: "np.ndarray") -> "np.ndarray":
        """(N, D) raw descriptors -> (N, D) float32 coordinates.

        z = (transform(raw) - centre) / scale, then squash * tanh(z / squash): values stay
        in (-squash, squash) so one descriptor leaving its usual range (a lowpass drives
        the top band toward -inf dB) cannot dominate every delta. Undefined descriptors
        (NaN: a silent clip's centroid, a flat image's texture statistics) are set to 0,
        the corpus centre, i.e. "no information" rather than an extreme.
        """
        import numpy as np

        t = self.transformed(raw)
        centre, scale = self._centre_scale()
        z = (t - centre) / scale
        z = self.squash * np.tanh(z / self.squash)
        z = np.where(np.isnan(z), 0.0, z) * self.output_scale
        return z.astype(np.float32)


def load_normalisation(path: Path, modality: Modality, expected: Sequence[str] | Sequence[Sequence[str]]
                       ) -> NormalisationTable:
    """Parse and validate one modality's table against the descriptor list(s) of the code.

    `expected` is one descriptor list, or several (the encoder computes any of them: the
    table's list decides which, e.g. perceptual-audio's 23 or 24 descriptors).
    """
    raw = _read_yaml(path, "normalisation file")
    version = raw.get("normalisation_version")
    if not isinstance(version, (str, int)) or not str(version).strip():
        raise DeltaV2AError(f"normalisation file {path}: missing normalisation_version")
    squash = raw.get("squash", 4.0)
    if not isinstance(squash, (int, float)) or not squash > 0:
        raise DeltaV2AError(f"normalisation file {path}: squash must be a positive number")
    output_scale = raw.get("output_scale", 1.0)
    if not isinstance(output_scale, (int, float)) or not output_scale > 0:
        raise DeltaV2AError(f"normalisation file {path}: output_scale must be a positive number")
    section = raw.get(modality)
    if not isinstance(section, dict) or not isinstance(section.get("descriptors"), list):
        raise DeltaV2AError(f"normalisation file {path}: no '{modality}.descriptors' list")
    analysis = section.get("analysis", 1)
    if not isinstance(analysis, int) or isinstance(analysis, bool) or not 1 <= analysis <= 1000:
        raise DeltaV2AError(f"normalisation file {path}: {modality}.analysis must be a positive "
                            f"integer, got {analysis!r}")
    specs: list[DescriptorSpec] = []
    for i, item in enumerate(section["descriptors"]):
        where = f"normalisation file {path}: {modality}.descriptors[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise DeltaV2AError(f"{where}: each descriptor needs a name")
        transform = item.get("transform", "identity")
        if transform not in TRANSFORMS:
            raise DeltaV2AError(f"{where} ({item['name']}): transform must be one of "
                                f"{', '.join(TRANSFORMS)}, got {transform!r}")
        try:
            offset = float(item.get("offset", 0.0))
            centre = float(item["centre"])
            scale = float(item["scale"])
        except (KeyError, TypeError, ValueError):
            raise DeltaV2AError(f"{where} ({item['name']}): centre and scale must be numbers") from None
        if not (math.isfinite(centre) and math.isfinite(scale) and scale > 0):
            raise DeltaV2AError(f"{where} ({item['name']}): centre must be finite and scale > 0")
        if transform == "log" and not offset > 0:
            raise DeltaV2AError(f"{where} ({item['name']}): a log transform needs offset > 0")
        if transform == "logit" and not 0 < offset < 0.5:
            raise DeltaV2AError(f"{where} ({item['name']}): a logit transform needs 0 < offset < 0.5")
        specs.append(DescriptorSpec(item["name"], str(item.get("gloss", "")), str(item.get("unit", "")),
                                    transform, offset, centre, scale))
    names = tuple(s.name for s in specs)
    allowed = [tuple(expected)] if expected and isinstance(expected[0], str) else [tuple(e) for e in expected]
    if names not in allowed:
        raise DeltaV2AError(
            f"normalisation file {path} lists {modality} descriptors {list(names)}, but this "
            f"version of the encoder computes {' or '.join(str(list(e)) for e in allowed)}: the file "
            "belongs to another encoder version")
    return NormalisationTable(modality, str(version), float(squash), float(output_scale),
                              tuple(specs), path, analysis)


# ------------------------------------------------------------------ lexicon


@dataclass
class TextExplanation:
    """How one text was read: which words counted, which were neutral, which were unknown.

    `known` holds (word as written, lexicon entry, sign) for every word that contributed a
    direction (sign -1 when a negation flipped it); `neutral` the lexicon's template and
    category words; `unknown` the words the lexicon does not have.
    """

    text: str
    known: list[tuple[str, str, int]] = field(default_factory=list)
    neutral: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"text": self.text,
                "known": [{"word": w, "entry": e, "sign": s} for w, e, s in self.known],
                "neutral": list(self.neutral), "unknown": list(self.unknown)}


def tokenise(text: str) -> list[str]:
    """Lower-case words; hyphenated words (lo-fi) stay one token; digits split words."""
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2010", "-").replace("\u2011", "-")
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class Lexicon:
    """word -> signed descriptor direction, for one modality, resolved and unit-length."""

    modality: str
    version: str
    descriptor_names: tuple[str, ...]
    directions: dict[str, tuple[float, ...]]   # unit vectors, in descriptor order
    glosses: dict[str, str]
    neutral: frozenset[str]
    source: Path

    def digest(self) -> str:
        # memoised: a lexicon is never changed after loading, and hashing its few thousand
        # rounded directions took ~3 ms, paid twice by every build-db plan (decision 15.61)
        memo = self.__dict__.get("_digest_memo")
        if memo is None:
            memo = _digest({"version": self.version, "descriptors": list(self.descriptor_names),
                            "directions": {w: [round(x, 9) for x in v]
                                           for w, v in sorted(self.directions.items())},
                            "neutral": sorted(self.neutral)})
            object.__setattr__(self, "_digest_memo", memo)  # frozen dataclass: not a field
        return memo

    @property
    def words(self) -> list[str]:
        return sorted(self.directions)

    def _lookup(self, word: str) -> tuple[str | None, bool]:
        """word -> (entry, is_neutral); tries light inflections (plural, -ly, -ed)."""
        candidates = [word]
        for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ily", "y"), ("ly", ""),
                             ("ness", ""), ("ed", ""), ("ed", "e")):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                candidates.append(word[: len(word) - len(suffix)] + repl)
        for c in candidates:
            if c in self.directions:
                return c, False
            if c in self.neutral:
                return c, True
        return None, False

    def explain(self, text: str) -> tuple[TextExplanation, "np.ndarray"]:
        """Read `text`; returns the explanation and the summed (unnormalised) direction."""
        import numpy as np

        if not isinstance(text, str):
            raise DeltaV2AError(f"perceptual {self.modality} lexicon: text must be a string, "
                                f"got {type(text).__name__}")
        exp = TextExplanation(text)
        total = np.zeros(len(self.descriptor_names), dtype=np.float64)
        tokens = tokenise(text)
        # expand hyphenated tokens the lexicon does not know into their parts
        expanded: list[str] = []
        for tok in tokens:
            if "-" in tok and self._lookup(tok)[0] is None and self._lookup(tok.replace("-", ""))[0] is None:
                expanded.extend(p for p in tok.split("-") if p)
            elif "-" in tok and self._lookup(tok)[0] is None:
                expanded.append(tok.replace("-", ""))
            else:
                expanded.append(tok)
        negate_left = 0
        i = 0
        while i < len(expanded):
            hit: str | None = None
            span = 1
            for n in range(min(MAX_PHRASE_WORDS, len(expanded) - i), 1, -1):
                phrase = " ".join(expanded[i: i + n])
                if phrase in self.directions or phrase in self.neutral:
                    hit, span = phrase, n
                    break
            word = " ".join(expanded[i: i + span]) if hit else expanded[i]
            if hit is None:
                hit, _ = self._lookup(word)
            i += span
            if word in NEGATIONS and hit is None:
                negate_left = NEGATION_REACH
                exp.neutral.append(word)
                continue
            if hit is None:
                exp.unknown.append(word)
            elif hit in self.directions:
                sign = -1 if negate_left > 0 else 1
                negate_left = 0
                total += sign * np.asarray(self.directions[hit])
                exp.known.append((word, hit, sign))
                continue
            else:
                exp.neutral.append(word)
            negate_left = max(0, negate_left - 1)
        return exp, total

    def encode(self, text: str, who: str) -> tuple["np.ndarray", TextExplanation]:
        import numpy as np

        exp, total = self.explain(text)
        if not exp.known:
            unknown = f" (unknown words: {', '.join(exp.unknown)})" if exp.unknown else ""
            raise DeltaV2AError(
                f"{who}: no word of {text!r} has a {self.modality} direction in the perceptual "
                f"lexicon{unknown}; see docs/perceptual_encoders.md for the known words")
        norm = float(np.linalg.norm(total))
        if norm < 1e-9:
            raise DeltaV2AError(f"{who}: the words of {text!r} cancel out "
                                f"({', '.join(w for w, _, _ in exp.known)}); nothing to embed")
        return (total / norm).astype(np.float32), exp


def _resolve_entry(name: str, entries: dict, modality: str, names: Sequence[str],
                   path: Path, stack: tuple[str, ...] = ()) -> dict[str, float]:
    """One entry's raw (unnormalised) weights for `modality`, following opposite/like."""
    if name in stack:
        raise DeltaV2AError(f"lexicon {path}: entries refer to each other in a loop: "
                            f"{' -> '.join(stack + (name,))}")
    if name not in entries:
        raise DeltaV2AError(f"lexicon {path}: '{stack[-1] if stack else name}' refers to "
                            f"unknown entry '{name}'")
    entry = entries[name]
    where = f"lexicon {path}: entry '{name}'"
    if not isinstance(entry, dict):
        raise DeltaV2AError(f"{where} must be a mapping")
    if not str(entry.get("gloss", "")).strip():
        raise DeltaV2AError(f"{where} has no gloss")
    ways = [k for k in ("opposite", "like", modality) if k in entry]
    if "opposite" in entry and ("like" in entry or modality in entry):
        raise DeltaV2AError(f"{where}: 'opposite' cannot be combined with other weights")
    if not ways:
        raise DeltaV2AError(f"{where} has no '{modality}' weights (nor 'opposite'/'like')")
    out: dict[str, float] = {}
    if "opposite" in entry:
        for k, v in _resolve_entry(str(entry["opposite"]), entries, modality, names, path,
                                   stack + (name,)).items():
            out[k] = -v
        return out
    if "like" in entry:
        like = entry["like"]
        if not isinstance(like, dict) or not like:
            raise DeltaV2AError(f"{where}: 'like' must map entry names to weights")
        for other, w in like.items():
            sub = _resolve_entry(str(other), entries, modality, names, path, stack + (name,))
            norm = math.sqrt(sum(v * v for v in sub.values())) or 1.0
            for k, v in sub.items():
                out[k] = out.get(k, 0.0) + float(w) * v / norm
    if modality in entry:
        own = entry[modality]
        if not isinstance(own, dict) or not own:
            raise DeltaV2AError(f"{where}: '{modality}' must map descriptor names to weights")
        for k, v in own.items():
            if k == "like":  # a modality-specific combination of other entries
                if not isinstance(v, dict) or not v:
                    raise DeltaV2AError(f"{where}: '{modality}.like' must map entry names to weights")
                for other, w in v.items():
                    sub = _resolve_entry(str(other), entries, modality, names, path, stack + (name,))
                    norm = math.sqrt(sum(x * x for x in sub.values())) or 1.0
                    for kk, vv in sub.items():
                        out[kk] = out.get(kk, 0.0) + float(w) * vv / norm
                continue
            if k not in names:
                raise DeltaV2AError(f"{where}: unknown {modality} descriptor '{k}' "
                                    f"(known: {', '.join(names)})")
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise DeltaV2AError(f"{where}: weight for '{k}' must be a number")
            out[k] = out.get(k, 0.0) + float(v)
    return out


def _merge_supplements(raw: dict, path: Path, supplements: Sequence[Path]) -> dict:
    """Base lexicon + supplement files (task-specific words, e.g. the drum roles' prompts).

    A supplement adds entries and neutral groups; it may refer to base entries (`like`,
    `opposite`) but may not redefine a base entry or neutral word, so a supplement can only
    widen what the base lexicon reads, never change it. Its name and version enter the
    lexicon version, and its directions the digest, hence the encoder fingerprint: an
    encoder with a supplement is a different encoder, one without is unchanged.
    """
    words = dict(raw.get("words") or {})
    neutral = dict(raw.get("neutral") or {})
    base_neutral = {str(w).strip().lower() for g in neutral.values() if isinstance(g, dict)
                    for w in (g.get("words") or []) if isinstance(w, str)}
    version = str(raw.get("lexicon_version"))
    for sp in supplements:
        sup = _read_yaml(sp, "lexicon supplement")
        sv = sup.get("supplement_version")
        if not isinstance(sv, (str, int)) or not str(sv).strip():
            raise DeltaV2AError(f"lexicon supplement {sp}: missing supplement_version")
        extra = sup.get("words") or {}
        if not isinstance(extra, dict):
            raise DeltaV2AError(f"lexicon supplement {sp}: 'words' must map words to entries")
        for w in extra:
            if w in words or w in base_neutral:
                raise DeltaV2AError(f"lexicon supplement {sp}: '{w}' is already in the lexicon {path}; "
                                    "a supplement may only add words")
        words.update(extra)
        for group, spec in (sup.get("neutral") or {}).items():
            neutral[f"{sp.stem}:{group}"] = spec
        version += f"+{sp.stem}:{sv}"
    return {**raw, "lexicon_version": version, "words": words, "neutral": neutral}


def read_lexicon_file(path: Path, _chain: tuple[Path, ...] = ()) -> dict:
    """A lexicon file's content with its `extends` resolved: the one reader of lexicon files.

    A new lexicon version usually re-grounds one or two words of an older one; `extends: "4"`
    takes that shipped version's words, neutral groups and normalisation keys, and the file's
    own `words` entries (whole entries) and `neutral` groups replace or add to them. So a
    version is its differences, not a 900-line copy whose other 899 lines can drift. Only a
    shipped version (LEXICON_FILES) can be extended, never a path: a lexicon from elsewhere
    reads nothing outside its own file but the package's data. The result is what a full copy
    would have been, so the resolved directions, hence the fingerprint, are the copy's.

    Parsed once per file content (the loader and both normalisation checks ask for it, and an
    extending file would otherwise parse its base each time); callers must not change the result.
    """
    try:
        key = ("lexfile", str(path), path.stat().st_mtime_ns, path.stat().st_size, _chain)
    except OSError:
        key = None  # `_read_yaml` reports the missing file in one line
    if key is not None and key in _CACHE:
        return _CACHE[key]
    raw = _read_yaml(path, "lexicon")
    base = raw.get("extends")
    if base is None:
        if key is not None:
            _CACHE[key] = raw
        return raw
    shipped = ", ".join(sorted(LEXICON_FILES, key=lambda v: (len(v), v)))
    if isinstance(base, bool) or not isinstance(base, (str, int)) or str(base).strip() not in LEXICON_FILES:
        raise DeltaV2AError(f"lexicon {path}: 'extends' must name a shipped lexicon version "
                            f"({shipped}), not {base!r}")
    target = LEXICON_FILES[str(base).strip()]
    if target.resolve() in (Path(path).resolve(), *_chain):
        raise DeltaV2AError(f"lexicon {path}: 'extends: {base}' leads back to itself")
    for section in ("words", "neutral"):
        if not isinstance(raw.get(section) or {}, dict):
            raise DeltaV2AError(f"lexicon {path}: '{section}' must be a mapping")
    parent = read_lexicon_file(target, _chain + (Path(path).resolve(),))
    merged = {**parent, **{k: v for k, v in raw.items() if k not in ("extends", "words", "neutral")}}
    merged["words"] = {**(parent.get("words") or {}), **(raw.get("words") or {})}
    merged["neutral"] = {**(parent.get("neutral") or {}), **(raw.get("neutral") or {})}
    if key is not None:
        _CACHE[key] = merged
    return merged


def load_lexicon(path: Path, modality: Modality, names: Sequence[str],
                 supplements: Sequence[Path] = ()) -> Lexicon:
    raw = read_lexicon_file(path)
    if supplements:
        raw = _merge_supplements(raw, path, supplements)
    version = raw.get("lexicon_version")
    if not isinstance(version, (str, int)) or not str(version).strip():
        raise DeltaV2AError(f"lexicon {path}: missing lexicon_version")
    entries = raw.get("words")
    if not isinstance(entries, dict) or not entries:
        raise DeltaV2AError(f"lexicon {path}: 'words' must map words to entries")
    directions: dict[str, tuple[float, ...]] = {}
    glosses: dict[str, str] = {}
    for word in entries:
        if not isinstance(word, str) or word != word.strip().lower() or not word:
            raise DeltaV2AError(f"lexicon {path}: entry {word!r} must be a lower-case word or phrase")
        weights = _resolve_entry(word, entries, modality, names, path)
        vec = [weights.get(n, 0.0) for n in names]
        norm = math.sqrt(sum(v * v for v in vec))
        if norm < 1e-12:
            raise DeltaV2AError(f"lexicon {path}: entry '{word}' has no {modality} direction "
                                "(list it under 'neutral' instead)")
        directions[word] = tuple(v / norm for v in vec)
        glosses[word] = str(entries[word]["gloss"]).strip()
    neutral: set[str] = set()
    groups = raw.get("neutral", {})
    if not isinstance(groups, dict):
        raise DeltaV2AError(f"lexicon {path}: 'neutral' must map group names to word lists")
    for group, spec in groups.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("words"), list) or not spec.get("gloss"):
            raise DeltaV2AError(f"lexicon {path}: neutral group '{group}' needs a gloss and a words list")
        for w in spec["words"]:
            if not isinstance(w, str):  # YAML reads bare on/off/yes/no as booleans
                raise DeltaV2AError(f"lexicon {path}: neutral group '{group}' has a non-word {w!r} "
                                    "(quote yes/no/on/off in YAML)")
            w = w.strip().lower()
            if w in directions:
                raise DeltaV2AError(f"lexicon {path}: '{w}' is both an entry and neutral ({group})")
            neutral.add(w)
    return Lexicon(modality, str(version), tuple(names), directions, glosses, frozenset(neutral), path)


# ------------------------------------------------------------------ shared encoder side


_CACHE: dict[tuple, Any] = {}


def supplement_path(name_or_path: str) -> Path:
    """A shipped lexicon supplement by name (`drums` -> data/lexicon_supplement_drums.yaml) or a path."""
    p = Path(name_or_path).expanduser()
    if p.suffix in (".yaml", ".yml"):
        return p
    shipped = DATA_DIR / f"lexicon_supplement_{name_or_path}.yaml"
    if not shipped.is_file():
        known = sorted(x.stem.removeprefix("lexicon_supplement_")
                       for x in DATA_DIR.glob("lexicon_supplement_*.yaml"))
        raise DeltaV2AError(f"unknown lexicon supplement '{name_or_path}' (shipped: "
                            f"{', '.join(known) or 'none'}; or give a .yaml path)")
    return shipped


def _cached(kind: str, path: Path, modality: str, names: tuple[str, ...], loader: Any,
            *extra: Path) -> Any:
    """Parse each data file once per content (the encoders are built often, files rarely change)."""
    try:
        stats = [(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in (path, *extra)]
    except OSError:
        return loader(path, modality, names, *((extra,) if extra else ()))  # raises the one-line error
    key = (kind, tuple(stats), modality, names)
    if key not in _CACHE:
        _CACHE[key] = loader(path, modality, names, *((extra,) if extra else ()))
    return _CACHE[key]


def _normalisation_path(who: str, options: dict[str, Any], lexicon: Path) -> Path:
    """The `normalisation` (a file) or `normalisation_version` (shipped) option, else the
    normalisation the lexicon file names.

    A lexicon that grounds words in a descriptor added by a later normalisation names it
    (`normalisation_version: '2'` in lexicon v3); lexicons without the key (v1, v2 and older
    custom files) use version 1, so their encoders are what they always were.
    """
    chosen = _file_or_shipped(who, options, "normalisation", NORMALISATION_FILES)
    if chosen is not None:
        _check_supported(who, lexicon, chosen)
        return chosen
    version = _lexicon_normalisation_version(lexicon)
    if version not in NORMALISATION_FILES:
        raise DeltaV2AError(f"lexicon {lexicon}: no shipped normalisation version {version!r} "
                            f"(shipped: {', '.join(sorted(NORMALISATION_FILES))})")
    _check_supported(who, lexicon, NORMALISATION_FILES[version])
    return NORMALISATION_FILES[version]


def _check_supported(who: str, lexicon: Path, normalisation: Path) -> None:
    """A lexicon that lists `normalisation_versions` (v5 on: the normalisations whose
    descriptors its words are grounded in) refuses any other, in one line; lexicons without
    the key (v1-v4) read any normalisation that computes their descriptors, as before."""
    try:
        key = ("lexsupp", str(lexicon), lexicon.stat().st_mtime_ns, lexicon.stat().st_size)
    except OSError:
        return  # the lexicon itself reports the missing file when it is loaded
    if key not in _CACHE:
        raw = read_lexicon_file(lexicon).get("normalisation_versions")
        if raw is not None and (not isinstance(raw, list) or not raw
                                or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in raw)):
            raise DeltaV2AError(f"lexicon {lexicon}: normalisation_versions must be a non-empty list of versions")
        _CACHE[key] = None if raw is None else tuple(str(v).strip() for v in raw)
    supported = _CACHE[key]
    if supported is None:
        return
    shipped = {v: k for k, v in NORMALISATION_FILES.items()}
    version = shipped.get(normalisation)
    if version is None:
        version = str(_read_yaml(normalisation, "normalisation file").get("normalisation_version", "")).strip()
    if version not in supported:
        raise DeltaV2AError(f"encoder '{who}': lexicon {lexicon.name} reads normalisation "
                            f"{' or '.join(supported)} only, not normalisation {version or '?'} ({normalisation.name})")


def _lexicon_normalisation_version(path: Path) -> str:
    try:
        key = ("lexnorm", str(path), path.stat().st_mtime_ns, path.stat().st_size)
    except OSError:
        return "1"  # the lexicon itself reports the missing file when it is loaded
    if key not in _CACHE:
        _CACHE[key] = str(read_lexicon_file(path).get("normalisation_version", "1")).strip()
    return _CACHE[key]


def _lexicon_path(who: str, options: dict[str, Any]) -> Path:
    """The lexicon file from the `lexicon` (path) or `lexicon_version` (shipped) option."""
    chosen = _file_or_shipped(who, options, "lexicon", LEXICON_FILES)
    return LEXICON_FILES[DEFAULT_LEXICON_VERSION] if chosen is None else chosen


def _file_or_shipped(who: str, options: dict[str, Any], option: str, shipped: dict[str, Path]) -> Path | None:
    """The file of the `<option>` (a path) or `<option>_version` (a shipped one) option, or
    None when neither is set; both at once, or an unknown version, is a one-line error."""
    version = options.get(f"{option}_version")
    if options.get(option) and version is not None:
        raise DeltaV2AError(f"encoder '{who}': give the option '{option}' (a file) or "
                            f"'{option}_version' (a shipped one), not both")
    if options.get(option):
        return Path(options[option])
    if version is None:
        return None
    key = str(version).strip()
    if key not in shipped:
        raise DeltaV2AError(f"encoder '{who}': no shipped {option} version {version!r} "
                            f"(shipped: {', '.join(sorted(shipped))})")
    return shipped[key]


class PerceptualBase:
    """What both perceptual encoders share: options, data tables, fingerprint, text side.

    Subclasses set `name`, `modality`, `DESCRIPTORS` (the order of the vector) and
    `ALGORITHM_REVISION` (bumped whenever a raw descriptor is computed differently).

    Options: `normalisation` and `lexicon` (paths) replace the shipped data files, for
    experiments; `lexicon_version` picks one of the shipped lexicons (LEXICON_FILES; "3" by
    default, "4" reads normalisation 3; "1" is the lexicon the first shipped models were trained with);
    `normalisation_version` picks a shipped normalisation (NORMALISATION_FILES; by default the
    one the lexicon names), e.g. "3" for audio analysis 2 (issue 15, > 1,000x real time), "4"
    for audio analysis 3 (cheaper still, decision 15.50);
    `device` and `batch_size` are accepted and ignored so configurations written for the
    neural encoders also work here.
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    DESCRIPTORS: ClassVar[tuple[str, ...]] = ()
    #: every descriptor list the encoder computes; the normalisation table picks one
    #: (default: DESCRIPTORS only)
    DESCRIPTOR_SETS: ClassVar[tuple[tuple[str, ...], ...]] = ()
    ALGORITHM_REVISION: ClassVar[int] = 1
    Options = OptionsRef("deltav2a_plugins.encoders.options:PerceptualOptions")
    #: the `<modality>.analysis` values of a normalisation file this encoder computes
    ANALYSES: ClassVar[tuple[int, ...]] = (1,)

    options: dict[str, Any]

    def _init_options(self, options: dict[str, Any]) -> None:
        """`options`: the validated ones (`Encoder.__init__` checked them against `Options`)."""
        self._lex_path = _lexicon_path(self.name, options)
        self._norm_path = _normalisation_path(self.name, options, self._lex_path)
        sup = options.get("lexicon_supplements") or []
        if isinstance(sup, str) or not all(isinstance(x, str) for x in sup):
            raise DeltaV2AError(f"encoder '{self.name}': lexicon_supplements must be a list of "
                                "supplement names or YAML paths")
        self._supplements = tuple(supplement_path(x) for x in sup)
        self._table: NormalisationTable | None = None
        self._lexicon: Lexicon | None = None
        #: per text of the last `encode_text` call: the words the lexicon did not know
        self.last_unknown_words: list[list[str]] = []

    @property
    def descriptor_names(self) -> tuple[str, ...]:
        """The descriptors of this encoder's vector, in order (as its normalisation lists them)."""
        return self.table.names

    @property
    def dim(self) -> int:
        return len(self.descriptor_names)

    @classmethod
    def describe(cls) -> dict:
        """Encoder description plus the descriptor list (`deltav2a plugin-info --json`)."""
        info = super().describe()  # type: ignore[misc]
        info.update({"dim": len(cls.DESCRIPTORS), "descriptors": list(cls.DESCRIPTORS),
                     "docs": "docs/perceptual_encoders.md"})
        return info

    @property
    def table(self) -> NormalisationTable:
        if self._table is None:
            table = _cached("norm", self._norm_path, self.modality,
                            self.DESCRIPTOR_SETS or (self.DESCRIPTORS,), load_normalisation)
            if table.analysis not in self.ANALYSES:
                raise DeltaV2AError(
                    f"normalisation file {table.source}: {self.modality} analysis {table.analysis} "
                    f"is not one this version of '{self.name}' computes "
                    f"({', '.join(map(str, self.ANALYSES))})")
            self._table = table
        return self._table

    @property
    def lexicon(self) -> Lexicon:
        if self._lexicon is None:
            self._lexicon = _cached("lex", self._lex_path, self.modality, self.descriptor_names,
                                    load_lexicon, *self._supplements)
        return self._lexicon

    def fingerprint(self) -> str:
        """`perceptual-<modality>/<normalisation_version>/<hash>`.

        The hash covers the descriptor list, the algorithm revision, this modality's
        normalisation constants and its resolved lexicon directions: everything that
        changes a media vector or a text vector.
        """
        h = _digest({"descriptors": list(self.descriptor_names), "revision": self.ALGORITHM_REVISION,
                     "normalisation": self.table.digest(), "lexicon": self.lexicon.digest()})
        return f"{self.name}/{self.table.version}/{h[:16]}"

    def explain_text(self, text: str) -> TextExplanation:
        """Which words of `text` the lexicon knows, finds neutral, or does not know."""
        return self.lexicon.explain(text)[0]

    def encode_text(self, texts: Sequence[str]) -> "np.ndarray":
        """(N, dim) unit vectors: the normalised sum of the known words' directions.

        Unknown words are ignored and listed, per text, in `last_unknown_words`; a text
        with no word carrying a direction raises DeltaV2AError naming it.
        """
        import numpy as np

        if isinstance(texts, str):
            texts = [texts]
        lex = self.lexicon
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        unknown: list[list[str]] = []
        for i, t in enumerate(texts):
            vec, exp = lex.encode(t, self.name)
            out[i] = vec
            unknown.append(exp.unknown)
        self.last_unknown_words = unknown
        return out

    def normalise(self, raw: "np.ndarray") -> "np.ndarray":
        return self.table.normalise(raw)
