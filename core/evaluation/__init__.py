"""Controller evaluation: the notes' metrics, per-effect threshold tuning, linear probes.

Everything here works on numpy arrays (predictions from `deltav2a.model.controller.predict`
and ground truth from the database), so both controllers, the probes and the baselines are
scored by the same code.
"""

from .metrics import (active_param_rmse_gated, activity_f1, evaluate, mean_baseline_params,
                      mean_baseline_rmse, per_param_active_rmse, rank_params)
from .probes import PROBE_ROWS, ProbeRow, format_probe_table, linear_probe_table
from .thresholds import ThresholdResult, threshold_grid, tune_thresholds

__all__ = [
    "PROBE_ROWS", "ProbeRow", "ThresholdResult", "active_param_rmse_gated", "activity_f1",
    "evaluate", "format_probe_table", "linear_probe_table", "mean_baseline_params",
    "mean_baseline_rmse", "per_param_active_rmse", "rank_params", "threshold_grid",
    "tune_thresholds",
]
