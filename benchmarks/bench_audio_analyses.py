"""perceptual-audio analyses head to head: encode time per 10 s clip, interleaved on one core.

Encodes the same real 10 s stereo clips with two normalisations (by default 3 = analysis 2
and 4 = analysis 3, decision 15.50), alternating round by round in one process pinned to one
core, and reports process CPU time per clip (median and best round), x real time, and the
paired per-round ratio B / A, which is robust to the load drifting on a shared machine.
`--profile` instead times every top-level statement of one analysis function (and of its FFT
block loop) on the same clips: where the milliseconds go.

    nice -n 10 .venv/bin/python benchmarks/bench_audio_analyses.py [--versions 3 4] [--clips 10]
        [--rounds 9] [--core 0] [--out benchmarks/results/audio_analyses_3_4.json]
    nice -n 10 .venv/bin/python benchmarks/bench_audio_analyses.py --profile describe_mono_3
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent


def _clips(data: Path, n: int) -> list:
    from deltav2a.media.io import load_audio

    files = sorted((data / "music").glob("*.ogg"))
    if not files:
        raise SystemExit(f"error: no music under {data}")
    step = max(1, len(files) // n)
    return [load_audio(f) for f in files[::step][:n]]


def profile(name: str, clips: list, repeats: int) -> dict:
    """Per-statement CPU time of `perceptual_audio.<name>(mono, width)` (an instrumented copy)."""
    import ast
    import collections
    import inspect
    import textwrap

    from deltav2a_plugins.encoders import perceptual_audio as pa

    fn = getattr(pa, name, None)
    if fn is None or not name.startswith("describe_mono"):
        raise SystemExit(f"error: no analysis function {name!r} (describe_mono, describe_mono_2, describe_mono_3)")
    src = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(src)
    lines = src.splitlines()
    acc: dict[int, float] = collections.defaultdict(float)
    last = [0.0]

    def mark(ln: int) -> None:
        t = time.process_time()
        acc[ln] += t - last[0]
        last[0] = t

    def start() -> None:
        last[0] = time.process_time()

    def wrap(body: list) -> list:
        out = []
        for s in body:
            if isinstance(s, ast.For):
                s.body = wrap(s.body)
            if isinstance(s, ast.Return):
                out += [ast.parse(f"_mark({s.lineno})").body[0], s]
                continue
            out += [s, ast.parse(f"_mark({s.lineno})").body[0]]
        return out

    f = tree.body[0]
    f.body = [ast.parse("_start()").body[0]] + wrap(f.body)
    ast.fix_missing_locations(tree)
    ns = dict(vars(pa), _mark=mark, _start=start)
    exec(compile(tree, f"instrumented {name}", "exec"), ns)
    inst = ns[name]
    monos = [(pa.downmix_width_2(x)[0].copy(), 0.1) for x, _ in clips]
    for m, w in monos:
        inst(m, w)
    acc.clear()
    t0 = time.process_time()
    for _ in range(repeats):
        for m, w in monos:
            inst(m, w)
    total = (time.process_time() - t0) / (repeats * len(monos))
    t0 = time.process_time()
    for _ in range(repeats):
        for m, w in monos:
            fn(m, w)
    plain = (time.process_time() - t0) / (repeats * len(monos))
    t0 = time.process_time()
    for _ in range(repeats):
        for x, _ in clips:
            pa.downmix_width_2(x)
    downmix = (time.process_time() - t0) / (repeats * len(clips))
    n = repeats * len(monos)
    rows = sorted(((v / n * 1e3, ln, lines[ln - 1].strip()[:100]) for ln, v in acc.items()), reverse=True)
    print(f"{name}: {plain * 1e3:.2f} ms per 10 s clip (instrumented {total * 1e3:.2f}); "
          f"downmix_width_2 {downmix * 1e3:.2f} ms; load {os.getloadavg()[0]:.1f}")
    for ms, ln, text in rows:
        if ms >= 0.02:
            print(f"{ms:7.3f} ms  line {ln:3d}  {text}")
    return {"function": name, "ms_per_clip": plain * 1e3, "downmix_ms": downmix * 1e3,
            "lines": [{"ms": round(ms, 4), "line": ln, "code": text} for ms, ln, text in rows if ms >= 0.02]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("DELTAV2A_SHARED_DATA", HERE.parents[1] / "shared" / "data")))
    ap.add_argument("--versions", nargs=2, default=["3", "4"], metavar=("A", "B"))
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--core", type=int, default=0, help="the CPU to pin to")
    ap.add_argument("--profile", default=None, metavar="FUNCTION", help="profile one analysis function instead")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.clips < 1 or args.rounds < 1:
        print("error: --clips and --rounds must be at least 1", file=sys.stderr)
        return 2
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})

    import numpy as np

    from deltav2a.errors import DeltaV2AError
    from deltav2a_plugins.encoders.perceptual_audio import PerceptualAudioEncoder

    clips = _clips(args.data, args.clips)
    if args.profile:
        result = profile(args.profile, clips, max(3, args.rounds))
    else:
        try:
            enc = {v: PerceptualAudioEncoder(normalisation_version=v) for v in args.versions}
        except DeltaV2AError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        seconds = float(np.mean([x.shape[1] / sr for x, sr in clips]))
        for e in enc.values():
            e.encode_audio([clips[0][0]], clips[0][1])
        cpu: dict[str, list[float]] = {v: [] for v in enc}
        load = [os.getloadavg()[0]]
        for r in range(args.rounds):
            for v in (args.versions if r % 2 == 0 else args.versions[::-1]):
                t0 = time.process_time()
                for x, sr in clips:
                    enc[v].encode_audio([x], sr)
                cpu[v].append((time.process_time() - t0) / len(clips) * 1e3)
        load.append(os.getloadavg()[0])
        a, b = args.versions
        ratio = np.array(cpu[b]) / np.array(cpu[a])
        result = {"clips": len(clips), "clip_seconds": round(seconds, 2), "rounds": args.rounds,
                  "load_average_1min": load,
                  "by_normalisation": {v: {"fingerprint": enc[v].fingerprint(),
                                           "cpu_ms_median": round(float(np.median(cpu[v])), 3),
                                           "cpu_ms_best": round(min(cpu[v]), 3),
                                           "x_real_time_cpu_median": round(1000 * seconds / float(np.median(cpu[v])), 1),
                                           "x_real_time_cpu_best": round(1000 * seconds / min(cpu[v]), 1)}
                                       for v in enc},
                  f"paired_ratio_{b}_over_{a}": {"median": round(float(np.median(ratio)), 4),
                                                 "min": round(float(ratio.min()), 4),
                                                 "max": round(float(ratio.max()), 4)}}
        for v, row in result["by_normalisation"].items():
            print(f"normalisation {v}: {row['cpu_ms_median']:.2f} ms CPU per {seconds:g} s clip (best "
                  f"{row['cpu_ms_best']:.2f}), {row['x_real_time_cpu_median']:.0f}x real time")
        print(f"paired per round {b}/{a}: median {np.median(ratio):.3f} ({ratio.min():.3f}-{ratio.max():.3f}); "
              f"load {load[0]:.1f} -> {load[1]:.1f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
