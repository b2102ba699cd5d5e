"""Two lexicons on the same cached media, with every audio effect and with the default eight.

Issue 16's acceptance for a lexicon change (docs/vocab_audit.md, "Fifth pass"): the cache is
the `--cache` npz of `benchmarks/vocab_audit_heldout.py` (media vectors only: they do not
depend on the lexicon, so both lexicons read exactly the same deltas). For each lexicon and
for the cached effect set and its default-eight subset (the two-effect chains restricted to
those eight), it reports criterion 1 (most audio effects sharing one top-2 term, mass >= the
audit's floor), criterion 2 (image top-2 terms below 0.3 on the audio side, single effects and
chains), the single-effect oracle on 30 pairs (seed 0) and 1000 pairs (seed 1), per image
effect, with chains, and each audio effect's top-3 reading.

    .venv/bin/python benchmarks/vocab_audit_lexicon_compare.py CACHE.npz \\
        --before 4 --after /tmp/candidate.yaml -o compare.json

A lexicon is a shipped version ("4") or a YAML path; both read normalisation 3 media.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

#: the default config's audio effects (configs/default.yaml, issue 16's eight)
DEFAULT_EIGHT = ("lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "stutter", "playback_rate")


def load_cache(path: Path) -> list:
    """The image, audio and two-effect-chain embeddings written by vocab_audit_heldout.py."""
    from deltav2a.experiment import vocab_audit as va
    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    return [va.EffectEmbeddings(m["modality"], m["encoder"], m["effects"], m["intensities"],
                                z[f"{k}_before"], z[f"{k}_after"]) for k, m in zip(("img", "aud", "pairs"), meta)]


def term_vectors(lexicon: str, normalisation: str, vocabulary: str = "v3"):
    """The vocabulary and its image/audio term embeddings under `lexicon` (version or path)."""
    from deltav2a.style.encoding import load_encoder, term_embeddings
    from deltav2a.style.vocab import load_vocabulary
    voc = load_vocabulary(vocabulary)
    opts = {"lexicon": lexicon} if lexicon.endswith((".yaml", ".yml")) else {"lexicon_version": lexicon}
    li = load_encoder("perceptual-image", "image", **opts)
    la = load_encoder("perceptual-audio", "audio", **opts, normalisation_version=normalisation)
    return voc, term_embeddings(li, voc, "image", use_cache=False), term_embeddings(la, voc, "audio", use_cache=False), la


def base_effect(row: str) -> str:
    """The effect of an audit row: `highshelf:down` is `highshelf`'s other direction."""
    return row.split(":")[0]


def subset(emb, keep):
    """The rows of `emb` whose effect name passes `keep`."""
    idx = [i for i, e in enumerate(emb.effects) if keep(e)]
    return replace(emb, effects=[emb.effects[i] for i in idx], after=emb.after[idx])


def per_image_effect(oracle: dict) -> dict:
    out: dict[str, list[float]] = {}
    for p in oracle["pairs"]:
        out.setdefault(p["image_effect"], []).append(p["centred_cosine"])
    return {k: round(float(np.mean(v)), 4) for k, v in out.items()}


def measure(img, aud, pairs, Vi, Va, terms, T: float) -> dict:
    """Issue 16's criteria and the oracle for one lexicon and one effect set."""
    from deltav2a.experiment import vocab_audit as va
    r = va.audit_from_embeddings(img, aud, Vi, Va, terms, T, n_pairs=30, seed=0, pairs=pairs)
    big = va.oracle_agreement(img.labels(Vi, T), aud.labels(Va, T), img, aud, 1000, 1)
    both = replace(aud, effects=aud.effects + pairs.effects, after=np.concatenate([aud.after, pairs.after], 0))
    chains = va.oracle_agreement(img.labels(Vi, T), both.labels(Va, T), img, both, 1000, 1)
    rows = {k: v for k, v in r["matrix"]["audio"].items() if not k.endswith(va.DOWN)}
    shared = va.readings(rows, 2, r["min_mass"])
    return {
        "audio_effects": list(rows),
        "criterion_1_most_effects_per_term": max(len(v) for v in shared.values()),
        "shared_top2_terms": {t: e for t, e in shared.items() if len(e) > 1},
        "criterion_2_unreachable": r["unreachable_on_audio"],
        "reach_single": {t: round(r["reach"]["audio"][t]["max_mass"], 3) for t in r["image_top_terms"]},
        "reach_with_chains": {t: round(r["reach"]["audio_pairs"][t]["max_mass"], 3) for t in r["image_top_terms"]},
        "oracle_30": {k: round(r["oracle"][k], 4) for k in ("mean_cosine", "top1_agreement")},
        "oracle_1000": {k: round(big[k], 4) for k in ("mean_cosine", "top1_agreement")},
        "oracle_1000_per_image_effect": per_image_effect(big),
        "oracle_1000_with_chains": round(chains["mean_cosine"], 4),
        "audio_readings": {k: [(t, round(m, 3)) for t, m in v["top"][:3]] for k, v in r["matrix"]["audio"].items()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache", type=Path, help="npz from vocab_audit_heldout.py --cache")
    ap.add_argument("--before", default="4", help="lexicon version or YAML path (default 4)")
    ap.add_argument("--after", required=True, help="lexicon version or YAML path")
    ap.add_argument("--before-vocab", default="v3", help="vocabulary read by --before (default v3)")
    ap.add_argument("--after-vocab", default="v3", help="vocabulary read by --after (default v3; decision 16.84)")
    ap.add_argument("--normalisation", default="3", help="normalisation version of the cached media (default 3)")
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    if not args.cache.is_file():
        print(f"error: no cache file {args.cache}", file=sys.stderr)
        return 2
    for lex in (args.before, args.after):
        if lex.endswith((".yaml", ".yml")) and not Path(lex).is_file():
            print(f"error: no lexicon file {lex}", file=sys.stderr)
            return 2
    from deltav2a.errors import DeltaV2AError
    try:
        img, aud, pairs = load_cache(args.cache)
        out: dict = {"cache": str(args.cache), "temperature": args.temperature}
        eight = lambda e: all(base_effect(x) in DEFAULT_EIGHT for x in e.split("+"))
        for name, lex, vocab in (("before", args.before, args.before_vocab), ("after", args.after, args.after_vocab)):
            voc, Vi, Va, enc = term_vectors(lex, args.normalisation, vocab)
            out[name] = {"lexicon": lex, "vocabulary": vocab, "audio_fingerprint": enc.fingerprint()}
            for tag, a, p in (("all", aud, pairs), ("default_eight", subset(aud, eight), subset(pairs, eight))):
                out[name][tag] = measure(img, a, p, Vi, Va, voc.terms, args.temperature)
    except (DeltaV2AError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n")
    for name in ("before", "after"):
        for tag in ("all", "default_eight"):
            m = out[name][tag]
            print(f"{name:6s} {tag:13s} c1={m['criterion_1_most_effects_per_term']} "
                  f"unreachable={m['criterion_2_unreachable']} oracle30={m['oracle_30']['mean_cosine']:.3f} "
                  f"oracle1000={m['oracle_1000']['mean_cosine']:.3f} chains={m['oracle_1000_with_chains']:.3f} "
                  f"shared={m['shared_top2_terms']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
