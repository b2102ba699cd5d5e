"""Wall time of `deltav2a --help` and `deltav2a list-plugins` (target: < 0.3 s each, issue 12).

Runs each command N times in a fresh process and reports the median; writes
benchmarks/results/cli_startup.json.

Measured as a user runs it: with Python's bytecode cache (one warm-up run writes the .pyc
files of an editable install; a wheel install has them from pip). A shell with
PYTHONDONTWRITEBYTECODE=1 (as some sandboxes and CI images set) recompiles every project
module on every start; that case is reported beside it (`no_bytecode_cache`), interleaved
with the first so both see the same machine load.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXE = str(Path(sys.executable).with_name("deltav2a"))


CACHED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
UNCACHED = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def timeit(args: list[str], n: int = 15) -> dict:
    subprocess.run([EXE, *args], capture_output=True, check=True, env=CACHED)  # writes the .pyc files
    times: dict[str, list[float]] = {"cached": [], "uncached": []}
    for _ in range(n):
        for key, env in (("cached", CACHED), ("uncached", UNCACHED)):
            t0 = time.perf_counter()
            subprocess.run([EXE, *args], capture_output=True, check=True, env=env)
            times[key].append(time.perf_counter() - t0)
    c, u = times["cached"], times["uncached"]
    return {"command": "deltav2a " + " ".join(args), "median_s": statistics.median(c),
            "max_s": max(c), "runs": n,
            "no_bytecode_cache": {"median_s": statistics.median(u), "max_s": max(u)}}


def main() -> None:
    load = os.getloadavg()[0]
    rows = [timeit(["--help"]), timeit(["list-plugins"]), timeit(["list-plugins", "--json"])]
    for r in rows:
        print(f"{r['command']:<28} median {r['median_s'] * 1000:6.1f} ms   max {r['max_s'] * 1000:6.1f} ms"
              f"   (no bytecode cache: median {r['no_bytecode_cache']['median_s'] * 1000:6.1f} ms)")
    print(f"load average at the start: {load:.2f} ({os.cpu_count()} CPUs)")
    out = HERE / "results" / "cli_startup.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"target_s": 0.3, "load_average_1min": load, "cpus": os.cpu_count(),
                               "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
