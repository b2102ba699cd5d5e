"""Decision 16.67: does a floor measured below the clip's own band edge mean "noise added"?

16.51 found that `quiet_floor` (normalisation 5: the spectral floor in 2-20 kHz against the
frame's level, quietest vs loudest quarter of the frames) rises for a speed-up two thirds as
much as for a bit reduction: a speed-up of a band-limited (Ogg) clip fills the empty top band
with the recording's own hiss. 16.54 proposed cutting the floor band at the clip's own edge,
so that moving the content up adds nothing below it while quantisation noise still fills it.

This prototype computes, on the dev half's 16 train clips (the media of
`vocab_audit_heldout.py --half dev`) and their renders at 0.35/0.6/0.9:

* `full`: quiet_floor on [2 kHz, 20 kHz] (the encoder's `_quiet_floor` on frames taken here
  rather than in its fused FFT pass, checked against its normalisation-5 `quiet_floor` on the
  originals);
* `inband`: the same on [2 kHz, f_e], f_e = the highest bin whose long-term power is within
  60 dB of the long-term peak (at least 4 kHz);

and reports each effect's mean change in sd of the 16 originals, with 16.67's rule.

    .venv/bin/python benchmarks/inband_floor.py --data ../shared/data -o /tmp/inband.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

FULL_TO_HZ, MIN_EDGE_HZ, EDGE_DB = 20000.0, 4000.0, 60.0
ROWS = ("bitcrush", "playback_rate", "playback_rate:down", "reverb", "delay", "smear",
        "distortion", "lowpass", "highpass", "stutter", "narrowband")
RULE_OTHERS = ("playback_rate", "reverb", "delay", "smear")


def floors(audio: np.ndarray, sr: int) -> dict[str, float]:
    """`full` and `inband` floors (dB) of a (channels, samples) clip at `sr`, and the edge:
    analysis 3's grid, active frames and floor frames, and the encoder's own `_quiet_floor`
    on the 5th-percentile bin power of each band."""
    from numpy.lib.stride_tricks import sliding_window_view

    from deltav2a_plugins.encoders import perceptual_audio as pa

    nfft, hop, step = pa.NFFT_3, pa.HOP_3, pa.FLOOR_FRAME_STEP_3
    m = np.asarray(audio, dtype=np.float64).mean(axis=0)
    if len(m) < nfft:
        m = np.concatenate([m, np.zeros(nfft - len(m))])
    frames = sliding_window_view(m, nfft)[::hop] * np.hanning(nfft)
    p = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    p += p.max(axis=1, keepdims=True) * 1e-12 + 1e-30   # quiet_floor's: 120 dB under the frame's peak
    f = np.fft.rfftfreq(nfft, 1.0 / sr)
    lt = p.mean(axis=0)
    edge = float(f[np.flatnonzero(lt >= lt.max() * 10 ** (-EDGE_DB / 10))[-1]])
    edge = max(edge, MIN_EDGE_HZ)
    energy = p.sum(axis=1)
    active = energy > energy.max() * pa.FRAME_RANGE       # quiet_floor's frames: the active ones
    rows = p[::step][active[::step]]
    level = rows.sum(axis=1)
    out = {"edge_hz": edge}
    for name, hi_hz in (("full", FULL_TO_HZ), ("inband", edge)):
        band = (f >= pa.FLOOR_FROM_HZ) & (f <= hi_hz)
        got: dict[str, float] = {}
        pa._quiet_floor(np.percentile(rows[:, band], pa.FLOOR_QUANTILE, axis=1), level, got)
        out[name] = got["quiet_floor"]
    return out


def main() -> None:
    from vocab_audit_heldout import dev_prototype, render_row

    from deltav2a.experiment import vocab_audit as va
    from deltav2a.style.encoding import load_encoder

    args, cfg, clips, audio = dev_prototype(__doc__)
    sr = cfg.audio.sample_rate
    enc5 = load_encoder("perceptual-audio", "audio", lexicon_version="5")
    qf = enc5.raw_descriptors(audio, sr)[:, list(enc5.descriptor_names).index("quiet_floor")]
    base = [floors(a, sr) for a in audio]
    check = float(np.corrcoef(qf, [b["full"] for b in base])[0, 1])
    sd = {k: float(np.std([b[k] for b in base])) for k in ("full", "inband")}
    res: dict = {"clips": [p.name for p in clips], "check_corr_with_encoder_quiet_floor": round(check, 4),
                 "sd_originals": sd, "edge_hz_originals": [b["edge_hz"] for b in base], "effects": {}}
    for row in ROWS:
        per = {}
        for x in va.DEFAULT_INTENSITIES:
            after = [floors(y, sr) for y in render_row(row, x, audio, sr, cfg.effects.chain_order)]
            per[f"{x:g}"] = {k: round(float(np.mean([a[k] - b[k] for a, b in zip(after, base)])) / sd[k], 3)
                             for k in ("full", "inband")}
            per[f"{x:g}"]["edge_hz"] = round(float(np.median([a["edge_hz"] for a in after])))
        res["effects"][row] = per
        print(row, json.dumps(per), flush=True)
    ok = True
    for x in va.DEFAULT_INTENSITIES:
        b = res["effects"]["bitcrush"][f"{x:g}"]["inband"]
        ok &= b >= 0.5 and all(b >= 2 * res["effects"][o][f"{x:g}"]["inband"] for o in RULE_OTHERS)
    res["rule_16_67_passed"] = bool(ok)
    print("check corr", check, "sd", sd, "rule passed:", ok)
    args.output.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
