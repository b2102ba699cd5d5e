"""Per-effect activity thresholds tuned on validation (notes, "Activity Threshold Tuning").

Two objectives (`thresholds.objective`, docs/decisions.md 9.2):

* ``f1`` (default): maximise the macro F1 of the effect set that would be rendered (the
  thresholds, then the `max_active` clearest, as at inference); ties go to the lower gated
  RMSE. A false alarm costs F1, so thresholds are no longer pushed down until 5-6 of 7
  effects fire on every transfer.
* ``gated_rmse``: the notes' procedure, below, which reproduces their table.

`count_tolerance` (F1 only, decision 9.150): F1 alone prefers a set one effect short when
the second effect is a coin flip, so the tuned thresholds rendered 1.18 effects where the
val records have 1.49. With a tolerance, threshold vectors whose mean rendered count is
further than that from the records' true mean are infeasible: their objective is 2 plus
the excess, above any feasible value (at most 1 + the RMSE tie-break). The descent runs
unconstrained first and then, from that optimum, constrained: it enters the band by the
moves that cost F1 least and then maximises F1 inside it.

Coordinate descent over a uniform grid (default 0.05-0.95, 37 points, 2 passes): each
effect in turn tries every grid value with the others fixed, and keeps the value with the
lowest `active_param_rmse_gated`. The current value is always a candidate and wins ties,
so the objective never increases; among other equally good grid values the one nearest
the current threshold wins (the metric cannot see false alarms, so a threshold should move
only as far as the objective asks). The starting point (0.5) is on the default grid.

Without a `max_active` cap the notes' objective separates by effect (an effect's threshold
only gates its own parameters and the RMSE pools squared errors), so one pass already
reaches the best grid point and the second confirms it. F1 and the cap couple the effects
(raising one threshold can let another effect into the top `max_active`), which is what
the further passes are for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DeltaV2AError
from .metrics import active_param_rmse_gated, activity_f1, predicted_active

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..config import ThresholdConfig
    from ..model.layout import ParamLayout


@dataclass
class ThresholdResult:
    thresholds: dict[str, float]
    objective: float               # the objective (see thresholds.objective) at the tuned thresholds
    objective_at_start: float      # ... at the starting thresholds (0.5 by default)
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per (pass, effect)

    def as_dict(self) -> dict:
        return {"thresholds": dict(self.thresholds), "objective": self.objective,
                "objective_at_start": self.objective_at_start, "history": list(self.history)}


def threshold_grid(cfg: "ThresholdConfig") -> "np.ndarray":
    import numpy as np

    if not cfg.grid_min < cfg.grid_max:
        raise DeltaV2AError("thresholds.grid_min must be below thresholds.grid_max")
    # rounding keeps grid values exact decimals (0.5, not 0.49999999999999994)
    return np.round(np.linspace(cfg.grid_min, cfg.grid_max, cfg.grid_points), 10)


def tune_thresholds(activity: Any, params_pred: Any, active_true: Any, params_true: Any,
                    layout: "ParamLayout", cfg: "ThresholdConfig", start: float = 0.5,
                    max_active: int | None = None, min_active: int = 0) -> ThresholdResult:
    """Coordinate descent on the configured objective (lower is better)."""
    import numpy as np

    grid = threshold_grid(cfg)
    current = np.full(layout.n_effects, float(start), dtype=np.float64)

    def rmse(vec: "np.ndarray") -> float:
        return active_param_rmse_gated(activity, params_pred, active_true, params_true, layout, vec,
                                       max_active, min_active)

    tolerance = cfg.count_tolerance if cfg.objective == "f1" else None
    true_count = float(np.asarray(active_true, dtype=bool).sum(axis=1).mean()) if tolerance is not None else 0.0

    def objective(vec: "np.ndarray", constrained: bool = False) -> float:
        if cfg.objective == "gated_rmse":
            return rmse(vec)
        if constrained:
            count = float(predicted_active(np.asarray(activity, dtype=np.float32), vec, layout, max_active,
                                           min_active).sum(axis=1).mean())
            excess = abs(count - true_count) - float(tolerance)
            if excess > 1e-12:
                return 2.0 + excess
        f1 = activity_f1(activity, active_true, layout, vec, max_active, min_active)["macro_f1"]
        r = rmse(vec)
        # 1 - F1 first; the RMSE (< 1) scaled far below one F1 step only breaks ties
        return (1.0 - f1) + 1e-4 * (r if np.isfinite(r) else 1.0) if np.isfinite(f1) else float("nan")

    best = objective(current)
    if np.isnan(best):
        raise DeltaV2AError("threshold tuning needs validation records with active effects")
    start_value = best
    history: list[dict[str, Any]] = []
    # with a count tolerance: the unconstrained F1 optimum first, then the constrained descent
    # from there, so the band is entered by the moves that cost F1 least rather than by the
    # first effect's threshold dropping to whatever value alone reaches it
    phases = [False] if tolerance is None else [False, True]
    for constrained in phases:
        best = objective(current, constrained)
        for pass_index in range(cfg.passes):
            for e, effect in enumerate(layout.effects):
                keep = float(current[e])
                values = {}
                for t in grid:
                    trial = current.copy()
                    trial[e] = float(t)
                    values[float(t)] = objective(trial, constrained)
                lowest = min(min(values.values()), best)
                if best <= lowest:
                    choice = keep
                else:  # among equally good values, move the threshold as little as possible
                    ties = [t for t, v in values.items() if v == lowest]
                    choice = min(ties, key=lambda t: (abs(t - keep), -t))
                current[e] = choice
                best = lowest
                history.append({"pass": pass_index + 1, "effect": effect, "threshold": choice,
                                "objective": best, **({"constrained": True} if constrained else {})})
    return ThresholdResult({e: float(t) for e, t in zip(layout.effects, current)},
                           float(best), float(start_value), history)
