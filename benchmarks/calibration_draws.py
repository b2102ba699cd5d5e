"""Which calibration each model gets, under the three-number fit and under a fixed confidence
shape (decision 16.79), on the calibration pairs `deltav2a run` fits on (the first model's
config: its images' calibration half, its image effects, its image encoder and vocabulary).

Each model's own target (its training records' mean top-1 mass, stored in its calibration) is
refitted both ways; `--write DIR` also writes a copy of every model with only (T, tau_c, s_c)
replaced by the shaped fit's answer, so that `diagnose quality` / `strength_tuning.py` can
measure a draw under the other calibration without retraining (16.79, 16.80).

usage: python benchmarks/calibration_draws.py MODEL_DIR [MODEL_DIR ...] [--shape 0.25,1.0]
       [--images DIR] [--write DIR]
(data: $DELTAV2A_SHARED_DATA, default ../shared/data)"""
import argparse, json, os, shutil
from pathlib import Path

import numpy as np

from deltav2a.analysis.sensitivity import list_media
from deltav2a.experiment.quality import photo_halves
from deltav2a.experiment.stages import image_pairs
from deltav2a.media.io import IMAGE_EXTENSIONS
from deltav2a.style.calibration import calibrate
from deltav2a.style.encoding import load_encoder, model_config, term_embeddings
from deltav2a.style.vocab import load_vocabulary

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("models", type=Path, nargs="+")
ap.add_argument("--shape", default="0.25,1.0", help="a,b: tau_c = a, s_c = b x the median edit norm")
ap.add_argument("--images", type=Path, help="default: $DELTAV2A_SHARED_DATA/images")
ap.add_argument("--write", type=Path, help="write recalibrated copies of the models here")
args = ap.parse_args()
shape = tuple(float(v) for v in args.shape.split(","))

cfg = model_config(args.models[0])
images = args.images or Path(os.environ.get("DELTAV2A_SHARED_DATA", "../shared/data")) / "images"
files = list_media(images, IMAGE_EXTENSIONS, cfg.data.image_limit, cfg.seed)
calib = photo_halves(files, cfg.seed)[0]  # the half `run` calibrates on
before, after, _ = image_pairs(cfg, calib, cfg.seed, False)
V = term_embeddings(load_encoder(cfg.encoders.image, "image"), load_vocabulary(cfg.vocabulary), "image")
med = float(np.median(np.linalg.norm(after - before, axis=1)))
print(f"{len(before)} calibration pairs, median edit norm {med:.4f}")
print(f"{'model':28s} target   stored T / tau_c / s_c (x median)   3-number fit        shape {shape}")
for d in args.models:
    meta = json.loads((d / "controller.json").read_text())
    cal = meta["calibration"]
    t = cal["target_top1"]
    free, fixed = calibrate(before, after, V, t), calibrate(before, after, V, t, shape=shape)
    fmt = lambda r: f"{r['temperature']:.4f} / {r['tau_c'] / med:.2f} / {r['s_c'] / med:.2f}"
    print(f"{d.name:28s} {t:.4f}   {fmt(cal):30s}   {fmt(free.as_dict()):18s}   {fmt(fixed.as_dict())}")
    if args.write:
        out = args.write / d.name
        shutil.copytree(d, out)
        cal.update({k: v for k, v in fixed.as_dict().items() if k in ("temperature", "tau_c", "s_c", "achieved_top1", "shape")})
        (out / "controller.json").write_text(json.dumps(meta, indent=1))
