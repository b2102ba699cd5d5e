"""Style vocabularies: terms, their antonym axes, and per-modality prompt templates.

Vocabularies are data (YAML in `vocabularies/`, a user directory, or a plugin). A
vocabulary is selected by name everywhere (`style/vocab.py`: `load_vocabulary`); a
registered file is a `VocabularyFile` (`api/registry.py`), parsed only when it is used, so
registering one costs nothing (not even importing pydantic).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import DeltaV2AError


class Axis(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pole: str
    antipole: str
    gloss: str = ""


class Phase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    axes: list[Axis]


class Templates(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: list[str] = Field(min_length=1)
    audio: list[str] = Field(min_length=1)

    @field_validator("image", "audio")
    @classmethod
    def _has_slot(cls, v: list[str]) -> list[str]:
        for t in v:
            if "{word}" not in t:
                raise ValueError(f"template {t!r} has no {{word}} slot")
            try:  # `{0}`, `{other}` or a stray brace would fail later, mid-encoding
                t.format(word="x")
            except (IndexError, KeyError, ValueError, AttributeError) as exc:
                raise ValueError(f"template {t!r} may only use the {{word}} slot "
                                 f"(write {{{{ and }}}} for literal braces): {exc}") from None
        return v


class Vocabulary(BaseModel):
    """A named list of style terms with the prompt templates that embed them."""

    model_config = ConfigDict(extra="forbid")
    name: str
    version: str = "1"
    summary: str
    description: str = ""
    terms: list[str] = Field(min_length=2)
    phases: list[Phase] = []
    templates: Templates

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        # names end up in messages, sidecars and (never again) file names; keep them plain
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_. +-]{0,63}", v) or ".." in v:
            raise ValueError(f"name {v!r} must be letters, digits, '_', '-' or '.' (no '..', "
                             "no path separators)")
        return v

    @model_validator(mode="after")
    def _check(self) -> "Vocabulary":
        if len(set(self.terms)) != len(self.terms):
            dup = sorted({t for t in self.terms if self.terms.count(t) > 1})
            raise ValueError(f"duplicate terms: {', '.join(dup)}")
        axis_terms = [t for ph in self.phases for ax in ph.axes for t in (ax.pole, ax.antipole)]
        if axis_terms and axis_terms != self.terms:
            raise ValueError("terms must list the axes' poles in order (pole, antipole, ...)")
        return self

    @property
    def size(self) -> int:
        return len(self.terms)

    def prompts(self, modality: Literal["image", "audio"], term: str) -> list[str]:
        return [t.format(word=term) for t in getattr(self.templates, modality)]

    def fingerprint(self) -> str:
        """Changes whenever a term or template changes; keys embedding caches and models."""
        blob = json.dumps({"terms": self.terms, "templates": self.templates.model_dump()},
                          sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def parse_vocabulary(path: Path) -> Vocabulary:
    from ..fileio import first_error, read_yaml

    raw = read_yaml(path, "vocabulary")
    raw.setdefault("name", path.stem)
    try:
        return Vocabulary.model_validate(raw)
    except ValidationError as exc:
        raise DeltaV2AError(f"vocabulary {path}: {first_error(exc)}") from None
