"""Text scoring (the note's clap/scoring.py) through any registered audio encoder.

The role prompts are a data file shaped like a vocabulary (one prompt per role plus
templates); they become a `Vocabulary` whose terms are the prompts, so the project's
term-embedding cache (`encoding.term_embeddings`, keyed by encoder and prompt
fingerprints) holds the role embeddings. p_text = softmax(cos(audio, role) / tau).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import DeltaV2AError
from .rules import softmax
from .types import ROLE_ORDER, ScoreVector

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..api.vocabulary import Vocabulary
    from .config import RoleAssignerConfig

DATA_DIR = Path(__file__).resolve().parent / "data"


class RolePrompts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: str = "1"
    summary: str = ""
    roles: dict[str, str]
    templates: list[str] = Field(["{word}"], min_length=1)

    @field_validator("roles")
    @classmethod
    def _all_roles(cls, v: dict[str, str]) -> dict[str, str]:
        want = [r.value for r in ROLE_ORDER]
        if sorted(v) != sorted(want):
            raise ValueError(f"roles must give one prompt for each of {', '.join(want)}")
        if any(not str(p).strip() for p in v.values()):
            raise ValueError("a role prompt is empty")
        return v

    def as_vocabulary(self) -> "Vocabulary":
        from ..api.vocabulary import Templates, Vocabulary

        terms = [self.roles[r.value] for r in ROLE_ORDER]
        if len(set(terms)) != len(terms):
            raise DeltaV2AError(f"role prompts '{self.name}': two roles share a prompt")
        return Vocabulary(name=f"drum-roles-{self.name}", version=self.version,
                          summary=self.summary or "drum role prompts", terms=terms,
                          templates=Templates(image=self.templates, audio=self.templates))


def load_prompts(name_or_path: str) -> RolePrompts:
    from ..fileio import first_error, read_yaml

    p = Path(name_or_path).expanduser()
    if p.suffix not in (".yaml", ".yml"):
        p = DATA_DIR / f"role_prompts_{name_or_path}.yaml"
        if not p.is_file():
            known = sorted(x.stem.removeprefix("role_prompts_") for x in DATA_DIR.glob("role_prompts_*.yaml"))
            raise DeltaV2AError(f"unknown role prompts '{name_or_path}' (shipped: {', '.join(known)}; or a .yaml path)")
    raw = read_yaml(p, "role prompts")
    raw.setdefault("name", p.stem)
    try:
        prompts = RolePrompts.model_validate(raw)
        prompts.as_vocabulary()   # the vocabulary's own checks ({word} slots) at load time
    except ValidationError as exc:
        raise DeltaV2AError(f"role prompts {p}: {first_error(exc)}") from None
    return prompts


class TextScorer:
    """Role similarities of a hit through one audio encoder's audio and text sides."""

    def __init__(self, cfg: "RoleAssignerConfig") -> None:
        from ..style.encoding import load_encoder

        self.cfg = cfg.text
        self.prompts = load_prompts(self.cfg.prompts)
        self.encoder = load_encoder(self.cfg.encoder, "audio")
        self._R: "np.ndarray | None" = None

    @property
    def role_embeddings(self) -> "np.ndarray":
        """(5, D) unit rows in role order; cached on disk by encoder + prompt fingerprints."""
        if self._R is None:
            from ..style.encoding import term_embeddings

            self._R = term_embeddings(self.encoder, self.prompts.as_vocabulary(), "audio",
                                      use_cache=self.cfg.cache_text_embeddings)
        return self._R

    def score(self, clip: "np.ndarray", sr: int) -> tuple[dict[str, float], ScoreVector]:
        """(cosine per role, p_text) for a (channels, samples) clip."""
        import numpy as np

        R = self.role_embeddings
        a = np.asarray(self.encoder.encode_audio([clip], sr), dtype=np.float64)[0]
        a = a / max(float(np.linalg.norm(a)), 1e-12)
        cos = R.astype(np.float64) @ a
        sims = {r.value: float(c) for r, c in zip(ROLE_ORDER, cos)}
        return sims, ScoreVector.of(softmax(list(cos), self.cfg.tau))
