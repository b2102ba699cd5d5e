"""Copy a model directory and refit only its image strength maps (decision 9.100).

The calibration's T, tau_c, s_c and the audio strength map stay the model's own; the pooled image
map ("image") and the per-effect maps with their prototype directions ("image_by_effect",
`inference.image_strength: by_direction`) are fitted on the calibration half of the photos that
`deltav2a run` used (core/experiment/run.py: list_media(images, image_limit, seed), shuffled with
random.Random(seed), the first half, sorted; then the first `inference.strength_fit_images`), with
the model's seed. The refitted pooled map is compared with the stored one: equal knots say the
photos and encoder are the ones the model was calibrated with.

usage: python benchmarks/strength_refit.py MODEL_DIR OUT_DIR --images DIR [--set KEY=VALUE ...]
  --set: `inference` keys written into the copy's config.yaml (e.g. image_strength=by_direction)
"""
import argparse
import random
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from deltav2a.analysis.sensitivity import list_media
from deltav2a.errors import DeltaV2AError
from deltav2a.experiment.stages import image_strength_maps, load_model
from deltav2a.media.io import IMAGE_EXTENSIONS
from deltav2a.model.weights import save_controller
from deltav2a.style.encoding import load_encoder

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("model", type=Path)
ap.add_argument("out", type=Path)
ap.add_argument("--images", type=Path, required=True)
ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
args = ap.parse_args()
try:
    changes = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in args.set)}
except ValueError:
    sys.exit("deltav2a: error: --set takes KEY=VALUE")
if args.out.resolve() == args.model.resolve():
    sys.exit("deltav2a: error: OUT_DIR must differ from MODEL_DIR")
try:
    cfg, loaded = load_model(args.model)
    files = list_media(args.images, IMAGE_EXTENSIONS, cfg.data.image_limit, cfg.seed)
    shuffled = list(files)
    random.Random(cfg.seed).shuffle(shuffled)
    calib = sorted(shuffled[: max(1, len(shuffled) // 2)])
    encoder = load_encoder(cfg.encoders.image, "image")
    cfg.inference.image_strength_tau = float(changes.get("image_strength_tau", cfg.inference.image_strength_tau))
    image = image_strength_maps(cfg, encoder, calib, cfg.seed)
except DeltaV2AError as exc:
    print(f"deltav2a: error: {exc}", file=sys.stderr)
    sys.exit(2)
meta = loaded.metadata
cal = dict(meta.calibration or {})
old = (cal.get("strength") or {}).get("image")
same = old is not None and np.allclose(old["knots_norm"], image["image"]["knots_norm"], rtol=0, atol=1e-9) \
    and np.allclose(old["knots_strength"], image["image"]["knots_strength"], rtol=0, atol=1e-9)
cal["strength"] = {**(cal.get("strength") or {}), **image}
if args.out.exists():
    shutil.rmtree(args.out)
shutil.copytree(args.model, args.out)
training = {**(meta.training or {}), "strength_refit": {"images": len(calib), "seed": cfg.seed,
                                                        "pooled_map_unchanged": bool(same)}}
save_controller(args.out / "controller", loaded.module, replace(meta, calibration=cal, training=training))
if changes:
    snap = yaml.safe_load((args.out / "config.yaml").read_text())
    snap.setdefault("inference", {}).update(changes)
    (args.out / "config.yaml").write_text(yaml.safe_dump(snap, sort_keys=False))
print(f"{args.out}: image strength refit on {min(len(calib), cfg.inference.strength_fit_images)} of "
      f"{len(calib)} calibration photos (seed {cfg.seed}); pooled map unchanged: {same}; "
      f"pooled fit {image['image_fit']}; by effect {image['image_by_effect_fit']}; set {changes}")
