"""Build rate of two checkouts, alternated under the same load (1 worker, one pinned core).

On a shared machine the load moves between runs by more than a few-percent change in the
build, so `bench_database.py` run once per checkout cannot tell them apart. Here two
worker processes, one importing `deltav2a` / `deltav2a_plugins` from a base checkout and one
from this tree, take turns: each round builds the same database (6 clips x
40 augmentations at 44.1 kHz, perceptual-audio normalisation 3, the configuration of issue
15's 0.6 x bare render target) in both, then times the bare Pedalboard render and the bare
render + encode of the same chains (as `bench_database.py` does), all in process CPU time per
record. Paired per-round ratios are robust to the load drifting; the best round of each is
the estimate of the quiet rate. At the end the two databases' E(A), E(A'), style labels and
parameters are compared bit for bit.

Both workers are started anew every round (`--no-fresh` keeps them for the whole run, as the
first version did): one process keeps its memory layout for its life, and with long-lived
workers two copies of the *same* code differed by 2 % (bare render + encode) to 7 % (build)
for a whole run (decision 15.40), as large as the changes being measured.

The base checkout: a folder holding `deltav2a` and `deltav2a_plugins` (links to another
checkout's `core/` and `plugins/`), e.g. for commit C:

    git archive C | tar -x -C /tmp/base/src
    mkdir /tmp/base/path && ln -s /tmp/base/src/core /tmp/base/path/deltav2a \
        && ln -s /tmp/base/src/plugins /tmp/base/path/deltav2a_plugins

Run:  .venv/bin/python benchmarks/bench_database_paired.py --base /tmp/base/path [--rounds 8] [--core 1]
      [--rate 44100] [--normalisation 3] [--out results/database_paired.json]

`--rate 48000 --normalisation 2` measures the default configuration instead. `--base git:C`
does the unpacking above itself (into a temporary folder), e.g. `--base git:e33d894`.

Two normalisations of this tree against each other (decision 15.52): `--base self` runs both
workers on this checkout, and `--base-normalisation 3 --normalisation 4` gives the base
worker normalisation 3 (analysis 2) and the other normalisation 4 (analysis 3). The records
then differ by design; the per-round ratios (bare render / build within one worker, a few
seconds apart) are the load-robust numbers:

    nice -n 10 .venv/bin/python benchmarks/bench_database_paired.py --base self --base-normalisation 3 \
        --normalisation 4 --rounds 6 --out benchmarks/results/database_paired_n3_n4.json
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OPTIONS = {"normalisation_version": "3"}
SAMPLE_RATE = 44100


def worker() -> None:
    """Answers `build`, `bare`, `bare_enc`, `records` on stdin with one JSON line each."""
    sys.path.insert(0, str(HERE))
    import numpy as np

    import bench_database as bd
    from deltav2a.config import Config
    from deltav2a.database import build_database, load_database
    from deltav2a.database.splits import make_splits, write_splits

    rate = int(os.environ.get("PAIRED_RATE", SAMPLE_RATE))
    options = dict(OPTIONS, normalisation_version=os.environ.get("PAIRED_NORMALISATION",
                                                                 OPTIONS["normalisation_version"]))
    cfg = Config()
    cfg.encoders.audio.options.update(options)
    cfg.audio.sample_rate = rate
    tmp = Path(tempfile.mkdtemp(prefix="paired-"))
    splits = write_splits(make_splits(bd.MUSIC, bd.MUSIC / "manifest.csv", seed=0), tmp / "splits.json")
    build_database(cfg, splits, tmp / "warm", augmentations=1, workers=1, limit_clips=1, progress=False)
    k, ref = 0, None
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "build":
            k += 1
            c0 = time.process_time()
            s = build_database(cfg, splits, tmp / f"db{k}", augmentations=40, workers=1, limit_clips=6,
                               progress=False)
            out = {"cpu_ms": 1000 * (time.process_time() - c0) / s.records, "records": s.records}
            ref = ref or tmp / f"db{k}"
        elif cmd in ("bare", "bare_enc") and ref is not None:
            db = load_database(ref)
            paths = [str(bd.MUSIC / c) for c in db.clip_id]
            records = list(zip(db.data.params, db.data.active, db.chain_order))
            encode = cmd == "bare_enc"
            bd._CPU.clear()
            bd._bare_render((paths, records, rate, encode, options))
            out = {"cpu_ms": 1000 * bd._CPU[encode]}
        elif cmd == "records" and ref is not None:
            db = load_database(ref)
            path = tmp / "records.npy"
            np.save(path, np.concatenate([db.data.audio, db.embedding_after, db.data.style, db.data.params], 1))
            out = {"path": str(path)}
        else:
            break
        print(json.dumps(out), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)  # fresh workers would leave one folder per round


def _unpack_commit(commit: str) -> Path:
    """`git archive COMMIT` of this repository into a temporary folder laid out as --base wants."""
    root = Path(tempfile.mkdtemp(prefix="paired-base-"))
    atexit.register(shutil.rmtree, root, True)
    src, path = root / "src", root / "path"
    src.mkdir()
    path.mkdir()
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", commit], capture_output=True)
    if archive.returncode != 0:
        print(f"error: git archive {commit}: {archive.stderr.decode(errors='replace').strip()}", file=sys.stderr)
        sys.exit(2)
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    (path / "deltav2a").symlink_to(src / "core")
    (path / "deltav2a_plugins").symlink_to(src / "plugins")
    return path


def main() -> None:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, type=Path, help="folder with the base checkout's deltav2a, "
                    "deltav2a_plugins, 'git:COMMIT' (that commit of this repository, unpacked to a "
                    "temporary folder), or 'self' (this tree, with --base-normalisation)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--core", type=int, default=1, help="the CPU both workers are pinned to")
    ap.add_argument("--rate", type=int, choices=(44100, 48000), default=SAMPLE_RATE, help="audio.sample_rate")
    ap.add_argument("--normalisation", choices=("1", "2", "3", "4"), default=OPTIONS["normalisation_version"],
                    help="perceptual-audio normalisation_version")
    ap.add_argument("--base-normalisation", choices=("1", "2", "3", "4"), default=None,
                    help="the base worker's normalisation_version (default: --normalisation)")
    ap.add_argument("--fresh", action=argparse.BooleanOptionalAction, default=True,
                    help="start both workers anew every round (default): a long-lived process keeps "
                         "its memory layout, which biased whole runs by up to 7 %% (decision 15.40)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "database_paired.json")
    args = ap.parse_args()
    self_base = str(args.base) == "self"
    if str(args.base).startswith("git:"):
        args.base = _unpack_commit(str(args.base)[4:])
    base_norm = args.base_normalisation or args.normalisation
    if self_base and base_norm == args.normalisation:
        print("error: --base self compares two normalisations: give --base-normalisation", file=sys.stderr)
        sys.exit(2)
    if not self_base and (not (args.base / "deltav2a").is_dir() or not (args.base / "deltav2a_plugins").is_dir()):
        print(f"error: {args.base} must hold deltav2a/ and deltav2a_plugins/ (see --help)", file=sys.stderr)
        sys.exit(2)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PAIRED_RATE=str(args.rate), PAIRED_NORMALISATION=args.normalisation)
    procs: dict[str, subprocess.Popen] = {}

    def start() -> None:
        for name, pythonpath, norm in (("base", "" if self_base else str(args.base.resolve()), base_norm),
                                       ("new", "", args.normalisation)):
            procs[name] = subprocess.Popen(
                ["taskset", "-c", str(args.core), sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, env=dict(env, PYTHONPATH=pythonpath, PAIRED_NORMALISATION=norm))

    def stop() -> None:
        for p in procs.values():
            p.stdin.write("quit\n")
            p.stdin.flush()
            p.wait()

    def ask(name: str, cmd: str) -> dict:
        p = procs[name]
        p.stdin.write(cmd + "\n")
        p.stdin.flush()
        while True:
            line = p.stdout.readline()
            if not line:
                print(f"error: the {name} worker died", file=sys.stderr)
                sys.exit(1)
            if line.startswith("{"):
                return json.loads(line)

    res = {n: {"build": [], "bare": [], "bare_enc": []} for n in ("base", "new")}
    load_start = os.getloadavg()
    for r in range(args.rounds):
        if r == 0 or args.fresh:
            if r > 0:
                stop()
            start()
        order = ("base", "new") if r % 2 == 0 else ("new", "base")
        for cmd in ("build", "bare", "bare_enc"):
            for n in order:
                res[n][cmd].append(ask(n, cmd)["cpu_ms"])
        print(f"round {r}: " + "; ".join(f"{n} build {res[n]['build'][-1]:.2f} bare {res[n]['bare'][-1]:.2f} "
                                          f"render+encode {res[n]['bare_enc'][-1]:.2f} ms" for n in procs), flush=True)
    same = bool(np.array_equal(np.load(ask("base", "records")["path"]), np.load(ask("new", "records")["path"])))
    stop()
    summary = {}
    for n in procs:
        best = {k: min(v) for k, v in res[n].items()}
        summary[n] = {"best_ms": best, "median_ms": {k: float(np.median(v)) for k, v in res[n].items()},
                      "ratio_bare": best["bare"] / best["build"],
                      "ratio_render_plus_encode": best["bare_enc"] / best["build"],
                      # per round, within one worker a few seconds apart: robust to the load drifting
                      "round_ratio_bare_median": float(np.median(np.array(res[n]["bare"]) / res[n]["build"])),
                      "round_ratio_render_plus_encode_median": float(np.median(
                          np.array(res[n]["bare_enc"]) / res[n]["build"]))}
        print(f"{n}: build {best['build']:.2f} ms/record (median {summary[n]['median_ms']['build']:.2f}), bare render "
              f"{best['bare']:.2f}, render+encode {best['bare_enc']:.2f}: ratio {summary[n]['ratio_bare']:.3f}, "
              f"vs render+encode {summary[n]['ratio_render_plus_encode']:.3f} (best rounds, CPU time); per-round "
              f"median {summary[n]['round_ratio_bare_median']:.3f} / {summary[n]['round_ratio_render_plus_encode_median']:.3f}")
    paired = {k: sorted(a / b for a, b in zip(res["new"][k], res["base"][k])) for k in ("build", "bare_enc")}
    for k, v in paired.items():
        print(f"paired {k} new/base: median {v[len(v) // 2]:.3f} (range {v[0]:.3f}-{v[-1]:.3f})")
    print(f"records identical: {same}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": f"paired 1-worker build, base vs this tree ({args.rate} Hz, normalisation "
                     f"{base_norm} (base) / {args.normalisation}, 6 clips x 40)", "fresh_workers_per_round": args.fresh,
        "base": "this tree" if self_base else str(args.base), "normalisation": {"base": base_norm, "new": args.normalisation},
        "rounds": res, "summary": summary, "paired_median_new_over_base": {k: v[len(v) // 2] for k, v in paired.items()},
        "records_identical": same, "load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
        "cpus": os.cpu_count()}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker()
    else:
        main()
