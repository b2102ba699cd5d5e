"""`deltav2a serve` on the shipped model: start-up and a 10 s clip transfer (targets < 5 s each).

Starts the installed entry point N times (time until it answers HTTP, time until the model is
ready), then posts a 10 s clip (the first clip of ../shared/data/music, else the generated
groove) with motion_blur 0.7 on a 512 px image through the page's endpoint, several times,
recording the server's own step timings. Writes benchmarks/results/serve.json with the load
average, since the reference machine is shared.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXE = str(Path(sys.executable).with_name("deltav2a"))
SHARED = Path(os.environ.get("DELTAV2A_SHARED_DATA", HERE.parents[1] / "shared" / "data"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process: what start-up costs when the machine is not shared."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start() -> tuple[subprocess.Popen, str, float, float, float]:
    log = tempfile.TemporaryFile("w+")
    t0 = time.perf_counter()
    proc = subprocess.Popen([EXE, "serve", "--port", "0"], stdout=log, stderr=subprocess.STDOUT)
    url, listening = None, 0.0
    while url is None:
        log.seek(0)
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read())
        url = m and f"http://127.0.0.1:{m.group(1)}"
        time.sleep(0.02)
    while True:
        try:
            with urllib.request.urlopen(url + "/api/health") as r:
                listening = listening or time.perf_counter() - t0
                if json.loads(r.read())["ready"]:
                    return proc, url, listening, time.perf_counter() - t0, cpu_seconds(proc.pid)
        except OSError:
            pass
        time.sleep(0.02)


def multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    parts = [f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    for k, p in files.items():
        parts.append(f'--{b}\r\nContent-Disposition: form-data; name="{k}"; filename="{p.name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + p.read_bytes() + b"\r\n")
    return b"".join(parts) + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def main(starts: int = 3, transfers: int = 5) -> None:
    from deltav2a.media.examples import groove, landscape_image

    tmp = Path(tempfile.mkdtemp())
    landscape_image(512, 384, seed=2).save(tmp / "image.png")
    clips = sorted((SHARED / "music").glob("*.ogg"))
    if clips:
        clip = clips[0]
    else:
        import soundfile as sf

        clip = tmp / "clip.wav"
        sf.write(clip, groove(10.0).T, 44_100, subtype="PCM_16")
    rows, runs = [], []
    for i in range(starts):
        proc, url, listening, ready, cpu = start()
        rows.append({"listening_s": listening, "model_ready_s": ready, "cpu_s_until_ready": cpu,
                     "load_avg": os.getloadavg()[0]})
        print(f"start {i}: answering after {listening:.2f} s, model ready after {ready:.2f} s, "
              f"{cpu:.2f} s CPU (load {os.getloadavg()[0]:.1f})")
        if i == starts - 1:
            body, ctype = multipart({"effect": "motion_blur", "intensity": "0.7"},
                                    {"image": tmp / "image.png", "audio": clip})
            for _ in range(transfers):
                req = urllib.request.Request(url + "/api/transfer", data=body, headers={"Content-Type": ctype})
                t0 = time.perf_counter()
                with urllib.request.urlopen(req) as r:
                    out = json.loads(r.read())
                wall = time.perf_counter() - t0
                runs.append({"wall_s": wall, "server_cpu_s": cpu_seconds(proc.pid), "server_s": out["seconds"], "steps": out["timings"],
                             "load_avg": os.getloadavg()[0]})
                print(f"transfer: {wall:.2f} s wall, steps {out['timings']}")
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    res = {"target_s": 5.0, "clip": clip.name, "starts": rows, "transfers": runs,
           "median_model_ready_s": statistics.median(r["model_ready_s"] for r in rows),
           "median_listening_s": statistics.median(r["listening_s"] for r in rows),
           "median_cpu_s_until_ready": statistics.median(r["cpu_s_until_ready"] for r in rows),
           "median_transfer_s": statistics.median(r["wall_s"] for r in runs), "cores": os.cpu_count()}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "serve.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k.startswith("median")}))


if __name__ == "__main__":
    main()
