"""Wall time of `deltav2a --help` and `deltav2a list-plugins` (target: < 0.3 s each, issue 12).

Runs each command N times in a fresh process and reports the median; writes
benchmarks/results/cli_startup.json.

Measured as a user runs it: with Python's bytecode cache (a warm-up run writes the .pyc
files of an editable install; a wheel install has them from pip). A shell with
PYTHONDONTWRITEBYTECODE=1 (as some sandboxes and CI images set) never writes them, so every
start recompiles the project's modules; for an editable install that case is reported
beside it (`no_bytecode_cache`: this checkout's __pycache__ folders are removed before each
such run), interleaved with the first so both see the same machine load.

`--baseline PATH` also times another installation's `deltav2a` (e.g. the main checkout's
venv), interleaved run by run with this one, so a measurement on a busy machine still says
how the two compare; its bytecode goes to a temporary PYTHONPYCACHEPREFIX, never into
that checkout.
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


def run(args: list[str], env: dict, exe: str = EXE) -> float:
    t0 = time.perf_counter()
    subprocess.run([exe, *args], capture_output=True, check=True, env=env)
    return time.perf_counter() - t0


def timeit(args: list[str], n: int = 15, baseline: str | None = None, prefix: str | None = None) -> dict:
    times: dict[str, list[float]] = {"cached": [], "uncached": [], "baseline": []}
    other = {**CACHED, "PYTHONPYCACHEPREFIX": prefix or ""}
    if baseline:
        run(args, other, baseline)  # writes its bytecode under the prefix
    for _ in range(n):
        if clear_project_bytecode():  # as a shell with PYTHONDONTWRITEBYTECODE=1 sees it
            times["uncached"].append(run(args, UNCACHED))
        run(args, CACHED)  # writes the .pyc files again
        times["cached"].append(run(args, CACHED))
        if baseline:
            times["baseline"].append(run(args, other, baseline))
    c, u, b = times["cached"], times["uncached"], times["baseline"]
    row = {"command": "deltav2a " + " ".join(args), "median_s": statistics.median(c), "max_s": max(c), "runs": n}
    if u:
        row["no_bytecode_cache"] = {"median_s": statistics.median(u), "max_s": max(u)}
    if b:
        row["baseline"] = {"median_s": statistics.median(b), "max_s": max(b)}
    return row


def main() -> None:
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", help="another installation's deltav2a executable, timed interleaved")
    opts = ap.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as prefix:
        rows = [timeit(a, baseline=opts.baseline, prefix=prefix)
                for a in (["--help"], ["list-plugins"], ["list-plugins", "--json"])]
    load_end = os.getloadavg()[0]
    for r in rows:
        u, b = r.get("no_bytecode_cache"), r.get("baseline")
        print(f"{r['command']:<28} median {r['median_s'] * 1000:6.1f} ms   max {r['max_s'] * 1000:6.1f} ms"
              + (f"   (no bytecode cache: median {u['median_s'] * 1000:6.1f} ms)" if u else "")
              + (f"   (baseline: median {b['median_s'] * 1000:6.1f} ms)" if b else ""))
    print(f"load average at the start: {load:.2f}, at the end: {load_end:.2f} ({os.cpu_count()} CPUs)")
    out = HERE / "results" / "cli_startup.json"
    out.parent.mkdir(exist_ok=True)
    record = {"target_s": 0.3, "load_average_1min": load, "load_average_1min_end": load_end,
              "cpus": os.cpu_count(), "results": rows}
    if opts.baseline:
        record["baseline"] = opts.baseline
    out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
