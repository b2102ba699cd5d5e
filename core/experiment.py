"""`deltav2a run CONFIG.yaml`: every stage of an experiment into one run directory.

splits -> databases (train/val/test) -> train -> thresholds -> calibration -> evaluation ->
probes -> diagnostics -> example transfers -> report.md

Each stage records a key (a hash of the config sections it reads and the keys of the stages
it depends on) in `stages/NAME.json` with its result. A rerun skips a stage whose key is
unchanged, so editing, say, `training.epochs` retrains and re-evaluates but keeps the
databases. Stages that write big outputs (databases, training) are themselves resumable.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable


if TYPE_CHECKING:  # pragma: no cover
    from .config import Config


def _key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Experiment:
    def __init__(self, cfg: "Config", config_path: Path | None, run_dir: Path, log: Callable[[str], None] = print):
        self.cfg = cfg
        self.base = config_path.parent.resolve() if config_path else Path.cwd()
        self.run_dir = run_dir
        self.log = log
        self.keys: dict[str, str] = {}
        self.results: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        (run_dir / "stages").mkdir(parents=True, exist_ok=True)

    def section(self, *names: str) -> dict:
        return {n: getattr(self.cfg, n).model_dump(mode="json") if hasattr(getattr(self.cfg, n), "model_dump")
                else getattr(self.cfg, n) for n in names}

    def stage(self, name: str, inputs: dict, deps: list[str], fn: Callable[[], Any]) -> Any:
        from .atomic import write_json

        key = _key({"inputs": inputs, "deps": {d: self.keys[d] for d in deps}})
        marker = self.run_dir / "stages" / f"{name}.json"
        if marker.is_file():
            try:
                done = json.loads(marker.read_text())
            except (OSError, json.JSONDecodeError):
                done = {}
            if done.get("key") == key:
                self.keys[name] = key
                self.results[name] = done.get("result")
                self.timings[name] = float(done.get("seconds", 0.0))
                self.log(f"[run] {name}: unchanged, reused")
                return self.results[name]
        self.log(f"[run] {name} ...")
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
        write_json(marker, {"key": key, "seconds": seconds, "result": result})
        self.keys[name], self.results[name], self.timings[name] = key, result, seconds
        self.log(f"[run] {name}: done in {seconds:.1f} s")
        return result

    def path(self, value: str | None) -> Path | None:
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base / p).resolve()


def _generate_media(cfg: "Config", folder: Path) -> tuple[Path, Path]:
    import soundfile as sf

    from .atomic import atomic_path
    from .examples import groove, landscape_image

    audio, images = folder / "audio", folder / "images"
    audio.mkdir(parents=True, exist_ok=True)
    images.mkdir(parents=True, exist_ok=True)
    sr = 44_100
    for t in range(cfg.data.synthetic_tracks):
        for c in range(2):
            target = audio / f"synthetic{t:02d}__{c + 1}.wav"
            if not target.exists():
                with atomic_path(target) as tmp:
                    sf.write(str(tmp), groove(cfg.data.synthetic_seconds, sr, seed=1000 + 10 * t + c).T, sr,
                             format="WAV")
    for i in range(cfg.data.synthetic_images):
        target = images / f"landscape{i:02d}.png"
        if not target.exists():
            with atomic_path(target) as tmp:
                landscape_image(256, 192, seed=i).save(tmp, format="PNG")
    return audio, images


def run_experiment(cfg: "Config", config_path: Path | None, run_dir: Path, log: Callable[[str], None] = print
                   ) -> dict:
    import random

    from .atomic import write_text
    from .config import dump_config
    from .media import IMAGE_EXTENSIONS
    from .sensitivity import list_media

    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", dump_config(cfg))
    ex = Experiment(cfg, config_path, run_dir, log)
    t_start = time.perf_counter()

    # ---- media
    audio_dir, images_dir = ex.path(cfg.data.audio), ex.path(cfg.data.images)
    if audio_dir is None or images_dir is None:
        gen_audio, gen_images = _generate_media(cfg, run_dir / "generated")
        audio_dir = audio_dir or gen_audio
        images_dir = images_dir or gen_images
    manifest = ex.path(cfg.data.audio_manifest)
    image_files = list_media(images_dir, IMAGE_EXTENSIONS, cfg.data.image_limit, cfg.seed)
    shuffled = list(image_files)
    random.Random(cfg.seed).shuffle(shuffled)
    half = max(1, len(shuffled) // 2)
    calib_images, heldout_images = sorted(shuffled[:half]), sorted(shuffled[half:] or shuffled[:half])
    media = {"audio": str(audio_dir), "manifest": str(manifest) if manifest else None,
             "images": [str(p) for p in image_files]}

    # ---- splits and databases
    from .splits import make_splits, write_splits

    splits_file = run_dir / "splits.json"

    def do_splits():
        s = make_splits(audio_dir, manifest, cfg.seed, cfg.splits.model_dump())
        write_splits(s, splits_file)
        return s.counts()

    ex.stage("splits", {"media": media, **ex.section("seed", "splits")}, [], do_splits)

    from .database import build_database

    db_inputs = ex.section("seed", "database", "audio", "effects", "encoders", "vocabulary")
    dbs = {}
    for split in ("train", "val", "test"):
        out = run_dir / f"db_{split}"
        limit = cfg.data.clip_limit if split == "train" else None

        def do_db(out=out, split=split, limit=limit):
            s = build_database(cfg, splits_file, out, limit_clips=limit, split=split, overwrite=True)
            return {"records": s.records, "clips": s.n_clips, "skipped": len(s.skipped),
                    "records_per_second": s.records_per_second}

        ex.stage(f"db_{split}", {**db_inputs, "limit": limit}, ["splits"], do_db)
        dbs[split] = out

    # ---- controllers
    from . import stages

    model_inputs = ex.section("seed", "controller", "training", "thresholds")
    models = {}
    for name in cfg.experiment.controllers:
        mdir = run_dir / "models" / name
        deps = ["db_train", "db_val"]
        ccfg = cfg
        if name in cfg.experiment.epochs:
            ccfg = cfg.model_copy(deep=True)
            ccfg.training.epochs = cfg.experiment.epochs[name]
        ex.stage(f"train_{name}", {**model_inputs, "controller_name": name, "epochs": ccfg.training.epochs}, deps,
                 lambda mdir=mdir, name=name, ccfg=ccfg: stages.train_stage(ccfg, dbs["train"], mdir, dbs["val"],
                                                                             name, resume=True, replace=True))
        ex.stage(f"thresholds_{name}", {}, [f"train_{name}"],
                 lambda mdir=mdir: {k: v for k, v in stages.thresholds_stage(mdir, dbs["val"]).items()
                                    if k != "history"})
        ex.stage(f"calibration_{name}", {"images": [str(p) for p in calib_images]}, [f"thresholds_{name}"],
                 lambda mdir=mdir: {k: v for k, v in stages.calibrate_stage(mdir, calib_images, dbs["train"],
                                                                            cfg.seed).items() if k != "grid"})
        ex.stage(f"evaluation_{name}", {}, [f"calibration_{name}", "db_test"],
                 lambda mdir=mdir: stages.evaluate_stage(mdir, dbs["test"], dbs["train"]))
        models[name] = mdir
    primary = cfg.experiment.controllers[0]
    pkey = f"evaluation_{primary}"

    ex.stage("probes", ex.section("controller"), ["db_train", "db_test"],
             lambda: stages.probes_stage(cfg, dbs["train"], dbs["test"]))
    ex.stage("diagnostics_audio", {}, ["db_train"], lambda: stages.audio_diagnostics(cfg, dbs["train"]))
    ex.stage("diagnostics_image", {"images": [str(p) for p in heldout_images]}, [pkey],
             lambda: stages.image_diagnostics(models[primary], heldout_images, cfg.seed))

    from .splits import load_splits

    def test_clips() -> list[Path]:
        sp = load_splits(splits_file)
        return [sp.path_of(c) for c in sp.clips_in("test")]

    ex.stage("agreement", {"pairs": cfg.experiment.agreement_pairs, "images": [str(p) for p in heldout_images]},
             [pkey, "db_test"],
             lambda: stages.agreement_stage(models[primary], heldout_images, test_clips(),
                                            cfg.experiment.agreement_pairs, cfg.seed))
    if cfg.experiment.vocab_audit_items:
        from .vocab_audit import run_stage

        ex.stage("vocab_audit", {"items": cfg.experiment.vocab_audit_items, **ex.section("encoders", "vocabulary",
                                                                                         "effects", "database")},
                 ["splits"], lambda: run_stage(cfg, heldout_images, test_clips(), run_dir / "vocab_audit",
                                               cfg.experiment.vocab_audit_items, cfg.seed))
    ex.stage("examples", {"n": cfg.experiment.example_transfers}, [pkey],
             lambda: example_transfers(models[primary], heldout_images, test_clips(), run_dir / "examples",
                                       cfg.experiment.example_transfers, cfg.seed))

    from .report import write_report

    total = time.perf_counter() - t_start
    summary = {"run_dir": str(run_dir), "model": str(models[primary]), "results": ex.results,
               "timings": ex.timings, "wall_seconds_this_call": total}
    write_report(run_dir, cfg, summary)
    from .atomic import write_json

    write_json(run_dir / "metrics.json", summary)
    return summary


def example_transfers(model_dir: Path, images: list[Path], clips: list[Path], out: Path, n: int, seed: int) -> list:
    """A few transfers from held-out media: audio, sidecar and PNG summary each."""
    import numpy as np

    from .media import load_audio, load_image, save_audio
    from .plugins import get
    from .transfer import TransferModel

    if n == 0:
        return []
    tm = TransferModel(model_dir)
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    made = []
    effects = tm.cfg.effects.image
    for t in range(n):
        img_path = images[int(rng.integers(len(images)))]
        clip_path = clips[int(rng.integers(len(clips)))]
        effect = effects[t % len(effects)]
        before = load_image(img_path)
        after = get("image_effect", effect)().apply(before, 0.8, seed=seed)
        x, sr = load_audio(clip_path)
        res = tm.transfer(before, after, x, sr)
        stem = f"example{t + 1}_{effect}"
        save_audio(x, sr, out / f"{stem}_A.wav")
        before.save(out / f"{stem}_I.png")
        after.save(out / f"{stem}_I2.png")
        res.save(out / f"{stem}_A2.wav", before=before, after=after, original=x,
                 extra={"image": str(img_path), "audio": str(clip_path), "image_effect": effect,
                        "intensity": 0.8})
        made.append({"name": stem, "image_effect": effect,
                     "top_terms": [t2["term"] for t2 in res.sidecar["style"]["top"][:3]],
                     "effects": [e["effect"] for e in res.sidecar["effects"]]})
    return made
