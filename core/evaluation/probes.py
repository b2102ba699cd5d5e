"""Experiment 3 of the notes: what should the controller look at? Linear probes.

Each probe is one linear map (ridge regression, scikit-learn) from an input representation
to the parameters, scored by active parameter RMSE on held-out records:

* Mean baseline: no input; the train-set mean of each parameter over all records (the
  notes' baseline; inactive effects' parameters sit at bypass, pulling the mean there);
* Mean baseline (active records): the mean over the records where the effect is active,
  a stricter baseline (what an intercept-only probe fitted the same way learns);
* Audio embedding only: E(A);
* Style label only: the style label;
* Style + Audio (gated): the style label next to E(A) scaled by a fixed gate
  g = sigmoid(gate_bias) = 0.12, the MLP controller's initial gate. Both blocks are
  standardised first, so the gate is not undone; under ridge, scaling a block by g
  multiplies its coefficients' penalty by 1/g^2 (about 70x), a linear stand-in for the
  nearly closed gate: the probe uses E(A) only where it clearly pays for itself.

Probes are fitted per effect on the training records where that effect is active (all its
parameters at once) and evaluated on the held-out records where it is active, so they
measure parameter information and leave activity detection aside; errors are pooled over
all ground-truth-active (record, parameter) entries as in the controllers' metric.
Regularisation strength is chosen per effect by efficient leave-one-out (RidgeCV).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from ..errors import DeltaV2AError
from .metrics import mean_baseline_params

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..model.layout import ParamLayout
    from ..model.data import ControllerData

PROBE_ROWS = ("Mean baseline", "Mean baseline (active records)", "Audio embedding only", "Style label only",
              "Style + Audio (gated)")
DEFAULT_ALPHAS = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)


@dataclass
class ProbeRow:
    name: str
    inputs: str
    active_param_rmse: float
    per_param: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "inputs": self.inputs,
                "active_param_rmse": self.active_param_rmse, "per_param": dict(self.per_param)}


def _standardise(train: "np.ndarray", test: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    import numpy as np

    mu = train.mean(axis=0, keepdims=True)
    sd = train.std(axis=0, keepdims=True)
    sd = np.where(sd > 1e-8, sd, 1.0)
    return (train - mu) / sd, (test - mu) / sd


def _probe_predictions(x_train: "np.ndarray", x_test: "np.ndarray", train: "ControllerData",
                       test: "ControllerData", layout: "ParamLayout",
                       alphas: Sequence[float]) -> "np.ndarray":
    """(N_test, P) predictions; columns of effects inactive in a test record are unused."""
    import numpy as np
    from sklearn.linear_model import RidgeCV

    fallback = mean_baseline_params(train.active, train.params, layout, over="active")
    pred = np.tile(fallback, (len(test), 1)).astype(np.float64)
    for e in range(layout.n_effects):
        cols = layout.effect_params(e)
        rows = train.active[:, e]
        test_rows = test.active[:, e]
        if rows.sum() < 2 or not test_rows.any():
            continue
        model = RidgeCV(alphas=tuple(alphas))
        model.fit(x_train[rows], train.params[rows][:, cols])
        pred[np.ix_(test_rows, cols)] = model.predict(x_test[test_rows]).reshape(-1, len(cols))
    return np.clip(pred, 0.0, 1.0)


def _score(pred: "np.ndarray", test: "ControllerData", layout: "ParamLayout"
           ) -> tuple[float, dict[str, float]]:
    mask = layout.expand(test.active)
    sq = (pred - test.params) ** 2
    count = int(mask.sum())
    if count == 0:
        raise DeltaV2AError("probe evaluation needs held-out records with active effects")
    total = math.sqrt(float((sq * mask).sum()) / count)
    per = {}
    for j, name in enumerate(layout.param_names):
        c = int(mask[:, j].sum())
        per[name] = math.sqrt(float((sq[:, j] * mask[:, j]).sum()) / c) if c else float("nan")
    return total, per


def linear_probe_table(train: "ControllerData", test: "ControllerData", layout: "ParamLayout",
                       gate_bias: float = -2.0, alphas: Sequence[float] = DEFAULT_ALPHAS
                       ) -> list[ProbeRow]:
    """The notes' Experiment 3 table: four rows, active parameter RMSE on `test`."""
    import numpy as np

    train.check_layout(layout)
    test.check_layout(layout)
    if len(train) < 2 or len(test) < 1:
        raise DeltaV2AError("linear probes need at least 2 training and 1 held-out record")
    gate = 1.0 / (1.0 + math.exp(-gate_bias))
    s_tr, s_te = _standardise(train.style.astype(np.float64), test.style.astype(np.float64))
    a_tr, a_te = _standardise(train.audio.astype(np.float64), test.audio.astype(np.float64))

    mean_all = mean_baseline_params(train.active, train.params, layout, over="all").astype(np.float64)
    mean_act = mean_baseline_params(train.active, train.params, layout, over="active").astype(np.float64)
    rows = [("Mean baseline", "none", np.tile(mean_all, (len(test), 1))),
            ("Mean baseline (active records)", "none", np.tile(mean_act, (len(test), 1)))]
    feature_sets = [
        ("Audio embedding only", "E(A)", a_tr, a_te),
        ("Style label only", "style label", s_tr, s_te),
        ("Style + Audio (gated)", f"style label, {gate:.3f} x E(A)",
         np.concatenate([s_tr, gate * a_tr], axis=1), np.concatenate([s_te, gate * a_te], axis=1)),
    ]
    for name, inputs, x_tr, x_te in feature_sets:
        rows.append((name, inputs, _probe_predictions(x_tr, x_te, train, test, layout, alphas)))
    out = []
    for name, inputs, pred in rows:
        total, per = _score(pred, test, layout)
        out.append(ProbeRow(name, inputs, total, per))
    return out


def format_probe_table(rows: Sequence[ProbeRow]) -> str:
    """Markdown, same shape as the notes' table."""
    lines = ["| Input | Active Param RMSE |", "|---|---|"]
    lines += [f"| {r.name} | {r.active_param_rmse:.3f} |" for r in rows]
    return "\n".join(lines)
