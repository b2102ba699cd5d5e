"""`inference.calibration_shape` (decision 16.79): fit the image label's temperature alone.

The three-number fit (T, tau_c, s_c) matches one target, so a target that moves a little (another
draw of the training records) changes which grid points tie and the pick jumps between regimes.
With the confidence's shape fixed, the fitted T follows the target one grid step at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deltav2a.config import InferenceConfig, load_config
from deltav2a.style.calibration import calibrate, default_grid

ROOT = Path(__file__).resolve().parents[1]


def _pairs(seed: int = 0, n: int = 400):
    rng = np.random.default_rng(seed)
    K, D = 12, 24
    V = rng.normal(size=(K, D))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    before = rng.normal(size=(n, D))
    dirs = V[rng.integers(0, K, n)] + 0.8 * rng.normal(size=(n, D))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return before, before + dirs * rng.lognormal(0, 0.5, n)[:, None], V


def test_the_shape_fit_follows_the_target_a_step_at_a_time():
    before, after, V = _pairs()
    norms = np.linalg.norm(after - before, axis=1)
    med = float(np.median(norms))
    temps = list(default_grid(norms)[0])
    targets = np.arange(0.45, 0.65, 0.005)
    shaped = [calibrate(before, after, V, t, shape=(0.25, 1.0)) for t in targets]
    for r, t in zip(shaped, targets):
        assert r.tau_c == 0.25 * med and r.s_c == med and r.shape == (0.25, 1.0)
        # the grid temperature whose top-1 mass is closest to the target
        assert abs(r.achieved_top1 - t) == min(g["error"] for g in r.grid) and len(r.grid) == len(temps)
        assert r.as_dict()["shape"] == [0.25, 1.0]
    steps = [temps.index(b.temperature) - temps.index(a.temperature) for a, b in zip(shaped, shaped[1:])]
    assert set(steps) <= {-1, 0} and steps.count(-1) >= 3  # a higher target: the same T or one step sharper
    # the three-number fit on the same pairs: T moves both ways as the target rises, by many steps
    free = [calibrate(before, after, V, t) for t in targets]
    jumps = [temps.index(b.temperature) - temps.index(a.temperature) for a, b in zip(free, free[1:])]
    assert max(jumps) >= 2 and min(jumps) <= -2
    assert "shape" not in free[0].as_dict()  # records of the old fit read as before


def test_the_option_is_typed_and_leaves_old_stage_keys_alone():
    assert "calibration_shape" not in InferenceConfig().stage_settings()
    cfg = load_config(overrides={"inference": {"calibration_shape": [0.25, 1.0]}})
    assert cfg.inference.calibration_shape == (0.25, 1.0)
    assert cfg.inference.stage_settings()["calibration_shape"] == [0.25, 1.0]
    for bad in ([0.25], [-0.1, 1.0], [0.25, 0.0], [0.25, 1e9], "wide"):
        with pytest.raises(Exception):
            load_config(overrides={"inference": {"calibration_shape": bad}})


@pytest.mark.parametrize("value", ["[0.25]", "[0.25,-1]", "abc"])
def test_a_bad_shape_on_the_command_line_is_one_line_and_exit_2(tmp_path, value):
    from conftest import run_cli

    out = tmp_path / "run"
    r = run_cli("run", str(ROOT / "configs" / "quick.yaml"), "-o", str(out), "--set",
                f"inference.calibration_shape={value}")
    assert r.returncode == 2 and "Traceback" not in r.stderr and not out.exists(), r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and "calibration_shape" in errors[0], r.stderr
