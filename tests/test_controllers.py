"""Controllers: the effect layout, the two registered architectures, predict(), saved weights."""

from __future__ import annotations

import json
import math
import ast
import subprocess
import sys

import numpy as np
import pytest
import torch

from deltav2a.config import ControllerConfig
from deltav2a.model.controller import Prediction, count_parameters, predict
from deltav2a.api.controllers import get_controller
from deltav2a.errors import DeltaV2AError
from deltav2a.model.layout import ParamLayout
from deltav2a.model.data import ControllerData
from deltav2a.model.weights import ControllerMetadata, load_controller, read_metadata, save_controller

torch.set_num_threads(1)

EFFECTS = ["lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "playback_rate"]
SMALL_AR = ControllerConfig(name="ar", options={"condition_dim": 32, "hidden_dim": 48})


@pytest.fixture
def layout() -> ParamLayout:
    return ParamLayout.from_names(EFFECTS)


def _build(name: str, layout: ParamLayout, style_dim: int = 24, audio_dim: int = 16,
           cfg: ControllerConfig | None = None, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return get_controller(name).build(style_dim, audio_dim, layout, cfg or ControllerConfig())


# -- layout ------------------------------------------------------------------------------------

def test_layout_matches_the_registered_effects(layout):
    from deltav2a.api import registry as plugins

    assert layout.effects == tuple(EFFECTS)
    assert layout.n_params == 12
    assert layout.param_names == (
        "lowpass.cutoff_hz", "bitcrush.bit_depth", "reverb.room_size", "reverb.damping",
        "reverb.wet_level", "reverb.dry_level", "highpass.cutoff_hz", "distortion.drive_db",
        "delay.delay_seconds", "delay.feedback", "delay.mix", "playback_rate.rate")
    assert layout.param_effect == (0, 1, 2, 2, 2, 2, 3, 4, 5, 5, 5, 6)
    for name, p, b in zip(layout.param_names, layout.params, layout.bypass):
        effect, pname = name.split(".")
        assert p is plugins.get("audio_effect", effect).param(pname)
        assert b == p.bypass_normalised
    assert layout.effect_params("delay") == [8, 9, 10]


def test_layout_gates_and_converts_raw_values(layout):
    params = np.full((2, 12), 0.7, dtype=np.float32)
    active = np.zeros((2, 7), dtype=bool)
    active[0, 2] = True   # reverb
    active[1, [0, 6]] = True  # lowpass, playback_rate
    gated = layout.gate(params, active)
    bypass = layout.bypass_array()
    assert np.allclose(gated[0, 2:6], 0.7) and np.allclose(np.delete(gated[0], range(2, 6)),
                                                           np.delete(bypass, range(2, 6)))
    assert gated[1, 0] == pytest.approx(0.7) and gated[1, 11] == pytest.approx(0.7)
    assert np.allclose(gated[1, 1:11], bypass[1:11])

    raw = layout.to_raw(gated[1], active[1])
    assert raw.effects == ["lowpass", "playback_rate"]
    lp = layout.params[0]
    assert raw.to_dict()["lowpass"]["cutoff_hz"] == pytest.approx(lp.denormalise(0.7))
    back, act = layout.from_raw(raw)
    assert act == list(active[1])
    assert np.allclose(back, gated[1], atol=1e-6)

    with pytest.raises(DeltaV2AError, match="not in this layout"):
        layout.effect_index("flanger")
    with pytest.raises(DeltaV2AError, match="parameter columns"):
        layout.gate(np.zeros((1, 5)), np.zeros((1, 7), bool))


def test_layout_fingerprint_and_difference(layout):
    same = ParamLayout.from_names(EFFECTS)
    assert same.fingerprint() == layout.fingerprint()
    assert layout.difference(same.describe()) is None
    fewer = ParamLayout.from_names(EFFECTS[:-1])
    assert "effects differ" in layout.difference(fewer.describe())
    changed = layout.describe()
    changed["params"][0]["maximum"] = 18000.0
    assert "lowpass.cutoff_hz changed its maximum" in layout.difference(changed)


# -- registration ----------------------------------------------------------------------------

def test_controllers_register_cheaply():
    code = ("import sys\nfrom deltav2a.api import registry as plugins\nreg = plugins.get_registry()\n"
            "print(sorted(reg.names('controller')))\n"
            "print([m for m in ('torch', 'numpy') if m in sys.modules])\n"
            "print(plugins.get('controller', 'mlp').summary())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert {"ar", "knn", "mlp", "search"} <= set(ast.literal_eval(lines[0]))
    assert lines[1] == "[]"
    assert "gated" in lines[2]


# -- MLP ---------------------------------------------------------------------------------------

def test_mlp_parameter_count_matches_the_notes(layout):
    from deltav2a_plugins.controllers.mlp import mlp_parameter_count

    net = _build("mlp", layout, style_dim=24, audio_dim=512)
    # by hand: Linear(24,256) + LN(256) + Linear(256,256) + LN + Linear(256,128) + LN(128)
    #          + gate Linear(128,128) + audio Linear(512,128) + LN(128) + heads 128->7, 128->12
    by_hand = ((24 * 256 + 256) + 512 + (256 * 256 + 256) + 512 + (256 * 128 + 128) + 256
               + (128 * 128 + 128) + (512 * 128 + 128) + 256 + (128 * 7 + 7) + (128 * 12 + 12))
    assert count_parameters(net) == by_hand == mlp_parameter_count(24, 512, 7, 12) == 191_251
    assert abs(by_hand - 191_000) / 191_000 < 0.01


def test_mlp_structure_and_forward(layout):
    net = _build("mlp", layout)
    kinds = [type(m).__name__ for m in net.backbone]
    assert kinds == ["Linear", "LayerNorm", "ReLU", "Dropout"] * 3
    assert [m.out_features for m in net.backbone if isinstance(m, torch.nn.Linear)] == [256, 256, 128]
    assert all(m.p == 0.3 for m in net.backbone if isinstance(m, torch.nn.Dropout))
    assert torch.all(net.gate.bias == -2.0)
    assert [type(m).__name__ for m in net.audio_proj] == ["Linear", "LayerNorm", "ReLU", "Dropout"]

    style = torch.softmax(torch.randn(5, 24), dim=1)
    audio = torch.randn(5, 16)
    net.eval()
    logits, params = net(style, audio)
    assert logits.shape == (5, 7) and params.shape == (5, 12)
    assert torch.all((params > 0) & (params < 1))
    # feat = style_feat + gate * audio_feat, as the notes write it
    with torch.no_grad():
        gate = net.gate_values(style)
        feat = net.backbone(style) + gate * net.audio_proj(audio)
        assert torch.allclose(net.activity_head(feat), logits)

    pred = predict(net, style.numpy(), audio.numpy())
    assert isinstance(pred, Prediction)
    assert np.allclose(pred.activity, torch.sigmoid(logits).detach().numpy(), atol=1e-6)
    assert net.training is False


def test_predict_refuses_bad_inputs(layout):
    net = _build("mlp", layout)
    style = np.full((3, 24), 1 / 24, np.float32)
    with pytest.raises(DeltaV2AError, match="style labels must be"):
        predict(net, style[:, :20], np.zeros((3, 16), np.float32))
    with pytest.raises(DeltaV2AError, match="audio embeddings must be"):
        predict(net, style, np.zeros((3, 8), np.float32))
    with pytest.raises(DeltaV2AError, match="3 style labels but 2"):
        predict(net, style, np.zeros((2, 16), np.float32))
    bad = style.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DeltaV2AError, match="NaN"):
        predict(net, bad, np.zeros((3, 16), np.float32))


# -- AR ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("max_steps", [1, 2, 3])
def test_ar_decodes_within_max_steps(layout, max_steps):
    cfg = ControllerConfig(name="ar", options={"condition_dim": 32, "hidden_dim": 48, "max_steps": max_steps})
    net = _build("ar", layout, cfg=cfg)
    data = ControllerData.synthetic(layout, 64, audio_dim=16, seed=3)
    pred = predict(net, data.style, data.audio)
    assert pred.activity.shape == (64, 7) and pred.params.shape == (64, 12)
    assert set(np.unique(pred.activity)) <= {0.0, 1.0}
    assert pred.activity.sum(axis=1).max() <= max_steps
    # effects not chosen sit at bypass; chosen ones carry the param head's values
    gated = layout.gate(pred.params, pred.activity > 0.5)
    assert np.array_equal(gated, pred.params)
    tokens, act, _ = net.decode(torch.from_numpy(data.style), torch.from_numpy(data.audio))
    assert tokens.shape == (64, max_steps)
    for row_tokens, row_act in zip(tokens.tolist(), act.numpy()):
        chosen = [t for t in row_tokens if t >= 0]
        assert len(chosen) == len(set(chosen))  # an effect at most once
        assert sorted(chosen) == list(np.flatnonzero(row_act))


def test_ar_loss_is_finite_and_ignores_inactive_params(layout):
    net = _build("ar", layout, cfg=SMALL_AR)
    data = ControllerData.synthetic(layout, 32, audio_dim=16, seed=4)
    from deltav2a.config import LossConfig

    t = [torch.from_numpy(a) for a in (data.style, data.audio, data.active, data.params)]
    loss, parts = net.compute_loss(*t, LossConfig())
    assert math.isfinite(float(loss.detach())) and set(parts) == {"loss", "act_loss", "param_loss"}
    assert float(loss.detach()) == pytest.approx(parts["act_loss"] + 50.0 * parts["param_loss"], rel=1e-5)
    loss.backward()
    assert net.token_embedding.weight.grad is not None
    # the parameters of inactive effects carry no loss: moving them changes nothing
    moved = data.params.copy()
    inactive_cols = ~layout.expand(data.active)
    moved[inactive_cols] = 1.0 - moved[inactive_cols]
    net.eval()
    with torch.no_grad():
        a, pa = net.compute_loss(*t[:3], torch.from_numpy(data.params), LossConfig())
        b, pb = net.compute_loss(*t[:3], torch.from_numpy(moved), LossConfig())
    assert pa == pb


# -- saved weights -------------------------------------------------------------------------------

def _metadata(name: str, layout: ParamLayout, cfg: ControllerConfig) -> ControllerMetadata:
    return ControllerMetadata(
        controller=name, config=cfg.model_dump(mode="json"), layout=layout.describe(),
        style_dim=24, audio_dim=16, vocabulary={"name": "v3", "fingerprint": "vocab-fp-1"},
        encoders={"image": {"name": "clip", "fingerprint": "img-fp"},
                  "audio": {"name": "clap", "fingerprint": "aud-fp"}},
        thresholds={e: 0.5 + 0.05 * i for i, e in enumerate(layout.effects)},
        calibration={"temperature": 0.015}, training={"best_epoch": 3})


@pytest.mark.parametrize("name", ["mlp", "ar"])
def test_weights_round_trip_bit_exact(layout, tmp_path, name):
    cfg = SMALL_AR if name == "ar" else ControllerConfig()
    net = _build(name, layout, cfg=cfg, seed=7)
    with torch.no_grad():  # make sure nothing is left at its initial value by accident
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = save_controller(tmp_path / "ctl", net, _metadata(name, layout, cfg))
    assert path.name == "ctl.safetensors" and (tmp_path / "ctl.json").is_file()
    raw = path.read_bytes()  # safetensors: u64 header length, then a JSON header (no pickle)
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert header["__metadata__"] == {"format": "deltav2a-controller"}

    loaded = load_controller(tmp_path / "ctl.json", vocabulary={"name": "v3", "fingerprint": "vocab-fp-1"},
                             encoders={"audio": {"name": "clap", "fingerprint": "aud-fp"}},
                             layout=layout)
    before, after = net.state_dict(), loaded.module.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert loaded.thresholds == _metadata(name, layout, cfg).thresholds
    assert loaded.metadata.calibration == {"temperature": 0.015}
    data = ControllerData.synthetic(layout, 16, audio_dim=16, seed=1)
    a, b = predict(net, data.style, data.audio), loaded.predict(data.style, data.audio)
    assert np.array_equal(a.activity, b.activity) and np.array_equal(a.params, b.params)
    meta = json.loads((tmp_path / "ctl.json").read_text())
    assert meta["format"] == "deltav2a-controller" and meta["controller"] == name


def test_weights_refuse_mismatches(layout, tmp_path):
    cfg = ControllerConfig()
    net = _build("mlp", layout, cfg=cfg)
    save_controller(tmp_path / "ctl", net, _metadata("mlp", layout, cfg))

    with pytest.raises(DeltaV2AError, match=r"trained with vocabulary 'v3' \(fingerprint vocab-fp-1\)"):
        load_controller(tmp_path / "ctl", vocabulary={"name": "v3", "fingerprint": "other"})
    with pytest.raises(DeltaV2AError, match="trained with audio encoder 'clap'.*configured audio encoder is 'perceptual-audio'"):
        load_controller(tmp_path / "ctl",
                        encoders={"audio": {"name": "perceptual-audio", "fingerprint": "x"}})
    with pytest.raises(DeltaV2AError, match="effects differ"):
        load_controller(tmp_path / "ctl", layout=ParamLayout.from_names(EFFECTS[:6]))

    # a weights file from another model next to this metadata is caught by its checksum
    other = _build("mlp", layout, cfg=cfg, seed=99)
    save_controller(tmp_path / "other", other, _metadata("mlp", layout, cfg))
    (tmp_path / "other.safetensors").replace(tmp_path / "ctl.safetensors")
    with pytest.raises(DeltaV2AError, match="checksum differs"):
        load_controller(tmp_path / "ctl")
    with pytest.raises(DeltaV2AError, match="no controller metadata"):
        read_metadata(tmp_path / "missing")
    # error messages are one line
    try:
        load_controller(tmp_path / "ctl", vocabulary={"name": "v2", "fingerprint": "zz"})
    except DeltaV2AError as exc:
        assert "\n" not in str(exc)


def test_weights_refuse_missing_thresholds(layout, tmp_path):
    cfg = ControllerConfig()
    meta = _metadata("mlp", layout, cfg)
    del meta.thresholds["delay"]
    with pytest.raises(DeltaV2AError, match="no threshold for: delay"):
        save_controller(tmp_path / "ctl", _build("mlp", layout), meta)
