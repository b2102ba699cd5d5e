"""What does AudioChain add on top of calling Pedalboard directly?

For several chains (single effects, a four-effect chain with reverb, and one with
playback_rate), the same 10 s 44.1 kHz stereo clip is rendered many times through
`AudioChain(tail="cut")` and through a `pedalboard.Pedalboard` built by hand (plus soxr for
playback_rate). Repetitions alternate A/B so drift on a shared machine hits both sides.
Two cases are timed: render only (chain and board built once, as in a database build)
and construct + render (as in a one-off CLI call). The outputs are checked to be
identical first, so the comparison is like for like.

Run:  .venv/bin/python benchmarks/bench_render_overhead.py [--reps 40] [--clip FILE]
Writes benchmarks/results/render_overhead.json and prints a table. Target: < 5 % overhead.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pedalboard

from deltav2a.render.chain import AudioChain, ChainSettings, EffectSetting
from deltav2a.media.io import load_audio, resample

HERE = Path(__file__).resolve().parent
MUSIC = Path(os.environ.get("DELTAV2A_SHARED_DATA", HERE.parent.parent / "shared" / "data")) / "music"
TARGET_PCT = 5.0

# name -> (settings for AudioChain, hand-built equivalent, playback rate or None)
CHAINS: dict[str, tuple[list[EffectSetting], Callable[[], list], float | None]] = {
    "lowpass": ([EffectSetting("lowpass", {"cutoff_hz": 1500})],
                lambda: [pedalboard.LowpassFilter(1500)], None),
    "highpass": ([EffectSetting("highpass", {"cutoff_hz": 500})],
                 lambda: [pedalboard.HighpassFilter(500)], None),
    "bitcrush": ([EffectSetting("bitcrush", {"bit_depth": 8})],
                 lambda: [pedalboard.Bitcrush(8)], None),
    "distortion": ([EffectSetting("distortion", {"drive_db": 20})],
                   lambda: [pedalboard.Distortion(20)], None),
    "delay": ([EffectSetting("delay", {"delay_seconds": 0.3, "feedback": 0.3, "mix": 0.35})],
              lambda: [pedalboard.Delay(0.3, 0.3, 0.35)], None),
    "reverb": ([EffectSetting("reverb", {"room_size": 0.5, "damping": 0.5,
                                         "wet_level": 0.33, "dry_level": 0.4})],
               lambda: [pedalboard.Reverb(room_size=0.5, damping=0.5, wet_level=0.33,
                                          dry_level=0.4)], None),
    "lowpass>reverb>highpass>delay": (
        [EffectSetting("delay", {"delay_seconds": 0.3, "feedback": 0.3, "mix": 0.35}),
         EffectSetting("lowpass", {"cutoff_hz": 4000}),
         EffectSetting("reverb", {"room_size": 0.6, "damping": 0.5, "wet_level": 0.3,
                                  "dry_level": 0.4}),
         EffectSetting("highpass", {"cutoff_hz": 120})],
        lambda: [pedalboard.LowpassFilter(4000),
                 pedalboard.Reverb(room_size=0.6, damping=0.5, wet_level=0.3, dry_level=0.4),
                 pedalboard.HighpassFilter(120), pedalboard.Delay(0.3, 0.3, 0.35)], None),
    "distortion>playback_rate": (
        [EffectSetting("playback_rate", {"rate": 1.25}),
         EffectSetting("distortion", {"drive_db": 12})],
        lambda: [pedalboard.Distortion(12)], 1.25),
}


def load_clip(path: str | None) -> tuple[np.ndarray, int, str]:
    if path is None and MUSIC.is_dir():
        clips = sorted(MUSIC.glob("*.ogg"))
        path = str(clips[0]) if clips else None
    if path is not None:
        audio, sr = load_audio(path, sample_rate=44100)
        audio = audio[:, : 10 * sr]
        if audio.shape[0] == 1:
            audio = np.repeat(audio, 2, axis=0)
        return np.ascontiguousarray(audio[:2]), sr, os.path.basename(path)
    sr = 44100
    rng = np.random.default_rng(0)
    t = np.arange(10 * sr) / sr
    tone = sum(np.sin(2 * np.pi * 110 * k * t + k) / k for k in range(1, 9))
    audio = np.stack([tone, np.roll(tone, 300)]) * 0.1 + 0.02 * rng.standard_normal((2, t.size))
    return audio.astype(np.float32), sr, "synthetic (seed 0)"


def direct_render(board: pedalboard.Pedalboard, rate: float | None,
                  x: np.ndarray, sr: int) -> np.ndarray:
    y = board(x, sr)
    return resample(y, sr * rate, sr) if rate is not None else y


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def ab(fa: Callable[[], object], fb: Callable[[], object],
       reps: int) -> tuple[list[float], list[float]]:
    """Alternate A/B (and which goes first) so slow phases of the machine hit both."""
    a, b = [], []
    for i in range(reps):
        if i % 2:
            a.append(timed(fa))
            b.append(timed(fb))
        else:
            b.append(timed(fb))
            a.append(timed(fa))
    return a, b


def summarise(chain_t: list[float], direct_t: list[float]) -> dict:
    med_c, med_d = statistics.median(chain_t), statistics.median(direct_t)
    paired = statistics.median(c - d for c, d in zip(chain_t, direct_t))
    return {
        "direct_median_ms": med_d * 1e3,
        "chain_median_ms": med_c * 1e3,
        "direct_min_ms": min(direct_t) * 1e3,
        "chain_min_ms": min(chain_t) * 1e3,
        "overhead_pct": (med_c - med_d) / med_d * 100.0,
        "paired_overhead_ms": paired * 1e3,
        "paired_overhead_pct": paired / med_d * 100.0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--clip", default=None, help="audio file (default: first shared clip)")
    ap.add_argument("--out", default=str(HERE / "results" / "render_overhead.json"))
    args = ap.parse_args(argv)

    x, sr, clip_name = load_clip(args.clip)
    results = []
    for name, (settings, make_plugins, rate) in CHAINS.items():
        chain = AudioChain(ChainSettings(settings), tail="cut")
        board = pedalboard.Pedalboard(make_plugins())
        out_chain, out_direct = chain(x, sr), direct_render(board, rate, x, sr)
        if not np.array_equal(out_chain, out_direct):
            raise SystemExit(f"{name}: AudioChain and direct Pedalboard outputs differ")
        for _ in range(3):  # warm caches, allocator, soxr plans
            chain(x, sr)
            direct_render(board, rate, x, sr)
        gc.collect()
        render = summarise(*ab(lambda: chain(x, sr),
                               lambda: direct_render(board, rate, x, sr), args.reps))
        built = summarise(*ab(
            lambda: AudioChain(ChainSettings(settings), tail="cut")(x, sr),
            lambda: direct_render(pedalboard.Pedalboard(make_plugins()), rate, x, sr),
            args.reps))
        results.append({"chain": name, "render_order": chain.names,
                        "render_only": render, "construct_and_render": built})

    # The one cost AudioChain cannot skip: check_audio's NaN/Inf scan of the input.
    from deltav2a.media.io import check_audio

    scan = [timed(lambda: check_audio(x)) for _ in range(args.reps)]
    input_check_ms = statistics.median(scan) * 1e3

    worst = max(max(r["render_only"]["overhead_pct"], r["render_only"]["paired_overhead_pct"])
                for r in results)
    worst_built = max(r["construct_and_render"]["overhead_pct"] for r in results)
    report = {
        "benchmark": "AudioChain(tail='cut') vs pedalboard.Pedalboard called directly",
        "clip": clip_name,
        "clip_shape": list(x.shape),
        "sample_rate": sr,
        "repetitions": args.reps,
        "target_overhead_pct": TARGET_PCT,
        "worst_render_only_overhead_pct": worst,
        "worst_construct_and_render_overhead_pct": worst_built,
        "meets_target": worst < TARGET_PCT,
        "input_check_median_ms": input_check_ms,
        "note": ("AudioChain's fixed cost is one check_audio scan of the input (NaN/Inf), "
                 "input_check_median_ms; it is above 5 % only for plugins that are "
                 "themselves about one memory pass (bitcrush)."),
        "python": sys.version.split()[0],
        "pedalboard": pedalboard.__version__,
        "numpy": np.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"clip: {clip_name}  {x.shape[0]} ch x {x.shape[1]} samples @ {sr} Hz, "
          f"{args.reps} reps (medians, ms)")
    head = f"{'chain':32} {'direct':>8} {'chain':>8} {'ovh %':>7} {'paired %':>9} | " \
           f"{'+build d':>9} {'+build c':>9} {'ovh %':>7}"
    print(head)
    print("-" * len(head))
    for r in results:
        a, b = r["render_only"], r["construct_and_render"]
        print(f"{r['chain']:32} {a['direct_median_ms']:8.2f} {a['chain_median_ms']:8.2f} "
              f"{a['overhead_pct']:7.2f} {a['paired_overhead_pct']:9.2f} | "
              f"{b['direct_median_ms']:9.2f} {b['chain_median_ms']:9.2f} {b['overhead_pct']:7.2f}")
    print(f"input NaN/Inf check (check_audio) alone: {input_check_ms:.3f} ms")
    print(f"worst render-only overhead {worst:.2f} % (target < {TARGET_PCT:g} %): "
          f"{'OK' if report['meets_target'] else 'ABOVE TARGET'}; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
