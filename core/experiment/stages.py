"""The controller stages as functions: train, tune thresholds, calibrate, evaluate, probe.

The CLI commands and `deltav2a run` both call these, so a stage behaves the same whether it
runs alone or inside an experiment. A model directory holds `controller.safetensors`,
`controller.json` (thresholds, calibration, encoder/vocabulary fingerprints) and
`config.yaml`; every stage that changes the model rewrites `controller.*` atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config
    from ..database import Database


def _torch_threads(cfg: "Config") -> None:
    import torch

    torch.set_num_threads(cfg.training.threads)


def layout_for(cfg: "Config"):
    from ..model.layout import ParamLayout

    return ParamLayout.from_names(cfg.effects.audio)


def load_db(cfg: "Config", path: str | Path) -> "Database":
    from ..database import load_database_for

    return load_database_for(cfg, path)


def encoder_identities(cfg: "Config") -> dict:
    from ..style.encoding import load_encoder
    from ..transfer.pipeline import encoder_identity

    return {"image": encoder_identity(load_encoder(cfg.encoders.image, "image")),
            "audio": encoder_identity(load_encoder(cfg.encoders.audio, "audio"))}


def vocabulary_identity(cfg: "Config") -> dict:
    from ..style.vocab import load_vocabulary

    v = load_vocabulary(cfg.vocabulary)
    return {"name": v.name, "fingerprint": v.fingerprint()}


def split_by_clip(db: "Database", fraction: float, seed: int):
    """Train/val records with whole clips on one side (records of a clip are near-duplicates)."""
    import numpy as np

    clips = np.unique(db.clip_id)
    rng = np.random.default_rng(seed)
    rng.shuffle(clips)
    n_val = max(1, int(round(len(clips) * fraction)))
    if n_val >= len(clips):
        raise DeltaV2AError(f"database {db.path} has {len(clips)} clip(s): too few to hold out validation clips; "
                            "build a val database with `build-db --split val` and pass it")
    val = np.isin(db.clip_id, clips[:n_val])
    return db.data.subset(np.flatnonzero(~val)), db.data.subset(np.flatnonzero(val))


def save_model(model_dir: Path, cfg: "Config", module: Any, controller: str, layout, thresholds: dict,
               training: dict, calibration: dict | None = None, strength_input: bool = False) -> None:
    from ..atomic import write_text
    from ..config import dump_config
    from ..model.weights import ControllerMetadata, save_controller

    model_dir.mkdir(parents=True, exist_ok=True)
    write_text(model_dir / "config.yaml", dump_config(cfg))
    meta = ControllerMetadata(
        controller=controller, config=cfg.controller_config(controller).model_dump(mode="json"), layout=layout.describe(),
        style_dim=int(module.style_dim), audio_dim=int(module.audio_dim),
        vocabulary=vocabulary_identity(cfg), encoders=encoder_identities(cfg),
        thresholds={e: float(t) for e, t in thresholds.items()}, calibration=calibration, training=training,
        plugins=required_plugins(cfg, controller), strength_input=bool(strength_input))
    save_controller(model_dir / "controller", module, meta)


def required_plugins(cfg: "Config", controller: str) -> list[dict]:
    """Every plugin a model made under `cfg` needs, with the distribution that provided it."""
    from ..api.registry import provenance

    uses = [("controller", controller), ("vocabulary", cfg.vocabulary),
            ("encoder", cfg.encoders.image.name), ("encoder", cfg.encoders.audio.name)]
    uses += [("audio_effect", n) for n in cfg.effects.audio] + [("image_effect", n) for n in cfg.effects.image]
    return provenance(uses)


def load_model(model_dir: str | Path, cfg: "Config | None" = None):
    """(config, LoadedController), checked against the model's own config snapshot."""
    from ..model.weights import check_model_plugins, load_controller
    from ..style.encoding import model_config

    model_dir = Path(model_dir)
    if not (model_dir / "controller.json").is_file():
        raise DeltaV2AError(f"no trained controller in {model_dir} (run `deltav2a train` first)")
    check_model_plugins(model_dir)
    if cfg is None:
        cfg = model_config(model_dir)  # untrusted data: cannot enable unsafe loading
    loaded = load_controller(model_dir / "controller", vocabulary=vocabulary_identity(cfg),
                             encoders={"audio": encoder_identities(cfg)["audio"]}, layout=layout_for(cfg))
    return cfg, loaded


def train_stage(cfg: "Config", db_dir: Path, out_dir: Path, val_db_dir: Path | None = None,
                controller: str | None = None, resume: bool = True, progress: bool = True,
                replace: bool = False) -> dict:
    """Train and save a model; `resume` continues an interrupted run of the same settings and
    `replace` lets a run with other settings in `out_dir` be started afresh."""
    from ..training.trainer import train_controller

    _torch_threads(cfg)
    name = controller or cfg.controller.name
    db = load_db(cfg, db_dir)
    layout = layout_for(cfg)
    if val_db_dir is not None:
        train, val = db.data, load_db(cfg, val_db_dir).data
    else:
        train, val = split_by_clip(db, cfg.training.val_fraction, cfg.seed)
    if not cfg.controller.strength_input:
        train, val = train.without_strength(), val.without_strength()
    res = train_controller(name, train, val, layout, cfg.controller_config(name), cfg.training,
                           out_dir=out_dir / "training", seed=cfg.seed, resume=resume, overwrite=replace,
                           progress=progress)
    summary = res.summary()
    # what the sidecar and the report put beside the number of effects rendered
    summary["database_mean_active"] = float(db.data.active.sum(axis=1).mean()) if len(db) else None
    save_model(out_dir, cfg, res.module, res.controller, layout, {e: 0.5 for e in layout.effects}, summary,
               strength_input=cfg.controller.strength_input)
    return summary


def thresholds_stage(model_dir: Path, val_db_dir: Path) -> dict:
    """Per-effect thresholds on val (grid, coordinate descent), stored with the model.

    Tuned for the set inference renders: capped at `inference.max_active`, at least
    `database.min_active` (see `plan.select_active`). Under `strength_match: locked` they are
    tuned on the controller's own vote (`off`), where each record is asked at its own strength,
    the one its true set was drawn at: the locked vote asks every record at `lock_strength`,
    which would tune the cut-offs to the gap between two strengths rather than to the vote, and
    makes the thresholds depend on an inference setting (decision 9.141).
    """
    from ..config import effective_max_active
    from ..evaluation import tune_thresholds
    from ..model.strength import controller_prediction, own_vote_config
    from ..model.weights import read_metadata

    cfg, loaded = load_model(model_dir)
    _torch_threads(cfg)
    val = load_db(cfg, val_db_dir).data
    tuning = own_vote_config(cfg) if cfg.inference.strength_match == "locked" else cfg
    pred = controller_prediction(tuning, loaded, val.style, val.audio, val.strength)
    result = tune_thresholds(pred.activity, pred.params, val.active, val.params, loaded.layout, cfg.thresholds,
                             max_active=effective_max_active(cfg), min_active=min_active_for(cfg))
    meta = read_metadata(model_dir / "controller")
    save_model(model_dir, cfg, loaded.module, meta.controller, loaded.layout, result.thresholds,
               meta.training, meta.calibration, meta.strength_input)
    out = result.as_dict()
    out.update({"objective_name": cfg.thresholds.objective, "max_active": effective_max_active(cfg)})
    return out


def min_active_for(cfg: "Config") -> int:
    """At least this many effects for a changed image: the database's floor, unless the notes'
    procedure (no cap) is asked for, which renders exactly what passes the thresholds."""
    from ..config import effective_max_active

    return int(cfg.database.min_active) if effective_max_active(cfg) else 0


def evaluate_stage(model_dir: Path, test_db_dir: Path, train_db_dir: Path) -> dict:
    """The notes' metrics on held-out records, beside the mean baseline."""
    from ..evaluation import evaluate, mean_baseline_rmse, rank_params
    from ..model.strength import controller_prediction

    cfg, loaded = load_model(model_dir)
    _torch_threads(cfg)
    test = load_db(cfg, test_db_dir).data
    train = load_db(cfg, train_db_dir).data
    if len(test) == 0:
        raise DeltaV2AError(f"test database {test_db_dir} has no records")
    from ..config import effective_max_active

    pred = controller_prediction(cfg, loaded, test.style, test.audio, test.strength)
    cap, floor = effective_max_active(cfg), min_active_for(cfg)
    tuned = evaluate(pred.activity, pred.params, test.active, test.params, loaded.layout, loaded.thresholds,
                     cap, floor)
    at_half = evaluate(pred.activity, pred.params, test.active, test.params, loaded.layout, 0.5, cap, floor)
    uncapped = evaluate(pred.activity, pred.params, test.active, test.params, loaded.layout, loaded.thresholds)
    base_value = float(mean_baseline_rmse(train.active, train.params, test.active, test.params, loaded.layout))
    strict = float(mean_baseline_rmse(train.active, train.params, test.active, test.params, loaded.layout,
                                      over="active"))
    out = {"controller": loaded.metadata.controller, "records": len(test),
           "mean_baseline_active_param_rmse": base_value,
           "tuned": tuned, "threshold_0.5": at_half,
           "tuned_uncapped": {k: uncapped[k] for k in ("active_param_rmse_gated", "macro_f1", "micro_f1",
                                                       "mean_active_effects_predicted")},
           "active_mean_baseline_active_param_rmse": strict,
           "reduction_vs_baseline": 1.0 - tuned["active_param_rmse_gated"] / base_value if base_value else None,
           "reduction_vs_active_mean_baseline":
               1.0 - tuned["active_param_rmse_gated"] / strict if strict else None,
           "hardest_params": rank_params(tuned["per_param_active_rmse_gated"], 5)}
    return out


def probes_stage(cfg: "Config", train_db_dir: Path, test_db_dir: Path) -> list[dict]:
    from ..evaluation import linear_probe_table

    train = load_db(cfg, train_db_dir).data
    test = load_db(cfg, test_db_dir).data
    # the probe mimics the MLP controller's initial gate: its gate_bias option, when it is set
    gate_bias = float(cfg.controller_config("mlp").options.get("gate_bias", -2.0))
    rows = linear_probe_table(train, test, layout_for(cfg), gate_bias=gate_bias)
    return [r.as_dict() for r in rows]


# ---------------------------------------------------------------- image side


def image_pairs(cfg: "Config", files: list[Path], seed: int, progress: bool = False):
    """Every image x every configured image effect, intensity drawn in [param_min_intensity, 1].

    Returns (E(I), E(I'), effect index) arrays, as the notes' 750 x 7 calibration pairs.
    """
    import numpy as np

    from ..style.encoding import load_encoder
    from ..media.io import load_image
    from ..api.registry import get

    enc = load_encoder(cfg.encoders.image, "image")
    rng = np.random.default_rng(seed)
    lo = cfg.database.param_min_intensity
    effects = [get("image_effect", name)() for name in cfg.effects.image]
    before, after, ids = [], [], []
    from tqdm import tqdm

    for i, f in enumerate(tqdm(files, desc="image pairs", unit="image", disable=not progress)):
        try:
            img = load_image(f)
        except DeltaV2AError as exc:
            print(f"deltav2a: warning: skipping {exc}")
            continue
        e0 = enc.encode_images([img])[0]
        edited = [fx.apply(img, float(rng.uniform(lo, 1.0)), seed=seed + i) for fx in effects]
        e1 = enc.encode_images(edited)
        for j in range(len(effects)):
            before.append(e0)
            after.append(e1[j])
            ids.append(j)
    if not before:
        raise DeltaV2AError("no readable images for image pairs")
    return np.stack(before), np.stack(after), np.asarray(ids)


def calibrate_stage(model_dir: Path, image_files: list[Path], train_db_dir: Path, seed: int = 0,
                    progress: bool = False) -> dict:
    """Appendix D: fit (T, tau_c, s_c) on image pairs to the DB's mean top-1 mass (T alone under
    the model config's `inference.calibration_shape`, decision 16.79); store it.

    Also fits the two StrengthMaps (core/model/strength.py) and stores them in the calibration:
    image side on the first `inference.strength_fit_images` images x every image effect x
    intensities 0.1..1.0; audio side on the training records' (||d||, chain strength).
    """
    from ..style.calibration import calibrate
    from ..style.encoding import load_encoder, term_embeddings
    from ..style.vocab import load_vocabulary
    from ..model.weights import read_metadata

    cfg, loaded = load_model(model_dir)
    db = load_db(cfg, train_db_dir)
    target = float(db.data.style.max(axis=1).mean())
    b, a, _ = image_pairs(cfg, image_files, seed, progress)
    encoder = load_encoder(cfg.encoders.image, "image")
    V = term_embeddings(encoder, load_vocabulary(cfg.vocabulary), "image")
    result = calibrate(b, a, V, target, shape=cfg.inference.calibration_shape)
    record = result.as_dict()
    record["strength"] = strength_maps(cfg, encoder, image_files, db, seed)
    meta = read_metadata(model_dir / "controller")
    save_model(model_dir, cfg, loaded.module, meta.controller, loaded.layout, meta.thresholds, meta.training,
               record, meta.strength_input)
    return {**result.as_dict(with_grid=True), "strength": record["strength"]}


def strength_maps(cfg: "Config", encoder: Any, image_files: list[Path], db: "Database", seed: int) -> dict:
    """{"image": StrengthMap dict, "audio": ..., "image_by_effect": DirectionalStrength dict (9.100),
    "image_fit" / "audio_fit" / "image_by_effect_fit": how well each recovers the known sizes}."""
    import numpy as np

    from ..model.strength import StrengthMap, fit_report

    image = image_strength_maps(cfg, encoder, image_files, seed)
    moved = np.asarray(db.delta_norm, float) > 0
    if db.data.strength is None or moved.sum() < 2:
        raise DeltaV2AError(f"database {db.path} has too few records to fit the audio strength map")
    audio_map = StrengthMap.fit(np.asarray(db.delta_norm)[moved], db.data.strength[moved])
    return {**image, "audio": audio_map.as_dict(),
            "audio_fit": fit_report(audio_map, np.asarray(db.delta_norm)[moved], db.data.strength[moved])}


def image_strength_maps(cfg: "Config", encoder: Any, image_files: list[Path], seed: int) -> dict:
    """The image side of `strength_maps`: on the first `inference.strength_fit_images` images x every
    image effect x intensities 0.1..1.0, the pooled map ("image") and the per-effect maps with their
    prototype directions ("image_by_effect", `inference.image_strength: by_direction`)."""
    import numpy as np

    from ..media.io import load_image
    from ..api.registry import get
    from ..model.strength import DirectionalStrength, StrengthMap, fit_report, image_edit_samples

    images = []
    for f in image_files[: cfg.inference.strength_fit_images]:
        try:
            images.append(load_image(f))
        except DeltaV2AError as exc:
            print(f"deltav2a: warning: skipping {exc}")
    effects = [get("image_effect", n)() for n in cfg.effects.image]
    smp = image_edit_samples(encoder, images, effects, seed)
    norms, ints = np.linalg.norm(smp["delta"], axis=1), smp["intensity"]
    image_map = StrengthMap.fit(norms, ints)
    by_effect = DirectionalStrength.fit(smp["delta"], smp["effect"], ints, list(cfg.effects.image),
                                        cfg.inference.image_strength_tau)
    return {"image": image_map.as_dict(), "image_fit": fit_report(image_map, norms, ints),
            "image_by_effect": by_effect.as_dict(),
            "image_by_effect_fit": direction_fit_report(by_effect, smp)}


def direction_fit_report(ds: Any, smp: dict) -> dict:
    """How well the per-effect strength recovers the known sizes of its fitting pairs, and how
    often the softmax weight goes to the effect that made the edit."""
    import numpy as np
    from scipy.stats import spearmanr

    pred = np.asarray(ds(smp["delta"]), float)
    y = np.asarray(smp["intensity"], float)
    w = ds.weights(smp["delta"])
    rho = spearmanr(pred, y).statistic if np.ptp(pred) > 0 else float("nan")
    return {"pairs": int(y.size), "spearman": None if not np.isfinite(rho) else float(rho),
            "mae": float(np.abs(pred - y).mean()),
            "own_effect_top": float(np.mean(w.argmax(axis=1) == smp["effect"])),
            "own_effect_weight": float(np.mean(w[np.arange(y.size), smp["effect"]]))}


# ---------------------------------------------------------------- diagnostics


def audio_diagnostics(cfg: "Config", train_db_dir: Path) -> dict:
    """Experiment 2 on the audio side, from the training database's labels."""
    from .diagnostics import consistency_separation, label_statistics, style_f1_per_effect

    db = load_db(cfg, train_db_dir)
    labels, active = db.data.style, db.data.active
    groups = ["+".join(e for e, a in zip(db.effects, row) if a) for row in active]
    f1 = style_f1_per_effect(labels, active, db.effects, seed=cfg.seed)
    import numpy as np

    return {"records": len(db), "label_statistics": label_statistics(labels), "style_f1": f1,
            "style_f1_mean": float(np.nanmean(list(f1.values()))),
            "consistency": consistency_separation(labels, groups, seed=cfg.seed)}


def image_diagnostics(model_dir: Path, image_files: list[Path], seed: int = 0, progress: bool = False) -> dict:
    """The probe the notes name but never ran: calibrated image labels -> which image effect."""
    from .diagnostics import image_effect_probe, label_statistics
    from ..transfer.pipeline import TransferModel

    tm = TransferModel(model_dir)
    b, a, ids = image_pairs(tm.cfg, image_files, seed, progress)
    from ..style.label import Calibration, style_labels

    labels, norms = style_labels(b, a, tm.V_img, tm.temperature, Calibration(tm.tau_c, tm.s_c))
    probe = image_effect_probe(labels, ids, tm.cfg.effects.image, seed=seed)
    return {"pairs": int(len(ids)), "label_statistics": label_statistics(labels), "probe": probe,
            "delta_norm_mean": float(norms.mean())}


def agreement_stage(model_dir: Path, image_files: list[Path], clip_files: list[Path], n_pairs: int = 40,
                    seed: int = 0, progress: bool = False) -> dict:
    """Cross-modal agreement of `transfer` vs a random chain and the single best fixed chain.

    For held-out (image, image effect, clip) triples: the image pair's calibrated label vs the
    label the audio encoder reads off (A, A'). The best fixed chain (one effect at intensity
    0.6, the best of the configured effects) is chosen on the first half of the triples and
    every method is scored on the second half.
    """
    import numpy as np

    from ..render.chain import AudioChain, ChainSettings, EffectSetting
    from ..database.sampling import AugmentationSampler
    from .diagnostics import agreement
    from ..style.encoding import term_embeddings
    from ..media.io import load_audio, load_image
    from ..api.registry import get
    from ..style.label import style_labels

    from ..transfer.pipeline import TransferModel

    tm = TransferModel(model_dir)
    tm.cfg.effects.tail = "cut"  # A and A' of equal length, for every method alike
    cfg = tm.cfg
    rng = np.random.default_rng(seed)
    V_aud = term_embeddings(tm.audio_encoder, tm.vocab, "audio")
    images = [load_image(f) for f in image_files]
    clips = [load_audio(f) for f in clip_files]
    clip_emb = [tm.audio_embedding(x, sr) for x, sr in clips]
    fx = [get("image_effect", n)() for n in cfg.effects.image]
    sampler = AugmentationSampler(tm.layout, cfg.database, cfg.effects.chain_order)
    fixed = {n: AudioChain(ChainSettings([EffectSetting(n, get("audio_effect", n).params_at_intensity(0.6))]),
                           tail=cfg.effects.tail, max_tail_seconds=cfg.effects.max_tail_seconds)
             for n in cfg.effects.audio}

    def audio_label(k: int, y: "np.ndarray") -> "np.ndarray":
        x, sr = clips[k]
        e1 = tm.audio_embedding(y, sr)
        return style_labels(clip_emb[k], e1, V_aud, cfg.database.temperature)[0][0]

    rows = []
    from tqdm import tqdm

    for t in tqdm(range(n_pairs), desc="agreement", unit="pair", disable=not progress):
        i, j, k = int(rng.integers(len(images))), int(rng.integers(len(fx))), int(rng.integers(len(clips)))
        before = images[i]
        after = fx[j].apply(before, float(rng.uniform(cfg.database.param_min_intensity, 1.0)), seed=seed + t)
        label = tm.read_edit([before], [after])[0]
        x, sr = clips[k]
        plan = tm.plan(label, clip_emb[k])
        y, _ = tm.render(x, sr, plan)
        aug = sampler.sample(rng)
        y_rand = sampler.chain(aug, cfg.effects.tail, cfg.effects.max_tail_seconds).render(x, sr).audio
        rows.append({"image": label.label, "transfer": audio_label(k, y), "random": audio_label(k, y_rand),
                     "fixed": {n: audio_label(k, ch.render(x, sr).audio) for n, ch in fixed.items()},
                     "n_active": len(plan.steps)})
    half = n_pairs // 2
    pick, score = rows[:half], rows[half:]
    if not score:
        raise DeltaV2AError("agreement needs at least 2 pairs")

    def stack(rs, key, sub=None):
        return np.stack([r[key][sub] if sub else r[key] for r in rs])

    best_fixed = max(fixed, key=lambda n: agreement(stack(pick, "image"), stack(pick, "fixed", n))["mean_cosine"]) \
        if pick else next(iter(fixed))
    img = stack(score, "image")
    return {"pairs_scored": len(score), "pairs_for_choosing_fixed_chain": len(pick),
            "transfer": agreement(img, stack(score, "transfer")),
            "random_chain": agreement(img, stack(score, "random")),
            "best_fixed_chain": {"effect": best_fixed, "intensity": 0.6,
                                 **agreement(img, stack(score, "fixed", best_fixed))},
            "mean_effects_rendered": float(np.mean([r["n_active"] for r in score])),
            "database_mean_active": (tm.controller.metadata.training or {}).get("database_mean_active")}
