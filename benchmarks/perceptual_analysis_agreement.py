"""Do perceptual-audio's analysis 2 (normalisation 3) descriptors mean what analysis 1's do?

Renders every built-in audio effect at three intensities on held-out clips (the test split
of the shared music, seed 0, which the normalisation-3 fit never saw) and compares, per
descriptor, the two analyses by Spearman rank correlation:

- `raw`: over all clips and renders, the raw descriptor values of the two analyses;
- `delta`: over all renders, the normalised change E(A') - E(A) each analysis reports
  (what the database, labels and models use);
- `mean_abs_z`: the mean |difference| of the normalised coordinates (clips and renders);
- overall: the cosine between the two deltas per render, and how often the top-1 term of
  vocabulary v3 (argmax of dz . V^T with the encoder's lexicon, the label's mode) agrees.

A descriptor keeps its meaning when both are high. Writes
benchmarks/results/perceptual_analysis_agreement.json.

    .venv/bin/python benchmarks/perceptual_analysis_agreement.py [--data ../shared/data] [--clips 12]

`--versions 3 4` compares analysis 2 (normalisation 3) with analysis 3 (normalisation 4,
decision 15.51) the same way and writes perceptual_analysis_agreement_3_4.json.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
EFFECTS = ["lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "playback_rate", "stutter"]
INTENSITIES = (0.25, 0.5, 0.9)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("DELTAV2A_SHARED_DATA", HERE.parents[1] / "shared" / "data")))
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--versions", nargs=2, default=["2", "3"], metavar=("A", "B"),
                    help="the two normalisation versions compared (default: 2 3)")
    args = ap.parse_args(argv)

    import numpy as np
    from scipy.stats import spearmanr

    from deltav2a.api import registry as plugins
    from deltav2a.database.splits import make_splits
    from deltav2a.media.io import load_audio
    from deltav2a.render.chain import AudioChain, ChainSettings, EffectSetting

    music = args.data / "music"
    splits = make_splits(music, music / "manifest.csv", seed=0)
    files = [c.file for c in splits.clips if c.split == "test"][: args.clips]
    va, vb = (str(v) for v in args.versions)
    enc = {v: plugins.get("encoder", "perceptual-audio")(normalisation_version=v) for v in (va, vb)}
    names = enc[va].descriptor_names
    from deltav2a.style.vocab import load_vocabulary

    terms = list(load_vocabulary("v3").terms)
    V = {v: e.encode_text(terms) for v, e in enc.items()}
    zs = {v: [] for v in enc}
    if names != enc[vb].descriptor_names:
        raise SystemExit(f"normalisations {va} and {vb} describe different descriptors")
    raw = {v: [] for v in enc}
    delta = {v: [] for v in enc}
    for i, f in enumerate(files):
        x, sr = load_audio(music / f)
        base = {v: (e.raw_descriptors([x], sr)[0], e.encode_audio([x], sr)[0]) for v, e in enc.items()}
        for v in enc:
            raw[v].append(base[v][0])
            zs[v].append(base[v][1])
        for name in EFFECTS:
            cls = plugins.get("audio_effect", name)
            for t in INTENSITIES:
                chain = AudioChain(ChainSettings([EffectSetting(name, cls.params_at_intensity(t))]), tail="cut")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    y = chain(x, sr)
                for v, e in enc.items():
                    raw[v].append(e.raw_descriptors([y], sr)[0])
                    z = e.encode_audio([y], sr)[0]
                    zs[v].append(z)
                    delta[v].append(z - base[v][1])
    out: dict[str, dict] = {}
    for j, n in enumerate(names):
        r = {}
        for kind, d in (("raw", raw), ("delta", delta)):
            a, b = np.array(d[va])[:, j], np.array(d[vb])[:, j]
            ok = ~(np.isnan(a) | np.isnan(b))
            r[kind] = round(float(spearmanr(a[ok], b[ok]).statistic), 4) if ok.sum() > 2 else None
        r["mean_abs_z"] = round(float(np.mean(np.abs(np.array(zs[va])[:, j] - np.array(zs[vb])[:, j]))), 4)
        out[n] = r
        print(f"{n:24s} raw {r['raw']!s:>7s}  delta {r['delta']!s:>7s}")
    da, db = np.array(delta[va], dtype=np.float64), np.array(delta[vb], dtype=np.float64)
    na, nb = np.linalg.norm(da, axis=1), np.linalg.norm(db, axis=1)
    ok = (na > 1e-9) & (nb > 1e-9)
    cos = (da[ok] * db[ok]).sum(axis=1) / (na[ok] * nb[ok])
    top_a = (da[ok] @ V[va].T).argmax(axis=1)
    top_b = (db[ok] @ V[vb].T).argmax(axis=1)
    print(f"delta cosine median {np.median(cos):.4f} (min {cos.min():.4f}); top-1 term agreement "
          f"{np.mean(top_a == top_b):.3f} over {ok.sum()} renders")
    result = {"clips": len(files), "split": "test (seed 0)", "effects": EFFECTS,
              "intensities": list(INTENSITIES), "renders": len(delta[va]),
              "encoders": {v: e.fingerprint() for v, e in enc.items()},
              "spearman": out,
              "min_raw": min(v["raw"] for v in out.values()),
              "min_delta": min(v["delta"] for v in out.values()),
              "delta_cosine_median": round(float(np.median(cos)), 4),
              "delta_cosine_min": round(float(cos.min()), 4),
              "delta_cosine_p05": round(float(np.percentile(cos, 5)), 4),
              "top1_term_agreement": round(float(np.mean(top_a == top_b)), 4),
              "vocabulary": "v3", "max_mean_abs_z": max(v["mean_abs_z"] for v in out.values())}
    print(f"min raw {result['min_raw']}, min delta {result['min_delta']} over {result['renders']} renders")
    suffix = "" if (va, vb) == ("2", "3") else f"_{va}_{vb}"
    path = HERE / "results" / f"perceptual_analysis_agreement{suffix}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
