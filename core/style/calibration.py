"""Appendix D: calibrate the image-side style label to the audio-side label statistics.

The controller is trained on audio-side labels (DB, T = 0.1) but fed image-side labels at
inference. A grid search over (T, tau_c, s_c) makes the expected top-1 mass of calibrated
image labels (every image x every image effect) match the DB's mean top-1 mass.

One equation, three unknowns: many grid points tie. Among points within `tolerance` of the
best match, we keep the one with the largest T (the least peaked label that still matches),
then the smallest tau_c (confidence reaches 1 for the most edits), so the choice is
deterministic and documented.

Deterministic is not stable: a target that moves by 0.003 (another draw of the training
records) moves which grid points tie, and the pick jumps between regimes, peaked labels with a
slowly rising confidence or flat labels with a saturated one, and with it how many effects a
transfer stacks and how hard a gentle edit is rendered (decision 16.79). `shape = (a, b)` fixes
the confidence's shape (tau_c = a, s_c = b times the pairs' median edit norm) and fits T alone:
one equation, one unknown, the grid temperature whose top-1 mass is closest to the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


@dataclass
class CalibrationResult:
    temperature: float
    tau_c: float
    s_c: float
    target_top1: float
    achieved_top1: float
    n_pairs: int
    grid: list[dict] = field(default_factory=list)
    shape: "tuple[float, float] | None" = None   # (a, b) when only T was fitted

    def as_dict(self, with_grid: bool = False) -> dict:
        d = {"temperature": self.temperature, "tau_c": self.tau_c, "s_c": self.s_c,
             "target_top1": self.target_top1, "achieved_top1": self.achieved_top1, "n_pairs": self.n_pairs}
        if self.shape is not None:  # absent for the three-number fit, so older records read as before
            d["shape"] = [float(v) for v in self.shape]
        if with_grid:
            d["grid"] = self.grid
        return d


def default_grid(norms: "np.ndarray") -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
    """Temperatures log-spaced; tau_c and s_c scaled to the observed delta norms."""
    import numpy as np

    med = float(np.median(norms)) if norms.size else 1.0
    temps = np.geomspace(0.005, 1.0, 25)
    taus = med * np.array([0.0, 0.1, 0.25, 0.5, 0.75, 1.0])
    scales = max(med, 1e-6) * np.array([0.05, 0.1, 0.25, 0.5, 1.0])
    return temps, taus, scales


def top1_mass(dz: "np.ndarray", norms: "np.ndarray", V: "np.ndarray", T: float, tau_c: float, s_c: float) -> float:
    import numpy as np

    logits = dz @ V.T / T
    logits -= logits.max(axis=1, keepdims=True)
    s = np.exp(logits)
    s /= s.sum(axis=1, keepdims=True)
    K = V.shape[0]
    from .label import confidence

    c = confidence(norms, tau_c, s_c)
    s = c[:, None] * s + (1 - c[:, None]) / K
    moved = norms > 1e-12
    s[~moved] = 1.0 / K
    return float(s.max(axis=1).mean())


def calibrate(before: "np.ndarray", after: "np.ndarray", V: "np.ndarray", target_top1: float,
              temps=None, taus=None, scales=None, tolerance: float = 2e-3,
              shape: "tuple[float, float] | None" = None) -> CalibrationResult:
    import numpy as np

    d = np.asarray(after, np.float64) - np.asarray(before, np.float64)
    norms = np.linalg.norm(d, axis=1)
    dz = d / np.maximum(norms, 1e-12)[:, None]
    V = np.asarray(V, np.float64)
    g_t, g_tau, g_s = default_grid(norms)
    temps = g_t if temps is None else np.asarray(temps, float)
    taus = g_tau if taus is None else np.asarray(taus, float)
    scales = g_s if scales is None else np.asarray(scales, float)
    if shape is not None:
        med = float(np.median(norms)) if norms.size else 1.0
        taus, scales, tolerance = np.array([shape[0] * med]), np.array([max(shape[1] * med, 1e-6)]), 0.0
    grid = []
    for T in temps:
        for tau in taus:
            for sc in scales:
                m = top1_mass(dz, norms, V, float(T), float(tau), float(sc))
                grid.append({"temperature": float(T), "tau_c": float(tau), "s_c": float(sc),
                             "top1": m, "error": abs(m - target_top1)})
    best = min(g["error"] for g in grid)
    near = [g for g in grid if g["error"] <= best + tolerance]
    pick = sorted(near, key=lambda g: (-g["temperature"], g["tau_c"], g["s_c"]))[0]
    return CalibrationResult(pick["temperature"], pick["tau_c"], pick["s_c"], float(target_top1),
                             pick["top1"], int(d.shape[0]), grid, None if shape is None else tuple(shape))


def plot_grid(result: CalibrationResult, path) -> None:
    from ..media.plots import _plt, save_figure

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    temps = sorted({g["temperature"] for g in result.grid})
    best_per_t = [min((g for g in result.grid if g["temperature"] == t), key=lambda g: g["error"])["top1"]
                  for t in temps]
    ax.semilogx(temps, best_per_t, marker="o", label="closest top-1 mass per T")
    ax.axhline(result.target_top1, color="k", ls="--", label=f"target {result.target_top1:.3f}")
    ax.axvline(result.temperature, color="tab:red", lw=1, label=f"T*={result.temperature:.3g}")
    ax.set_xlabel("temperature T")
    ax.set_ylabel("E[top-1 mass] (image side)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
