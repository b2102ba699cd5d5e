"""Inference-time search (core/model/search.py) and the `search` controller plugin.

Runs the real thing: Pedalboard renders scored by the perceptual audio encoder against
labels read off real renders. A clip of ../shared/data is used when present, a generated
groove otherwise.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import pytest

from conftest import run_cli, shared_data_path
from deltav2a.errors import DeltaV2AError

CLIP = "hyperrogue__hr3_caves__1.ogg"


@pytest.fixture(scope="module")
def world():
    """Config, encoder, audio term embeddings, layout, a 10 s clip and a real low-pass target."""
    from deltav2a.render.chain import AudioChain, ChainSettings, EffectSetting
    from deltav2a.config import load_config
    from deltav2a.style.encoding import load_encoder, term_embeddings
    from deltav2a.model.layout import ParamLayout
    from deltav2a.api.registry import get
    from deltav2a.style.label import StyleLabel, style_labels
    from deltav2a.style.vocab import load_vocabulary

    cfg = load_config(None)
    enc = load_encoder(cfg.encoders.audio, "audio")
    vocab = load_vocabulary(cfg.vocabulary)
    V = term_embeddings(enc, vocab, "audio")
    layout = ParamLayout.from_names(cfg.effects.audio)
    data = shared_data_path()
    if data is not None and (data / "music" / CLIP).is_file():
        from deltav2a.media.io import load_audio

        x, sr = load_audio(data / "music" / CLIP)
    else:
        from deltav2a.media.examples import groove

        sr = 44_100
        x = groove(10.0, sr)
    lp = get("audio_effect", "lowpass").params_at_intensity(0.7)
    y = AudioChain(ChainSettings([EffectSetting("lowpass", lp)]), tail="cut").render(x, sr).audio
    e0, e1 = enc.encode_audio([x], sr), enc.encode_audio([y], sr)
    label, norm = style_labels(e0, e1, V, cfg.database.temperature)
    target = StyleLabel(label[0], tuple(vocab.terms), float(norm[0]), 1.0, 0.7)
    return {"cfg": cfg, "enc": enc, "vocab": vocab, "V": V, "layout": layout, "x": x, "sr": sr,
            "target": target}


class CountingEncoder:
    """The real encoder, counting how many clips it encoded (reference + candidates)."""

    def __init__(self, enc):
        self.enc, self.calls = enc, 0

    def encode_audio(self, clips, sr):
        self.calls += len(clips)
        return self.enc.encode_audio(clips, sr)


def _scorer(w, encoder=None, strength=None):
    from deltav2a.model.search import AudioScorer

    return AudioScorer(encoder or w["enc"], w["V"], w["cfg"].database.temperature, strength)


def _search(w, scorer=None, **kw):
    from deltav2a.model.search import search_plan

    kw.setdefault("budget_evals", 40)
    return search_plan(w["x"], w["sr"], w["target"], scorer=scorer or _scorer(w), layout=w["layout"],
                       max_active=2, chain_order=w["cfg"].effects.chain_order, **kw)


# ----------------------------------------------------------------------------- budgets


@pytest.mark.parametrize("evals, seconds, needle", [
    (0, None, "positive"), (-5, None, "positive"), ("abc", None, "whole number"),
    (2.5, None, "whole number"), (True, None, "whole number"), (float("nan"), None, "whole number"),
    (None, 0, "positive"), (None, -1.0, "positive"), (None, "soon", "a number"),
    (None, float("inf"), "a number"), (None, None, "needs a budget"),
])
def test_bad_budgets_are_one_line_errors(evals, seconds, needle):
    from deltav2a.model.search import check_budget

    with pytest.raises(DeltaV2AError) as exc:
        check_budget(evals, seconds)
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg


def test_good_budgets_pass():
    from deltav2a.model.search import check_budget

    assert check_budget(80, None) == (80, None)
    assert check_budget("12", 2) == (12, 2.0)
    assert check_budget(None, 0.5) == (None, 0.5)


def test_search_plan_rejects_bad_budget_before_rendering(world):
    enc = CountingEncoder(world["enc"])
    with pytest.raises(DeltaV2AError, match="positive"):
        _search(world, scorer=_scorer(world, enc), budget_evals=0)
    with pytest.raises(DeltaV2AError, match="positive"):
        _search(world, scorer=_scorer(world, enc), budget_evals=None, budget_seconds=-2)
    assert enc.calls == 0


@pytest.mark.parametrize("value", ["0", "-3", "abc"])
def test_bad_config_budget_through_cli(tmp_path, value):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"inference:\n  search:\n    budget_evals: {value}\n")
    r = run_cli("config", "show", "--config", str(cfg))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "budget_evals" in lines[0]
    assert "Traceback" not in r.stderr


def test_evaluation_budget_is_respected(world):
    enc = CountingEncoder(world["enc"])
    plan = _search(world, scorer=_scorer(world, enc), budget_evals=17)
    assert enc.calls == 17 + 1  # the reference excerpt once, then 17 candidates
    assert plan.steps


def test_time_budget_is_respected(world):
    enc = CountingEncoder(world["enc"])
    t0 = time.perf_counter()
    _search(world, scorer=_scorer(world, enc), budget_evals=None, budget_seconds=0.6)
    elapsed = time.perf_counter() - t0
    # one candidate may start just before the deadline; the reference encode is extra
    assert enc.calls >= 2
    assert elapsed < 0.6 + 1.5
    tiny = CountingEncoder(world["enc"])
    plan = _search(world, scorer=_scorer(world, tiny), budget_evals=None, budget_seconds=1e-9)
    assert tiny.calls == 2 and len(plan.steps) == 1  # reference + the one render always allowed


def test_budget_smaller_than_the_first_pass_still_ranks_later_candidates(world):
    """One render: no strength map can be fitted, the strength term is neutral, a plan comes back."""
    enc = CountingEncoder(world["enc"])
    plan = _search(world, scorer=_scorer(world, enc), budget_evals=1)
    assert enc.calls == 2 and len(plan.steps) == 1 and len(plan.trajectory) >= 1


# ----------------------------------------------------------------------------- behaviour


def test_same_seed_same_plan_and_trajectory(world):
    a = _search(world, seed=3)
    b = _search(world, seed=3)
    assert a.settings == b.settings
    assert a.trajectory == b.trajectory


def test_trajectory_is_non_decreasing_and_recorded(world):
    plan = _search(world, budget_evals=60, seed=1)
    traj = np.asarray(plan.trajectory)
    assert len(traj) >= 2 and np.isfinite(traj).all()
    assert np.all(np.diff(traj) >= 0)
    assert plan.source == "search" and plan.strength == pytest.approx(0.7)
    assert 1 <= len(plan.steps) <= 2
    assert plan.as_dict()["trajectory"] == list(plan.trajectory)


def test_lowpass_target_finds_lowpass_and_beats_initial_plan(world):
    """Refining a wrong initial plan (distortion) toward a real low-pass label finds low-pass."""
    from deltav2a.render.chain import AudioChain, ChainSettings, EffectSetting
    from deltav2a.model.plan import EffectPlan
    from deltav2a.api.registry import get
    from deltav2a.model.search import loudest_window
    from deltav2a.model.strength import StrengthMap

    strength = StrengthMap((0.0, 1.5), (0.0, 1.0))
    scorer = _scorer(world, strength=strength)
    init = EffectPlan(ChainSettings([EffectSetting("distortion", get("audio_effect", "distortion").params_at_intensity(0.5))]),
                      source="mlp")
    plan = _search(world, scorer=scorer, init=init, budget_evals=60, seed=0)
    assert "lowpass" in plan.effects
    assert plan.source == "mlp+refine"

    x, sr = world["x"], world["sr"]
    s, e = loudest_window(x, sr, 3.0)
    ex = x[:, s:e]
    scorer.set_reference(ex, sr)

    def score(p):
        y = AudioChain(p.settings, order=world["cfg"].effects.chain_order, tail="cut").render(ex, sr).audio
        return scorer.score(y, sr, world["target"])

    before, after = score(init), score(plan)
    assert after.total > before.total + 0.3
    assert after.label_match > 0.8
    assert plan.trajectory[-1] == pytest.approx(after.total - 0.02 * (len(plan.steps) - 1), abs=1e-6)


def test_init_plan_is_cut_to_max_active_by_activity(world):
    from deltav2a.model.layout import ParamLayout
    from deltav2a.model.plan import EffectPlan
    from deltav2a.api.registry import get
    from deltav2a.model.search import _init_candidate
    from deltav2a.render.chain import ChainSettings, EffectSetting

    names = ["lowpass", "reverb", "delay", "distortion"]
    steps = tuple(EffectSetting(n, get("audio_effect", n).params_at_intensity(0.5)) for n in names)
    init = EffectPlan(ChainSettings(steps), "mlp", activity={"lowpass": 0.9, "reverb": 0.2, "delay": 0.95, "distortion": 0.5})
    layout: ParamLayout = world["layout"]
    subset, u = _init_candidate(init, layout, 2)
    assert [layout.effects[i] for i in subset] == ["lowpass", "delay"]
    raw = layout.to_raw(u, [i in subset for i in range(layout.n_effects)])
    assert raw.to_dict()["lowpass"]["cutoff_hz"] == pytest.approx(steps[0].params["cutoff_hz"])


def test_excerpt_is_the_loudest_window():
    from deltav2a.model.search import loudest_window

    sr = 1000
    x = np.zeros((2, 10 * sr), dtype=np.float32)
    x[:, 6200:7800] = 0.5
    s, e = loudest_window(x, sr, 2.0)
    assert e - s == 2 * sr and s <= 6200 and e >= 7800
    assert loudest_window(x, sr, 20.0) == (0, 10 * sr)


def test_bad_arguments(world):
    from deltav2a.model.search import search_plan

    w = world
    for bad in (0, 9, True):
        with pytest.raises(DeltaV2AError, match="max_active"):
            search_plan(w["x"], w["sr"], w["target"], scorer=_scorer(w), layout=w["layout"], max_active=bad)
    with pytest.raises(DeltaV2AError, match="excerpt"):
        _search(w, excerpt_seconds=0.01)
    with pytest.raises(DeltaV2AError, match="seed"):
        _search(w, seed=-1)
    with pytest.raises(DeltaV2AError, match="sample rate"):
        search_plan(w["x"], 0, w["target"], scorer=_scorer(w), layout=w["layout"], max_active=2)
    short = replace(w["target"], label=w["target"].label[:5], terms=w["target"].terms[:5])
    with pytest.raises(DeltaV2AError, match="vocabulary"):
        search_plan(w["x"], w["sr"], short, scorer=_scorer(w), layout=w["layout"], max_active=2)


# ----------------------------------------------------------------------------- plugin


def test_search_controller_plugin(world):
    from deltav2a.api.controllers import get_controller

    cls = get_controller("search")
    assert cls.trainable is False and get_controller("mlp").trainable is True
    with pytest.raises(DeltaV2AError, match="nothing to train"):
        cls.build(10, 10, world["layout"], world["cfg"].controller)
    w = world
    plan = cls.propose(w["target"], w["x"], w["sr"], cfg=w["cfg"], audio_encoder=w["enc"], vocab=w["vocab"],
                       layout=w["layout"], budget_evals=30, budget_seconds=None, seed=0)
    assert plan.source == "search" and 1 <= len(plan.steps) <= w["cfg"].database.max_active
    again = cls.propose(w["target"], w["x"], w["sr"], cfg=w["cfg"], audio_encoder=w["enc"], vocab=w["vocab"],
                        layout=w["layout"], budget_evals=30, budget_seconds=None, seed=0)
    assert again.settings == plan.settings


def test_blurred_photo_gets_a_lowpass_and_noise_a_bitcrush(world):
    """End to end on the default model: a real image edit's label, searched zero-shot."""
    from deltav2a.media.examples import landscape_image
    from deltav2a.api.registry import get
    from deltav2a.style.label import StyleLabel
    from deltav2a.transfer.pipeline import TransferModel
    from deltav2a_plugins.controllers.search import SearchController

    tm = TransferModel()
    img = landscape_image()
    chosen = {}
    for name in ("adaptive_blur", "add_noise"):
        after = get("image_effect", name)().apply(img, 0.8, seed=0)
        read = tm.read_edit([img], [after])[0]
        target = StyleLabel(read.label, read.terms, read.delta_norm, read.confidence, 0.8)
        plan = SearchController.propose_for(tm, target, world["x"], world["sr"], budget_evals=40, seed=0)
        chosen[name] = plan.effects
    assert "lowpass" in chosen["adaptive_blur"], chosen
    assert "bitcrush" in chosen["add_noise"], chosen


# ----------------------------------------------------------------------------- types


def test_strength_map_fit_is_monotone_and_round_trips():
    from deltav2a.model.strength import StrengthMap

    rng = np.random.default_rng(0)
    t = rng.uniform(0, 1, 200)
    norms = 2.0 * t + rng.normal(0, 0.1, 200)
    m = StrengthMap.fit(norms, t)
    grid = np.linspace(-1, 3, 50)
    out = m(grid)
    assert np.all(np.diff(out) >= 0) and out.min() >= 0 and out.max() <= 1
    assert abs(m(1.0) - 0.5) < 0.1
    assert StrengthMap.from_dict(m.as_dict()) == m
    with pytest.raises(DeltaV2AError):
        StrengthMap.fit([1.0, 1.0], [0.2, 0.4])


def test_style_label_rejects_bad_values(world):
    from deltav2a.style.label import StyleLabel

    t = world["target"]
    with pytest.raises(DeltaV2AError, match="strength"):
        StyleLabel(t.label, t.terms, 1.0, 1.0, 1.5)
    with pytest.raises(DeltaV2AError, match="NaN"):
        StyleLabel(np.full(len(t.terms), math.nan), t.terms, 1.0, 1.0, 0.5)
    d = t.as_dict()
    assert set(d) >= {"label", "delta_norm", "confidence", "strength"}
    assert t.top(1)[0][1] == pytest.approx(float(t.label.max()))
