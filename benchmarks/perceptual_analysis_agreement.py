"""Do perceptual-audio's analysis 2 (normalisation 3) descriptors mean what analysis 1's do?

Renders every built-in audio effect at three intensities on held-out clips (the test split
of the shared music, seed 0, which the normalisation-3 fit never saw) and compares, per
descriptor, the two analyses by Spearman rank correlation:

- `raw`: over all clips and renders, the raw descriptor values of the two analyses;
- `delta`: over all renders, the normalised change E(A') - E(A) each analysis reports
  (what the database, labels and models use).

A descriptor keeps its meaning when both are high. Writes
benchmarks/results/perceptual_analysis_agreement.json.

    .venv/bin/python benchmarks/perceptual_analysis_agreement.py [--data ../shared/data] [--clips 12]
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
    enc = {v: plugins.get("encoder", "perceptual-audio")(normalisation_version=v) for v in ("2", "3")}
    names = enc["2"].descriptor_names
    assert names == enc["3"].descriptor_names
    raw = {v: [] for v in enc}
    delta = {v: [] for v in enc}
    for i, f in enumerate(files):
        x, sr = load_audio(music / f)
        base = {v: (e.raw_descriptors([x], sr)[0], e.encode_audio([x], sr)[0]) for v, e in enc.items()}
        for v in enc:
            raw[v].append(base[v][0])
        for name in EFFECTS:
            cls = plugins.get("audio_effect", name)
            for t in INTENSITIES:
                chain = AudioChain(ChainSettings([EffectSetting(name, cls.params_at_intensity(t))]), tail="cut")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    y = chain(x, sr)
                for v, e in enc.items():
                    raw[v].append(e.raw_descriptors([y], sr)[0])
                    delta[v].append(e.encode_audio([y], sr)[0] - base[v][1])
    out: dict[str, dict] = {}
    for j, n in enumerate(names):
        r = {}
        for kind, d in (("raw", raw), ("delta", delta)):
            a, b = np.array(d["2"])[:, j], np.array(d["3"])[:, j]
            ok = ~(np.isnan(a) | np.isnan(b))
            r[kind] = round(float(spearmanr(a[ok], b[ok]).statistic), 4) if ok.sum() > 2 else None
        out[n] = r
        print(f"{n:24s} raw {r['raw']!s:>7s}  delta {r['delta']!s:>7s}")
    result = {"clips": len(files), "split": "test (seed 0)", "effects": EFFECTS,
              "intensities": list(INTENSITIES), "renders": len(delta["2"]),
              "encoders": {v: e.fingerprint() for v, e in enc.items()},
              "spearman": out,
              "min_raw": min(v["raw"] for v in out.values()),
              "min_delta": min(v["delta"] for v in out.values())}
    print(f"min raw {result['min_raw']}, min delta {result['min_delta']} over {result['renders']} renders")
    path = HERE / "results" / "perceptual_analysis_agreement.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
