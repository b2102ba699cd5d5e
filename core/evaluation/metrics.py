"""Controller metrics (numpy only), defined precisely in docs/controllers.md.

The primary metric, `active_param_rmse_gated`, scores what would actually be rendered:
parameters of effects the controller calls inactive are replaced by bypass before the
error is measured, and the error is taken over the parameters of the effects that are
truly active. Missing an effect therefore costs its parameters' distance from bypass;
a false alarm costs nothing here (those parameters are not ground-truth active) and
shows up in the activity F1 instead.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..model.controller import threshold_vector
from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..model.layout import ParamLayout


def _arrays(layout: "ParamLayout", activity: Any, params_pred: Any, active_true: Any,
            params_true: Any) -> tuple["np.ndarray", ...]:
    import numpy as np

    activity = np.asarray(activity, dtype=np.float32)
    params_pred = np.asarray(params_pred, dtype=np.float32)
    active_true = np.asarray(active_true, dtype=bool)
    params_true = np.asarray(params_true, dtype=np.float32)
    n = active_true.shape[0]
    expected = {"activity": (activity, layout.n_effects), "params_pred": (params_pred, layout.n_params),
                "active_true": (active_true, layout.n_effects), "params_true": (params_true, layout.n_params)}
    for name, (arr, width) in expected.items():
        if arr.shape != (n, width):
            raise DeltaV2AError(f"{name} must be ({n}, {width}), got {arr.shape}")
    return activity, params_pred, active_true, params_true


def predicted_active(activity: Any, thresholds: Any, layout: "ParamLayout", max_active: int | None = None,
                     min_active: int = 0) -> "np.ndarray":
    """What would be rendered: `plan.select_active` (threshold, then the clearest max_active)."""
    from ..model.plan import select_active

    return select_active(activity, thresholds, layout, max_active, min_active)


def _rmse(sq: "np.ndarray", mask: "np.ndarray") -> float:
    count = int(mask.sum())
    return math.sqrt(float((sq * mask).sum()) / count) if count else float("nan")


def active_param_rmse_gated(activity: Any, params_pred: Any, active_true: Any, params_true: Any,
                            layout: "ParamLayout", thresholds: Any = 0.5, max_active: int | None = None,
                            min_active: int = 0) -> float:
    """sqrt(mean over GT-active (record, param) of (gate(pred) - true)^2).

    gate(pred)[n, j] = pred[n, j] if activity[n, e(j)] >= threshold[e(j)] else bypass[j].
    NaN when no effect is active in the ground truth.
    """
    activity, params_pred, active_true, params_true = _arrays(
        layout, activity, params_pred, active_true, params_true)
    pred_active = predicted_active(activity, thresholds, layout, max_active, min_active)
    gated = layout.gate(params_pred, pred_active)
    return _rmse((gated - params_true) ** 2, layout.expand(active_true))


def per_param_active_rmse(params_pred: Any, active_true: Any, params_true: Any,
                          layout: "ParamLayout") -> dict[str, float]:
    """RMSE per parameter over the records where its effect is truly active (no gating)."""
    import numpy as np

    params_pred = np.asarray(params_pred, dtype=np.float32)
    params_true = np.asarray(params_true, dtype=np.float32)
    mask = layout.expand(np.asarray(active_true, dtype=bool))
    sq = (params_pred - params_true) ** 2
    return {name: _rmse(sq[:, j], mask[:, j]) for j, name in enumerate(layout.param_names)}


def activity_f1(activity: Any, active_true: Any, layout: "ParamLayout", thresholds: Any = 0.5,
                max_active: int | None = None, min_active: int = 0) -> dict[str, Any]:
    """Per-effect F1, macro F1 (mean over effects) and micro F1 (pooled counts).

    An effect that is never active and never predicted has no F1 (NaN) and is left out of
    the macro mean; micro F1 pools true/false positives and negatives over all effects.
    """
    import numpy as np

    activity = np.asarray(activity, dtype=np.float32)
    truth = np.asarray(active_true, dtype=bool)
    pred = predicted_active(activity, thresholds, layout, max_active, min_active)
    tp = (pred & truth).sum(axis=0).astype(np.float64)
    fp = (pred & ~truth).sum(axis=0).astype(np.float64)
    fn = (~pred & truth).sum(axis=0).astype(np.float64)
    denom = 2 * tp + fp + fn
    per = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)
    defined = per[~np.isnan(per)]
    macro = float(defined.mean()) if defined.size else float("nan")
    total = 2 * tp.sum() + fp.sum() + fn.sum()
    micro = float(2 * tp.sum() / total) if total > 0 else float("nan")
    return {"macro_f1": macro, "micro_f1": micro,
            "per_effect_f1": {e: float(v) for e, v in zip(layout.effects, per)}}


def mean_baseline_params(active: Any, params: Any, layout: "ParamLayout", over: str = "all"
                         ) -> "np.ndarray":
    """(P,) train-set mean of each normalised parameter, whatever the input.

    `over="all"` is the notes' mean baseline ("the mean of the parameters over the whole
    training data"): inactive effects' parameters sit at bypass in the records, so the mean
    is pulled toward bypass. `over="active"` averages only records where the effect is
    active, a stricter baseline (a parameter never active falls back to bypass).
    """
    import numpy as np

    params = np.asarray(params, dtype=np.float64)
    if over == "all":
        return (params.mean(axis=0) if len(params) else layout.bypass_array()).astype(np.float32)
    if over != "active":
        raise ValueError(f"over must be 'all' or 'active', got {over!r}")
    mask = layout.expand(np.asarray(active, dtype=bool))
    count = mask.sum(axis=0)
    sums = (params * mask).sum(axis=0)
    mean = np.where(count > 0, sums / np.maximum(count, 1), layout.bypass_array())
    return mean.astype(np.float32)


def mean_baseline_rmse(train_active: Any, train_params: Any, active_true: Any, params_true: Any,
                       layout: "ParamLayout", over: str = "all") -> float:
    """Active RMSE of always predicting the train-set mean parameters, every effect active.

    With every effect predicted active nothing is gated, so this equals the gated metric of
    that constant predictor. See `mean_baseline_params` for `over`.
    """
    import numpy as np

    mean = mean_baseline_params(train_active, train_params, layout, over)
    n = np.asarray(active_true).shape[0]
    return active_param_rmse_gated(np.ones((n, layout.n_effects), np.float32),
                                   np.tile(mean, (n, 1)), active_true, params_true, layout, 0.5)


def evaluate(activity: Any, params_pred: Any, active_true: Any, params_true: Any,
             layout: "ParamLayout", thresholds: Any = 0.5, max_active: int | None = None,
             min_active: int = 0) -> dict[str, Any]:
    """Every metric of the notes' results section, as one JSON-ready dict.

    `max_active` / `min_active` select the rendered set as inference does (`plan.select_active`).
    """
    activity, params_pred, active_true, params_true = _arrays(
        layout, activity, params_pred, active_true, params_true)
    thr = threshold_vector(thresholds, layout)
    pred_active = predicted_active(activity, thr, layout, max_active, min_active)
    f1 = activity_f1(activity, active_true, layout, thr, max_active, min_active)
    gated = layout.gate(params_pred, pred_active)
    return {
        "records": int(active_true.shape[0]),
        "active_param_rmse_gated": active_param_rmse_gated(
            activity, params_pred, active_true, params_true, layout, thr, max_active, min_active),
        "active_param_rmse": _rmse((params_pred - params_true) ** 2, layout.expand(active_true)),
        "macro_f1": f1["macro_f1"],
        "micro_f1": f1["micro_f1"],
        "per_effect_f1": f1["per_effect_f1"],
        "per_param_active_rmse_gated": per_param_active_rmse(gated, active_true, params_true, layout),
        "per_param_active_rmse": per_param_active_rmse(params_pred, active_true, params_true, layout),
        "mean_active_effects_predicted": float(pred_active.sum(axis=1).mean()) if len(pred_active) else float("nan"),
        "mean_active_effects_true": float(active_true.sum(axis=1).mean()) if len(active_true) else float("nan"),
        "thresholds": {e: float(t) for e, t in zip(layout.effects, thr)},
        "max_active": max_active, "min_active": min_active,
    }


def rank_params(per_param: dict[str, float], top: int | None = None) -> list[tuple[str, float]]:
    """Hardest parameters first (the notes' "top 5" table); NaN entries go last."""
    items = sorted(per_param.items(), key=lambda kv: (math.isnan(kv[1]), -(kv[1] if not math.isnan(kv[1]) else 0)))
    return items[:top] if top is not None else items
