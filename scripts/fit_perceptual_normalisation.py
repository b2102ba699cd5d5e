"""Derive the fixed normalisation constants of the perceptual encoders (run once per version).

The perceptual encoders turn every raw descriptor into (transform(raw) - centre) / scale.
The centres and scales are *fixed data*, shipped in
plugins/encoders/data/perceptual_normalisation.yaml and recorded (through the encoder
fingerprint) by every trained model. They are never refit at runtime: refitting on the
user's inputs would make the same image mean a different vector on every run. This script
is how the shipped numbers were made, so they can be reproduced and audited:

    centre = median of transform(raw) over the unedited corpus items
    scale  = max(half the 16th-84th percentile range, min_scale from the data file)

(the percentile range is a robust standard deviation: one odd item cannot move it). A
`min_scale` exists for descriptors whose spread in the development corpus is narrower than
in the world: every music clip of the corpus is Ogg Vorbis, so the spectral floor above the
codec's cut-off is the same for all of them, and a scale fitted to that would saturate on
any other source.

Usage (writes the file only with --write; bump --version whenever the numbers change, so
models trained with the old numbers refuse the new ones):

    .venv/bin/python scripts/fit_perceptual_normalisation.py --data ../shared/data --version 1 --write

Normalisation version 2 (issue 16) is version 1 plus the audio descriptor `gap_depth`; only
that descriptor was fitted, every other constant was kept as it was:

    .venv/bin/python scripts/fit_perceptual_normalisation.py --data ../shared/data --version 2 \
        --file plugins/encoders/data/perceptual_normalisation_v2.yaml --only gap_depth --write

Normalisation version 3 (issue 15) keeps version 2's descriptors and image constants; its
audio constants were refitted because audio analysis 2 computes them on a coarser time grid.
It was fitted on the training split only (seed 0, 8:1:1 by track, as `deltav2a database
splits` makes it), so no held-out clip shaped its constants:

    .venv/bin/python scripts/fit_perceptual_normalisation.py --data ../shared/data --version 3 \
        --file plugins/encoders/data/perceptual_normalisation_v3.yaml --modality audio --split train --write

Corpus: every image of DATA/images and every clip of DATA/music (their manifests list the
sources and licences), or with --split the clips of that split. Clips are read at their own
rate; the encoder resamples internally.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import os
import sys
from pathlib import Path

HEADER = """\
# Fixed normalisation of the perceptual encoders' descriptors (perceptual-image and
# perceptual-audio). Written by scripts/fit_perceptual_normalisation.py; do not edit the
# centres and scales by hand - re-run the script and bump normalisation_version, because the
# encoder fingerprint (recorded by trained models) is derived from this file.
#
# Per descriptor: y = transform(raw) (identity | log: ln(raw + offset) | logit with raw
# clipped to [offset, 1 - offset]); z = (y - centre) / scale; the coordinate is
# output_scale * squash * tanh(z / squash). Undefined descriptors (NaN) become 0.
# min_scale is a lower bound the fit applies to scale (see the script's docstring).
# Every descriptor is documented in docs/perceptual_encoders.md.
"""


def _format(value: float) -> float:
    return float(f"{value:.6g}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get(
        "DELTAV2A_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")))
    ap.add_argument("--version", required=True, help="normalisation_version to write")
    ap.add_argument("--write", action="store_true", help="write the data file (default: print only)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N items per modality")
    ap.add_argument("--file", type=Path, default=None,
                    help="normalisation file to refit (default: the version-1 file)")
    ap.add_argument("--only", default="", help="comma-separated descriptors to fit; the others "
                    "keep their constants (default: all)")
    ap.add_argument("--modality", choices=("image", "audio"), default=None,
                    help="fit only this modality; the other keeps its constants (default: both)")
    ap.add_argument("--split", choices=("train", "val", "test"), default=None,
                    help="fit the music clips of this split only (seed 0, 8:1:1 by track)")
    args = ap.parse_args(argv)

    import numpy as np
    import yaml
    from PIL import Image

    from deltav2a.media.io import load_audio
    from deltav2a_plugins.encoders.lexicon import NORMALISATION_FILE, load_normalisation
    from deltav2a_plugins.encoders.perceptual_audio import PerceptualAudioEncoder
    from deltav2a_plugins.encoders.perceptual_image import PerceptualImageEncoder

    target = args.file or NORMALISATION_FILE
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    raw_doc = yaml.safe_load(target.read_text(encoding="utf-8"))

    def rows(folder: str) -> list[str]:
        with open(args.data / folder / "manifest.csv", newline="", encoding="utf-8") as fh:
            files = [r["file"] for r in csv.DictReader(fh)]
        return files[: args.limit] if args.limit else files

    image_files = rows("images")
    music_files = rows("music")
    if args.split:
        from deltav2a.database.splits import make_splits

        splits = make_splits(args.data / "music", args.data / "music" / "manifest.csv", seed=0)
        chosen = {c.file for c in splits.clips if c.split == args.split}
        music_files = [f for f in music_files if f in chosen]
    img_enc = PerceptualImageEncoder(normalisation=str(target))
    aud_enc = PerceptualAudioEncoder(normalisation=str(target))

    fit_images = (not only or bool(only & set(img_enc.descriptor_names))) and args.modality != "audio"
    if args.modality == "image":
        music_files = []
    print(f"images: {len(image_files) if fit_images else 0}", file=sys.stderr)
    img_raw = (np.stack([img_enc.raw_descriptors([Image.open(args.data / "images" / f).convert("RGB")])[0]
                         for f in image_files]) if fit_images else None)
    print(f"music clips: {len(music_files)}", file=sys.stderr)
    aud_raw = []
    for f in music_files:
        x, sr = load_audio(args.data / "music" / f)
        aud_raw.append(aud_enc.raw_descriptors([x], sr)[0])
    aud_raw = np.stack(aud_raw) if aud_raw else None

    for modality, enc, raw in (("image", img_enc, img_raw), ("audio", aud_enc, aud_raw)):
        if raw is None:
            continue
        table = load_normalisation(target, modality, enc.descriptor_names)
        t = table.transformed(raw)
        entries = raw_doc[modality]["descriptors"]
        for j, entry in enumerate(entries):
            if only and entry["name"] not in only:
                continue
            col = t[:, j][~np.isnan(t[:, j])]
            if col.size < 10:
                raise SystemExit(f"{entry['name']}: only {col.size} defined values, cannot fit")
            lo, hi = np.percentile(col, [16, 84])
            scale = max((hi - lo) / 2.0, float(entry.get("min_scale", 0.0)), 1e-6)
            entry["centre"] = _format(float(np.median(col)))
            entry["scale"] = _format(scale)
            print(f"{modality:5s} {entry['name']:28s} centre {entry['centre']:>11.5g} scale "
                  f"{entry['scale']:>9.4g} (fitted {(hi - lo) / 2:.4g}, undefined {np.isnan(t[:, j]).sum()})",
                  file=sys.stderr)

    raw_doc["normalisation_version"] = str(args.version)
    parts = ([f"{len(image_files)} images"] if fit_images else []) + (
        [f"{len(music_files)} music clips" + (f" (the {args.split} split, seed 0)" if args.split else "")]
        if music_files else [])
    fitted = f"{' and '.join(parts)} of the DeltaV2A development corpus (shared/data), {_dt.date.today().isoformat()}"
    base = str(raw_doc.get("fitted_on", "")).split("; ")[0]  # the full fit, before any --only refit
    if only:
        raw_doc["fitted_on"] = f"{base}; {', '.join(sorted(only))}: {fitted}"
    elif args.modality:
        raw_doc["fitted_on"] = f"{base}; {args.modality} refitted on {fitted}"
    else:
        raw_doc["fitted_on"] = fitted
    text = HEADER + yaml.safe_dump(raw_doc, sort_keys=False, width=100, allow_unicode=True)
    if args.write:
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}", file=sys.stderr)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
