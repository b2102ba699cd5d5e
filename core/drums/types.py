"""The typed results of the drum task (the note's types.py): roles, features, scores, pools.

Plain dataclasses so results are cheap to build and to turn into JSON rows; numpy is not
needed to hold them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum


class Role(str, Enum):
    CORE = "CORE"        # kick
    ACCENT = "ACCENT"    # snare, clap
    MOTION = "MOTION"    # hi-hat, cymbal
    FILL = "FILL"        # tom, percussion hit
    TEXTURE = "TEXTURE"  # ambience, FX, tails

    def __str__(self) -> str:
        return self.value


ROLE_ORDER: tuple[Role, ...] = tuple(Role)


@dataclass(frozen=True)
class DSPFeatures:
    """The note's nine features of one hit, each in [0, 1] (times in seconds, clipped to 1),
    and five of ours that the note lacks (body pitch and tonality, ring time, spectral
    centroid, docs/drums.md "Acoustic features"; the stroke count, "Fourth pass"). Ours
    default to 0 so a result built from the note's nine alone stays valid; the `note`
    preset's rules never read them."""

    energy: float
    sharpness: float
    attack_time: float
    decay_time: float
    low_ratio: float
    mid_ratio: float
    high_ratio: float
    spectral_flatness: float
    zero_crossing_rate: float
    duration: float = 0.0   # seconds analysed (after trim and crop); not a scoring feature
    body_pitch_hz: float = 0.0       # strongest partial of the body (25 Hz - 2 kHz), Hz
    tonality: float = 0.0            # share of the body's power in that partial, [0, 1]
    ring_time: float = 0.0           # peak to `ring_db` below it, s (clipped to 2)
    spectral_centroid_hz: float = 0.0  # power-weighted mean frequency of the hit, Hz
    strikes: int = 0                 # re-attacks after the peak (strokes of a roll), count

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 6) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ScoreVector:
    """Role -> score (probabilities, or raw scores/similarities) with the note's helpers."""

    values: dict[str, float]

    @classmethod
    def of(cls, values) -> "ScoreVector":
        return cls({r.value: float(v) for r, v in zip(ROLE_ORDER, values)})

    @classmethod
    def uniform(cls) -> "ScoreVector":
        return cls.of([1.0 / len(ROLE_ORDER)] * len(ROLE_ORDER))

    def __getitem__(self, role: Role | str) -> float:
        return self.values[str(role)]

    def as_list(self) -> list[float]:
        return [self.values[r.value] for r in ROLE_ORDER]

    def sorted(self) -> list[tuple[str, float]]:
        return sorted(self.values.items(), key=lambda kv: (-kv[1], [r.value for r in ROLE_ORDER].index(kv[0])))

    def argmax(self) -> Role:
        return Role(self.sorted()[0][0])

    def margin(self) -> float:
        top = self.sorted()
        return top[0][1] - top[1][1]

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 6) if math.isfinite(v) else None for k, v in self.values.items()}


@dataclass(frozen=True)
class ScoreBundle:
    """p_rule, p_text, p_fused (before guards), final (after guards), confidence = final margin."""

    rule: ScoreVector
    text: ScoreVector
    fused: ScoreVector
    final: ScoreVector
    confidence: float

    def as_dict(self) -> dict:
        return {"rule": self.rule.as_dict(), "text": self.text.as_dict(), "fused": self.fused.as_dict(),
                "final": self.final.as_dict(), "confidence": round(self.confidence, 6)}


@dataclass(frozen=True)
class SampleResult:
    """One hit's role with everything that led to it."""

    sample_id: str
    filepath: str
    role: Role
    scores: ScoreBundle
    features: DSPFeatures
    rule_raw_scores: dict[str, float]
    text_similarities: dict[str, float]
    guards_fired: tuple[str, ...] = ()
    pool_role: Role | None = None   # set by build_pools when promotion/rebalancing moved it

    @property
    def clap_similarities(self) -> dict[str, float]:
        """The note's name for the text-side similarities (whichever encoder gave them)."""
        return self.text_similarities

    def as_dict(self) -> dict:
        return {"sample_id": self.sample_id, "file": self.filepath, "role": self.role.value,
                "scores": self.scores.as_dict(), "features": self.features.as_dict(),
                "rule_raw_scores": ScoreVector(self.rule_raw_scores).as_dict(),
                "text_similarities": ScoreVector(self.text_similarities).as_dict(),  # None when text is off
                "guards_fired": list(self.guards_fired)}


@dataclass
class RolePools:
    core: list[SampleResult] = field(default_factory=list)
    accent: list[SampleResult] = field(default_factory=list)
    motion: list[SampleResult] = field(default_factory=list)
    fill: list[SampleResult] = field(default_factory=list)
    texture: list[SampleResult] = field(default_factory=list)
    moves: list[dict] = field(default_factory=list)      # promotions and rebalancing, in order
    missing: list[str] = field(default_factory=list)     # required roles still empty

    def pool(self, role: Role | str) -> list[SampleResult]:
        return getattr(self, str(role).lower())

    def as_dict(self) -> dict:
        return {"pools": {r.value: [s.sample_id for s in self.pool(r)] for r in ROLE_ORDER},
                "sizes": {r.value: len(self.pool(r)) for r in ROLE_ORDER},
                "moves": list(self.moves), "missing_required": list(self.missing)}
