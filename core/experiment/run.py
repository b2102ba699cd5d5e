"""`deltav2a run CONFIG.yaml`: every stage of an experiment into one run directory.

splits -> renders (train/val/test) -> labels -> train -> thresholds -> calibration ->
evaluation -> probes -> diagnostics -> example transfers -> report.md

The run directory is a content-addressed cache. Each stage's output lives in
`cache/STAGE/KEY/` (its record in `cache/STAGE/KEY.json`), where KEY hashes everything the
stage depends on: the config sections it reads and the keys of the stages it uses. So
switching a setting back reuses the earlier outputs, and nothing is overwritten: each setup
gets its own `results/SETUP/` (config, metrics.json, report.md) and the top-level files are
copies of the latest. Stored paths are relative to the run directory, so a copied or moved
run folder stays valid.

Rendering (the expensive part of a database) is keyed without the vocabulary and the label
temperature; labels are a separate stage that recomputes s from the stored E(A) and E(A')
(`database/relabel.py`), so a vocabulary switch renders no audio.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable


if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config


def _key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def strict_json(obj: Any) -> Any:
    """`obj` with every NaN/Inf float replaced by None, so `json.dumps(allow_nan=False)` holds."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return strict_json(obj.item())
    return obj


def write_strict_json(path: Path, obj: Any) -> None:
    from ..atomic import write_text

    write_text(path, json.dumps(strict_json(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n")


class Experiment:
    def __init__(self, cfg: "Config", config_path: Path | None, run_dir: Path, log: Callable[[str], None] = print):
        self.cfg = cfg
        self.base = config_path.parent.resolve() if config_path else Path.cwd()
        self.run_dir = run_dir
        self.log = log
        self.keys: dict[str, str] = {}
        self.results: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.computed: list[str] = []
        (run_dir / "cache").mkdir(parents=True, exist_ok=True)

    def section(self, *names: str) -> dict:
        return {n: getattr(self.cfg, n).model_dump(mode="json") if hasattr(getattr(self.cfg, n), "model_dump")
                else getattr(self.cfg, n) for n in names}

    def out(self, name: str) -> Path:
        """The output folder of stage `name` (as keyed in this call)."""
        return self.run_dir / "cache" / name / self.keys[name]

    def rel(self, p: Path | str) -> str:
        """`p` relative to the run folder when inside it (so a moved folder keeps its keys)."""
        p = Path(p).resolve()
        try:
            return p.relative_to(self.run_dir.resolve()).as_posix()
        except ValueError:
            return str(p)

    def stage(self, name: str, inputs: dict, deps: list[str], fn: Callable[[Path], Any]) -> Any:
        """Run `fn(output_folder)` unless a finished output with the same key exists."""
        key = _key({"inputs": inputs, "deps": {d: self.keys[d] for d in deps}})
        self.keys[name] = key
        marker = self.run_dir / "cache" / name / f"{key}.json"
        if marker.is_file():
            try:
                done = json.loads(marker.read_text())
            except (OSError, json.JSONDecodeError):
                done = {}
            if done.get("key") == key:
                self.results[name] = done.get("result")
                self.timings[name] = float(done.get("seconds", 0.0))
                self.log(f"[run] {name}: unchanged, reused")
                return self.results[name]
        self.log(f"[run] {name} ...")
        t0 = time.perf_counter()
        result = fn(self.out(name))
        seconds = time.perf_counter() - t0
        write_strict_json(marker, {"key": key, "stage": name, "seconds": seconds, "inputs": inputs,
                                   "deps": {d: self.keys[d] for d in deps}, "result": result})
        self.results[name], self.timings[name] = result, seconds
        self.computed.append(name)
        self.log(f"[run] {name}: done in {seconds:.1f} s")
        return result

    def path(self, value: str | None) -> Path | None:
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base / p).resolve()


def _generate_media(cfg: "Config", folder: Path) -> tuple[Path, Path]:
    """Generated media in a folder named by its settings (a change never mixes old files in)."""
    import soundfile as sf

    from ..atomic import atomic_path
    from ..media.examples import groove, landscape_image

    d = cfg.data
    folder = folder / _key([d.synthetic_tracks, d.synthetic_images, d.synthetic_seconds])[:10]
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


def check_names(cfg: "Config") -> None:
    """Resolve every plugin name the config uses, before a run writes anything.

    All problems are collected and reported in one line, so a misspelt effect and a missing
    vocabulary are found together instead of one per (expensive) attempt.
    """
    from ..errors import DeltaV2AError
    from ..api.registry import get_registry

    reg = get_registry()
    problems: list[str] = []

    def need(kind: str, name: str, where: str) -> None:
        try:
            reg.record(kind, name)
        except DeltaV2AError as exc:
            problems.append(f"{where}: {exc}")

    for n in cfg.effects.image:
        need("image_effect", n, "effects.image")
    for n in cfg.effects.audio:
        need("audio_effect", n, "effects.audio")
    extra = [n for n in cfg.effects.chain_order if n not in cfg.effects.audio]
    for n in extra:  # effects not in chain_order render after those it names
        need("audio_effect", n, "effects.chain_order")
    for modality in ("image", "audio"):
        choice = getattr(cfg.encoders, modality)
        try:
            cls = reg.get("encoder", choice.name)
            if getattr(cls, "modality", modality) != modality:
                problems.append(f"encoders.{modality}: encoder '{choice.name}' encodes {cls.modality}")
        except DeltaV2AError as exc:
            problems.append(f"encoders.{modality}: {exc}")
    for n in dict.fromkeys([*cfg.experiment.controllers, cfg.controller.name]):
        need("controller", n, "controllers")
    try:
        from ..api.options import check_config_options

        check_config_options(cfg, cfg.experiment.controllers)
    except DeltaV2AError as exc:
        problems.append(str(exc))
    try:
        from ..style.vocab import load_vocabulary

        vocab = load_vocabulary(cfg.vocabulary)
    except DeltaV2AError as exc:
        problems.append(f"vocabulary: {exc}")
        vocab = None
    if vocab is not None and not problems:  # every term must embed (all unknown words at once)
        from ..style.encoding import load_encoder, term_embeddings

        for modality in ("image", "audio"):
            try:
                term_embeddings(load_encoder(getattr(cfg.encoders, modality), modality), vocab, modality)
            except DeltaV2AError as exc:
                problems.append(str(exc))
    if problems:
        raise DeltaV2AError("; ".join(problems))


def describe_setup(cfg: "Config", data: dict) -> dict:
    """What a result was measured on: the columns `compare` shows."""
    from ..style.vocab import load_vocabulary

    v = load_vocabulary(cfg.vocabulary)
    return {"vocabulary": v.name, "vocabulary_size": v.size, "vocabulary_fingerprint": v.fingerprint(),
            "encoders": {"image": cfg.encoders.image.name, "audio": cfg.encoders.audio.name},
            "effects": {"audio": list(cfg.effects.audio), "image": list(cfg.effects.image)},
            "controllers": list(cfg.experiment.controllers), "data": data, "seed": cfg.seed,
            "augmentations_per_clip": cfg.database.augmentations_per_clip,
            "epochs": cfg.training.epochs}


def _copy_model(src: Path, dst: Path) -> None:
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and (f.name.startswith("controller.") or f.name == "config.yaml"):
            shutil.copy2(f, dst / f.name)


def _new_result_dir(root: Path, setup_id: str) -> Path:
    """results/NNN-SETUP: one per call, numbered in order, never reused (so never overwritten)."""
    root.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name.split("-", 1)[0]) for p in root.iterdir() if p.name.split("-", 1)[0].isdigit()]
    n = max(taken, default=0) + 1
    while True:
        d = root / f"{n:03d}-{setup_id}"
        try:
            d.mkdir()
            return d
        except FileExistsError:  # another run in the same folder took the number
            n += 1


def run_experiment(cfg: "Config", config_path: Path | None, run_dir: Path, log: Callable[[str], None] = print
                   ) -> dict:
    from ..atomic import write_text
    from ..config import dump_config, effective_record_seed
    from ..media.io import IMAGE_EXTENSIONS
    from ..analysis.sensitivity import list_media
    from ..style.vocab import load_vocabulary

    check_names(cfg)  # every plugin name resolves before anything is written
    run_dir.mkdir(parents=True, exist_ok=True)
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
    from .quality import photo_halves

    calib_images, heldout_images = photo_halves(image_files, cfg.seed)
    media = {"audio": ex.rel(audio_dir), "manifest": ex.rel(manifest) if manifest else None,
             "images": [ex.rel(p) for p in image_files]}
    data_desc = {"audio": "generated" if cfg.data.audio is None else cfg.data.audio,
                 "images": "generated" if cfg.data.images is None else cfg.data.images,
                 "clip_limit": cfg.data.clip_limit, "image_limit": cfg.data.image_limit}

    # ---- splits, renders, labels
    from ..database.splits import make_splits, write_splits

    def do_splits(out: Path):
        s = make_splits(audio_dir, manifest, cfg.seed, cfg.splits.model_dump())
        write_splits(s, out / "splits.json")
        return s.counts()

    ex.stage("splits", {"audio": media["audio"], "manifest": media["manifest"], **ex.section("seed", "splits")},
             [], do_splits)  # the images are not an input: changing them re-renders nothing
    splits_file = ex.out("splits") / "splits.json"

    from ..database import build_database, read_meta
    from ..database.relabel import relabel_database

    render_db = cfg.database.record_settings("temperature", "workers")  # labels only / how many processes ran
    render_inputs = {"seed": effective_record_seed(cfg), "database": render_db, "audio": ex.section("audio")["audio"],
                     "effects": ex.section("effects")["effects"],
                     "encoder": cfg.encoders.audio.model_dump(mode="json")}
    vocab = load_vocabulary(cfg.vocabulary)
    label_inputs = {"vocabulary": vocab.fingerprint(), "temperature": cfg.database.temperature}
    dbs: dict[str, Path] = {}
    renders = 0
    for split in ("train", "val", "test"):
        limit = cfg.data.clip_limit if split == "train" else None

        def do_render(out: Path, split=split, limit=limit):
            s = build_database(cfg, splits_file, out, limit_clips=limit, split=split, overwrite=True)
            return {"records": s.records, "clips": s.n_clips, "skipped": len(s.skipped),
                    "records_per_second": s.records_per_second, "renders": s.renders}

        res = ex.stage(f"render_{split}", {**render_inputs, "limit": limit}, ["splits"], do_render)
        if f"render_{split}" in ex.computed:
            renders += int(res.get("renders") or 0)
        rendered = ex.out(f"render_{split}")

        def do_labels(out: Path, rendered=rendered, res=res):
            meta = read_meta(rendered)
            same = (meta["identity"]["vocabulary"]["fingerprint"] == vocab.fingerprint()
                    and float(meta["identity"]["database"]["temperature"]) == cfg.database.temperature)
            if same:  # the render already carries these labels
                return {**res, "db": ex.rel(rendered), "relabelled": False}
            relabel_database(rendered, out, cfg)
            return {**res, "db": ex.rel(out), "relabelled": True, "renders": 0}

        r = ex.stage(f"db_{split}", label_inputs, [f"render_{split}"], do_labels)
        dbs[split] = run_dir / r["db"]

    # ---- controllers
    from . import stages

    model_inputs = ex.section("seed", "controller", "training", "thresholds")
    models = {}
    for name in cfg.experiment.controllers:
        ccfg = cfg
        if name in cfg.experiment.epochs:
            ccfg = cfg.model_copy(deep=True)
            ccfg.training.epochs = cfg.experiment.epochs[name]

        def do_train(out: Path, name=name, ccfg=ccfg):
            return stages.train_stage(ccfg, dbs["train"], out, dbs["val"], name, resume=True, replace=True)

        def do_thresholds(out: Path, name=name, ccfg=ccfg):
            _copy_model(ex.out(f"train_{name}"), out)
            # the model's own config takes this setup's inference settings (not a training input)
            write_text(out / "config.yaml", dump_config(ccfg))
            return {k: v for k, v in stages.thresholds_stage(out, dbs["val"]).items() if k != "history"}

        def do_calibration(out: Path, name=name):
            _copy_model(ex.out(f"thresholds_{name}"), out)
            return {k: v for k, v in stages.calibrate_stage(out, calib_images, dbs["train"], cfg.seed).items()
                    if k != "grid"}

        # keyed by this controller's own section: its options (controller.options or
        # experiment.options.NAME) and the trainer's keys, not the other controllers' options
        ex.stage(f"train_{name}", {**model_inputs, "controller": cfg.controller_config(name).model_dump(mode="json"),
                                   "controller_name": name, "epochs": ccfg.training.epochs},
                 ["db_train", "db_val"], do_train)
        ex.stage(f"thresholds_{name}", {"inference": cfg.inference.stage_settings()}, [f"train_{name}"],
                 do_thresholds)
        ex.stage(f"calibration_{name}", {"images": [ex.rel(p) for p in calib_images],
                                         "image_encoder": cfg.encoders.image.model_dump(mode="json"),
                                         "image_effects": list(cfg.effects.image)},
                 [f"thresholds_{name}"], do_calibration)
        models[name] = ex.out(f"calibration_{name}")
        ex.stage(f"evaluation_{name}", {}, [f"calibration_{name}", "db_test"],
                 lambda out, mdir=models[name]: stages.evaluate_stage(mdir, dbs["test"], dbs["train"]))
    primary = cfg.experiment.controllers[0]
    pkey = f"evaluation_{primary}"

    ex.stage("probes", ex.section("controller"), ["db_train", "db_test"],
             lambda out: stages.probes_stage(cfg, dbs["train"], dbs["test"]))
    ex.stage("diagnostics_audio", {}, ["db_train"], lambda out: stages.audio_diagnostics(cfg, dbs["train"]))
    ex.stage("diagnostics_image", {"images": [ex.rel(p) for p in heldout_images]}, [pkey],
             lambda out: stages.image_diagnostics(models[primary], heldout_images, cfg.seed))

    from ..database.splits import load_splits

    def test_clips() -> list[Path]:
        sp = load_splits(splits_file)
        return [sp.path_of(c) for c in sp.clips_in("test")]

    ex.stage("agreement", {"pairs": cfg.experiment.agreement_pairs, "images": [ex.rel(p) for p in heldout_images]},
             [pkey, "db_test"],
             lambda out: stages.agreement_stage(models[primary], heldout_images, test_clips(),
                                                cfg.experiment.agreement_pairs, cfg.seed))
    if cfg.experiment.vocab_audit_items:
        from .vocab_audit import run_stage

        ex.stage("vocab_audit", {"items": cfg.experiment.vocab_audit_items, "database": cfg.database.record_settings(),
                                 **ex.section("encoders", "vocabulary", "effects")},
                 ["splits"], lambda out: {**run_stage(cfg, heldout_images, test_clips(), out,
                                                      cfg.experiment.vocab_audit_items, cfg.seed),
                                          "dir": ex.rel(out)})
    ex.stage("examples", {"n": cfg.experiment.example_transfers}, [pkey],
             lambda out: example_transfers(models[primary], heldout_images, test_clips(), out,
                                           cfg.experiment.example_transfers, cfg.seed))

    from .report import write_report

    setup = describe_setup(cfg, data_desc)
    setup_id = f"{vocab.name}-{cfg.encoders.image.name}-{cfg.encoders.audio.name}-" \
               f"{'+'.join(cfg.experiment.controllers)}-{_key({'config': dump_config(cfg), 'media': media})[:10]}"
    res_dir = _new_result_dir(run_dir / "results", setup_id)
    total = time.perf_counter() - t_start
    summary = {"setup_id": setup_id, "result": res_dir.name, "setup": setup, "model": ex.rel(models[primary]),
               "models": {n: ex.rel(m) for n, m in models.items()},
               "examples": ex.rel(ex.out("examples")), "stage_keys": dict(ex.keys),
               "results": ex.results, "timings": ex.timings, "computed_this_call": list(ex.computed),
               "renders_this_call": renders, "wall_seconds_this_call": total}
    config_text = dump_config(cfg)
    for folder in (res_dir, run_dir):  # the setup's own copy, and the latest at the top
        write_text(folder / "config.yaml", config_text)
        write_strict_json(folder / "metrics.json", summary)
        write_report(folder, cfg, summary)
    summary["run_dir"] = str(run_dir)
    summary["result_dir"] = str(res_dir)
    return summary


def example_transfers(model_dir: Path, images: list[Path], clips: list[Path], out: Path, n: int, seed: int) -> list:
    """A few transfers from held-out media: audio, sidecar and PNG summary each."""
    import numpy as np

    from ..media.io import load_audio, load_image, save_audio
    from ..api.registry import get
    from ..transfer.pipeline import TransferModel

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
