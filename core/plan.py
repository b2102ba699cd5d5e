"""What a controller decided: the effects to render, in chain order, with raw parameters.

A typed plan (instead of an untyped dict) is where "label -> parameters" ends: any
controller (trained, nearest-neighbour, search) returns one, and rendering, the sidecar and
refinement all read the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EffectStep:
    effect: str
    params: dict[str, float]     # raw units, as AudioChain takes them


@dataclass(frozen=True)
class EffectPlan:
    steps: tuple[EffectStep, ...]           # at most max_active, in chain order
    source: str                              # "mlp" | "ar" | "knn" | "search" | "mlp+refine" | "identity"
    activity: dict[str, float] = field(default_factory=dict)   # per effect, when the source has one
    thresholds: dict[str, float] = field(default_factory=dict)
    strength: float = 1.0
    trajectory: tuple[float, ...] = ()       # search: best score after each iteration

    def settings(self) -> dict[str, dict[str, float]]:
        """{effect: {param: raw}} for AudioChain."""
        return {s.effect: {k: float(v) for k, v in s.params.items()} for s in self.steps}

    @property
    def effects(self) -> list[str]:
        return [s.effect for s in self.steps]

    def as_dict(self) -> dict:
        return {"source": self.source, "effects": self.effects, "settings": self.settings(),
                "activity": {k: float(v) for k, v in self.activity.items()},
                "thresholds": {k: float(v) for k, v in self.thresholds.items()},
                "strength": float(self.strength), "trajectory": [float(v) for v in self.trajectory]}
