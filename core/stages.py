"""The controller stages as functions: train, tune thresholds, calibrate, evaluate, probe.

The CLI commands and `deltav2a run` both call these, so a stage behaves the same whether it
runs alone or inside an experiment. A model directory holds `controller.safetensors`,
`controller.json` (thresholds, calibration, encoder/vocabulary fingerprints) and
`config.yaml`; every stage that changes the model rewrites `controller.*` atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    from .config import Config
    from .database import Database


def _torch_threads(cfg: "Config") -> None:
    import torch

    torch.set_num_threads(cfg.training.threads)


def layout_for(cfg: "Config"):
    from .layout import ParamLayout

    return ParamLayout.from_names(cfg.effects.audio)


def load_db(cfg: "Config", path: str | Path) -> "Database":
    from .database import load_database_for

    return load_database_for(cfg, path)


def encoder_identities(cfg: "Config") -> dict:
    from .encoding import load_encoder
    from .transfer import encoder_identity

    return {"image": encoder_identity(load_encoder(cfg.encoders.image, "image")),
            "audio": encoder_identity(load_encoder(cfg.encoders.audio, "audio"))}


def vocabulary_identity(cfg: "Config") -> dict:
    from .vocab import load_vocabulary

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
               training: dict, calibration: dict | None = None) -> None:
    from .atomic import write_text
    from .config import dump_config
    from .weights import ControllerMetadata, save_controller

    model_dir.mkdir(parents=True, exist_ok=True)
    write_text(model_dir / "config.yaml", dump_config(cfg))
    meta = ControllerMetadata(
        controller=controller, config=cfg.controller.model_dump(mode="json"), layout=layout.describe(),
        style_dim=int(module.style_dim), audio_dim=int(module.audio_dim),
        vocabulary=vocabulary_identity(cfg), encoders=encoder_identities(cfg),
        thresholds={e: float(t) for e, t in thresholds.items()}, calibration=calibration, training=training)
    save_controller(model_dir / "controller", module, meta)


def load_model(model_dir: str | Path, cfg: "Config | None" = None):
    """(config, LoadedController), checked against the model's own config snapshot."""
    from .config import load_config
    from .weights import load_controller

    model_dir = Path(model_dir)
    if not (model_dir / "controller.json").is_file():
        raise DeltaV2AError(f"no trained controller in {model_dir} (run `deltav2a train` first)")
    if cfg is None:
        cfg = load_config(model_dir / "config.yaml" if (model_dir / "config.yaml").is_file() else None)
    loaded = load_controller(model_dir / "controller", vocabulary=vocabulary_identity(cfg),
                             encoders={"audio": encoder_identities(cfg)["audio"]}, layout=layout_for(cfg))
    return cfg, loaded


def train_stage(cfg: "Config", db_dir: Path, out_dir: Path, val_db_dir: Path | None = None,
                controller: str | None = None, resume: bool = True, progress: bool = True) -> dict:
    from .training.trainer import train_controller

    _torch_threads(cfg)
    name = controller or cfg.controller.kind
    db = load_db(cfg, db_dir)
    layout = layout_for(cfg)
    if val_db_dir is not None:
        train, val = db.data, load_db(cfg, val_db_dir).data
    else:
        train, val = split_by_clip(db, cfg.training.val_fraction, cfg.seed)
    res = train_controller(name, train, val, layout, cfg.controller, cfg.training,
                           out_dir=out_dir / "training", seed=cfg.seed, resume=resume, overwrite=not resume,
                           progress=progress)
    summary = res.summary()
    save_model(out_dir, cfg, res.module, res.controller, layout, {e: 0.5 for e in layout.effects}, summary)
    return summary


def thresholds_stage(model_dir: Path, val_db_dir: Path) -> dict:
    """Per-effect thresholds on val (grid, coordinate descent), stored with the model."""
    from .evaluation import tune_thresholds
    from .weights import read_metadata

    cfg, loaded = load_model(model_dir)
    _torch_threads(cfg)
    val = load_db(cfg, val_db_dir).data
    pred = loaded.predict(val.style, val.audio)
    result = tune_thresholds(pred.activity, pred.params, val.active, val.params, loaded.layout, cfg.thresholds)
    meta = read_metadata(model_dir / "controller")
    save_model(model_dir, cfg, loaded.module, meta.controller, loaded.layout, result.thresholds,
               meta.training, meta.calibration)
    return result.as_dict()


def evaluate_stage(model_dir: Path, test_db_dir: Path, train_db_dir: Path) -> dict:
    """The notes' metrics on held-out records, beside the mean baseline."""
    from .evaluation import evaluate, mean_baseline_rmse, rank_params

    cfg, loaded = load_model(model_dir)
    _torch_threads(cfg)
    test = load_db(cfg, test_db_dir).data
    train = load_db(cfg, train_db_dir).data
    if len(test) == 0:
        raise DeltaV2AError(f"test database {test_db_dir} has no records")
    pred = loaded.predict(test.style, test.audio)
    tuned = evaluate(pred.activity, pred.params, test.active, test.params, loaded.layout, loaded.thresholds)
    at_half = evaluate(pred.activity, pred.params, test.active, test.params, loaded.layout, 0.5)
    base_value = float(mean_baseline_rmse(train.active, train.params, test.active, test.params, loaded.layout))
    out = {"controller": loaded.metadata.controller, "records": len(test),
           "mean_baseline_active_param_rmse": base_value,
           "tuned": tuned, "threshold_0.5": at_half,
           "reduction_vs_baseline": 1.0 - tuned["active_param_rmse_gated"] / base_value if base_value else None,
           "hardest_params": rank_params(tuned["per_param_active_rmse_gated"], 5)}
    return out


def probes_stage(cfg: "Config", train_db_dir: Path, test_db_dir: Path) -> list[dict]:
    from .evaluation import linear_probe_table

    train = load_db(cfg, train_db_dir).data
    test = load_db(cfg, test_db_dir).data
    rows = linear_probe_table(train, test, layout_for(cfg), gate_bias=cfg.controller.mlp.gate_bias)
    return [r.as_dict() for r in rows]
