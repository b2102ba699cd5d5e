"""ChainSettings: the one representation of a chain's settings (issue 12, item 4).

Its forms round-trip exactly (spec strings, {effect: {param: value}}, sidecar records, JSON,
pickle); every bad input is a one-line error, also through the installed `deltav2a
apply-audio` (exit 2, nothing written); every producer answers with it (the controller's
plan, a transfer, the database sampler, the analysis decoder is checked in test_analysis.py);
and `AudioChain` renders it exactly as a hand-built Pedalboard of the same values.
"""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pedalboard
import pytest
import soundfile as sf

from conftest import run_cli
from deltav2a.api.registry import get
from deltav2a.errors import DeltaV2AError
from deltav2a.model.layout import ParamLayout
from deltav2a.render.chain import DEFAULT_ORDER, AudioChain
from deltav2a.render.settings import ChainSettings, EffectSetting

SR = 44100


def random_settings(seed: int, effects=DEFAULT_ORDER) -> ChainSettings:
    """Every effect at random normalised positions: raw values with long, awkward decimals."""
    rng = np.random.default_rng(seed)
    steps = []
    for name in effects:
        cls = get("audio_effect", name)
        steps.append(EffectSetting.from_normalised(name, {p.name: float(rng.uniform()) for p in cls.params}))
    return ChainSettings(steps)


# ----------------------------------------------------------------- forms round-trip exactly


@pytest.mark.parametrize("seed", range(5))
def test_every_form_round_trips_exactly(seed):
    s = random_settings(seed)
    assert len(s) == len(DEFAULT_ORDER) and s.effects == list(DEFAULT_ORDER)
    assert ChainSettings.parse(s.specs()) == s                      # --effect specs
    assert ChainSettings.from_dict(s.to_dict()) == s                # {effect: {param: value}}
    assert ChainSettings.from_records(s.to_records()) == s          # sidecar "effects"
    assert ChainSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert ChainSettings.from_records(json.loads(json.dumps(s.to_records()))) == s
    assert pickle.loads(pickle.dumps(s)) == s
    assert hash(ChainSettings.parse(s.specs())) == hash(s)
    # the values really are the awkward floats, not rounded text
    assert any(len(spec) > 40 for spec in s.specs())


def test_parse_keeps_only_given_values_and_resolved_fills_defaults():
    s = ChainSettings.parse(["reverb:wet_level=0.5", "delay", "lowpass:cutoff_hz=1.2e3"])
    assert s.to_dict() == {"reverb": {"wet_level": 0.5}, "delay": {}, "lowpass": {"cutoff_hz": 1200.0}}
    assert s.specs() == ("reverb:wet_level=0.5", "delay", "lowpass:cutoff_hz=1200")
    assert ChainSettings.parse("delay") == ChainSettings((EffectSetting("delay"),))
    full = s.resolved()
    assert full.to_dict()["reverb"] == get("audio_effect", "reverb").resolve({"wet_level": 0.5})
    assert ChainSettings().specs() == () and not ChainSettings() and ChainSettings().to_dict() == {}


def test_settings_are_immutable_and_own_their_values():
    given = {"cutoff_hz": 800}
    s = EffectSetting("lowpass", given)
    given["cutoff_hz"] = 5000
    assert s.params == {"cutoff_hz": 800.0} and isinstance(s.params["cutoff_hz"], float)
    with pytest.raises(TypeError):
        s.params["cutoff_hz"] = 900  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.effect = "highpass"  # type: ignore[misc]
    chain = ChainSettings([s])
    assert isinstance(chain.steps, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        chain.steps = ()  # type: ignore[misc]
    out = chain.to_dict()
    out["lowpass"]["cutoff_hz"] = 1.0  # a copy: the settings do not change
    assert chain.to_dict() == {"lowpass": {"cutoff_hz": 800.0}}


def test_an_effect_twice_is_a_chain_but_not_a_mapping():
    s = ChainSettings.parse(["lowpass", "lowpass:cutoff_hz=20000"])
    assert s.effects == ["lowpass", "lowpass"]
    assert ChainSettings.parse(s.specs()) == s and ChainSettings.from_records(s.to_records()) == s
    with pytest.raises(DeltaV2AError, match="'lowpass' is in this chain twice") as err:
        s.to_dict()
    assert "\n" not in str(err.value)
    assert AudioChain(s).names == ["lowpass", "lowpass"]


# ----------------------------------------------------------------- one-line errors


@pytest.mark.parametrize("make,match", [
    (lambda: ChainSettings.parse("flanger:rate=2"), "unknown audio effect 'flanger'"),
    (lambda: ChainSettings.parse(["delay", "lowpass:q=2"]), "has no parameter 'q'"),
    (lambda: ChainSettings.parse("lowpass:cutoff_hz=50"), r"out of range \[100, 20000\]"),
    (lambda: ChainSettings.parse("reverb:wet_level=0.5;room_size=0.8"), "not a number"),
    (lambda: ChainSettings.parse("lowpass:cutoff_hz"), "is not PARAM=VALUE"),
    (lambda: ChainSettings.parse(""), "empty effect spec"),
    (lambda: ChainSettings.parse([3]), "effect spec must be text"),
    (lambda: ChainSettings.parse({"lowpass": {}}), "effect specs must be text"),
    (lambda: ChainSettings.from_dict({"flanger": {}}), "unknown audio effect 'flanger'"),
    (lambda: ChainSettings.from_dict({"reverb": {"size": 1}}), "has no parameter 'size'"),
    (lambda: ChainSettings.from_dict({"reverb": {"wet_level": 2}}), "reverb.wet_level=2 is out of range"),
    (lambda: ChainSettings.from_dict({"reverb": {"wet_level": float("nan")}}), "not a finite number"),
    (lambda: ChainSettings.from_dict(["reverb"]), "must be a mapping"),
    (lambda: ChainSettings.from_dict({"reverb": [0.5]}), "must be a mapping"),
    (lambda: ChainSettings.from_records([{"params": {}}]), "needs 'effect'"),
    (lambda: ChainSettings.from_records({"effect": "reverb"}), "must be a list"),
    (lambda: ChainSettings(["reverb"]), "not an effect setting"),
    (lambda: ChainSettings("reverb"), "ChainSettings takes EffectSettings"),
    (lambda: EffectSetting("", {}), "needs an effect name"),
    (lambda: EffectSetting("reverb", {1: 0.5}), "parameter names must be text"),
    (lambda: AudioChain(["reverb"]), "AudioChain takes ChainSettings"),
    (lambda: AudioChain({"reverb": {}}), "AudioChain takes ChainSettings"),
])
def test_bad_settings_are_one_line_errors(make, match):
    with pytest.raises(DeltaV2AError, match=match) as err:
        make()
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from deltav2a.media.examples import groove

    path = tmp_path_factory.mktemp("clip") / "clip.wav"
    sf.write(path, groove(1.0).T, SR)
    return path


@pytest.mark.parametrize("spec,needle", [
    ("flanger", "unknown audio effect 'flanger'"),
    ("reverb:size=0.5", "has no parameter 'size'"),
    ("lowpass:cutoff_hz=50", "out of range"),
    ("lowpass:cutoff_hz", "is not PARAM=VALUE"),
    ("reverb:wet_level=0.5;room_size=0.8", "not a number"),
])
def test_apply_audio_bad_spec_exits_2_with_one_line(clip, tmp_path, spec, needle):
    out = tmp_path / "out" / "o.wav"
    out.parent.mkdir()
    res = run_cli("apply-audio", str(clip), "--effect", "delay", "--effect", spec, "-o", str(out),
                  "--info", str(out.parent / "o.json"))
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.stderr, res.stderr
    assert list(out.parent.iterdir()) == []


def test_apply_audio_info_specs_parse_back_to_the_rendered_chain(clip, tmp_path):
    out, info = tmp_path / "o.wav", tmp_path / "o.json"
    res = run_cli("apply-audio", str(clip), "--effect", "reverb:wet_level=0.4", "--effect", "lowpass:cutoff_hz=900",
                  "--tail", "cut", "-o", str(out), "--info", str(info))
    assert res.returncode == 0, res.stderr
    d = json.loads(info.read_text())
    again = ChainSettings.parse(d["specs"])
    assert again.effects == ["reverb", "lowpass"]
    assert again == ChainSettings.parse(["reverb:wet_level=0.4", "lowpass:cutoff_hz=900"]).resolved()
    x, sr = sf.read(clip, always_2d=True, dtype="float32")
    y, _ = sf.read(out, always_2d=True, dtype="float32")
    ref = AudioChain(again, order=d["order"], tail="cut").render(x.T, sr).audio
    np.testing.assert_allclose(y.T, ref, atol=1.0 / 2 ** 15)  # the written file is 16-bit


# ----------------------------------------------------------------- every producer answers with it


@pytest.fixture(scope="module")
def layout() -> ParamLayout:
    return ParamLayout.from_names(list(DEFAULT_ORDER))


def test_layout_turns_positions_into_chain_settings(layout):
    rng = np.random.default_rng(1)
    u = rng.uniform(size=layout.n_params)
    active = [e in ("reverb", "playback_rate", "lowpass") for e in layout.effects]
    s = layout.to_raw(u, active)
    assert isinstance(s, ChainSettings) and s.effects == ["lowpass", "reverb", "playback_rate"]
    for j, p in enumerate(layout.params):
        e = layout.effects[layout.param_effect[j]]
        if e in s.effects:
            assert s.to_dict()[e][p.name] == p.denormalise(u[j])  # exact: the same arithmetic
    back, act = layout.from_raw(s)
    assert act == active
    np.testing.assert_allclose(np.asarray(back)[layout.expand(np.asarray(active))],
                               u[layout.expand(np.asarray(active))], atol=1e-9)
    with pytest.raises(DeltaV2AError, match="from_raw takes ChainSettings"):
        layout.from_raw(s.to_dict())


def test_controller_plan_holds_chain_settings(layout):
    from deltav2a.model.plan import EffectPlan, plan_from_prediction

    act = np.array([0.9, 0.0, 0.8, 0.0, 0.1, 0.0, 0.0, 0.0])
    params = np.random.default_rng(2).uniform(size=layout.n_params)
    thr = {e: 0.5 for e in layout.effects}
    plan = plan_from_prediction(act, params, layout, thr, source="mlp", max_active=2)
    assert isinstance(plan.settings, ChainSettings) and plan.effects == ["lowpass", "reverb"]
    assert plan.settings == layout.to_raw(params, [a >= 0.5 for a in act])
    assert plan.as_dict()["effects"] == plan.settings.to_records()
    assert EffectPlan.identity().settings == ChainSettings()
    with pytest.raises(DeltaV2AError, match="must be ChainSettings"):
        EffectPlan({"lowpass": {}}, "mlp")  # type: ignore[arg-type]


def test_transfer_plan_sidecar_and_view_use_chain_settings():
    from deltav2a.media.examples import groove, landscape_image
    from deltav2a.transfer.pipeline import TransferModel
    from deltav2a.transfer.view import run_transfer

    tm = TransferModel()
    img = landscape_image(160, 120)
    after = get("image_effect", "motion_blur")().apply(img, 0.7)
    x = groove(2.0)
    res = tm.transfer(img, after, x, SR)
    s = res.plan.settings
    assert isinstance(s, ChainSettings) and len(s) >= 1
    side = json.loads(json.dumps(res.sidecar))
    assert side["effects"] == s.to_records()                 # the sidecar's shape: records
    assert ChainSettings.from_records(side["effects"]) == s
    assert ChainSettings.parse(side["chain"]["specs"]) == AudioChain(s, order=side["chain"]["order"]).settings
    view = run_transfer(tm, img, after, x, SR)
    assert view.effects == s and view.effects.to_records() == side["effects"]
    # TransferModel.render takes the plan or its settings alike
    a, _ = tm.render(x, SR, res.plan)
    b, _ = tm.render(x, SR, s)
    np.testing.assert_array_equal(a, b)


def test_database_sampler_answers_with_chain_settings(layout):
    from deltav2a.config import DatabaseConfig
    from deltav2a.database.sampling import AugmentationSampler, record_rng

    sampler = AugmentationSampler(layout, DatabaseConfig(), list(DEFAULT_ORDER))
    for a in range(6):
        aug = sampler.sample(record_rng(0, "clip.wav", a, 0))
        s = sampler.settings(aug)
        assert isinstance(s, ChainSettings)
        assert s.effects == [e for e, on in zip(layout.effects, aug.active) if on]
        chain = sampler.chain(aug, "cut", 5.0)
        assert chain.names == list(aug.order)
        assert sorted(chain.settings.specs()) == sorted(s.resolved().specs())
        # the record's params_raw column holds the same values, the bypass for inactive effects
        raw = sampler.raw(aug)
        flat = [v for st in s for v in st.params.values()]
        assert flat == [float(r) for r, on in zip(raw, layout.expand(aug.active)) if on]


# ----------------------------------------------------------------- the render is of these values


def test_chain_renders_the_values_it_was_given(layout):
    """Settings from the layout, from specs and from a dict render bit for bit like a
    Pedalboard built by hand from the same values."""
    from deltav2a.media.examples import groove

    x = groove(1.5).astype(np.float32)
    u = np.random.default_rng(5).uniform(0.05, 0.9, size=layout.n_params)
    active = [e in ("lowpass", "reverb", "distortion", "delay") for e in layout.effects]
    s = layout.to_raw(u, active)
    v = s.to_dict()
    by_hand = pedalboard.Pedalboard([
        pedalboard.LowpassFilter(v["lowpass"]["cutoff_hz"]),
        pedalboard.Reverb(**v["reverb"]),
        pedalboard.Distortion(v["distortion"]["drive_db"]),
        pedalboard.Delay(**v["delay"]),
    ])(x, SR)
    for form in (s, ChainSettings.parse(s.specs()), ChainSettings.from_dict(v),
                 ChainSettings.from_records(s.to_records())):
        chain = AudioChain(form, tail="cut")
        np.testing.assert_array_equal(chain(x, SR), by_hand)
        assert chain.settings == s  # every parameter of these effects was given: nothing to fill
