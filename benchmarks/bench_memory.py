"""Peak memory of the CLI on a 30-minute clip (issue 10: target < 2 GB).

A 30-minute 44.1 kHz stereo clip (a seeded groove tiled, PCM 16-bit WAV, written in blocks
so making it costs nothing) goes through the real `deltav2a` entry point:

* `apply-audio` with a streaming chain (lowpass, reverb, delay; tail kept),
* `apply-audio` with the same chain plus playback_rate (rendered outside Pedalboard),
* `transfer` with the summary PNG, using the shipped model and two image edits that make it
  switch effects on (motion blur at 0.9; adaptive blur at 0.9, which adds a delay whose
  tail is kept).

Each run is a fresh child of a fresh Python; its peak resident set size is read with
`resource.getrusage(RUSAGE_CHILDREN)` (the same number `/usr/bin/time -v` calls "Maximum
resident set size", in MiB). Anonymous memory (RssAnon: RSS without the pages of shared
libraries mapped from disk) is sampled every 20 ms beside it: the CUDA build of torch in
requirements.lock alone maps ~0.5 GiB of library pages that count in RSS at import (a
transfer with the shipped k-NN model no longer imports it). The clip itself is
30 x 60 x 44100 x 2 x 4 B = 635 MB as float32; A is decoded whole (E(A) reads its start,
the summary samples it), while A' is rendered block by block straight into the output file,
so the floor is one copy of A plus the process.

Run:  .venv/bin/python benchmarks/bench_memory.py [--minutes 30] [--keep DIR]
Writes benchmarks/results/memory.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("deltav2a")
PROBE = """
import resource, subprocess, sys, time
t = time.time()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
anon = 0
while p.poll() is None:  # sample anonymous memory (RSS minus file-backed library pages)
    try:
        for line in open(f"/proc/{p.pid}/status"):
            if line.startswith("RssAnon:"):
                anon = max(anon, int(line.split()[1]))
    except OSError:
        pass
    time.sleep(0.02)
err = p.stderr.read()
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, anon, time.time() - t)
sys.stderr.write(err[-2000:])
"""


def make_clip(path: Path, minutes: float, sr: int = 44100) -> None:
    import numpy as np
    import soundfile as sf

    from deltav2a.examples import groove

    block = groove(8.0, sr, seed=0).T  # (frames, 2)
    total = int(minutes * 60 * sr)
    with sf.SoundFile(str(path), "w", sr, 2, subtype="PCM_16", format="WAV") as f:
        done = 0
        while done < total:
            n = min(len(block), total - done)
            f.write(np.ascontiguousarray(block[:n]))
            done += n


def peak(args: list[str]) -> dict:
    res = subprocess.run([sys.executable, "-c", PROBE, str(EXE), *args], capture_output=True, text=True)
    rc, kib, anon, wall = res.stdout.split()
    return {"args": args, "returncode": int(rc), "peak_rss_mb": round(int(kib) / 1024, 1),
            "peak_anon_mb_sampled": round(int(anon) / 1024, 1),
            "wall_s": round(float(wall), 1), "stderr_tail": res.stderr.strip().splitlines()[-3:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp dir)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="deltav2a-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    clip = work / "long.wav"
    if not clip.exists():
        make_clip(clip, args.minutes)
    from deltav2a.examples import landscape_image

    landscape_image(640, 480).save(work / "photo.png")
    chain = ["-e", "lowpass:cutoff_hz=3000", "-e", "reverb:wet_level=0.4", "-e", "delay:mix=0.3"]
    runs = {
        "apply-audio (lowpass, reverb, delay)":
            peak(["apply-audio", str(clip), *chain, "-o", str(work / "a.wav"), "--info", str(work / "a.json")]),
        "apply-audio (+ playback_rate 1.25)":
            peak(["apply-audio", str(clip), *chain, "-e", "playback_rate:rate=1.25", "-o", str(work / "b.wav")]),
        "transfer with summary PNG":
            peak(["transfer", "--image", str(work / "photo.png"), "--image-effect", "motion_blur:0.9",
                  "--audio", str(clip), "-o", str(work / "t.wav")]),
        "transfer with summary PNG (adaptive_blur 0.9)":
            peak(["transfer", "--image", str(work / "photo.png"), "--image-effect", "adaptive_blur:0.9",
                  "--audio", str(clip), "-o", str(work / "u.wav")]),
    }
    out = {"minutes": args.minutes, "clip_bytes": clip.stat().st_size, "machine": platform.platform(),
           "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"), "target_mb": 2000, "runs": runs}
    for name, stem in (("transfer_effects", "t"), ("transfer_effects_adaptive_blur", "u")):
        if (work / f"{stem}.json").exists():
            out[name] = [e["effect"] for e in json.loads((work / f"{stem}.json").read_text())["effects"]]
    dest = ROOT / "benchmarks" / "results" / "memory.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'run':46s} {'rc':>3s} {'peak RSS MiB':>12s} {'anon MiB':>9s} {'wall s':>7s}")
    for name, r in runs.items():
        print(f"{name:46s} {r['returncode']:3d} {r['peak_rss_mb']:12.1f} {r['peak_anon_mb_sampled']:9.1f} "
              f"{r['wall_s']:7.1f}")
    print("transfer effects:", out.get("transfer_effects"), out.get("transfer_effects_adaptive_blur"))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
