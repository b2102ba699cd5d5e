"""The `ray` executor: a local 2-CPU Ray cluster gives the same records as the process pool,
survives a killed worker, resumes after a killed driver, and skips bad clips the same way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from deltav2a.config import Config  # noqa: E402
from deltav2a.database import build_database  # noqa: E402

from test_database import SR, all_train_splits, table_of  # noqa: E402

pytestmark = pytest.mark.slow
N_AUG = 2


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Six 1.5 s grooves (three tracks) and one file that is not audio."""
    from deltav2a.media.examples import groove
    from deltav2a.media.io import save_audio

    root = tmp_path_factory.mktemp("ray-clips")
    for t in range(3):
        for k in range(2):
            save_audio(groove(1.5, SR, seed=7 * t + k), SR, root / f"synth__t{t}__{k + 1}.wav")
    (root / "synth__bad__1.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    return root


@pytest.fixture(scope="module")
def splits(clips, tmp_path_factory) -> Path:
    return all_train_splits(clips, tmp_path_factory.mktemp("ray-splits") / "splits.json")


@pytest.fixture(scope="module")
def local_table(splits, tmp_path_factory):
    cfg = Config()
    cfg.database.shard_size = 2 * N_AUG   # two clips per shard: several shards
    out = tmp_path_factory.mktemp("db-local")
    build_database(cfg, splits, out, augmentations=N_AUG, workers=1, progress=False)
    return table_of(out)


def _ray_cfg() -> Config:
    cfg = Config()
    cfg.database.shard_size = 2 * N_AUG
    cfg.executor.kind = "ray"
    return cfg


def _actor_pids() -> list[int]:
    """Processes of our Ray actors (their title is `ray::_Actor...`)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if cmd.startswith(b"ray::_Actor"):
                pids.append(int(d.name))
    return pids


def test_ray_build_is_identical_to_local_and_counts_the_bad_clip(splits, local_table, tmp_path):
    out = tmp_path / "db-ray"
    summary = build_database(_ray_cfg(), splits, out, augmentations=N_AUG, workers=2, progress=False)
    assert summary.workers == 2
    assert [s["clip_id"] for s in summary.skipped] == ["synth__bad__1.wav"]
    assert table_of(out).equals(local_table)


def test_a_killed_ray_worker_is_restarted_and_its_clip_redone(splits, local_table, tmp_path):
    out = tmp_path / "db-ray-kill"
    killed: list[int] = []

    def kill_one(shard: int) -> None:
        if not killed:
            pids = _actor_pids()
            assert pids, "no Ray actor process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    build_database(_ray_cfg(), splits, out, augmentations=N_AUG, workers=2, progress=False,
                   on_shard=kill_one)
    assert killed
    assert table_of(out).equals(local_table)


def test_killed_driver_resumes_with_nothing_lost_or_duplicated(splits, local_table, tmp_path):
    out = tmp_path / "db-ray-driver"
    exe = Path(sys.executable).with_name("deltav2a")
    cmd = [str(exe), "build-db", "--splits", str(splits), "-o", str(out), "-n", str(N_AUG),
           "--executor", "ray", "--workers", "2", "-q"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"database: {{shard_size: {2 * N_AUG}}}\n")
    cmd += ["-c", str(cfg)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while not list(out.glob("shard-*.parquet")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(list(out.glob("shard-*.parquet")))
    assert written >= 1
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert table_of(out).equals(local_table)


def test_extract_with_ray_equals_local(clips, tmp_path):
    from deltav2a.analysis.extract import list_items, run_extract
    from deltav2a.analysis.settings import AnalysisConfig

    cfg = AnalysisConfig(intensities={"low": 0.3, "high": 0.9})
    cfg.extract.block_size = 2
    cfg.effects.audio = ["lpf", "reverb"]
    items, _ = list_items(clips, "audio", "auto", None, "collection", "track_id", None, 0)
    local = run_extract(tmp_path / "local", cfg, audio=items)["audio"]
    cfg.executor.kind = "ray"
    remote = run_extract(tmp_path / "ray", cfg, audio=items, workers=2)["audio"]
    import pyarrow.parquet as pq

    a = pq.read_table(tmp_path / "local" / local["table"]).replace_schema_metadata(None)
    b = pq.read_table(tmp_path / "ray" / remote["table"]).replace_schema_metadata(None)
    assert a.equals(b)
    assert [s["item"] for s in remote["skipped"]] == [s["item"] for s in local["skipped"]]


def test_unknown_executor_is_a_one_line_error(splits, tmp_path):
    exe = Path(sys.executable).with_name("deltav2a")
    r = subprocess.run([str(exe), "build-db", "--splits", str(splits), "-o", str(tmp_path / "x"),
                        "--executor", "dask"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: --executor must be 'local' or 'ray', got 'dask'"]
