"""Image strength by direction (decision 9.100): one StrengthMap per image effect, blended by the
edit's direction. Real encoder, real ImageMagick effects, generated photos."""
import json
import shutil

import numpy as np
import pytest
import yaml

from conftest import run_cli

INTS = (0.1, 0.3, 0.5, 0.7, 0.9)


@pytest.fixture(scope="module")
def fitted():
    from deltav2a.api.registry import get
    from deltav2a.media.examples import landscape_image
    from deltav2a.model.strength import DirectionalStrength, StrengthMap, image_edit_samples
    from deltav2a.style.encoding import load_encoder, model_config
    from deltav2a.transfer.pipeline import DEFAULT_MODEL

    cfg = model_config(DEFAULT_MODEL)
    enc = load_encoder(cfg.encoders.image, "image")
    names = list(cfg.effects.image)
    effects = [get("image_effect", n)() for n in names]
    photos = [landscape_image(128, 96, seed=s) for s in range(4)]
    smp = image_edit_samples(enc, photos[:3], effects, seed=0)
    pooled = StrengthMap.fit(np.linalg.norm(smp["delta"], axis=1), smp["intensity"])
    ds = DirectionalStrength.fit(smp["delta"], smp["effect"], smp["intensity"], names)
    held = image_edit_samples(enc, photos[3:], effects, seed=3, intensities=INTS)  # not fitted on
    return {"pooled": pooled, "ds": ds, "held": held, "names": names}


def _strengths(fitted, name):
    held, j = fitted["held"], fitted["names"].index(name)
    d = held["delta"][held["effect"] == j]
    return np.asarray(fitted["pooled"](np.linalg.norm(d, axis=1))), np.asarray(fitted["ds"](d))


def test_blur_and_noise_of_one_size_read_closer_by_direction(fitted):
    """The pooled map gives a noise edit a much larger strength than a blur of the same intensity;
    the per-effect maps, picked by direction, bring them together."""
    pb, db = _strengths(fitted, "adaptive_blur")
    pn, dn = _strengths(fitted, "add_noise")
    gap_pooled, gap_dir = np.abs(pn - pb).mean(), np.abs(dn - db).mean()
    assert gap_dir < 0.7 * gap_pooled, (gap_dir, gap_pooled, pb, pn, db, dn)


def test_by_direction_grows_with_the_intensity_within_an_effect(fitted):
    """Within an effect a larger edit reads stronger: over the edits the direction assigns to
    their own effect (weight > 0.5) the strength grows with the norm, and the strongest edit
    reads strongest. The norm itself is not always monotone in the intensity (solarize folds
    back), and the gentlest edits of the two closest effects (noise and spread, prototype cosine
    ~0.8) can be read on each other's map (a gentle noise edit looks like a spread: 9.100)."""
    ds, held = fitted["ds"], fitted["held"]
    for j, name in enumerate(fitted["names"]):
        d = held["delta"][held["effect"] == j]
        s, norm = np.asarray(ds(d)), np.linalg.norm(d, axis=1)
        own = ds.weights(d)[:, j] > 0.5
        assert own.sum() >= 3, (name, ds.weights(d)[:, j])
        order = np.argsort(norm[own])
        assert np.all(np.diff(s[own][order]) > -1e-9), (name, s, norm)
        assert s[-1] > s[1] + 0.3 and s[-1] >= s.max() - 1e-9, (name, s)


def test_direction_weights_pick_the_effect_or_blend(fitted):
    ds, held = fitted["ds"], fitted["held"]
    w = ds.weights(held["delta"])
    assert np.allclose(w.sum(axis=1), 1.0)
    strong = held["intensity"] >= 0.5
    assert np.mean(w[strong].argmax(axis=1) == held["effect"][strong]) >= 0.7
    # an edit like none of the effects (a direction orthogonal to every prototype) gets a blend
    P = np.asarray(ds.prototypes)
    v = np.random.default_rng(0).standard_normal(P.shape[1])
    q, _ = np.linalg.qr(P.T)
    v -= q @ (q.T @ v)
    wv = ds.weights(v[None, :] * 3.0)[0]
    assert wv.max() < 0.5 and np.all(wv > 0)
    s = ds(v[None, :] * 3.0)
    assert 0.0 < float(s[0]) <= 1.0
    assert ds(np.zeros((1, P.shape[1])))[0] == 0.0  # an unchanged pair has strength 0


def test_round_trip_and_bad_stored_data_refused(fitted):
    from deltav2a.errors import DeltaV2AError
    from deltav2a.model.strength import MAX_KNOTS, MAX_STRENGTH_EFFECTS, DirectionalStrength

    good = fitted["ds"].as_dict()
    back = DirectionalStrength.from_dict(json.loads(json.dumps(good)))
    assert back == fitted["ds"]
    assert DirectionalStrength.from_dict(good, tau=0.2).tau == 0.2
    bad = []
    d = json.loads(json.dumps(good)); d["prototypes"][0][0] = float("nan"); bad.append(d)
    d = json.loads(json.dumps(good)); d["prototypes"][1] = d["prototypes"][1][:-1]; bad.append(d)
    d = json.loads(json.dumps(good)); d["prototypes"][2] = [0.0] * len(d["prototypes"][2]); bad.append(d)
    d = json.loads(json.dumps(good)); d["maps"] = d["maps"][:-1]; bad.append(d)
    d = json.loads(json.dumps(good)); d["maps"][0]["knots_norm"] = list(range(MAX_KNOTS + 1)); bad.append(d)
    d = json.loads(json.dumps(good)); d["maps"][0]["knots_strength"][-1] = 2.0; bad.append(d)
    d = json.loads(json.dumps(good)); d["effects"] = ["x"] * (MAX_STRENGTH_EFFECTS + 1); bad.append(d)
    d = json.loads(json.dumps(good)); d["effects"][1] = d["effects"][0]; bad.append(d)
    d = json.loads(json.dumps(good)); d["prototypes"][0][0] = "1"; bad.append(d)
    d = json.loads(json.dumps(good)); d["tau"] = -1; bad.append(d)
    bad += [[], {"effects": []}, None]
    for b in bad:
        with pytest.raises(DeltaV2AError):
            DirectionalStrength.from_dict(b)
    with pytest.raises(DeltaV2AError):
        fitted["ds"].weights(np.ones((1, fitted["ds"].dim + 1)))


_DROP = object()


def _model_copy(tmp_path, by_effect=None, **inference):
    """A copy of the shipped model with `inference` settings; `by_effect` replaces its
    per-effect image strength maps (`_DROP` removes them, as in models built before them)."""
    from deltav2a.transfer.pipeline import DEFAULT_MODEL

    m = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, m)
    snap = yaml.safe_load((m / "config.yaml").read_text())
    snap["inference"].update(inference)
    (m / "config.yaml").write_text(yaml.safe_dump(snap, sort_keys=False))
    if by_effect is not None:
        meta = json.loads((m / "controller.json").read_text())
        strength = meta["calibration"]["strength"]
        if by_effect is _DROP:
            strength.pop("image_by_effect", None)
            strength.pop("image_by_effect_fit", None)
        else:
            strength["image_by_effect"] = by_effect
        (m / "controller.json").write_text(json.dumps(meta))
    return m


def test_by_direction_on_a_model_without_the_maps_is_a_one_line_error(tmp_path):
    """A model without per-effect maps (built before them; the model shipped until decision
    16.64): pooled still loads, by_direction is refused."""
    from deltav2a.media.examples import landscape_image

    m = _model_copy(tmp_path, _DROP, image_strength="by_direction")
    landscape_image(128, 96, seed=0).save(tmp_path / "a.png")
    from deltav2a.media.examples import groove
    from deltav2a.media.io import save_audio

    save_audio(groove(seconds=2.0, sample_rate=48000, seed=0), 48000, tmp_path / "x.wav")
    res = run_cli("transfer", "--image", str(tmp_path / "a.png"), "--image-effect", "add_noise:0.5",
                  "--audio", str(tmp_path / "x.wav"), "-m", str(m), "-o", str(tmp_path / "y.wav"))
    assert res.returncode == 2, res.stderr
    assert "no per-effect image strength maps" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_transfer_by_direction_reads_the_stored_maps(tmp_path, fitted):
    """A model carrying the maps: by_direction gives the blur and the noise edit closer strengths
    than the pooled map of the same model, and says where the strength came from."""
    from deltav2a.api.registry import get
    from deltav2a.media.examples import landscape_image
    from deltav2a.style.encoding import model_config
    from deltav2a.transfer.pipeline import TransferModel

    m = _model_copy(tmp_path, fitted["ds"].as_dict())
    photo = landscape_image(128, 96, seed=5)
    s = {}
    for mode in ("pooled", "by_direction"):
        cfg = model_config(m)
        cfg.inference.image_strength = mode
        tm = TransferModel(m, config=cfg)
        for fx in ("adaptive_blur", "add_noise"):
            s[mode, fx] = tm.read_edit([photo], [get("image_effect", fx)().apply(photo, 0.5, seed=0)])[0].strength
    assert abs(s["by_direction", "add_noise"] - s["by_direction", "adaptive_blur"]) < \
        abs(s["pooled", "add_noise"] - s["pooled", "adaptive_blur"]), s
    assert "by direction" in tm.strength_source
