"""The knn baseline controller: votes, active-only means, strength, saved records, training path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deltav2a.config import ControllerConfig, TrainingConfig
from deltav2a.api.controllers import get_controller
from deltav2a.model.controller import predict
from deltav2a.errors import DeltaV2AError
from deltav2a.evaluation.metrics import active_param_rmse_gated, activity_f1, mean_baseline_rmse
from deltav2a.model.layout import ParamLayout
from deltav2a.model.data import ControllerData
from deltav2a.training.trainer import train_controller
from deltav2a.model.weights import ControllerMetadata, load_controller, save_controller

torch.set_num_threads(1)

EFFECTS = ["lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "playback_rate"]


@pytest.fixture
def layout() -> ParamLayout:
    return ParamLayout.from_names(EFFECTS)


def _knn(layout, style_dim=24, audio_dim=16, **opts):
    cfg = ControllerConfig(name="knn", options=dict(**opts))
    return get_controller("knn").build(style_dim, audio_dim, layout, cfg)


def _records(layout, rows):
    """rows: (style (K,), active effect names, {param index: value}) -> ControllerData."""
    K = len(rows[0][0])
    style = np.asarray([r[0] for r in rows], np.float32)
    active = np.zeros((len(rows), layout.n_effects), bool)
    params = np.tile(layout.bypass_array().astype(np.float32), (len(rows), 1))
    for i, (_, names, values) in enumerate(rows):
        for n in names:
            active[i, layout.effects.index(n)] = True
        for j, v in values.items():
            params[i, j] = v
    return ControllerData(style.reshape(len(rows), K), np.zeros((len(rows), 4), np.float32), active, params)


def _param_index(layout, effect):
    owner = layout.param_effect_array()
    return int(np.flatnonzero(owner == layout.effects.index(effect))[0])


def test_vote_and_active_only_mean(layout):
    """3 neighbours: lowpass active in 2 of 3 -> activity 2/3, its param = mean of the (at most 3)
    nearest records that have lowpass; an effect none of the 3 neighbours has gets activity 0 but
    its parameters from the nearest records that do have it (decision 9.34), bypass only when no
    stored record has it."""
    j = _param_index(layout, "lowpass")
    d = _param_index(layout, "delay")
    near = [1.0, 0.0, 0.0]
    data = _records(layout, [
        (near, ["lowpass"], {j: 0.2}),
        (near, ["lowpass", "reverb"], {j: 0.4}),
        (near, ["reverb"], {}),
        ([0.0, 0.0, 1.0], ["delay"], {d: 0.9}),       # far away: never one of the 3 neighbours
        ([0.0, 1.0, 0.0], ["lowpass"], {j: 0.95}),    # not one of the 3 neighbours, but a lowpass record
    ])
    net = _knn(layout, style_dim=3, audio_dim=4, k=3, audio_weight=0.0)
    net.fit(data)
    pred = predict(net, np.asarray([near], np.float32), np.zeros((1, 4), np.float32))
    act = dict(zip(layout.effects, pred.activity[0]))
    assert act["lowpass"] == pytest.approx(2 / 3) and act["reverb"] == pytest.approx(2 / 3)
    assert act["delay"] == 0.0
    # the 3 nearest lowpass records: 0.2, 0.4 and the far 0.95 (not bypass from the reverb-only one)
    assert pred.params[0, j] == pytest.approx((0.2 + 0.4 + 0.95) / 3)
    assert act["delay"] == 0.0 and pred.params[0, d] == pytest.approx(0.9)
    h = _param_index(layout, "highpass")
    assert pred.params[0, h] == pytest.approx(layout.bypass_array()[h])  # no record has it: bypass


def test_k1_returns_the_stored_record(layout):
    data = ControllerData.synthetic(layout, 200, audio_dim=16, seed=3)
    net = _knn(layout, k=1)
    net.fit(data)
    pred = predict(net, data.style, data.audio)
    assert np.array_equal(pred.activity.astype(bool), data.active)
    gated = layout.gate(pred.params, data.active)
    assert np.allclose(gated, layout.gate(data.params, data.active))


def test_strength_picks_the_matching_record(layout):
    """Same label and E(A), different strength: the query's strength decides the neighbour.

    A strength-input model reads label + strength as one (K + 1) input (`with_strength`)."""
    from deltav2a.model.controller import with_strength

    j = _param_index(layout, "lowpass")
    data = _records(layout, [([1.0, 0.0], ["lowpass"], {j: 0.1}), ([1.0, 0.0], ["lowpass"], {j: 0.9})])
    data.strength = np.asarray([0.2, 0.9], np.float32)
    net = _knn(layout, style_dim=3, audio_dim=4, k=1)
    assert net.fit(data)["strength"] is True
    q = np.asarray([[1.0, 0.0], [1.0, 0.0]], np.float32)
    pred = predict(net, with_strength(q, np.asarray([0.85, 0.25])), np.zeros((2, 4), np.float32))
    assert pred.params[0, j] == pytest.approx(0.9) and pred.params[1, j] == pytest.approx(0.1)
    without = _knn(layout, style_dim=3, audio_dim=4, k=2, strength_weight=0.0)
    without.fit(data)  # strength ignored: both records tie, the mean of the two
    pred = predict(without, with_strength(q, np.asarray([0.85, 0.25])), np.zeros((2, 4), np.float32))
    assert pred.params[0, j] == pytest.approx(0.5)


def test_beats_the_mean_baseline_on_held_out_records(layout):
    """On the learnable toy problem the neighbour mean must do better than a constant."""
    data = ControllerData.synthetic(layout, 3000, audio_dim=16, seed=0, noise=0.1)
    train, test = data.split(0.2, seed=0)
    net = _knn(layout, k=8)
    net.fit(train)
    pred = predict(net, test.style, test.audio)
    rmse = active_param_rmse_gated(pred.activity, pred.params, test.active, test.params, layout, 0.5)
    base = mean_baseline_rmse(train.active, train.params, test.active, test.params, layout)
    f1 = activity_f1(pred.activity, test.active, layout, 0.5)["macro_f1"]
    assert rmse < 0.8 * base, (rmse, base)
    assert f1 > 0.5


def test_saved_records_round_trip(layout, tmp_path):
    data = ControllerData.synthetic(layout, 300, audio_dim=16, seed=2)
    net = _knn(layout, k=5, max_records=120)
    info = net.fit(data, seed=4)
    assert info == {"records": 120, "records_available": 300, "strength": False}
    meta = ControllerMetadata(
        controller="knn", config=ControllerConfig(name="knn", options=dict(k=5, max_records=120)).model_dump(mode="json"),
        layout=layout.describe(), style_dim=24, audio_dim=16,
        vocabulary={"name": "v3", "fingerprint": "v"}, encoders={"audio": {"name": "a", "fingerprint": "a"}},
        thresholds={e: 0.5 for e in layout.effects})
    save_controller(tmp_path / "ctl", net, meta)
    loaded = load_controller(tmp_path / "ctl", layout=layout)
    assert loaded.module.n_records == 120
    a, b = predict(net, data.style, data.audio), loaded.predict(data.style, data.audio)
    assert np.array_equal(a.activity, b.activity) and np.array_equal(a.params, b.params)


def test_unfitted_and_mismatched_inputs_are_refused(layout):
    net = _knn(layout)
    with pytest.raises(DeltaV2AError, match="holds no records"):
        predict(net, np.full((1, 24), 1 / 24, np.float32), np.zeros((1, 16), np.float32))
    with pytest.raises(DeltaV2AError, match="built for"):
        net.fit(ControllerData.synthetic(layout, 10, audio_dim=8, seed=0))


def test_trainer_fits_instead_of_training(layout, tmp_path):
    data = ControllerData.synthetic(layout, 400, audio_dim=16, seed=5)
    train, val = data.split(0.25, seed=0)
    res = train_controller("knn", train, val, layout, ControllerConfig(name="knn", options=dict(k=4)),
                           TrainingConfig(epochs=50), out_dir=tmp_path / "t", seed=0, progress=False)
    assert res.best_epoch == 1 and len(res.history) == 1 and res.parameters == 0
    assert res.module.n_records == len(train)
    assert 0 < res.best_value < 1
    assert (tmp_path / "t" / "metrics.json").is_file()


# ------------------------------------------------------------------ torch-free inference (issue 10)


def test_numpy_inference_gives_the_modules_answers(layout, tmp_path):
    """`load_controller(inference_only=True)` answers with numpy arrays (no torch in a
    transfer): the same neighbours, the same activity and parameters within a float32 ulp of
    the torch module's, on a saved model with strength and on the shipped model. The same
    neighbours means the same set per query: torch's float32 cdist and numpy's float64
    expansion may order two records 5e-7 apart either way inside the k (the shipped k = 32
    vote has such pairs), which no vote or mean can see. The shipped model's parameters come
    from its learned head, whose numpy forward agrees with torch to 4e-7 (decision 9.60)."""
    from deltav2a.transfer.pipeline import DEFAULT_MODEL
    from deltav2a_plugins.controllers.knn_arrays import KNNArrays

    data = ControllerData.synthetic(layout, 500, audio_dim=16, seed=7)
    data.strength = np.random.default_rng(3).uniform(0, 1, len(data)).astype(np.float32)
    net = _knn(layout, style_dim=25, k=6)
    net.fit(data, seed=0)
    meta = ControllerMetadata(
        controller="knn", config=ControllerConfig(name="knn", options=dict(k=6)).model_dump(mode="json"),
        layout=layout.describe(), style_dim=25, audio_dim=16, strength_input=True,
        vocabulary={"name": "v3", "fingerprint": "v"}, encoders={"audio": {"name": "a", "fingerprint": "a"}},
        thresholds={e: 0.5 for e in layout.effects})
    save_controller(tmp_path / "ctl", net, meta)
    rng = np.random.default_rng(0)
    for path in (tmp_path / "ctl", DEFAULT_MODEL / "controller"):
        torch_ctl = load_controller(path)
        numpy_ctl = load_controller(path, inference_only=True)
        assert isinstance(numpy_ctl.module, KNNArrays)
        st = numpy_ctl.module.state
        n = 300
        i = rng.integers(0, numpy_ctl.module.n_records, n)
        K = st["style"].shape[1]
        style = st["style"][i] + rng.dirichlet(np.ones(K), n).astype(np.float32) * rng.uniform(0, 1, (n, 1)).astype(np.float32)
        style /= style.sum(axis=1, keepdims=True)
        audio = st["audio"][rng.permutation(i)] + 0.1 * rng.standard_normal(st["audio"][i].shape).astype(np.float32)
        strength = rng.uniform(0, 1, n).astype(np.float32)
        ids_t = torch_ctl.module.neighbours(torch.tensor(style), torch.tensor(audio), torch.tensor(strength))[0]
        ids_n = numpy_ctl.module.neighbours(style, audio, strength)
        assert np.array_equal(np.sort(ids_t.numpy(), axis=1), np.sort(ids_n, axis=1))
        assert (ids_t.numpy() == ids_n).mean() > 0.99
        a, b = torch_ctl.predict(style, audio, strength), numpy_ctl.predict(style, audio, strength)
        assert np.array_equal(a.activity, b.activity)
        np.testing.assert_allclose(b.params, a.params, rtol=0, atol=5e-7)


def test_numpy_inference_refuses_what_the_module_refuses(layout, tmp_path):
    from safetensors.numpy import load_file, save_file

    from deltav2a.fileio import sha256_file

    data = ControllerData.synthetic(layout, 50, audio_dim=16, seed=1)
    net = _knn(layout)
    net.fit(data)
    meta = ControllerMetadata(
        controller="knn", config=ControllerConfig(name="knn").model_dump(mode="json"), layout=layout.describe(),
        style_dim=24, audio_dim=16, vocabulary={"name": "v3", "fingerprint": "v"},
        encoders={"audio": {"name": "a", "fingerprint": "a"}}, thresholds={e: 0.5 for e in layout.effects})
    w = save_controller(tmp_path / "ctl", net, meta)

    def rewrite(change):
        import json

        state = load_file(str(w))
        change(state)
        save_file(state, str(w), metadata={"format": "deltav2a-controller"})
        j = tmp_path / "ctl.json"
        m = json.loads(j.read_text())
        m["weights"]["sha256"] = sha256_file(w)
        j.write_text(json.dumps(m))

    rewrite(lambda s: s.update(audio=s["audio"][:, :5].copy()))
    with pytest.raises(DeltaV2AError, match=r"audio: file has \[50, 5\], expected \[50, 16\]"):
        load_controller(tmp_path / "ctl", inference_only=True)
    rewrite(lambda s: (s.update(audio=np.zeros((50, 16), np.float32)), s["params"].__setitem__((0, 0), np.inf)))
    with pytest.raises(DeltaV2AError, match="'params' contains NaN or Inf"):
        load_controller(tmp_path / "ctl", inference_only=True)
    rewrite(lambda s: (s["params"].__setitem__((0, 0), 0.5), s.pop("audio_std")))
    with pytest.raises(DeltaV2AError, match="audio_std: file has nothing"):
        load_controller(tmp_path / "ctl", inference_only=True)


def test_a_transfer_with_the_knn_model_imports_no_torch(tmp_path):
    """~3 s and ~0.5 GiB resident (the CUDA build) that the shipped model does not need."""
    import subprocess
    import sys

    import soundfile as sf

    from deltav2a.media.examples import groove, landscape_image

    landscape_image(96, 64).save(tmp_path / "i.png")
    sf.write(tmp_path / "a.wav", groove(2.0, 22050).T, 22050)
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "deltav2a.cli.main", "transfer",
                          "--image", str(tmp_path / "i.png"), "--image-effect", "motion_blur:0.9",
                          "--audio", str(tmp_path / "a.wav"), "-o", str(tmp_path / "o.wav")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "o.png").is_file()
    imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert {"deltav2a.transfer.pipeline", "deltav2a_plugins.controllers.knn_arrays"} <= imported
    assert not {m for m in imported if m == "torch" or m.startswith("torch.")}, "torch was imported"


def test_a_clip_unlike_every_training_clip_gets_no_audio_term(layout, tmp_path):
    """Decision 9.38: a query whose E(A) is farther from every stored clip than the stored
    clips are from each other (their 0.99 quantile) is answered by label and strength alone,
    exactly as an audio_weight 0 model answers; clips inside that range are answered as
    before (gate off), by the torch module and the numpy predictor alike."""
    from deltav2a_plugins.controllers.knn_arrays import KNNArrays

    data = ControllerData.synthetic(layout, 400, audio_dim=16, seed=11)
    data.strength = np.random.default_rng(5).uniform(0, 1, len(data)).astype(np.float32)
    net = _knn(layout, style_dim=25, k=5, audio_weight=1.0)
    net.fit(data, seed=0)
    blind = _knn(layout, style_dim=25, k=5, audio_weight=0.0)
    blind.fit(data, seed=0)
    rng = np.random.default_rng(2)
    n = 40
    i = rng.integers(0, len(data), n)
    style, strength = data.style[i], rng.uniform(0, 1, n).astype(np.float32)
    inside = data.audio[rng.permutation(i)]
    std = data.audio.std(axis=0)
    outside = (data.audio.mean(axis=0) + 60.0 * std * rng.choice([-1.0, 1.0], (n, 16))).astype(np.float32)
    t = torch.tensor
    assert not net.unlike_training(t(inside)).any() and net.unlike_training(t(outside)).all()

    def ids(module, audio):
        return module.neighbours(t(style), t(audio), t(strength))[0].numpy()

    assert np.array_equal(ids(net, outside), ids(blind, outside))  # label and strength alone
    gated_inside = ids(net, inside)
    assert not np.array_equal(ids(net, outside), ids(net, inside))  # the audio term did matter
    net._range = (net._audio_range()[0], float("inf"))  # gate off: in-range answers are the plain k-NN's
    assert np.array_equal(ids(net, inside), gated_inside)
    net._range = None

    meta = ControllerMetadata(
        controller="knn", config=ControllerConfig(name="knn", options=dict(k=5, audio_weight=1.0)).model_dump(mode="json"),
        layout=layout.describe(), style_dim=25, audio_dim=16, strength_input=True,
        vocabulary={"name": "v3", "fingerprint": "v"}, encoders={"audio": {"name": "a", "fingerprint": "a"}},
        thresholds={e: 0.5 for e in layout.effects})
    save_controller(tmp_path / "ctl", net, meta)
    numpy_ctl = load_controller(tmp_path / "ctl", inference_only=True)
    assert isinstance(numpy_ctl.module, KNNArrays)
    for audio in (inside, outside):
        assert np.array_equal(numpy_ctl.module.neighbours(style, audio, strength), ids(net, audio))
