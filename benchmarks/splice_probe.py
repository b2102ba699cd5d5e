"""Decision 16.83: does a ratio of short- to long-lag spectral change mean "re-spliced"?

16.70 found that the `scatter` (a time-domain spread: grains read from random nearby moments)
reads neither *fragmented* nor *granular*, because the perceptual audio encoder has no
descriptor for a sound that jumps every few tens of milliseconds. 16.83's candidate,
`splice_ratio`, is computed here outside the encoder, on analysis 3's grid (2048-sample
frames, 1024 hop at 44.1 kHz, the 24 log onset bands):

    median over active frames of mean_bands |L[t + 2] - L[t]|
    --------------------------------------------------------   (46 ms against 255 ms)
    median over active frames of mean_bands |L[t + 11] - L[t]|

and reported as each effect's mean change of ln(ratio + 0.01), in sd of the 16 dev
originals, at 0.35/0.6/0.9, with 16.83's rule.

    .venv/bin/python benchmarks/splice_probe.py --data ../shared/data -o /tmp/splice.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

SHORT, LONG, OFFSET = 2, 11, 0.01
#: the 14 built-ins in 16.70's chain order
EFFECTS = ("lowpass", "lpf", "bitcrush", "reverb", "highpass", "highshelf", "distortion", "saturation",
           "delay", "narrowband", "smear", "scatter", "stutter", "playback_rate")
EXEMPT = ("scatter", "stutter", "bitcrush")


def splice_ratio(audio: np.ndarray, sr: int) -> float:
    """ln(ratio + 0.01) of a (channels, samples) clip at `sr` (44.1 kHz here)."""
    from numpy.lib.stride_tricks import sliding_window_view

    from deltav2a_plugins.encoders import perceptual_audio as pa

    assert sr == pa.SR
    mono, _ = pa.downmix_width_2(np.ascontiguousarray(audio, dtype=np.float32))
    c = pa._grid_3(pa.NFFT_3, pa.HOP_3)
    frames = sliding_window_view(mono.astype(np.float32), pa.NFFT_3)[:: pa.HOP_3] * c["win_scaled"]
    pb = np.abs(np.fft.rfft(frames, axis=1)[:, : len(c["freqs"])]) ** 2
    bands = np.add.reduceat(pb, c["band_edges"], axis=1)
    energy = bands.sum(axis=1) + pb[:, 0]
    top = float(energy.max())
    logb = np.log(bands + top * 1e-8)
    active = energy > top * pa.FRAME_RANGE

    def change(lag: int) -> float:
        ok = active[:-lag] & active[lag:]
        return float(np.median(np.abs(logb[lag:] - logb[:-lag]).mean(axis=1)[ok]))

    return float(np.log(change(SHORT) / change(LONG) + OFFSET))


def main() -> None:
    from vocab_audit_heldout import dev_prototype, render_row

    from deltav2a.experiment import vocab_audit as va

    args, cfg, clips, audio = dev_prototype(__doc__)
    sr = cfg.audio.sample_rate
    base = np.array([splice_ratio(a, sr) for a in audio])
    sd = float(base.std())
    res: dict = {"clips": [p.name for p in clips], "originals": [round(float(b), 4) for b in base],
                 "raw_ratio_originals_median": round(float(np.median(np.exp(base) - OFFSET)), 4),
                 "sd_originals": sd, "effects": {}}
    for row in va.audio_effect_rows(list(EFFECTS)):
        per = {}
        for x in va.DEFAULT_INTENSITIES:
            after = np.array([splice_ratio(y, sr) for y in render_row(row, x, audio, sr, list(EFFECTS))])
            per[f"{x:g}"] = round(float(np.mean(after - base)) / sd, 3)
        res["effects"][row] = per
        print(row, json.dumps(per), flush=True)
    ok = all(np.isfinite(base))
    for x in va.DEFAULT_INTENSITIES:
        k = f"{x:g}"
        s = res["effects"]["scatter"][k]
        others = [abs(v[k]) for r, v in res["effects"].items() if r.split(":")[0] not in EXEMPT]
        ok &= s >= 1.0 and all(s >= 2 * o for o in others)
    res["rule_16_83_passed"] = bool(ok)
    print("sd", sd, "rule passed:", ok)
    args.output.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
