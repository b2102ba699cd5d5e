"""Wall time of `deltav2a --help` and `deltav2a list-plugins` (target: < 0.3 s each, issue 12).

Runs each command N times in a fresh process and reports the median; writes
benchmarks/results/cli_startup.json.

Measured as a user runs it: with Python's bytecode cache (a warm-up run writes the .pyc
files of an editable install; a wheel install has them from pip). A shell with
PYTHONDONTWRITEBYTECODE=1 (as some sandboxes and CI images set) never writes them, so every
start recompiles the project's modules; for an editable install that case is reported
beside it (`no_bytecode_cache`: this checkout's __pycache__ folders are removed before each
such run), interleaved with the first so both see the same machine load.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXE = str(Path(sys.executable).with_name("deltav2a"))


CACHED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
UNCACHED = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
REPO = HERE.parent


def clear_project_bytecode() -> bool:
    """Remove the .pyc files of this checkout's packages (an editable install); False if the
    installed packages live elsewhere (a wheel: pip compiled them, nothing is removed)."""
    import deltav2a
    import deltav2a_plugins

    roots = [Path(m.__file__).resolve().parent for m in (deltav2a, deltav2a_plugins)]
    if not all(REPO in r.parents for r in roots):
        return False
    for root in roots:
        for cache in root.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
    return True


def run(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run([EXE, *args], capture_output=True, check=True, env=env)
    return time.perf_counter() - t0


def timeit(args: list[str], n: int = 15) -> dict:
    times: dict[str, list[float]] = {"cached": [], "uncached": []}
    for _ in range(n):
        if clear_project_bytecode():  # as a shell with PYTHONDONTWRITEBYTECODE=1 sees it
            times["uncached"].append(run(args, UNCACHED))
        run(args, CACHED)  # writes the .pyc files again
        times["cached"].append(run(args, CACHED))
    c, u = times["cached"], times["uncached"]
    row = {"command": "deltav2a " + " ".join(args), "median_s": statistics.median(c), "max_s": max(c), "runs": n}
    if u:
        row["no_bytecode_cache"] = {"median_s": statistics.median(u), "max_s": max(u)}
    return row


def main() -> None:
    load = os.getloadavg()[0]
    rows = [timeit(["--help"]), timeit(["list-plugins"]), timeit(["list-plugins", "--json"])]
    for r in rows:
        u = r.get("no_bytecode_cache")
        print(f"{r['command']:<28} median {r['median_s'] * 1000:6.1f} ms   max {r['max_s'] * 1000:6.1f} ms"
              + (f"   (no bytecode cache: median {u['median_s'] * 1000:6.1f} ms)" if u else ""))
    print(f"load average at the start: {load:.2f} ({os.cpu_count()} CPUs)")
    out = HERE / "results" / "cli_startup.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"target_s": 0.3, "load_average_1min": load, "cpus": os.cpu_count(),
                               "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
