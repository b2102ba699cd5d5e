"""Copy a model directory and store per-effect recognisable floors in its calibration
(`calibration.match_floors`, read by `inference.match_floor: auto`; decision 9.90).

Everything else stays the model's own (controller, thresholds, strength maps, inference settings;
`--auto` also sets `inference.match_floor: auto` in the copy's config.yaml). The floors come from the
training database the model was fitted on and the splits that name its clips
(`deltav2a.model.strength.fit_match_floors`): per effect, the least distance from bypass at which a
single-effect edit's audio label reads as that effect's strong records do.

usage: python benchmarks/fit_match_floors.py MODEL_DIR TRAIN_DB SPLITS_JSON OUT_DIR
           [--probes 8] [--fraction 0.8] [--auto] [--report OUT_JSON]
(clips: $DELTAV2A_SHARED_DATA/music unless --audio-root)
"""
import argparse
import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import yaml

from deltav2a.database.splits import load_splits
from deltav2a.errors import DeltaV2AError
from deltav2a.experiment.stages import load_db, load_model
from deltav2a.model.strength import FLOOR_FRACTION, fit_match_floors
from deltav2a.model.weights import read_metadata, save_controller
from deltav2a.style.encoding import load_encoder, term_embeddings
from deltav2a.style.vocab import load_vocabulary

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("model", type=Path)
ap.add_argument("train_db", type=Path)
ap.add_argument("splits", type=Path)
ap.add_argument("out", type=Path)
ap.add_argument("--probes", type=int, default=8, help="single-effect records probed per effect")
ap.add_argument("--fraction", type=float, default=FLOOR_FRACTION,
                help="share of the strong edits' agreement that counts as recognisable")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--auto", action="store_true", help="also set inference.match_floor: auto in the copy")
ap.add_argument("--report", type=Path, help="write the per-effect curves here (JSON)")
ap.add_argument("--audio-root", type=Path)
args = ap.parse_args()
try:
    if args.out.resolve() == args.model.resolve():
        raise DeltaV2AError("OUT_DIR must differ from MODEL_DIR (the model is copied, never edited)")
    if args.probes < 1 or not 0 < args.fraction <= 1:
        raise DeltaV2AError("--probes must be >= 1 and --fraction in (0, 1]")
    cfg, loaded = load_model(args.model)
    db = load_db(cfg, args.train_db)
    root = args.audio_root or Path(os.environ.get("DELTAV2A_SHARED_DATA", "../shared/data")) / "music"
    splits = load_splits(args.splits, root)
    encoder = load_encoder(cfg.encoders.audio, "audio")
    V = term_embeddings(encoder, load_vocabulary(cfg.vocabulary), "audio")
    floors, report = fit_match_floors(cfg, db, loaded.layout, encoder, V,
                                      lambda cid: splits.audio_root / cid, probes=args.probes,
                                      seed=args.seed, fraction=args.fraction, progress=True)
except DeltaV2AError as exc:
    print(f"deltav2a: error: {exc}", file=sys.stderr)
    sys.exit(2)
meta = read_metadata(args.model / "controller")
if args.out.exists():
    shutil.rmtree(args.out)
shutil.copytree(args.model, args.out)
calibration = {**(meta.calibration or {}), "match_floors": floors}
save_controller(args.out / "controller", loaded.module, replace(meta, calibration=calibration))
if args.auto:
    snap = yaml.safe_load((args.out / "config.yaml").read_text())
    snap.setdefault("inference", {})["match_floor"] = "auto"
    (args.out / "config.yaml").write_text(yaml.safe_dump(snap, sort_keys=False))
if args.report:
    args.report.write_text(json.dumps(report, indent=1))
for e, r in report["effects"].items():
    curve = " ".join(f"{v:.2f}" for v in r.get("agreement", []))
    print(f"{e:14s} floor {r['floor']:.3f}  plateau {r.get('plateau', float('nan')):.3f}  "
          f"reached {r['reached']}  curve {curve}")
print(f"{args.out}: match_floors {json.dumps({k: round(v, 3) for k, v in floors.items()})}")
