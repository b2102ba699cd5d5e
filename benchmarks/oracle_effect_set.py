"""Which audio effects a default set needs for issue 16's oracle: greedy forward selection.

Decision 16.71 (docs/decisions.md): starting from the default eight, add the audited effect
whose addition raises the single-effect oracle most (1000 pairs, seed 1, the dev half's cache),
while the gain is at least `--min-gain`; then read the chosen set once on the held-out cache
(30 pairs, seed 0: criterion 3; 1000 pairs, seed 1). An effect's rows include its `:down`
direction. The caches are the `--cache` npz files of `benchmarks/vocab_audit_heldout.py`, read
with lexicon v4 at the cached normalisation (as `vocab_audit_lexicon_compare.py` does).

    .venv/bin/python benchmarks/oracle_effect_set.py --dev DEV.npz --heldout HELDOUT.npz \\
        --normalisation 4 -o benchmarks/results/vocab_audit_effects/all14/effect_set.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vocab_audit_lexicon_compare import (DEFAULT_EIGHT, base_effect, load_cache, per_image_effect,  # noqa: E402
                                         subset, term_vectors)


def oracle(img, aud, Vi, Va, effects, n_pairs: int, seed: int, T: float) -> dict:
    """The single-effect oracle restricted to the rows of `effects` (each with its `:down`)."""
    from deltav2a.experiment import vocab_audit as va
    a = subset(aud, lambda e: base_effect(e) in effects)
    r = va.oracle_agreement(img.labels(Vi, T), a.labels(Va, T), img, a, n_pairs, seed)
    return {"mean_cosine": round(float(r["mean_cosine"]), 4), "top1_agreement": round(float(r["top1_agreement"]), 4),
            "per_image_effect": per_image_effect(r),
            "best_audio_effect_per_image_effect": r["best_audio_effect_per_image_effect"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, required=True, help="dev-half cache (selection)")
    ap.add_argument("--heldout", type=Path, required=True, help="held-out cache (read once)")
    ap.add_argument("--lexicon", default="4")
    ap.add_argument("--normalisation", default="4")
    ap.add_argument("--min-gain", type=float, default=0.01)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    for p in (args.dev, args.heldout):
        if not p.is_file():
            print(f"error: no cache file {p}", file=sys.stderr)
            return 2
    voc, Vi, Va, enc = term_vectors(args.lexicon, args.normalisation)
    T = args.temperature
    img, aud, _ = load_cache(args.dev)
    pool = sorted({base_effect(e) for e in aud.effects} - set(DEFAULT_EIGHT))
    chosen = list(DEFAULT_EIGHT)
    current = oracle(img, aud, Vi, Va, chosen, 1000, 1, T)["mean_cosine"]
    steps = [{"set": list(chosen), "dev_oracle_1000": current}]
    while pool:
        tried = {e: oracle(img, aud, Vi, Va, chosen + [e], 1000, 1, T)["mean_cosine"] for e in pool}
        best = max(tried, key=lambda e: (tried[e], e))
        steps[-1]["next_tried"] = tried
        if tried[best] - current < args.min_gain:
            break
        chosen.append(best)
        pool.remove(best)
        current = tried[best]
        steps.append({"set": list(chosen), "added": best, "dev_oracle_1000": current})
        print(f"+ {best}: dev oracle 1000 = {current:.4f}", flush=True)
    himg, haud, _ = load_cache(args.heldout)
    out = {"lexicon": args.lexicon, "audio_fingerprint": enc.fingerprint(), "min_gain": args.min_gain,
           "dev_cache": str(args.dev), "heldout_cache": str(args.heldout), "steps": steps, "chosen": chosen,
           "heldout_oracle_30": oracle(himg, haud, Vi, Va, chosen, 30, 0, T),
           "heldout_oracle_1000": oracle(himg, haud, Vi, Va, chosen, 1000, 1, T)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n")
    print(f"chosen {chosen}: held-out oracle 30 = {out['heldout_oracle_30']['mean_cosine']:.4f}, "
          f"1000 = {out['heldout_oracle_1000']['mean_cosine']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
