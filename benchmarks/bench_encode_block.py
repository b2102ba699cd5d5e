"""A build worker's CPU time per record against `database.encode_block`, interleaved in one process.

`bench_database_paired.py` compares two checkouts build by build, but its rounds still move
by ±2 ms per record with the machine's load, as much as the effect of rendering a block of
a clip's augmentations before encoding them (decision 15.40). Here one process on one
pinned core holds one `ClipWorker` per block size (same config otherwise) and runs the same
clips through each in turn, in a fresh random order every round, timing process CPU time:
every block size sees the same load, clips and chains. The workers' records are compared
bit for bit at the end (E(A′), style, parameters, attempts), so a block size that changed a
record would show. Reports per block size the median and best round, and the paired
per-round ratio to block 1 (the record-by-record order of before).

Run:  OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python benchmarks/bench_encode_block.py
      [--blocks 1,4,8,16] [--clips 6] [--augmentations 40] [--rounds 8] [--rate 44100]
      [--normalisation 3] [--out results/encode_block.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", default="1,4,8,16", help="comma-separated block sizes (1 is the reference)")
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--augmentations", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--rate", type=int, choices=(44100, 48000), default=44100, help="audio.sample_rate")
    ap.add_argument("--normalisation", choices=("1", "2", "3"), default="3",
                    help="perceptual-audio normalisation_version")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "encode_block.json")
    args = ap.parse_args()
    try:
        blocks = sorted({int(b) for b in args.blocks.split(",")} | {1})
    except ValueError:
        print(f"error: --blocks must be comma-separated integers, got {args.blocks!r}", file=sys.stderr)
        sys.exit(2)
    if min(blocks) < 1 or args.clips < 1 or args.augmentations < 1 or args.rounds < 1:
        print("error: --blocks, --clips, --augmentations and --rounds must be >= 1", file=sys.stderr)
        sys.exit(2)

    import numpy as np

    from bench_database import MUSIC
    from deltav2a.config import Config
    from deltav2a.database.generate import ClipTask, ClipWorker, JobSpec, _one_math_thread
    from deltav2a.database.splits import make_splits

    if not (MUSIC / "manifest.csv").is_file():
        print(f"error: no shared-data music at {MUSIC} (set DELTAV2A_SHARED_DATA)", file=sys.stderr)
        sys.exit(2)
    _one_math_thread()
    clips = [c for c in make_splits(MUSIC, MUSIC / "manifest.csv", seed=0).clips if c.split == "train"]
    tasks = [ClipTask(i, c.file, c.track_id, str(MUSIC / c.file)) for i, c in enumerate(clips[:args.clips])]
    workers = {}
    for b in blocks:
        cfg = Config()
        cfg.encoders.audio.options.update(normalisation_version=args.normalisation)
        cfg.audio.sample_rate = args.rate
        cfg.database.encode_block = b
        probe = ClipWorker(JobSpec(config=cfg.model_dump(mode="json"), seed=0, augmentations=1, split="train",
                                   V=np.zeros((1, 1), np.float32)))
        V = np.random.default_rng(0).standard_normal((8, probe.encoder.dim)).astype(np.float32)
        workers[b] = ClipWorker(JobSpec(config=cfg.model_dump(mode="json"), seed=0,
                                        augmentations=args.augmentations, split="train", V=V))
        workers[b].run(tasks[0])  # warm: imports, plans, workspace
    ms: dict[int, list[float]] = {b: [] for b in blocks}
    columns: dict[int, list] = {}
    rng = np.random.default_rng(0)
    load_start = os.getloadavg()
    for r in range(args.rounds):
        for b in rng.permutation(blocks):
            b = int(b)
            c0 = time.process_time()
            results = [workers[b].run(t) for t in tasks]
            ms[b].append(1000 * (time.process_time() - c0) / (len(tasks) * args.augmentations))
            if any(res.skipped for res in results):
                print(f"error: {[res.skipped for res in results if res.skipped][0]}", file=sys.stderr)
                sys.exit(1)
            columns.setdefault(b, [res.columns for res in results])
        print(f"round {r}: " + ", ".join(f"block {b} {ms[b][-1]:.2f}" for b in blocks) + " ms/record", flush=True)

    def same(a: list, b: list) -> bool:
        keys = ("embedding", "embedding_after", "style", "params", "params_raw", "attempt", "attempts",
                "delta_norm", "below_min_norm")
        return all(np.array_equal(np.asarray(x[k]), np.asarray(y[k])) for x, y in zip(a, b) for k in keys) and \
            all(x["chain_order"] == y["chain_order"] for x, y in zip(a, b))

    summary = {}
    for b in blocks:
        paired = sorted(x / y for x, y in zip(ms[b], ms[1]))
        summary[b] = {"median_ms": float(np.median(ms[b])), "best_ms": min(ms[b]),
                      "paired_over_block_1_median": paired[len(paired) // 2],
                      "paired_range": [paired[0], paired[-1]], "records_identical_to_block_1": same(columns[b], columns[1])}
        print(f"block {b}: median {summary[b]['median_ms']:.2f} ms/record, best {summary[b]['best_ms']:.2f}; "
              f"paired / block 1: median {paired[len(paired) // 2]:.3f} ({paired[0]:.3f}-{paired[-1]:.3f}); "
              f"records identical: {summary[b]['records_identical_to_block_1']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": f"ClipWorker CPU ms per record by encode_block, interleaved in one process ({args.rate} Hz, "
                     f"normalisation {args.normalisation}, {len(tasks)} clips x {args.augmentations})",
        "rounds": {str(b): v for b, v in ms.items()}, "summary": {str(b): v for b, v in summary.items()},
        "load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
        "cpus": os.cpu_count()}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
