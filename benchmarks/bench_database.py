"""Database generation throughput vs the bare Pedalboard render rate of the same chains.

A few real clips of the shared data (10 s, loaded at 48 kHz as the build does) go through
`build_database` with the default (perceptual) encoders at workers=1 and workers=2. Then
the *accepted* chains of those records are rendered again with Pedalboard alone (boards
built by hand from the stored raw values, playback_rate through the effect's own soxr
`process`), with the same number of processes, and nothing else: no loading, no encoding,
no labels, no writing. The ratio DB records/s : bare renders/s says how much of the build
is spent outside rendering (issue 15's targets: >= 0.6 x bare render, >= 0.9 x render + encode).

The build's own time split (load / encode / render, summed over workers) is reported too,
so a low ratio can be traced to its cause, and so is the rate of rendering *and* encoding
A' bare (the floor any build with this encoder pays): records/s against it measures the
build's own overhead (loading, sampling, labels, Parquet, processes).

Both executors are measured: `local` (the process pool) and `ray` (a private local Ray
started by the build; its start-up of a few seconds is inside the timed build).

`--normalisation-version 3` builds with perceptual-audio's normalisation 3 (analysis 2,
issue 15) instead of the configured default (normalisation 2), for the bare render + encode
too; its results go to benchmarks/results/database_normalisation_3.json.

Run:  .venv/bin/python benchmarks/bench_database.py [--clips 6] [--augmentations 40] [--executors local,ray]
      [--normalisation-version 3] [--sample-rate 44100]
`--sample-rate 44100` loads and renders at 44.1 kHz, the rate analysis 2 works at, so the
encoder does not resample every render (results/database_normalisation_3_44k.json).
Writes benchmarks/results/database.json and prints a summary. Timings on a shared 2-core
machine are noisy; each configuration is run --repeats times and the best run is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
MUSIC = Path(os.environ.get("DELTAV2A_SHARED_DATA", HERE.parent.parent / "shared" / "data")) / "music"
TARGET_RATIO = 0.6  # issue 15: >= 0.6 x bare render with one worker
TARGET_RATIO_RENDER_ENCODE = 0.9  # and >= 0.9 x render + one encode of A'


def _boards(records, layout, sr):
    """Hand-built (pedalboard.Pedalboard, [(effect, raw)] outside) per record, in render order."""
    import pedalboard

    from deltav2a.api import registry as plugins

    out = []
    for params, active, order in records:
        settings = layout.to_raw(params, active).to_dict()
        inside, outside = [], []
        for name in order:
            eff = plugins.get("audio_effect", name)()
            raw = eff.resolve(settings[name])
            if getattr(eff, "outside_pedalboard", False):
                outside.append((eff, raw))
            else:
                inside.append(eff.plugin(**eff.at_sample_rate(sr, raw)))
        out.append((pedalboard.Pedalboard(inside), outside))
    return out


def _bare_render(job) -> tuple[float, int]:
    """Render (clip, chain) pairs with Pedalboard alone (and, if asked, encode A' too);
    returns (seconds, renders)."""
    import numpy as np

    from deltav2a.config import Config
    from deltav2a.style.encoding import load_encoder
    from deltav2a.model.layout import ParamLayout
    from deltav2a.style.pairs import load_clip

    paths, records, sr, encode, options = job
    cfg = Config()
    cfg.encoders.audio.options.update(options)
    cfg.audio.sample_rate = sr
    layout = ParamLayout.from_names(cfg.effects.audio)
    encoder = load_encoder(cfg.encoders.audio, "audio")
    clips = {p: load_clip(Path(p), cfg) for p in set(paths)}
    boards = _boards(records, layout, sr)
    start = time.perf_counter()
    cpu0 = time.process_time()
    for path, (board, outside) in zip(paths, boards):
        x = clips[path]
        y = board(x, sr) if len(board) else x
        for eff, raw in outside:
            y = eff.process(y, sr, **raw)
        y = np.ascontiguousarray(y, dtype=np.float32)
        if encode:
            encoder.encode_audio([y], sr)
    _CPU[encode] = min(_CPU.get(encode, float("inf")), (time.process_time() - cpu0) / len(paths))
    return time.perf_counter() - start, len(paths)


#: best per-item CPU seconds of the in-process (1 worker) bare runs: {encode: seconds}
_CPU: dict[bool, float] = {}


def bare_rate(paths, records, sr, workers: int, encode: bool = False, options: dict | None = None) -> float:
    jobs = [(paths[i::workers], records[i::workers], sr, encode, options or {}) for i in range(workers)]
    if workers == 1:
        seconds, n = _bare_render(jobs[0])
        return n / seconds
    import multiprocessing as mp

    ctx = mp.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(_bare_render, [(j[0][:1], j[1][:1], sr, encode, j[4]) for j in jobs]))  # warm up
        start = time.perf_counter()
        results = list(pool.map(_bare_render, jobs))
        wall = time.perf_counter() - start
    # per-process render time excludes each worker's clip loading; wall bounds it from above
    busiest = max(s for s, _ in results)
    return sum(n for _, n in results) / min(wall, busiest)


def main() -> None:
    import numpy as np
    import pedalboard

    from deltav2a.config import Config
    from deltav2a.database import build_database, load_database
    from deltav2a.database.splits import make_splits, write_splits

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--augmentations", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--executors", default="local,ray", help="local and/or ray (a private local Ray)")
    ap.add_argument("--out", type=Path, default=None,
                    help="default: results/database.json (results/database_normalisation_3.json with 3)")
    ap.add_argument("--normalisation-version", default=None,
                    help="perceptual-audio normalisation_version (default: the config's)")
    ap.add_argument("--sample-rate", type=int, default=None,
                    help="audio.sample_rate of the build and the bare runs (default: the config's, 48000)")
    args = ap.parse_args()
    options = {"normalisation_version": args.normalisation_version} if args.normalisation_version else {}
    if args.out is None:
        name = f"database_normalisation_{args.normalisation_version}.json" if options else "database.json"
        if args.sample_rate:
            name = name.replace(".json", f"_{args.sample_rate // 1000}k.json")
        args.out = HERE / "results" / name
    if not (MUSIC / "manifest.csv").is_file():
        sys.exit(f"needs the shared music data at {MUSIC}")

    cfg = Config()
    cfg.encoders.audio.options.update(options)
    if args.sample_rate:
        cfg.audio.sample_rate = args.sample_rate
    sr = cfg.audio.sample_rate
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        splits = write_splits(make_splits(MUSIC, MUSIC / "manifest.csv", seed=0), tmp / "splits.json")
        # warm the term-embedding cache and imports, so the first timed run pays nothing extra
        build_database(cfg, splits, tmp / "warm", augmentations=1, workers=1, limit_clips=1,
                       progress=False)
        reference = None
        runs = [(e, int(w)) for e in args.executors.split(",") for w in args.workers.split(",")]
        bare_cache: dict[int, tuple[float, float]] = {}
        for executor, w in runs:
            best = None
            run_cfg = cfg.model_copy(deep=True)
            run_cfg.executor.kind = executor
            cpu_per_record = float("inf")
            for r in range(args.repeats):
                out = tmp / f"db-{executor}-w{w}-r{r}"
                c0 = time.process_time()
                s = build_database(run_cfg, splits, out, augmentations=args.augmentations, workers=w,
                                   limit_clips=args.clips, progress=False)
                cpu_per_record = min(cpu_per_record, (time.process_time() - c0) / s.records)
                if best is None or s.records_per_second > best.records_per_second:
                    best = s
                reference = reference or out
            db = load_database(reference)
            paths = [str(MUSIC / c) for c in db.clip_id]
            records = list(zip(db.data.params, db.data.active, db.chain_order))
            if w not in bare_cache:
                bare_cache[w] = (max(bare_rate(paths, records, sr, w) for _ in range(args.repeats)),
                                 max(bare_rate(paths, records, sr, w, encode=True, options=options)
                                     for _ in range(args.repeats)))
            bare, bare_enc = bare_cache[w]
            t = best.timings
            busy = sum(t.values())
            rows.append({
                "executor": executor,
                "workers": w,
                "records": best.records,
                "renders_incl_resamples": best.renders,
                "db_seconds": best.seconds,
                "db_records_per_s": best.records_per_second,
                "bare_pedalboard_renders_per_s": bare,
                "ratio": best.records_per_second / bare,
                "meets_target": best.records_per_second / bare >= TARGET_RATIO,
                "bare_render_plus_encode_per_s": bare_enc,
                "ratio_to_render_plus_encode": best.records_per_second / bare_enc,
                "meets_target_render_plus_encode": best.records_per_second / bare_enc >= TARGET_RATIO_RENDER_ENCODE,
                "time_split_pct": {k: 100.0 * v / busy for k, v in t.items()},
            })
            if executor == "local" and w == 1:
                # in-process build and bare runs: CPU time per record, robust to a loaded machine
                rows[-1].update({
                    "cpu_ms_per_record": 1000 * cpu_per_record,
                    "bare_render_cpu_ms": 1000 * _CPU[False],
                    "bare_render_plus_encode_cpu_ms": 1000 * _CPU[True],
                    "ratio_cpu": _CPU[False] / cpu_per_record,
                    "ratio_to_render_plus_encode_cpu": _CPU[True] / cpu_per_record,
                })
        import soundfile as sf

        lengths = sorted({round(min(sf.info(p).duration, cfg.audio.max_duration), 2) for p in paths})
        delta = db.delta_norm
    result = {
        "benchmark": "build_database records/s vs bare Pedalboard renders/s of the same chains",
        "encoder": cfg.encoders.audio.name,
        "encoder_options": dict(cfg.encoders.audio.options),
        "clips": args.clips,
        "clip_seconds": lengths,
        "augmentations_per_clip": args.augmentations,
        "sample_rate": sr,
        "target_ratio": TARGET_RATIO,
        "below_min_norm_records": int(np.sum(db.below_min_norm)),
        "delta_norm_min_median": [float(delta.min()), float(np.median(delta))],
        "delta_min_norm": cfg.database.delta_min_norm,
        "results": rows,
        "python": platform.python_version(),
        "pedalboard": getattr(pedalboard, "__version__", "?"),
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "load_average_at_end": list(os.getloadavg()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        if "ratio_cpu" in r:
            print(f"local workers=1 by CPU time: {r['cpu_ms_per_record']:.1f} ms/record, bare render "
                  f"{r['bare_render_cpu_ms']:.1f} ms, render+encode {r['bare_render_plus_encode_cpu_ms']:.1f} ms: "
                  f"ratio {r['ratio_cpu']:.2f}, vs render+encode {r['ratio_to_render_plus_encode_cpu']:.2f}")
        split = ", ".join(f"{k} {v:.0f} %" for k, v in r["time_split_pct"].items())
        print(f"{r['executor']} workers={r['workers']}: DB {r['db_records_per_s']:.1f} records/s, bare render "
              f"{r['bare_pedalboard_renders_per_s']:.1f} renders/s, ratio {r['ratio']:.2f} "
              f"(target {TARGET_RATIO}); vs render+encode {r['bare_render_plus_encode_per_s']:.1f}/s: "
              f"{r['ratio_to_render_plus_encode']:.2f}; build time split: {split}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
