"""AudioChain: ordering, one-Pedalboard rendering, tails, spec parsing, descriptions.

Every render is checked against the same effects applied by hand (a pedalboard.Pedalboard
built directly, soxr for playback_rate), so the chain is shown to render what it says.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pedalboard
import pytest

from deltav2a.render.chain import (
    DEFAULT_ORDER,
    AudioChain,
    ChainSettings,
    EffectSetting,
    TailTruncatedWarning,
    describe_chain,
)
from deltav2a.api.effects import AudioEffect
from deltav2a.errors import DeltaV2AError
from deltav2a.api.hookspecs import hookimpl
from deltav2a.media.io import resample
from deltav2a.api.params import Param
from deltav2a.api.registry import get, load_registry, reset_registry

SR = 44100


def music_like(sr: int = SR, seconds: float = 2.0, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Harmonic tone + noise burst + click for the first 1.5 s, then silence (peak 0.5)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    env = np.clip(np.minimum(t / 0.02, (1.5 - t) / 0.05), 0.0, 1.0) * (t < 1.5)
    tone = sum(np.sin(2 * np.pi * 220 * k * t + k) / k for k in range(1, 7)) * env
    x = np.stack([tone * (1.0 - 0.3 * c) for c in range(channels)]) * 0.15
    m = int(0.05 * sr)
    i = int(0.6 * sr)
    x[:, i:i + m] += 0.3 * rng.standard_normal((channels, m)) * np.hanning(m)
    x[:, int(0.3 * sr)] += 0.4
    x *= 0.5 / np.abs(x).max()
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return music_like()


def high_band_share(x: np.ndarray, above_hz: float = 2000.0) -> float:
    spec = np.abs(np.fft.rfft(x.mean(axis=0))) ** 2
    return float(spec[np.fft.rfftfreq(x.shape[1], 1 / SR) > above_hz].sum() / spec.sum())


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


# ----------------------------------------------------------------- ordering


def test_default_order_is_the_research_order():
    assert DEFAULT_ORDER == ("lowpass", "bitcrush", "reverb", "highpass", "distortion",
                             "delay", "stutter", "playback_rate")


def test_settings_are_sorted_by_default_order():
    given = list(reversed(DEFAULT_ORDER))
    chain = AudioChain(ChainSettings([EffectSetting(n) for n in given]))
    assert chain.names == list(DEFAULT_ORDER)
    assert AudioChain(ChainSettings.parse(["delay", "lowpass"])).names == ["lowpass", "delay"]


def test_custom_order_and_unlisted_effects_keep_their_relative_position():
    chain = AudioChain(ChainSettings.parse(["reverb", "lowpass", "delay", "bitcrush"]), order=["delay", "bitcrush"])
    assert chain.names == ["delay", "bitcrush", "reverb", "lowpass"]
    chain = AudioChain(ChainSettings.parse(["reverb", "lowpass"]), order="lowpass, reverb")
    assert chain.names == ["lowpass", "reverb"]
    assert AudioChain(ChainSettings.parse(["reverb", "lowpass"]), order=()).names == ["reverb", "lowpass"]


def test_playback_rate_is_always_last():
    order = ("playback_rate", "delay", "lowpass")
    chain = AudioChain(ChainSettings.parse(["lowpass", "playback_rate:rate=1.5", "delay"]), order=order)
    assert chain.names == ["delay", "lowpass", "playback_rate"]
    chain = AudioChain(ChainSettings.parse(["playback_rate", "reverb"]), order=())
    assert chain.names == ["reverb", "playback_rate"]
    # the stutter gate renders outside Pedalboard too: after the Pedalboard part, before the
    # speed change (a gate recorded onto the tape speeds up with it)
    chain = AudioChain(ChainSettings.parse(["playback_rate:rate=1.5", "stutter", "delay", "reverb"]))
    assert chain.names == ["reverb", "delay", "stutter", "playback_rate"]


def test_bad_orders_are_rejected():
    with pytest.raises(DeltaV2AError, match="lowpas"):
        AudioChain(ChainSettings.parse(["lowpass"]), order=["lowpas"])
    with pytest.raises(DeltaV2AError, match="more than once"):
        AudioChain(ChainSettings.parse(["lowpass"]), order=["lowpass", "lowpass"])


def test_order_changes_the_result_and_matches_a_hand_built_pedalboard(audio):
    specs = ["distortion:drive_db=30", "lowpass:cutoff_hz=500"]
    d_then_l = AudioChain(ChainSettings.parse(specs), order=["distortion", "lowpass"], tail="cut")(audio, SR)
    l_then_d = AudioChain(ChainSettings.parse(specs), order=["lowpass", "distortion"], tail="cut")(audio, SR)
    ref_dl = pedalboard.Pedalboard([pedalboard.Distortion(drive_db=30),
                                    pedalboard.LowpassFilter(500)])(audio, SR)
    ref_ld = pedalboard.Pedalboard([pedalboard.LowpassFilter(500),
                                    pedalboard.Distortion(drive_db=30)])(audio, SR)
    np.testing.assert_array_equal(d_then_l, ref_dl)
    np.testing.assert_array_equal(l_then_d, ref_ld)
    # distortion after the filter re-creates the highs the filter removed
    assert rms(d_then_l - l_then_d) > 0.1 * rms(d_then_l)
    assert high_band_share(l_then_d) > 3 * high_band_share(d_then_l)


def test_full_chain_matches_pedalboard_then_soxr(audio):
    specs = ["playback_rate:rate=0.8", "delay:delay_seconds=0.1,feedback=0.2,mix=0.3",
             "reverb:room_size=0.3,wet_level=0.2", "lowpass:cutoff_hz=3000",
             "bitcrush:bit_depth=10",
             "highpass:cutoff_hz=100", "distortion:drive_db=6",
             "stutter:rate_hz=6,duty=0.5,depth=0.7,smoothing_ms=4"]
    chain = AudioChain(ChainSettings.parse(specs), tail="cut")
    assert chain.names == list(DEFAULT_ORDER)
    board = pedalboard.Pedalboard([
        pedalboard.LowpassFilter(3000), pedalboard.Bitcrush(10),
        pedalboard.Reverb(room_size=0.3, damping=0.5, wet_level=0.2, dry_level=0.4),
        pedalboard.HighpassFilter(100), pedalboard.Distortion(6),
        pedalboard.Delay(0.1, 0.2, 0.3)])
    wet = board(audio, SR)
    # the gate by hand: open for the first half of each 1/6 s cycle, 0.3 closed, 4 ms ramps
    t = np.arange(wet.shape[1], dtype=np.float64)
    tau = np.mod(t, SR / 6.0)
    ramp = 0.004 * SR
    w = np.clip(np.minimum(tau, 0.5 * SR / 6.0 - tau) / ramp, 0.0, 1.0)
    gain = (1.0 - 0.7 * (0.5 + 0.5 * np.cos(np.pi * w))).astype(np.float32)
    expected = resample(wet * gain, SR * 0.8, SR)
    np.testing.assert_array_equal(chain(audio, SR), expected)


# ----------------------------------------------------------------- tails


def test_tail_cut_keeps_input_length_and_reports_the_drop(audio):
    res = AudioChain(ChainSettings.parse(["reverb:room_size=0.8,wet_level=0.5", "delay"]), tail="cut").render(audio, SR)
    assert res.audio.shape == audio.shape
    assert res.tail_truncated and res.tail_kept_seconds == 0.0
    assert res.tail_dropped_seconds == pytest.approx(res.tail_estimate_seconds)
    assert res.tail_dropped_seconds > 1.0
    assert json.loads(json.dumps(res.info))["tail_dropped_seconds"] > 1.0


def test_tail_keep_rings_out_and_trims_at_minus_60_db(audio):
    chain = AudioChain(ChainSettings.parse(["reverb:room_size=0.7,wet_level=0.5"]), tail="keep")
    res = chain.render(audio, SR)
    y = res.audio
    assert y.shape[1] > audio.shape[1] and not res.tail_truncated
    assert res.tail_dropped_seconds == 0.0
    assert res.tail_kept_seconds == pytest.approx((y.shape[1] - audio.shape[1]) / SR)
    # the body is what a cut render gives: padding only adds time after the input
    cut = AudioChain(ChainSettings.parse(["reverb:room_size=0.7,wet_level=0.5"]), tail="cut")(audio, SR)
    np.testing.assert_array_equal(y[:, : audio.shape[1]], cut)
    # untrimmed reference: the input padded by hand with 10 s of silence, rendered "cut"
    padded = np.concatenate([audio, np.zeros((2, 10 * SR), np.float32)], axis=1)
    ref = AudioChain(ChainSettings.parse(["reverb:room_size=0.7,wet_level=0.5"]), tail="cut")(padded, SR)
    np.testing.assert_array_equal(y, ref[:, : y.shape[1]])
    floor = np.abs(ref).max() * 10 ** (-60 / 20)
    assert np.abs(y[:, -1]).max() >= floor           # ends on the last audible sample
    assert np.abs(ref[:, y.shape[1]:]).max() < floor  # and drops only what is inaudible


def test_tail_keep_without_tail_effects_keeps_length(audio):
    y = AudioChain(ChainSettings.parse(["lowpass", "distortion"]), tail="keep")(audio, SR)
    assert y.shape == audio.shape


def test_tail_keep_with_playback_rate(audio):
    res = AudioChain(ChainSettings.parse(["delay:delay_seconds=0.3,feedback=0.5,mix=0.5", "playback_rate:rate=2"]),
                     tail="keep").render(audio, SR)
    body = round(audio.shape[1] / 2)
    assert res.audio.shape[1] > body
    # the tail estimate is reported in output time (halved by rate 2)
    assert res.tail_estimate_seconds == pytest.approx(
        get("audio_effect", "delay")().tail_seconds(delay_seconds=0.3, feedback=0.5, mix=0.5) / 2,
        rel=1e-3)
    cut = AudioChain(ChainSettings.parse(["playback_rate:rate=2"]), tail="cut")(audio, SR)
    assert abs(cut.shape[1] - audio.shape[1] / 2) <= 1


def test_tail_cap_warns_and_records_truncation(audio):
    chain = AudioChain(ChainSettings.parse(["reverb:room_size=1.0,damping=0,wet_level=1.0"]), tail="keep",
                       max_tail_seconds=0.5)
    with pytest.warns(TailTruncatedWarning, match="max_tail_seconds=0.5"):
        res = chain.render(audio, SR)
    assert res.tail_truncated and res.tail_dropped_seconds > 5
    assert res.audio.shape[1] == audio.shape[1] + int(np.ceil(0.5 * SR))


def test_estimates_add_up_in_series():
    chain = AudioChain(ChainSettings.parse(["reverb", "delay"]))
    rev, dly = (get("audio_effect", n)() for n in ("reverb", "delay"))
    assert chain.tail_seconds() == pytest.approx(rev.tail_seconds() + dly.tail_seconds())


# ----------------------------------------------------------------- audio formats


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_every_effect_at_common_rates_mono_and_stereo(sr, channels):
    x = music_like(sr=sr, seconds=1.6, channels=channels)
    chain = AudioChain(ChainSettings.parse([f"{n}" for n in DEFAULT_ORDER] + ["lowpass:cutoff_hz=20000"]), tail="keep",
                       order=[n for n in DEFAULT_ORDER if n != "lowpass"])
    # two lowpasses (20 kHz is above Nyquist at 22.05 kHz) and every other effect
    res = chain.render(x, sr)
    y = res.audio
    assert y.dtype == np.float32 and y.flags.c_contiguous
    assert y.shape[0] == channels and np.isfinite(y).all()
    assert y.shape[1] >= round(x.shape[1] / 1.25)  # default rate is 1.25
    assert res.sample_rate == sr and rms(y) > 0.01


def test_one_dimensional_input_is_mono(audio):
    y = AudioChain(ChainSettings.parse(["lowpass"]), tail="cut")(audio[0], SR)
    assert y.shape == (1, audio.shape[1])


@pytest.mark.parametrize("n", [1, 2, 3])
def test_very_short_input(n):
    x = np.full((2, n), 0.25, dtype=np.float32)
    for tail in ("cut", "keep"):
        y = AudioChain(ChainSettings.parse(["lowpass", "bitcrush"]), tail=tail)(x, SR)
        assert y.shape == (2, n) and np.isfinite(y).all()


def test_render_is_deterministic_and_does_not_touch_the_input(audio):
    before = audio.copy()
    chain = AudioChain(ChainSettings.parse(["reverb", "distortion", "delay"]), tail="keep")
    a, b = chain(audio, SR), chain(audio, SR)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(audio, before)


def test_empty_chain_and_bypass_chain_return_copies(audio):
    y = AudioChain(ChainSettings(), tail="keep")(audio, SR)
    np.testing.assert_array_equal(y, audio)
    assert not np.shares_memory(y, audio)
    y = AudioChain(ChainSettings.parse(["playback_rate:rate=1"]), tail="cut")(audio, SR)
    np.testing.assert_array_equal(y, audio)
    assert not np.shares_memory(y, audio)


def test_all_effects_at_bypass_is_near_identity():
    """Only the first-order filters' phase and tanh remain; measured on quiet material."""
    x = music_like() * 0.2  # peak -20 dBFS
    settings = [EffectSetting(n, get("audio_effect", n).bypass_values()) for n in DEFAULT_ORDER]
    y = AudioChain(ChainSettings(settings), tail="keep")(x, SR)
    assert y.shape == x.shape  # no tail at bypass
    spec_x, spec_y = (np.abs(np.fft.rfft(s.mean(axis=0))) for s in (x, y))
    f = np.fft.rfftfreq(x.shape[1], 1 / SR)
    band = (f > 150) & (f < 8000) & (spec_x > spec_x.max() * 1e-2)
    assert np.max(np.abs(20 * np.log10(spec_y[band] / spec_x[band]))) < 0.2  # measured 0.045


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 0), np.float32), "zero length"),
    (np.array([[0.1, np.nan, 0.2]], np.float32), "NaN or Inf"),
    (np.array([[0.1, np.inf, 0.2]], np.float32), "NaN or Inf"),
    (np.zeros((2, 2, 10), np.float32), "channels, samples"),
    (np.zeros((44100, 2), np.float32), "transposed"),
])
def test_unusable_audio_is_a_one_line_error(bad, match):
    with pytest.raises(DeltaV2AError, match=match) as err:
        AudioChain(ChainSettings.parse(["lowpass"]))(bad, SR)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("sr", [0, -44100, float("nan"), float("inf"), "fast", 500])
def test_bad_sample_rates(sr, audio):
    with pytest.raises(DeltaV2AError, match="sample rate"):
        AudioChain(ChainSettings.parse(["lowpass"]))(audio, sr)


def test_bad_chain_options():
    with pytest.raises(DeltaV2AError, match="tail"):
        AudioChain(ChainSettings.parse(["lowpass"]), tail="fade")
    for bad in (-1, float("nan"), "long"):
        with pytest.raises(DeltaV2AError, match="max_tail_seconds"):
            AudioChain(ChainSettings.parse(["lowpass"]), max_tail_seconds=bad)
    with pytest.raises(DeltaV2AError, match="AudioChain takes ChainSettings"):
        AudioChain(["lowpass"])  # spec strings go through ChainSettings.parse
    with pytest.raises(DeltaV2AError, match="AudioChain takes ChainSettings"):
        AudioChain({"lowpass": {}})
    with pytest.raises(DeltaV2AError, match="not an effect setting"):
        ChainSettings([("lowpass", {})])


# ----------------------------------------------------------------- specs


@pytest.mark.parametrize("spec,effect,params", [
    ("lowpass:cutoff_hz=800", "lowpass", {"cutoff_hz": 800.0}),
    ("  reverb : wet_level = 0.5 , room_size=0.8 ", "reverb", {"wet_level": 0.5, "room_size": 0.8}),
    ("delay", "delay", {}),
    ("lowpass:cutoff_hz=1.2e3", "lowpass", {"cutoff_hz": 1200.0}),
    ("playback_rate:rate=2", "playback_rate", {"rate": 2.0}),
])
def test_parse_effect_spec(spec, effect, params):
    got = EffectSetting.parse(spec)
    assert got == EffectSetting(effect, params)
    assert dict(got.params) == params and list(got.params) == list(params)  # given order kept
    assert EffectSetting.parse(got.spec()) == got
    assert ChainSettings.parse(spec) == ChainSettings((got,))


@pytest.mark.parametrize("spec,match", [
    ("flanger:rate=2", "unknown audio effect 'flanger'"),
    ("lowpass:q=2", "has no parameter 'q'"),
    ("", "empty effect spec"),
    ("   ", "empty effect spec"),
    (":cutoff_hz=800", "no effect name"),
    ("lowpass:", "nothing after ':'"),
    ("lowpass:cutoff_hz", "is not PARAM=VALUE"),
    ("lowpass:=800", "is not PARAM=VALUE"),
    ("lowpass:cutoff_hz=800,", "is not PARAM=VALUE"),
    ("lowpass:cutoff_hz=", "has no value"),
    ("lowpass:cutoff_hz=800,cutoff_hz=900", "given twice"),
    ("reverb:wet_level=0.5;room_size=0.8", "not a number"),
    ("lowpass:cutoff_hz=abc", "not a number"),
    ("lowpass:cutoff_hz=800Hz", "not a number"),
    ("lowpass:cutoff_hz=50", r"out of range \[100, 20000\]"),
    ("playback_rate:rate=3", "out of range"),
    ("delay:feedback=0.95", "out of range"),
    ("lowpass:cutoff_hz=nan", "not a finite number"),
    ("lowpass:cutoff_hz=inf", "not a finite number"),
    ("bitcrush:bit_depth=-inf", "not a finite number"),
])
def test_bad_specs_are_one_line_errors(spec, match):
    with pytest.raises(DeltaV2AError, match=match) as err:
        EffectSetting.parse(spec)
    assert "\n" not in str(err.value)
    with pytest.raises(DeltaV2AError, match=match):
        ChainSettings.parse(["delay", spec])


def test_settings_built_in_code_are_validated():
    with pytest.raises(DeltaV2AError, match="out of range"):
        EffectSetting("reverb", {"room_size": 1.5})
    with pytest.raises(DeltaV2AError, match="has no parameter"):
        EffectSetting("reverb", {"size": 0.5})
    with pytest.raises(DeltaV2AError, match="unknown audio effect 'flanger'"):
        ChainSettings.from_dict({"flanger": {}})
    with pytest.raises(DeltaV2AError, match=r"reverb.wet_level=2 is out of range"):
        ChainSettings.from_records([{"effect": "reverb", "params": {"wet_level": 2}}])


# ----------------------------------------------------------------- description


def test_describe_chain_is_json_and_recreates_the_chain(audio):
    chain = AudioChain(ChainSettings.parse(["playback_rate:rate=0.5", "reverb:room_size=0.8", "lowpass:cutoff_hz=800"]),
                       tail="cut")
    d = json.loads(json.dumps(describe_chain(chain)))
    assert d == chain.describe() or d == json.loads(json.dumps(chain.describe()))
    assert [e["effect"] for e in d["effects"]] == ["lowpass", "reverb", "playback_rate"]
    lp = get("audio_effect", "lowpass").param("cutoff_hz")
    assert d["effects"][0]["params"] == {"cutoff_hz": 800.0}
    assert d["effects"][0]["normalised"]["cutoff_hz"] == pytest.approx(lp.normalise(800.0))
    assert d["effects"][2]["normalised"]["rate"] == pytest.approx(0.0)
    assert set(d["effects"][1]["params"]) == {"room_size", "damping", "wet_level", "dry_level"}
    assert d["effects"][2]["outside_pedalboard"] is True
    assert d["tail"] == "cut" and d["order"] == list(DEFAULT_ORDER)
    again = AudioChain(ChainSettings.parse(d["specs"]), order=d["order"], tail=d["tail"])
    np.testing.assert_array_equal(again(audio, SR), chain(audio, SR))


def test_render_result_describes_chain_and_tail(audio):
    res = AudioChain(ChainSettings.from_dict({"delay": {"mix": 0.5}, "lowpass": {"cutoff_hz": 900}}), tail="cut").render(
        audio, SR)
    d = json.loads(json.dumps(res.describe()))
    assert [e["effect"] for e in d["effects"]] == ["lowpass", "delay"]
    assert d["effects"][1]["params"]["mix"] == 0.5
    assert d["render"]["tail"] == "cut" and d["render"]["tail_truncated"] is True
    assert d["render"]["output_seconds"] == pytest.approx(audio.shape[1] / SR)


def test_mapping_settings_keep_their_values():
    chain = AudioChain(ChainSettings.from_dict({"reverb": {"room_size": 0.9}, "playback_rate": {}}))
    assert chain.names == ["reverb", "playback_rate"]
    assert chain.steps[0].raw["room_size"] == 0.9
    assert chain.steps[1].raw == {"rate": 1.25}


def test_from_normalised_uses_each_parameter_scale():
    s = EffectSetting.from_normalised("lowpass", {"cutoff_hz": 0.5})
    assert s.params["cutoff_hz"] == pytest.approx((100 * 20000) ** 0.5)
    assert EffectSetting.parse(s.spec()) == s  # exact float round trip through the text
    s = EffectSetting.from_normalised("playback_rate", {"rate": 0.5})
    assert s.params["rate"] == pytest.approx(1.0)
    bypass = {p.name: p.bypass_normalised for p in get("audio_effect", "reverb").params}
    s = EffectSetting.from_normalised("reverb", bypass)
    assert s.params == pytest.approx(get("audio_effect", "reverb").bypass_values())


def test_warnings_free_for_ordinary_renders(audio):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AudioChain(ChainSettings.parse(["reverb", "delay", "playback_rate"]), tail="keep")(audio, SR)


# ----------------------------------------------------------------- third-party effects


class _ThirdPartyPlugin:
    """A plugin as another package would write it: registers two effects via the hook."""

    @hookimpl
    def register_audio_effects(self, register):
        register(_Gain)
        register(_NanMaker)


class _Gain(AudioEffect):
    """Plain gain (a third-party Pedalboard effect that DEFAULT_ORDER does not know)."""

    name = "test_gain"
    params = (Param("gain_db", -24.0, 24.0, default=-6.0, bypass=0.0, unit="dB", doc="gain"),)

    def plugin(self, **raw):
        return pedalboard.Gain(gain_db=self.resolve(raw)["gain_db"])


class _NanMaker(AudioEffect):
    """A broken outside-Pedalboard effect: writes NaN into its output."""

    name = "test_nan"
    outside_pedalboard = True
    params = (Param("amount", 0.0, 1.0, default=1.0, bypass=0.0, doc="unused"),)

    def process(self, audio, sample_rate, **raw):
        out = np.array(audio, copy=True)
        out[:, -1] = np.nan
        return out


@pytest.fixture
def third_party_registry():
    reset_registry(load_registry(extra=[(_ThirdPartyPlugin(), "third_party")]))
    try:
        yield
    finally:
        reset_registry(None)  # the next get_registry() rebuilds from entry points


def test_third_party_effects_join_the_chain_after_ordered_ones(third_party_registry, audio):
    chain = AudioChain(ChainSettings.parse(["test_gain:gain_db=6", "reverb", "lowpass:cutoff_hz=900"]), tail="cut")
    assert chain.names == ["lowpass", "reverb", "test_gain"]
    expected = pedalboard.Pedalboard([
        pedalboard.LowpassFilter(900),
        pedalboard.Reverb(room_size=0.5, damping=0.5, wet_level=0.33, dry_level=0.4),
        pedalboard.Gain(6)])(audio, SR)
    np.testing.assert_array_equal(chain(audio, SR), expected)


def test_nan_from_a_third_party_effect_is_caught(third_party_registry, audio):
    with pytest.raises(DeltaV2AError, match="NaN or Inf"):
        AudioChain(ChainSettings.parse(["lowpass", "test_nan"]), tail="cut")(audio, SR)


def test_output_scan_follows_the_declaration_not_the_package(third_party_registry, monkeypatch, audio):
    """Built-ins skip the NaN/Inf scan because they declare `finite_output`, which any plugin
    may do; a third-party effect that declares it is trusted the same way (decision 12.2)."""
    assert not AudioChain(ChainSettings.parse(["lowpass", "reverb", "playback_rate:rate=1.2"]), tail="cut")._check_output
    assert not AudioChain(ChainSettings.parse(["stutter", "delay"]), tail="cut")._check_output  # gain in [0, 1]
    assert AudioChain(ChainSettings.parse(["lowpass", "test_gain"]), tail="cut")._check_output
    monkeypatch.setattr(_NanMaker, "finite_output", True)  # a false declaration is believed
    chain = AudioChain(ChainSettings.parse(["lowpass", "test_nan"]), tail="cut")
    assert not chain._check_output
    assert np.isnan(chain(audio, SR)).any()


# ----------------------------------------------------------------- real music


@pytest.mark.shared_data
def test_full_chain_on_a_real_clip(shared_data):
    from deltav2a.media.io import load_audio

    clip, sr = load_audio(sorted((shared_data / "music").glob("*.ogg"))[0])
    clip = clip[:, : sr * 3]
    res = AudioChain(ChainSettings.parse(["lowpass:cutoff_hz=3000", "reverb", "delay", "playback_rate:rate=0.9"]),
                     tail="keep").render(clip, sr)
    assert np.isfinite(res.audio).all() and res.audio.shape[0] == clip.shape[0]
    assert res.output_seconds > clip.shape[1] / sr / 0.9
    cut = AudioChain(ChainSettings.parse(["lowpass:cutoff_hz=3000", "reverb", "delay"]), tail="cut")(clip, sr)
    assert cut.shape == clip.shape


@pytest.mark.parametrize("specs", [
    ["lowpass", "reverb:wet_level=0.5", "delay", "playback_rate:rate=0.8"],
    ["bitcrush", "distortion", "highpass"],
    ["playback_rate:rate=1.7"],
    # 6 s + 1.5 s of tail = 39.6 blocks of 4096: a remainder longer than one block, on which a
    # fresh board used to re-prepare its delay (its echoes vanished from the last block)
    ["bitcrush:bit_depth=6", "delay:delay_seconds=0.7,feedback=0.9,mix=0.9"],
    ["reverb", "stutter:rate_hz=5.5,duty=0.4", "playback_rate:rate=1.3"],
])
@pytest.mark.parametrize("tail", ["keep", "cut"])
def test_block_rendering_equals_whole_rendering(monkeypatch, specs, tail):
    """Long clips render block by block (state carried across blocks, streams for
    playback_rate); the result must be the whole render's, sample for sample."""
    import deltav2a.render.chain as chain_mod
    from deltav2a.media.examples import groove

    x = groove(6.0, 22050).astype(np.float32)
    chain = AudioChain(ChainSettings.parse(specs), tail=tail)
    whole = chain.render(x, 22050)
    monkeypatch.setattr(chain_mod, "STREAM_MIN_FRAMES", 1000)
    monkeypatch.setattr(chain_mod, "RENDER_BLOCK_FRAMES", 4096)
    chain = AudioChain(ChainSettings.parse(specs), tail=tail)  # a fresh board, as every transfer has
    assert chain._streams(22050.0, 2) is not None
    blocks = chain.render(x, 22050)
    assert blocks.audio.shape == whole.audio.shape and blocks.audio.flags.c_contiguous
    np.testing.assert_allclose(blocks.audio, whole.audio, atol=1e-6, rtol=0)
    assert blocks.info == whole.info
    again = chain.render(x, 22050)              # the board was reset: no state leaks
    np.testing.assert_array_equal(again.audio, blocks.audio)


@pytest.mark.parametrize("specs,ends", [
    (["lowpass", "reverb:wet_level=0.5", "delay", "playback_rate:rate=0.8"], "quiet"),
    (["lowpass", "reverb:wet_level=0.5", "delay", "playback_rate:rate=1.25"], "fading"),
    (["bitcrush:bit_depth=6", "delay:delay_seconds=0.7,feedback=0.9,mix=0.9"], "loud"),
    (["distortion", "highpass"], "loud"),
])
@pytest.mark.parametrize("tail", ["keep", "cut"])
def test_render_to_file_streams_the_same_samples(monkeypatch, tmp_path, specs, ends, tail):
    """A long streamable render goes block by block into the WAV (A' never held whole):
    the file holds exactly what render + save_audio writes, with the same tail policy (trim
    to -60 dB of the whole output's peak, or the truncation warning) and the same record."""
    import soundfile as sf

    import deltav2a.render.chain as chain_mod
    from deltav2a.media.examples import groove
    from deltav2a.media.io import WavFrames, save_audio

    sr = 22050
    x = groove(8.0, sr).astype(np.float32)
    if ends == "quiet":
        x[:, -3 * sr:] = 0.0
    elif ends == "fading":
        x[:, -sr:] *= np.linspace(1.0, 0.0, sr, dtype=np.float32)
    monkeypatch.setattr(chain_mod, "STREAM_MIN_FRAMES", 1000)
    monkeypatch.setattr(chain_mod, "RENDER_BLOCK_FRAMES", 4096)
    chain = AudioChain(ChainSettings.parse(specs), tail=tail, max_tail_seconds=1.5)
    with warnings.catch_warnings(record=True) as w_mem:
        warnings.simplefilter("always")
        mem = chain.render(x, sr)
    save_audio(mem.audio, sr, tmp_path / "mem.wav")
    with warnings.catch_warnings(record=True) as w_file:
        warnings.simplefilter("always")
        streamed = chain.render_to_file(x, sr, tmp_path / "file.wav")
    a = sf.read(tmp_path / "mem.wav", dtype="float32", always_2d=True)[0]
    b = sf.read(tmp_path / "file.wav", dtype="float32", always_2d=True)[0]
    assert a.shape == b.shape and np.array_equal(a, b)
    assert streamed.info == mem.info
    assert [str(w.message) for w in w_file] == [str(w.message) for w in w_mem]
    assert isinstance(streamed.audio, WavFrames) and streamed.audio.shape == mem.audio.shape
    np.testing.assert_array_equal(streamed.audio[:, 5000:7048], mem.audio[:, 5000:7048])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.wav", "mem.wav"]


def test_render_to_file_leaves_nothing_when_the_chain_fails(monkeypatch, tmp_path):
    """A failure mid-stream (here: NaN from a third-party effect) removes the partial file."""
    import deltav2a.render.chain as chain_mod
    from deltav2a.media.examples import groove

    monkeypatch.setattr(chain_mod, "STREAM_MIN_FRAMES", 1000)
    monkeypatch.setattr(chain_mod, "RENDER_BLOCK_FRAMES", 4096)
    chain = AudioChain(ChainSettings.parse("lowpass"), tail="cut")
    chain._check_output = True
    x = groove(4.0, 22050).astype(np.float32)
    board = chain._board(22050.0)
    calls = {"n": 0}

    class Poison:
        def __call__(self, block, sr, reset=False):
            calls["n"] += 1
            return np.full_like(block, np.nan) if calls["n"] == 3 else block

        def reset(self):
            pass

    chain._boards[22050.0] = Poison()
    with pytest.raises(DeltaV2AError, match="NaN or Inf"):
        chain.render_to_file(x, 22050, tmp_path / "o.wav")
    assert list(tmp_path.iterdir()) == [] and board is not None


def test_checked_input_renders_the_same_without_the_input_scan(audio):
    """render(checked=True) (the database build, whose clip load_clip checked once) gives the
    same samples; it trusts the caller, so NaN input is then not the chain's to catch."""
    chain = AudioChain(ChainSettings.parse(["lowpass", "stutter:depth=1", "delay"]), tail="cut")
    np.testing.assert_array_equal(chain.render(audio, SR, checked=True).audio, chain(audio, SR))
    bad = audio.copy()
    bad[0, 10] = np.nan
    with pytest.raises(DeltaV2AError, match="NaN or Inf"):
        chain(bad, SR)
    assert np.isnan(chain.render(bad, SR, checked=True).audio).any()
