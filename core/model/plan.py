"""What gets rendered: an `EffectPlan`, the typed answer to "label -> parameters".

Every controller (a trained mlp/ar, the k-NN baseline, the CMA-ES search, a refinement of
any of them) ends in an EffectPlan: `ChainSettings` of at most `max_active` effects (raw
parameters, what `AudioChain` renders), plus what the source knew (activity, thresholds,
strength, search trajectory). The sidecar, the evaluation and the render all read this one type.

Sparse chains: the training database never has more than `database.max_active` (2) active
effects per record, so rendering more is off-distribution. `select_active` keeps the
effects whose activity reaches their threshold, ranks them by activity relative to the
threshold (activity / threshold: how clearly each one is on), and keeps the best
`max_active`; when none reaches its threshold but the image did change, the `min_active`
clearest are kept (the database has no record without an effect).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import DeltaV2AError
from ..render.settings import ChainSettings, EffectSetting

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .layout import ParamLayout


@dataclass(frozen=True)
class EffectPlan:
    """The effects to render (`settings`, in chain order) and where they came from."""

    settings: ChainSettings
    source: str                                   # "mlp" | "ar" | "knn" | "search" | "mlp+refine" | "identity"
    activity: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    strength: float = 1.0
    trajectory: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.settings, ChainSettings):
            raise DeltaV2AError(f"an EffectPlan's settings must be ChainSettings, got {type(self.settings).__name__}")

    @property
    def steps(self) -> tuple[EffectSetting, ...]:
        return self.settings.steps

    @property
    def effects(self) -> list[str]:
        return self.settings.effects

    def as_dict(self) -> dict:
        return {"source": self.source, "effects": self.settings.to_records(),
                "n_effects": len(self.steps), "activity": dict(self.activity),
                "thresholds": dict(self.thresholds), "strength": float(self.strength),
                "trajectory": [float(v) for v in self.trajectory]}

    @classmethod
    def identity(cls, source: str = "identity") -> "EffectPlan":
        return cls(ChainSettings(), source, strength=0.0)


def select_active(activity: Any, thresholds: Any, layout: "ParamLayout", max_active: int | None = None,
                  min_active: int = 0, margin: float = 0.0) -> "np.ndarray":
    """(N, E) booleans: activity >= threshold, capped at the `max_active` clearest per record.

    `max_active` None or 0 = no cap (the notes' rule); `min_active` > 0 keeps that many of
    the clearest effects even when none reaches its threshold. `margin` > 0 (`inference.lock_margin`,
    decision 9.130): every effect but the clearest (by activity / threshold) must reach
    threshold + margin; the clearest one is chosen exactly as with margin 0.
    """
    import numpy as np

    from .controller import threshold_vector

    act = np.atleast_2d(np.asarray(activity, dtype=np.float64))
    thr = threshold_vector(thresholds, layout).astype(np.float64)
    margin = float(margin)
    if not (np.isfinite(margin) and 0.0 <= margin <= 1.0):
        raise DeltaV2AError(f"activity margin must lie in [0, 1], got {margin}")
    on = act >= thr[None, :]
    if not max_active and not min_active and margin == 0.0:
        return on
    ratio = act / np.maximum(thr, 1e-6)[None, :]
    order = np.argsort(-ratio, axis=1, kind="stable")
    rank = np.empty_like(order)
    rows = np.arange(act.shape[0])[:, None]
    rank[rows, order] = np.arange(act.shape[1])[None, :]
    if margin > 0.0:  # beyond the clearest effect, only the clearly active ones
        on &= (rank == 0) | (act - margin >= thr[None, :] - 1e-9)
    if max_active:
        on &= rank < int(max_active)
    if min_active:
        on |= rank < int(min_active)
    return on


def plan_from_prediction(activity: "np.ndarray", params: "np.ndarray", layout: "ParamLayout",
                         thresholds: Mapping[str, float], *, source: str, max_active: int | None,
                         min_active: int = 1, strength: float = 1.0, scale: float = 1.0,
                         margin: float = 0.0) -> EffectPlan:
    """One record's controller output -> EffectPlan.

    `scale` in [0, 1] moves the parameters toward bypass (the confidence c: an edit that
    barely registers leaves the clip almost untouched); `strength` is recorded.
    """
    import numpy as np

    active = select_active(activity[None, :], thresholds, layout, max_active, min_active, margin)[0]
    p = np.asarray(params, dtype=np.float64)
    bypass = layout.bypass_array().astype(np.float64)
    p = bypass + float(scale) * (p - bypass)
    return EffectPlan(
        layout.to_raw(p, active), source, activity={e: float(a) for e, a in zip(layout.effects, activity)},
        thresholds={e: float(thresholds[e]) for e in layout.effects}, strength=float(strength))
