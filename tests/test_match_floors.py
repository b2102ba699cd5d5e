"""Per-effect recognisable floors (`inference.match_floor: auto`, decision 9.90): each effect's
floor is the least distance from bypass at which its rendered audio label reads as its strong
records do. Real renders, real encoder, a small real database."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from deltav2a.errors import DeltaV2AError

SR = 48_000


# ----------------------------------------------------------------------------- the curve -> floor


def test_recognisable_floor_is_where_the_curve_reaches_the_fraction():
    from deltav2a.model.strength import recognisable_floor

    d = (0.05, 0.1, 0.2, 0.4, 1.0)
    fast = (0.6, 0.8, 0.85, 0.9, 0.9)   # reads as its strong edits almost at once
    slow = (0.05, 0.1, 0.3, 0.75, 0.9)  # needs most of the range
    f_fast, f_slow = recognisable_floor(d, fast, 0.9, 0.8), recognisable_floor(d, slow, 0.9, 0.8)
    assert f_fast < 0.1 < 0.2 < f_slow < 0.4
    # goal 0.72: between (0.05, 0.6) and (0.1, 0.8) -> 0.05 + 0.05 * 0.12 / 0.2
    assert f_fast == pytest.approx(0.08)
    # linear from (0, 0): reached before the first probe
    assert recognisable_floor(d, (0.9,) * 5, 0.9, 0.5) == pytest.approx(0.05 * 0.5)
    assert recognisable_floor(d, (0.1,) * 5, 0.9, 0.8) is None  # never recognisable
    for bad in [dict(distances=(0.1, 0.1), agreement=(0.5, 0.6)),
                dict(distances=(0.1, 0.2), agreement=(0.5, float("nan"))),
                dict(distances=(0.1, 0.2), agreement=(0.5,))]:
        with pytest.raises(DeltaV2AError):
            recognisable_floor(bad["distances"], bad["agreement"], 0.9)
    with pytest.raises(DeltaV2AError):
        recognisable_floor(d, fast, 0.0)


def test_match_strength_takes_one_floor_per_effect():
    from deltav2a.model.layout import ParamLayout
    from deltav2a.model.strength import effect_distance, match_strength

    layout = ParamLayout.from_names(["lowpass", "reverb", "delay"])
    u = np.random.default_rng(0).uniform(0.3, 0.7, (4, layout.n_params))
    floors = np.array([0.05, 0.3, 0.15])
    for s in (0.0, 0.3, 0.9):
        got = effect_distance(match_strength(u, s, layout, floors), layout)
        np.testing.assert_allclose(got, np.broadcast_to(floors + s * (1 - floors), got.shape), atol=1e-6)
    # one number is the old behaviour, bit for bit
    np.testing.assert_array_equal(match_strength(u, 0.4, layout, 0.1),
                                  match_strength(u, 0.4, layout, [0.1, 0.1, 0.1]))
    for bad in ([0.1, 0.2], [0.1, 1.0, 0.1], [0.1, float("nan"), 0.1], -0.1):
        with pytest.raises(DeltaV2AError):
            match_strength(u, 0.4, layout, bad)


# ----------------------------------------------------------------------------- a real fit


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    """Single-effect records of lowpass and reverb on six 3 s grooves (real renders and labels)."""
    from deltav2a.config import Config
    from deltav2a.database import build_database, load_database_for
    from deltav2a.database.splits import SplitClip, Splits, write_splits
    from deltav2a.media.examples import groove
    from deltav2a.media.io import save_audio

    tmp = tmp_path_factory.mktemp("floors")
    files = []
    for t in range(3):
        for k in range(2):
            name = f"synth__t{t}__{k + 1}.wav"
            save_audio(groove(3.0, SR, seed=20 * t + k), SR, tmp / name)
            files.append(name)
    clips = [SplitClip(f, f.rsplit("__", 1)[0], "train") for f in files]
    splits = write_splits(Splits(audio_root=tmp, clips=clips, seed=0, ratios={"train": 1.0},
                                 track_source="test"), tmp / "splits.json")
    cfg = Config()
    cfg.effects.audio = ["lowpass", "reverb"]
    cfg.effects.chain_order = ["lowpass", "reverb"]
    cfg.database.max_active = 1
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DELTAV2A_HOME", str(tmp / "home"))
        build_database(cfg, splits, tmp / "db", augmentations=8, workers=1, progress=False)
    return cfg, load_database_for(cfg, tmp / "db"), tmp


def test_fit_match_floors_on_real_renders(small_db):
    from deltav2a.model.layout import ParamLayout
    from deltav2a.model.strength import MAX_FLOOR, effect_distance, fit_match_floors
    from deltav2a.style.encoding import load_encoder, term_embeddings
    from deltav2a.style.vocab import load_vocabulary

    cfg, db, root = small_db
    layout = ParamLayout.from_names(cfg.effects.audio)
    assert (effect_distance(db.data.params, layout)[db.data.active] >= cfg.database.param_min_intensity - 1e-6).all()
    enc = load_encoder(cfg.encoders.audio, "audio")
    V = term_embeddings(enc, load_vocabulary(cfg.vocabulary), "audio")
    dists = (0.02, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0)
    kw = dict(probes=3, seed=0, distances=dists, fraction=0.8, plateau_distance=0.6)
    floors, report = fit_match_floors(cfg, db, layout, enc, V, lambda cid: root / cid, **kw)
    assert set(floors) == {"lowpass", "reverb"}
    # measured: on these bright grooves a low-pass reads as its strong edits from the first probe
    # (agreement 0.97 at distance 0.02, floor 0.016), a reverb only between 0.1 and 0.2 (-0.06 at
    # 0.02, 0.03 at 0.1, 0.90 at 0.2: floor 0.19)
    assert floors["lowpass"] < 0.05 and floors["lowpass"] + 0.1 < floors["reverb"], floors
    for name, f in floors.items():
        r = report["effects"][name]
        assert 0.0 < f <= MAX_FLOOR and r["plateau"] > 0
        curve = np.asarray(r["agreement"])
        assert curve.shape == (len(dists),) and np.isfinite(curve).all()
        # the curve is below the goal everywhere before the floor and reaches it at the next probe
        goal = 0.8 * r["plateau"]
        assert r["reached"]
        assert (curve[np.asarray(dists) < f - 1e-9] < goal).all()
        assert curve[np.asarray(dists) >= f - 1e-9][0] >= goal
        # a probe is a single-effect record of this effect
        probes = np.asarray(r["probe_records"])
        assert db.data.active[probes].sum(axis=1).tolist() == [1] * len(probes)
    # seeded: the same fit twice is the same
    again, _ = fit_match_floors(cfg, db, layout, enc, V, lambda cid: root / cid, **kw)
    assert again == floors
    # a stricter reading of "recognisable" never gives a lower floor
    strict, _ = fit_match_floors(cfg, db, layout, enc, V, lambda cid: root / cid, **{**kw, "fraction": 0.95})
    assert all(strict[e] >= floors[e] - 1e-12 for e in floors)


# ----------------------------------------------------------------------------- stored in a model


def _model_with_floors(tmp: Path, floors) -> Path:
    """A copy of the shipped model whose calibration stores `floors` (written as the script does)."""
    from dataclasses import replace

    from deltav2a.experiment.stages import load_model
    from deltav2a.model.weights import read_metadata, save_controller
    from deltav2a.transfer.pipeline import DEFAULT_MODEL

    out = tmp / "model"
    shutil.copytree(DEFAULT_MODEL, out)
    _, loaded = load_model(DEFAULT_MODEL)
    meta = read_metadata(DEFAULT_MODEL / "controller")
    save_controller(out / "controller", loaded.module,
                    replace(meta, calibration={**meta.calibration, "match_floors": floors}))
    return out


def test_auto_floors_in_a_transfer(tmp_path):
    """Stored floors are used per effect under `match_floor: auto`: the effect with the lower floor
    renders nearer bypass at the same strength, and a stronger edit still changes the clip more."""
    from deltav2a.api.registry import get
    from deltav2a.experiment.quality import logmel_distance
    from deltav2a.media.examples import groove, landscape_image
    from deltav2a.model.strength import _param_distance
    from deltav2a.style.encoding import model_config
    from deltav2a.transfer.pipeline import DEFAULT_MODEL, TransferModel

    effects = model_config(DEFAULT_MODEL).effects.audio
    floors = {e: 0.3 for e in effects}
    floors["highpass"] = 0.02
    model = _model_with_floors(tmp_path, floors)
    cfg = model_config(model)
    cfg.inference.strength_match = "matched"
    cfg.inference.match_floor = "auto"
    cfg.inference.scale_by_confidence = False  # the distance is the matched one, not dimmed by c
    tm = TransferModel(model, config=cfg)
    sr = tm.cfg.audio.sample_rate
    x = groove(seconds=3.0, sample_rate=sr, seed=2)
    emb = tm.audio_embedding(x, sr)
    photo = landscape_image(seed=3)
    # a sharpen of this photo renders a high-pass at both sizes (of landscape seed 1, the smear-set
    # model adds a reverb at 0.3 under `matched`, decision 16.80)
    fx = get("image_effect", "adaptive_sharpen")()
    res = {t: tm.transfer(photo, fx.apply(photo, t, seed=0), x, sr, audio_emb=emb) for t in (0.3, 0.9)}
    side = res[0.3].sidecar["controller"]
    assert side["match_floor"] == "auto" and side["match_floors"]["highpass"] == 0.02
    assert res[0.3].plan.effects == res[0.9].plan.effects == ["highpass"]
    d = {t: logmel_distance(x, r.audio[:, : x.shape[1]], sr) for t, r in res.items()}
    assert d[0.9] > d[0.3] + 3.0, d
    # highpass (floor 0.02) at the 0.3 edit's strength: 0.02 + s * 0.98 from bypass, not 0.3 + s * 0.7
    u, act = tm.layout.from_raw(res[0.3].plan.settings)
    bypass = tm.layout.bypass_array().astype(np.float64)
    got = _param_distance(np.asarray(u, np.float64)[None, :], bypass)[0, tm.layout.effect_params("highpass")].mean()
    s = res[0.3].label.strength
    assert got == pytest.approx(0.02 + s * 0.98, abs=1e-3) and got < 0.3 + s * 0.7 - 0.05
    # a number still means one floor for all (auto read nowhere else)
    tm.cfg.inference.match_floor = 0.3
    u3, _ = tm.layout.from_raw(tm.transfer(photo, fx.apply(photo, 0.3, seed=0), x, sr, audio_emb=emb).plan.settings)
    got3 = _param_distance(np.asarray(u3, np.float64)[None, :], bypass)[0, tm.layout.effect_params("highpass")].mean()
    assert got3 == pytest.approx(0.3 + s * 0.7, abs=1e-3)


@pytest.mark.parametrize("bad", [{"lowpass": float("nan")}, {"lowpass": 1.5}, {"lowpass": -0.1},
                                 {"lowpass": "0.1"}, {"lowpass": True}, {"nosuch": 0.1}, "0.1", None])
def test_bad_stored_floors_are_refused(tmp_path, bad):
    from deltav2a.style.encoding import model_config
    from deltav2a.transfer.pipeline import DEFAULT_MODEL, TransferModel

    effects = model_config(DEFAULT_MODEL).effects.audio
    floors = {e: 0.1 for e in effects}
    if isinstance(bad, dict):
        floors.update(bad)
        if "nosuch" in bad:
            floors.pop("reverb")
    else:
        floors = bad
    out = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, out)
    meta = json.loads((out / "controller.json").read_text())
    meta["calibration"]["match_floors"] = floors
    (out / "controller.json").write_text(json.dumps(meta))  # NaN written as NaN: still refused
    with pytest.raises(DeltaV2AError, match="match_floors"):
        TransferModel(out)


def test_auto_without_stored_floors_is_one_line(tmp_path):
    from deltav2a.style.encoding import model_config
    from deltav2a.transfer.pipeline import DEFAULT_MODEL, TransferModel

    cfg = model_config(DEFAULT_MODEL)
    assert cfg.inference.match_floor is None  # the default is unchanged
    tm = TransferModel(DEFAULT_MODEL, config=cfg)  # the shipped model loads as before
    assert tm.match_floors is None and tm.match_floor() is None
    cfg.inference.match_floor = "auto"
    with pytest.raises(DeltaV2AError, match="no per-effect floors"):
        TransferModel(DEFAULT_MODEL, config=cfg)
