"""Issue 16 acceptance: lexicon v1 vs v2 on held-out media (docs/vocab_audit.md).

Protocol, fixed before any lexicon work:
  * photos of DATA/images sorted by name: even positions = dev half, odd = held-out half;
    16 photos drawn from the chosen half with numpy default_rng(0);
  * music: `deltav2a splits --seed 0` with DATA/music/manifest.csv; dev = 16 train clips,
    held-out = the test clips (all 18), drawn with default_rng(1);
  * intensities 0.35/0.6/0.9, T = database.temperature (0.1), v3, default perceptual encoders;
    all two-effect chains for reach; oracle on 30 pairs (seed 0) and 1000 pairs (seed 1).

The media vectors do not depend on the lexicon, so the media are embedded once and read
against both lexicons' term embeddings.

    .venv/bin/python benchmarks/vocab_audit_heldout.py --data ../shared/data --half heldout \
        -o benchmarks/results/vocab_audit
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from deltav2a.experiment import vocab_audit as va
from deltav2a.config import load_config
from deltav2a.style.encoding import load_encoder, term_embeddings
from deltav2a.media.io import load_image
from deltav2a.style.pairs import load_clip
from deltav2a.database.splits import load_splits, make_splits, write_splits
from deltav2a.style.vocab import load_vocabulary


def media(data: Path, half: str, n_images: int, n_clips: int) -> tuple[list[Path], list[Path]]:
    photos = sorted((data / "images").glob("*.jpg"))
    photos = photos[0::2] if half == "dev" else photos[1::2]
    photos = [photos[i] for i in sorted(np.random.default_rng(0).choice(len(photos), n_images, replace=False))]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None)
        s = make_splits(data / "music", data / "music" / "manifest.csv", 0, cfg.splits.model_dump())
        write_splits(s, Path(tmp) / "splits.json")
        sp = load_splits(Path(tmp) / "splits.json")
        clips = [sp.path_of(c) for c in sp.clips_in("train" if half == "dev" else "test")]
    pick = np.random.default_rng(1).choice(len(clips), min(n_clips, len(clips)), replace=False)
    return photos, [clips[i] for i in sorted(pick)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--half", choices=("dev", "heldout"), default="heldout")
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    cfg = load_config(None)
    photos, clips = media(args.data, args.half, 16, 16 if args.half == "dev" else 18)
    ienc = load_encoder(cfg.encoders.image, "image")
    aenc = load_encoder(cfg.encoders.audio, "audio")
    rows = va.audio_effect_rows(cfg.effects.audio)
    xs = va.DEFAULT_INTENSITIES
    img = va.embed_image_effects(ienc, [load_image(p) for p in photos], cfg.effects.image, xs, seed=0)
    audio = [load_clip(p, cfg) for p in clips]
    aud = va.embed_audio_effects(aenc, audio, cfg.audio.sample_rate, rows, xs, chain_order=cfg.effects.chain_order)
    pairs = va.embed_audio_effects(aenc, audio, cfg.audio.sample_rate, va.pair_rows(rows), xs,
                                   chain_order=cfg.effects.chain_order)
    voc = load_vocabulary("v3")
    T = cfg.database.temperature
    args.output.mkdir(parents=True, exist_ok=True)
    summary = {}
    for version in ("1", "2"):
        lex_i = load_encoder("perceptual-image", "image", lexicon_version=version)
        lex_a = load_encoder("perceptual-audio", "audio", lexicon_version=version)
        Vi, Va = term_embeddings(lex_i, voc, "image"), term_embeddings(lex_a, voc, "audio")
        r = va.audit_from_embeddings(img, aud, Vi, Va, voc.terms, T, n_pairs=30, seed=0, pairs=pairs)
        # same media vectors, this lexicon's text side: name the encoders that made V
        r["encoders"] = {m: {"name": e.name, "fingerprint": e.fingerprint()} for m, e in
                         (("image", lex_i), ("audio", lex_a))}
        big = va.oracle_agreement(img.labels(Vi, T), aud.labels(Va, T), img, aud, 1000, 1)
        seven = {k: v for k, v in r["matrix"]["audio"].items() if not k.endswith(va.DOWN)}
        r["media"] = {"images": [p.name for p in photos], "audio": [p.name for p in clips], "half": args.half}
        r["oracle_1000"] = {k: big[k] for k in ("mean_cosine", "top1_agreement", "n_pairs")}
        r["most_of_7_effects_per_term"] = max(len(v) for v in va.readings(seven, 2, r["min_mass"]).values())
        r["most_of_7_effects_per_term_no_floor"] = max(len(v) for v in va.readings(seven, 2, 0.0).values())
        out = args.output / f"{args.half}_lexicon_v{version}"
        va.write_outputs(r, out)
        summary[version] = {"unreachable_on_audio": r["unreachable_on_audio"], "sinks": r["sinks"]["audio"],
                            "most_of_7_effects_per_term": r["most_of_7_effects_per_term"],
                            "most_of_7_effects_per_term_no_floor": r["most_of_7_effects_per_term_no_floor"],
                            "oracle_30": {k: r["oracle"][k] for k in ("mean_cosine", "top1_agreement")},
                            "oracle_1000": r["oracle_1000"]}
    print(json.dumps(summary, indent=2))
    (args.output / f"{args.half}_summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
