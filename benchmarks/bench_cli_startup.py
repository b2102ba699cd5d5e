"""Wall time of `deltav2a --help` and `deltav2a list-plugins` (target: < 0.5 s each).

Runs each command N times in a fresh process and reports the median; writes
benchmarks/results/cli_startup.json.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXE = str(Path(sys.executable).with_name("deltav2a"))


def timeit(args: list[str], n: int = 15) -> dict:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([EXE, *args], capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return {"command": "deltav2a " + " ".join(args), "median_s": statistics.median(times),
            "max_s": max(times), "runs": n}


def main() -> None:
    rows = [timeit(["--help"]), timeit(["list-plugins"]), timeit(["list-plugins", "--json"])]
    for r in rows:
        print(f"{r['command']:<28} median {r['median_s'] * 1000:6.1f} ms   max {r['max_s'] * 1000:6.1f} ms")
    out = HERE / "results" / "cli_startup.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"target_s": 0.5, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
