"""The k-NN controller's learned parameter head (`params_from: head`, decision 9.60)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deltav2a.api.controllers import get_controller
from deltav2a.config import ControllerConfig
from deltav2a.errors import DeltaV2AError
from deltav2a.model.controller import predict, with_strength
from deltav2a.model.data import ControllerData
from deltav2a.model.layout import ParamLayout
from deltav2a.model.strength import chain_strength
from deltav2a.model.weights import ControllerMetadata, load_controller, save_controller

EFFECTS = ["lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "playback_rate"]
HEAD = dict(params_from="head", head_hidden=32, head_epochs=40)


@pytest.fixture
def layout() -> ParamLayout:
    return ParamLayout.from_names(EFFECTS)


def _knn(layout, style_dim=25, audio_dim=16, **opts):
    return get_controller("knn").build(style_dim, audio_dim, layout, ControllerConfig(name="knn", options=opts))


def _data(layout, n, seed):
    return ControllerData.synthetic(layout, n, audio_dim=16, seed=seed, with_strength=True)


def _save(tmp_path, layout, net, opts, name="ctl"):
    meta = ControllerMetadata(
        controller="knn", config=ControllerConfig(name="knn", options=opts).model_dump(mode="json"),
        layout=layout.describe(), style_dim=25, audio_dim=16, strength_input=True,
        vocabulary={"name": "v3", "fingerprint": "v"}, encoders={"audio": {"name": "a", "fingerprint": "a"}},
        thresholds={e: 0.5 for e in layout.effects})
    return save_controller(tmp_path / name, net, meta)


def _rmse(params, data, layout):
    mask = layout.expand(data.active)
    return float(np.sqrt(((params - data.params) ** 2 * mask).sum() / mask.sum()))


def test_head_changes_only_the_parameters_and_learns_the_strength(layout):
    """Records whose one active parameter is exactly what the strength says (a lowpass moved
    floor + s (1 - floor) from bypass, as `chain_strength` defines it) and whose label says
    nothing about it: the head recovers the parameter from the strength far better than the
    mean of the 8 nearest records, and its answer grows monotonically with the strength; the
    vote (activity) is the neighbours' in both modes."""
    rng = np.random.default_rng(0)
    n, K = 1200, 24
    j = int(np.flatnonzero(layout.param_effect_array() == layout.effects.index("lowpass"))[0])
    style = rng.dirichlet(np.ones(K), n).astype(np.float32)
    active = np.zeros((n, layout.n_effects), bool)
    active[:, layout.effects.index("lowpass")] = True
    params = np.tile(layout.bypass_array().astype(np.float32), (n, 1))
    params[:, j] = 1.0 - rng.uniform(0.35, 1.0, n)   # lowpass bypass is 1: distance 0.35 ... 1
    strength = chain_strength(active, params, layout, 0.35)
    data = ControllerData(style, rng.standard_normal((n, 16)).astype(np.float32), active, params, strength)
    train, test = data.split(0.25, seed=0)
    head, plain = _knn(layout, **HEAD), _knn(layout, strength_weight=0.0)
    info = head.fit(train, seed=0)
    plain.fit(train, seed=0)
    assert info["head_epochs"] == 40 and info["head_train_mse"] < 0.01
    a = predict(head, test.style_input, test.audio)
    b = predict(plain, test.style_input, test.audio)
    assert np.array_equal(a.activity, b.activity)
    assert _rmse(a.params, test, layout) < 0.05 < _rmse(b.params, test, layout)
    q = np.tile(style[:1], (11, 1))
    sweep = predict(head, with_strength(q, np.linspace(0, 1, 11)), np.zeros((11, 16), np.float32)).params[:, j]
    assert np.all(np.diff(sweep) < 0), sweep  # farther from bypass (1) as the strength grows


def test_fit_is_seeded_and_leaves_the_global_generator_alone(layout):
    data = _data(layout, 300, seed=1)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    one, two = _knn(layout, **HEAD), _knn(layout, **HEAD)
    one.fit(data, seed=5)
    assert torch.equal(torch.rand(1), before)
    two.fit(data, seed=5)
    assert all(torch.equal(one.state_dict()[k], two.state_dict()[k]) for k in one.state_dict())
    three = _knn(layout, **HEAD)
    three.fit(data, seed=6)
    assert not torch.equal(one.head_w0, three.head_w0)


def test_head_needs_a_strength(layout):
    with pytest.raises(DeltaV2AError, match="needs records with a strength"):
        _knn(layout, style_dim=24, **HEAD).fit(ControllerData.synthetic(layout, 50, audio_dim=16, seed=0))
    net = _knn(layout, **HEAD)
    net.fit(_data(layout, 60, seed=0))
    with pytest.raises(DeltaV2AError, match="needs a strength with each query"):
        net.predict_batch(torch.full((2, 24), 1 / 24), torch.zeros(2, 16))


def test_saved_head_round_trips_and_numpy_answers_as_torch(layout, tmp_path):
    """The head's six tensors go through the safetensors artifact like the records; the
    torch-free predictor (what a transfer uses) gives the module's parameters to ~1e-6."""
    from deltav2a_plugins.controllers.knn_arrays import KNNArrays
    from deltav2a_plugins.controllers.knn_head import HEAD_TENSORS

    data = _data(layout, 400, seed=3)
    net = _knn(layout, **HEAD)
    net.fit(data, seed=0)
    _save(tmp_path, layout, net, HEAD)
    torch_ctl = load_controller(tmp_path / "ctl", layout=layout)
    numpy_ctl = load_controller(tmp_path / "ctl", layout=layout, inference_only=True)
    assert isinstance(numpy_ctl.module, KNNArrays) and numpy_ctl.module.head
    assert set(HEAD_TENSORS) <= set(numpy_ctl.module.state)
    assert torch.equal(torch_ctl.module.head_w1, net.head_w1)
    rng = np.random.default_rng(0)
    s = rng.uniform(0, 1, len(data)).astype(np.float32)
    a = predict(net, with_strength(data.style, s), data.audio)
    b, c = torch_ctl.predict(data.style, data.audio, s), numpy_ctl.predict(data.style, data.audio, s)
    assert np.array_equal(a.params, b.params) and np.array_equal(a.activity, c.activity)
    np.testing.assert_allclose(c.params, a.params, rtol=0, atol=2e-6)


def test_hostile_head_tensors_are_refused_in_one_line(layout, tmp_path):
    from safetensors.numpy import load_file, save_file

    from deltav2a.fileio import sha256_file

    net = _knn(layout, **HEAD)
    net.fit(_data(layout, 80, seed=2), seed=0)
    w = _save(tmp_path, layout, net, HEAD)
    good = load_file(str(w))

    def rewrite(change, opts=HEAD):
        state = {k: v.copy() for k, v in good.items()}
        change(state)
        save_file(state, str(w), metadata={"format": "deltav2a-controller"})
        j = tmp_path / "ctl.json"
        m = json.loads(j.read_text())
        m["weights"]["sha256"] = sha256_file(w)
        m["config"] = ControllerConfig(name="knn", options=opts).model_dump(mode="json")
        j.write_text(json.dumps(m))

    for inference_only in (False, True):
        rewrite(lambda s: s.update(head_w1=np.zeros((32, 7), np.float32)))
        with pytest.raises(DeltaV2AError, match=r"head_w1") as exc:
            load_controller(tmp_path / "ctl", inference_only=inference_only)
        assert "\n" not in str(exc.value)
        rewrite(lambda s: s["head_w0"].__setitem__((0, 0), np.nan))
        with pytest.raises(DeltaV2AError, match="'head_w0' contains NaN or Inf"):
            load_controller(tmp_path / "ctl", inference_only=inference_only)
        rewrite(lambda s: s.pop("head_b2"))
        with pytest.raises(DeltaV2AError, match="head_b2"):
            load_controller(tmp_path / "ctl", inference_only=inference_only)
        # a head in a file whose config says the neighbours' mean: not silently ignored
        rewrite(lambda s: None, opts={"head_hidden": 32})
        with pytest.raises(DeltaV2AError, match="head_"):
            load_controller(tmp_path / "ctl", inference_only=inference_only)
    rewrite(lambda s: None)
    assert load_controller(tmp_path / "ctl", inference_only=True).module.head
