"""Time the vocabulary round trip v3 -> v1 -> v2 -> v3 of issue 11 in one run folder.

`deltav2a run configs/default.yaml -o RUN [--set ...]` four times, through the installed
entry point. With the content-addressed stage cache the v1 and v2 runs must render no audio
(labels are recomputed from the stored E(A), E(A')) and the last v3 run must recompute
nothing. Extra `--set` assignments (e.g. fewer augmentations on a loaded shared machine) are
passed to every run and recorded with the numbers.

Run:  nice -n 5 .venv/bin/python benchmarks/bench_vocabulary_switch.py [--set KEY=VALUE ...] [--run-dir DIR]
Writes benchmarks/results/vocabulary_switch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "bench_vocabulary_switch")
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    args = ap.parse_args()
    exe = Path(sys.executable).with_name("deltav2a")
    extra = [a for s in args.sets for a in ("--set", s)]
    steps = []
    for vocab in ("v3", "v1", "v2", "v3"):
        cmd = [str(exe), "run", str(args.config), "-o", str(args.run_dir), *extra, "--set", f"vocabulary={vocab}"]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
        latest = json.loads((args.run_dir / "metrics.json").read_text())
        steps.append({"vocabulary": vocab, "wall_seconds": round(wall, 1),
                      "stages_computed": latest["computed_this_call"],
                      "renders": latest["renders_this_call"],
                      "stage_seconds": {k: round(latest["timings"][k], 1) for k in latest["computed_this_call"]},
                      "train_records": latest["results"]["db_train"]["records"],
                      "result": latest["result"]})
        print(f"{vocab}: {wall:.1f} s, {len(steps[-1]['stages_computed'])} stages computed, "
              f"{steps[-1]['renders']} renders", flush=True)
    out = {"config": str(args.config.relative_to(ROOT)), "sets": args.sets, "steps": steps,
           "total_seconds": round(sum(s["wall_seconds"] for s in steps), 1),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "load_average_at_end": os.getloadavg()},
           "date": time.strftime("%Y-%m-%d %H:%M")}
    path = HERE / "results" / "vocabulary_switch.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
