"""Style labels, term embeddings and the `style` / `vocab embed` / `sensitivity` commands."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import run_cli
from deltav2a.style import Calibration, entropy_bits, style_labels, top_terms


def test_label_follows_the_formula():
    rng = np.random.default_rng(0)
    V = rng.normal(size=(24, 8))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    a, b = rng.normal(size=8), rng.normal(size=8)
    s, n = style_labels(a, b, V, 0.1)
    d = b - a
    dz = d / np.linalg.norm(d)
    ref = np.exp(dz @ V.T / 0.1)
    ref /= ref.sum()
    assert np.allclose(s[0], ref, atol=1e-6) and math.isclose(n[0], np.linalg.norm(d), rel_tol=1e-6)
    cal = Calibration(tau_c=0.343, s_c=0.206)
    s2, _ = style_labels(a, b, V, 0.1, cal)
    c = 1 / (1 + math.exp(-(np.linalg.norm(d) - 0.343) / 0.206))
    assert np.allclose(s2[0], c * ref + (1 - c) / 24, atol=1e-6)
    assert math.isclose(float(s2.sum()), 1.0, rel_tol=1e-5)


def test_identical_pair_is_uniform_never_nan():
    V = np.eye(24, 6)
    x = np.ones(6)
    for cal in (None, Calibration(0.3, 0.2)):
        s, n = style_labels(x, x, V, 0.015, cal)
        assert np.all(np.isfinite(s)) and np.allclose(s, 1 / 24) and n[0] == 0
    assert math.isclose(float(entropy_bits(s[0])), math.log2(24), rel_tol=1e-6)


def test_small_delta_is_pulled_toward_uniform():
    V = np.eye(24, 24)
    a = np.zeros(24)
    small, big = a.copy(), a.copy()
    small[3], big[3] = 0.01, 3.0
    cal = Calibration(0.343, 0.206)
    s_small, _ = style_labels(a, small, V, 0.05, cal)
    s_big, _ = style_labels(a, big, V, 0.05, cal)
    assert entropy_bits(s_small[0]) > entropy_bits(s_big[0])
    assert top_terms(s_big[0], [f"t{i}" for i in range(24)], 1)[0][0] == "t3"


def test_shape_mismatch_is_an_error():
    from deltav2a.errors import DeltaV2AError

    with pytest.raises(DeltaV2AError):
        style_labels(np.zeros(4), np.zeros(5), np.eye(3, 4), 0.1)
