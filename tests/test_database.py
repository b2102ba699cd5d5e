"""Inverse-mapping DB: sampling rule, records, determinism across workers, resume, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deltav2a.config import Config, DatabaseConfig, load_config
from deltav2a.database import (AugmentationSampler, DatabaseWarning, allowed_intervals,
                               build_database, load_database, load_database_for, record_rng)
from deltav2a.database import store
from deltav2a.api.encoders import AudioEncoder
from deltav2a.errors import DeltaV2AError
from deltav2a.model.layout import ParamLayout
from deltav2a.database.splits import SplitClip, Splits, make_splits, write_splits

SR = 48_000
N_AUG = 3
CLI = ("import sys; from deltav2a.cli import main as m; "
       "m._MODULES = tuple(dict.fromkeys(m._MODULES + ('database_cmd',))); m.main(sys.argv[1:])")


def cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def layout() -> ParamLayout:
    return ParamLayout.from_names(Config().effects.audio)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    """Eight 2 s grooves, two per track, written once for the module."""
    from deltav2a.media.examples import groove
    from deltav2a.media.io import save_audio

    root = tmp_path_factory.mktemp("clips")
    for t in range(4):
        for k in range(2):
            save_audio(groove(2.0, SR, seed=10 * t + k), SR, root / f"synth__t{t}__{k + 1}.wav")
    return root


def all_train_splits(root: Path, out: Path, files: list[str] | None = None,
                     val: list[str] = ()) -> Path:
    """A split file that puts the given clips in train (tests decide what trains)."""
    files = files if files is not None else sorted(p.name for p in root.glob("*.wav"))
    clips = [SplitClip(f, f.rsplit("__", 1)[0], "train") for f in files]
    clips += [SplitClip(f, "val::" + f, "val") for f in val]
    sp = Splits(audio_root=root, clips=clips, seed=0, ratios={"train": 1.0}, track_source="test")
    return write_splits(sp, out)


def table_of(db_dir: Path):
    import pyarrow as pa

    tables = [store.read_shard(p).replace_schema_metadata(None)
              for p in sorted(db_dir.glob("shard-*.parquet"))]
    return pa.concat_tables(tables)


# ----------------------------------------------------------------------------- sampling


def test_allowed_intervals_reading_of_the_notes():
    assert allowed_intervals(0.0, 0.35, 0.15) == [(0.35, 1.0)]
    assert allowed_intervals(1.0, 0.35, 0.15) == [(0.0, pytest.approx(0.65))]
    assert allowed_intervals(0.5, 0.35, 0.15) == [(0.0, 0.35), (0.65, 1.0)]
    assert allowed_intervals(0.0, 0.0, 0.15) == [(0.0, 1.0)]          # floor lifted
    assert allowed_intervals(0.5, 0.35, 0.0) == [(0.0, 1.0)]          # exclusion lifted
    assert allowed_intervals(0.2, 0.35, 0.3) == [(0.5, 1.0)]          # one side left
    assert allowed_intervals(0.0, 1.0, 0.15) == [(1.0, 1.0)]          # only the far end


def test_sampler_follows_the_rule(layout):
    cfg = Config()
    sampler = AugmentationSampler(layout, cfg.database, cfg.effects.chain_order)
    rng = np.random.default_rng(0)
    augs = [sampler.sample(rng) for _ in range(3000)]
    k = np.array([a.active.sum() for a in augs])
    assert set(k) == {1, 2}
    per_effect = np.sum([a.active for a in augs], axis=0)
    assert per_effect.min() > 0.1 * per_effect.mean()             # every effect is drawn
    bypass = layout.bypass_array()
    owner = layout.param_effect_array()
    params = np.array([a.params for a in augs])
    act = np.array([a.active[owner] for a in augs])
    assert np.allclose(params[~act], np.broadcast_to(bypass, params.shape)[~act])
    for j, b in enumerate(bypass):
        v = params[act[:, j], j]
        if b in (0.0, 1.0):
            d = np.abs(v - b)
            assert d.min() >= 0.35 - 1e-9 and d.min() < 0.37 and d.max() > 0.98
        else:  # playback_rate.rate, reverb.damping: mid bypass 0.5
            assert not np.any((v > 0.35 + 1e-9) & (v < 0.65 - 1e-9))
            assert v.min() < 0.02 and v.max() > 0.98
            assert 0.4 < np.mean(v < 0.5) < 0.6
    rank = {n: i for i, n in enumerate(cfg.effects.chain_order)}
    for a in augs[:300]:
        names = [layout.effects[i] for i in np.flatnonzero(a.active)]
        assert list(a.order) == sorted(names, key=rank.__getitem__)   # the notes' fixed order


def test_sampler_switches_lift_the_three_limitations(layout):
    cfg = Config()
    db = DatabaseConfig(max_active=4, param_min_intensity=0.0, randomize_chain_order=True)
    sampler = AugmentationSampler(layout, db, cfg.effects.chain_order)
    rng = np.random.default_rng(1)
    augs = [sampler.sample(rng) for _ in range(2000)]
    assert set(int(a.active.sum()) for a in augs) == {1, 2, 3, 4}
    j = layout.param_index("reverb.wet_level")
    wet = [a.params[j] for a in augs if a.active[layout.effect_index("reverb")]]
    assert min(wet) < 0.05                                           # no 0.35 floor any more
    orders = set()
    for a in augs:
        if "playback_rate" in a.order:
            assert a.order[-1] == "playback_rate"                    # outside Pedalboard: last
        inside = tuple(n for n in a.order if n != "playback_rate")
        if set(inside) == {"lowpass", "reverb"}:
            orders.add(inside)
    assert orders == {("lowpass", "reverb"), ("reverb", "lowpass")}
    # a record's draw depends on (seed, clip, augmentation, attempt) only
    a1 = sampler.sample(record_rng(5, "x.wav", 3, 1))
    a2 = sampler.sample(record_rng(5, "x.wav", 3, 1))
    a3 = sampler.sample(record_rng(5, "x.wav", 3, 2))
    assert np.array_equal(a1.params, a2.params) and a1.order == a2.order
    assert not np.array_equal(a1.params, a3.params)


# ----------------------------------------------------------------------------- building


@pytest.fixture(scope="module")
def built(audio_dir, tmp_path_factory):
    """One reference build (workers=1) shared by the read-only tests."""
    tmp = tmp_path_factory.mktemp("ref")
    splits = all_train_splits(audio_dir, tmp / "splits.json")
    cfg = Config()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DELTAV2A_HOME", str(tmp / "home"))
        summary = build_database(cfg, splits, tmp / "db", augmentations=N_AUG, workers=1,
                                 progress=False)
    return splits, tmp / "db", summary


def test_records_are_complete_and_faithful(built, layout):
    from deltav2a.render.chain import AudioChain
    from deltav2a.style.encoding import load_encoder
    from deltav2a.style.pairs import load_clip

    splits, db_dir, summary = built
    assert summary.records == 8 * N_AUG and summary.skipped == []
    db = load_database(db_dir)
    d = db.data
    assert len(db) == 8 * N_AUG and d.style.shape == (24, 24) and d.audio.shape == (24, 24)
    assert d.active.shape == (24, layout.n_effects) and d.params.shape == (24, layout.n_params)
    assert np.allclose(d.style.sum(axis=1), 1.0, atol=1e-5)
    n_act = d.active.sum(axis=1)
    assert n_act.min() >= 1 and n_act.max() <= 2
    assert np.allclose(layout.gate(d.params, d.active), d.params)       # inactive at bypass
    assert np.allclose(np.linalg.norm(db.embedding_after - d.audio, axis=1), db.delta_norm,
                       rtol=1e-5, atol=1e-6)
    assert list(zip(db.clip_id[:4], db.augmentation[:4])) == [
        ("synth__t0__1.wav", 0), ("synth__t0__1.wav", 1), ("synth__t0__1.wav", 2),
        ("synth__t0__2.wav", 0)]
    assert set(db.track_id) == {f"synth__t{t}" for t in range(4)}
    for j, p in enumerate(layout.params):
        assert np.allclose([p.denormalise(u) for u in d.params[:, j]], db.params_raw[:, j],
                           rtol=1e-5)
    meta = db.meta
    assert meta["status"] == "complete" and meta["identity"]["encoder"]["name"] == "perceptual-audio"
    assert meta["identity"]["database"]["param_min_intensity"] == 0.35

    # a stored record re-renders to the stored E(A'): the record says what was rendered
    cfg = Config()
    enc = load_encoder(cfg.encoders.audio, "audio")
    i = 5
    x = load_clip(audio_dir_of(splits) / db.clip_id[i], cfg)
    chain = AudioChain(layout.to_raw(d.params[i], d.active[i]), order=db.chain_order[i], tail="cut")
    assert tuple(chain.names) == db.chain_order[i]
    y = chain(x, SR)
    assert y.shape == x.shape or "playback_rate" in db.chain_order[i]
    assert np.allclose(enc.encode_audio([y], SR)[0], db.embedding_after[i], atol=1e-5)
    assert np.allclose(enc.encode_audio([x], SR)[0], d.audio[i], atol=1e-6)


def audio_dir_of(splits_path: Path) -> Path:
    from deltav2a.database.splits import load_splits

    return load_splits(splits_path).audio_root


def test_same_seed_same_db_whatever_the_worker_count(built, tmp_path):
    splits, db_dir, _ = built
    s2 = build_database(Config(), splits, tmp_path / "db2", augmentations=N_AUG, workers=2,
                        progress=False)
    assert s2.workers == 2
    assert table_of(tmp_path / "db2").equals(table_of(db_dir))
    assert (tmp_path / "db2" / "shard-00000.parquet").read_bytes() == \
        (db_dir / "shard-00000.parquet").read_bytes()
    other = build_database(Config(seed=1), splits, tmp_path / "db3", augmentations=N_AUG,
                           workers=1, progress=False)
    assert other.fingerprint != s2.fingerprint
    assert not table_of(tmp_path / "db3").column("params").equals(table_of(db_dir).column("params"))
    # database.seed draws the records alone (the splits stay the experiment seed's): the same
    # records as the experiment seed 1, and an unset database.seed leaves the identity as it was
    redrawn = build_database(Config(database={"seed": 1}), splits, tmp_path / "db4", augmentations=N_AUG,
                             workers=1, progress=False)
    assert redrawn.fingerprint == other.fingerprint
    assert table_of(tmp_path / "db4").equals(table_of(tmp_path / "db3"))
    meta = store.read_meta(db_dir)["identity"]
    assert meta["seed"] == 0 and "seed" not in meta["database"]


def test_math_threads_are_limited_in_the_build_and_records_do_not_change(built, tmp_path, monkeypatch):
    """Issue 15: the build runs BLAS on one thread (no oversubscription by the workers), the
    caller gets its own limits back, and a build with the library's default threads writes
    the same records (the reference build `built` ran with the limit)."""
    import contextlib

    from threadpoolctl import threadpool_info

    from deltav2a.database import generate

    def blas_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    splits, db_dir, _ = built
    before = blas_threads()
    seen: list[list[int]] = []
    run = generate.ClipWorker.run
    monkeypatch.setattr(generate.ClipWorker, "run", lambda self, t: (seen.append(blas_threads()), run(self, t))[1])
    build_database(Config(), splits, tmp_path / "limited", augmentations=N_AUG, workers=1, progress=False)
    assert seen and all(n == [1] * len(before) for n in seen)
    assert blas_threads() == before                              # the caller's limits are back
    assert table_of(tmp_path / "limited").equals(table_of(db_dir))

    seen.clear()
    monkeypatch.setattr(generate, "_one_math_thread", contextlib.nullcontext)
    build_database(Config(), splits, tmp_path / "free", augmentations=N_AUG, workers=1, progress=False)
    assert seen and all(n == before for n in seen)               # really built without the limit
    assert table_of(tmp_path / "free").equals(table_of(db_dir))


def test_steady_malloc_changes_no_record(built, tmp_path):
    """Decision 15.63: a build worker fixes glibc's malloc thresholds (no page faults per
    record). The same build in a process left with glibc's small fresh-process thresholds
    (set through its environment, which `_steady_malloc` then leaves alone) writes the same
    records, byte for byte."""
    from deltav2a.database import generate

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc malloc tuning is Linux-only")
    splits, db_dir, _ = built
    assert generate._steady_malloc() is True
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072",
               DELTAV2A_HOME=str(tmp_path / "home"))
    code = ("import sys; from pathlib import Path; from deltav2a.config import Config; "
            "from deltav2a.database import build_database; from deltav2a.database import generate as g; "
            "assert g._steady_malloc() is False; "
            f"build_database(Config(), {str(splits)!r}, {str(tmp_path / 'small')!r}, augmentations={N_AUG}, "
            "workers=1, progress=False)")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert table_of(tmp_path / "small").equals(table_of(db_dir))


def test_rerun_is_a_no_op_and_other_settings_are_refused(built, tmp_path):
    import shutil

    splits, db_dir, summary = built
    copy = tmp_path / "db"
    shutil.copytree(db_dir, copy)
    again = build_database(Config(), splits, copy, augmentations=N_AUG, workers=1, progress=False)
    assert again.shards_written == 0 and again.records == summary.records
    with pytest.raises(DeltaV2AError, match="other settings.*augmentations.*--overwrite"):
        build_database(Config(), splits, copy, augmentations=N_AUG + 1, progress=False)
    cfg = load_config(overrides={"database": {"param_min_intensity": 0.2}})
    with pytest.raises(DeltaV2AError, match="database.param_min_intensity"):
        build_database(cfg, splits, copy, augmentations=N_AUG, progress=False)
    redone = build_database(cfg, splits, copy, augmentations=N_AUG, workers=1, overwrite=True,
                            progress=False)
    assert redone.shards_written == redone.n_shards and redone.records == summary.records
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "thesis.tex").write_text("x")
    with pytest.raises(DeltaV2AError, match="not empty and is not a deltav2a database"):
        build_database(Config(), splits, tmp_path / "foreign", augmentations=N_AUG, progress=False)


def _two_clip_splits(audio_dir: Path, tmp_path: Path):
    """All-train splits of the first two clips (the lexicon / normalisation relabel tests)."""
    return all_train_splits(audio_dir, tmp_path / "splits.json", files=sorted(
        p.name for p in audio_dir.glob("*.wav"))[:2])


def _config_441(options: dict) -> Config:
    """A 44.1 kHz config with these perceptual-audio options."""
    return load_config(overrides={"audio": {"sample_rate": 44100}, "encoders": {
        "audio": {"name": "perceptual-audio", "options": options}}})


def test_lexicon_v4_relabels_a_normalisation_3_database(audio_dir, tmp_path):
    """Lexicon v4 reads normalisation 3: a database built with v3 on normalisation 3 (44.1 kHz,
    what the default moves to) switches to v4 by relabelling alone, no render, same E(A)
    (decision 16.22); from normalisation 2 it would have to be re-encoded."""
    import shutil

    splits = _two_clip_splits(audio_dir, tmp_path)
    cfg = _config_441

    v3 = build_database(cfg({"normalisation_version": "3"}), splits, tmp_path / "v3", augmentations=2,
                        workers=1, progress=False)
    copy = tmp_path / "v4"
    shutil.copytree(tmp_path / "v3", copy)
    v4 = build_database(cfg({"lexicon_version": "4"}), splits, copy, augmentations=2, workers=1,
                        overwrite=True, progress=False)
    assert v4.shards_written == 0 and v4.renders == 0 and v4.fingerprint != v3.fingerprint
    assert table_of(copy).column("embedding_after").equals(table_of(tmp_path / "v3").column("embedding_after"))
    assert not table_of(copy).column("style").equals(table_of(tmp_path / "v3").column("style"))
    # from normalisation 2 the media vectors differ: that is a rebuild, not a relabel
    n2 = tmp_path / "n2"
    build_database(cfg({}), splits, n2, augmentations=2, workers=1, progress=False)
    redone = build_database(cfg({"lexicon_version": "4"}), splits, n2, augmentations=2, workers=1,
                            overwrite=True, progress=False)
    assert redone.shards_written == redone.n_shards


def test_normalisation_4_builds_with_lexicon_v3_and_v4(audio_dir, tmp_path):
    """Normalisation 4 (audio analysis 3, decision 15.50) builds a database with lexicon v3 (the
    default) and relabels to lexicon v4 without a render (same 24 descriptors); its media
    vectors are its own: from a normalisation-3 database it is a rebuild, not a relabel."""
    import shutil

    import numpy as np

    splits = _two_clip_splits(audio_dir, tmp_path)
    cfg = _config_441

    n4 = build_database(cfg({"normalisation_version": "4"}), splits, tmp_path / "n4", augmentations=2,
                        workers=1, progress=False)
    after = np.array(table_of(tmp_path / "n4").column("embedding_after").to_pylist(), dtype=np.float32)
    assert after.shape == (n4.records, 24) and np.isfinite(after).all()
    copy = tmp_path / "n4_lex4"
    shutil.copytree(tmp_path / "n4", copy)
    lex4 = build_database(cfg({"normalisation_version": "4", "lexicon_version": "4"}), splits, copy,
                          augmentations=2, workers=1, overwrite=True, progress=False)
    assert lex4.renders == 0 and lex4.fingerprint != n4.fingerprint
    assert table_of(copy).column("embedding_after").equals(table_of(tmp_path / "n4").column("embedding_after"))
    n3 = tmp_path / "n3"
    build_database(cfg({"normalisation_version": "3"}), splits, n3, augmentations=2, workers=1, progress=False)
    redone = build_database(cfg({"normalisation_version": "4"}), splits, n3, augmentations=2, workers=1,
                            overwrite=True, progress=False)
    assert redone.shards_written == redone.n_shards


def test_vocabulary_change_relabels_instead_of_rerendering(built, tmp_path):
    """--overwrite with only another vocabulary recomputes the style column from the stored
    embeddings: nothing is rendered, and the result equals a fresh build with that vocabulary."""
    import shutil

    splits, db_dir, summary = built
    copy = tmp_path / "db"
    shutil.copytree(db_dir, copy)
    cfg = Config(vocabulary="v2")
    relabelled = build_database(cfg, splits, copy, augmentations=N_AUG, workers=1, overwrite=True,
                                progress=False)
    assert relabelled.shards_written == 0 and relabelled.renders == 0
    assert relabelled.records == summary.records
    fresh = build_database(cfg, splits, tmp_path / "fresh", augmentations=N_AUG, workers=1, progress=False)
    assert fresh.fingerprint == relabelled.fingerprint
    assert table_of(copy).equals(table_of(tmp_path / "fresh"))
    assert not table_of(copy).column("style").equals(table_of(db_dir).column("style"))
    # another lexicon on the same normalisation changes only the encoder's text side:
    # relabelled too, after E(A) is checked (lexicon v3 with one word re-grounded; v1/v2
    # would also change E(A): they read normalisation 1, 23 descriptors)
    import yaml

    from deltav2a_plugins.encoders.lexicon import LEXICON_FILES
    doc = yaml.safe_load(LEXICON_FILES["3"].read_text())
    doc["words"]["muffled"] = {"gloss": "re-grounded", "like": {"calm": 1.0}}
    (tmp_path / "lex.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    lex1 = load_config(overrides={"vocabulary": "v2", "encoders": {
        "audio": {"name": "perceptual-audio", "options": {"lexicon": str(tmp_path / "lex.yaml")}}}})
    again = build_database(lex1, splits, copy, augmentations=N_AUG, workers=1, overwrite=True, progress=False)
    assert again.shards_written == 0 and again.renders == 0 and again.fingerprint != fresh.fingerprint
    assert table_of(copy).column("embedding").equals(table_of(db_dir).column("embedding"))
    # the strength column: the audio-side edit size, in [0, 1], 0 only without active effects
    t = table_of(copy)
    strength = t.column("strength").to_numpy()
    assert strength.min() >= 0 and strength.max() <= 1 and np.ptp(strength) > 0


def test_resume_repairs_missing_damaged_and_temporary_shards(built, tmp_path):
    splits, db_dir, _ = built
    cfg = load_config(overrides={"database": {"shard_size": 2 * N_AUG}})  # 2 clips per shard
    out = tmp_path / "db"
    full = build_database(cfg, splits, out, augmentations=N_AUG, workers=1, progress=False)
    assert full.n_shards == 4
    reference = table_of(out)
    (out / "shard-00001.parquet").unlink()                                   # lost
    damaged = out / "shard-00002.parquet"
    damaged.write_bytes(damaged.read_bytes()[:300])                          # torn write
    (out / ".shard-00003.parquet.abc123.parquet").write_bytes(b"partial")    # killed mid-write
    meta = json.loads((out / "db.json").read_text())
    meta["status"] = "building"
    (out / "db.json").write_text(json.dumps(meta))
    with pytest.raises(DeltaV2AError, match="incomplete.*rerun"):
        load_database(out)
    with pytest.warns(DatabaseWarning, match="shard-00002.*damaged"):
        again = build_database(cfg, splits, out, augmentations=N_AUG, workers=1, progress=False)
    assert again.shards_written == 2 and again.shards_reused == 2
    assert not list(out.glob(".shard-*"))
    assert table_of(out).equals(reference)
    assert len(load_database(out)) == 8 * N_AUG


@pytest.mark.slow
def test_kill_9_mid_build_then_resume_loses_and_duplicates_nothing(built, tmp_path):
    splits, db_dir, _ = built
    config = tmp_path / "c.yaml"
    config.write_text("database:\n  shard_size: 8\n")   # 1 clip (8 records) per shard
    out = tmp_path / "db"
    args = ["build-db", "--splits", str(splits), "-o", str(out), "-c", str(config), "-n", "8",
            "--workers", "2", "-q"]
    proc = cli(*args, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline and not list(out.glob("shard-*.parquet")):
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)                  # the CLI and its workers, at once
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    done_before = len(list(out.glob("shard-*.parquet")))
    assert 1 <= done_before < 8
    with pytest.raises(DeltaV2AError, match="incomplete"):
        load_database(out)

    rerun = cli(*args)
    stdout, stderr = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, stderr
    assert f"reused {done_before}" in stdout or done_before == 0

    resumed = table_of(out)
    keys = list(zip(resumed.column("clip_id").to_pylist(), resumed.column("augmentation").to_pylist()))
    assert len(keys) == len(set(keys)) == 8 * 8
    straight = tmp_path / "straight"
    build_database(load_config(config), splits, straight, augmentations=8, workers=1, progress=False)
    assert resumed.equals(table_of(straight))


# ----------------------------------------------------------------------------- bad input


def test_bad_clips_are_skipped_and_counted(audio_dir, tmp_path):
    import shutil

    root = tmp_path / "a"
    root.mkdir()
    for name in ("synth__t0__1.wav", "synth__t1__1.wav"):
        shutil.copy(audio_dir / name, root / name)
    (root / "empty__1.wav").write_bytes(b"")
    (root / "garbage__1.wav").write_bytes(b"this is not audio at all" * 50)
    from deltav2a.media.io import save_audio

    save_audio(np.zeros((2, SR), np.float32), SR, root / "silent__1.wav")
    splits = all_train_splits(root, tmp_path / "s.json")
    with pytest.warns(DatabaseWarning) as caught:
        s = build_database(Config(), splits, tmp_path / "db", augmentations=2, workers=1,
                           progress=False)
    reasons = {d["clip_id"]: d["reason"] for d in s.skipped}
    assert set(reasons) == {"empty__1.wav", "garbage__1.wav", "silent__1.wav"}
    assert "empty" in reasons["empty__1.wav"] and "readable" in reasons["garbage__1.wav"]
    assert "silent" in reasons["silent__1.wav"]
    assert sum("skipped clip" in str(w.message) for w in caught) == 3
    db = load_database(tmp_path / "db")
    assert len(db) == 2 * 2 and db.meta["skipped_clips"] == 3
    assert set(db.clip_id) == {"synth__t0__1.wav", "synth__t1__1.wav"}


def test_clear_errors(audio_dir, built, tmp_path, layout):
    splits, db_dir, _ = built
    only_val = all_train_splits(audio_dir, tmp_path / "v.json", files=[], val=["synth__t0__1.wav"])
    with pytest.raises(DeltaV2AError, match="train split .* is empty"):
        build_database(Config(), only_val, tmp_path / "x", progress=False)
    gone = all_train_splits(audio_dir, tmp_path / "g.json", files=["synth__t0__1.wav", "nope.wav"])
    with pytest.raises(DeltaV2AError, match="1 train clip.*missing.*nope.wav"):
        build_database(Config(), gone, tmp_path / "x", progress=False)
    with pytest.raises(DeltaV2AError, match="splits file not found"):
        build_database(Config(), tmp_path / "none.json", tmp_path / "x", progress=False)
    with pytest.raises(DeltaV2AError, match="not a deltav2a database"):
        load_database(tmp_path)
    with pytest.raises(DeltaV2AError, match="database folder not found"):
        load_database(tmp_path / "missing")

    class ToyAudioEncoder(AudioEncoder):
        """Per-channel RMS: a different embedding space than perceptual-audio."""

        name = "toy-audio"

        @property
        def dim(self) -> int:
            return 2

        def fingerprint(self) -> str:
            return "toy/1"

        def encode_audio(self, clips, sample_rate):
            return np.stack([np.sqrt(np.mean(np.square(c), axis=1))[:2] for c in clips])

    with pytest.raises(DeltaV2AError, match="built with audio encoder 'perceptual-audio'.*'toy-audio'"):
        load_database(db_dir, audio_encoder=ToyAudioEncoder())
    with pytest.raises(DeltaV2AError, match="vocabulary 'v3'.*'v1'"):
        load_database(db_dir, vocabulary="v1")
    with pytest.raises(DeltaV2AError, match="another effect layout"):
        load_database(db_dir, layout=ParamLayout.from_names(["lowpass", "reverb"]))
    assert len(load_database_for(Config(), db_dir)) == 8 * N_AUG


@pytest.mark.shared_data
def test_real_clips_from_shared_data(shared_data, tmp_path):
    music = shared_data / "music"
    splits = write_splits(make_splits(music, music / "manifest.csv", seed=0), tmp_path / "s.json")
    s = build_database(Config(), splits, tmp_path / "db", augmentations=2, workers=1,
                       limit_clips=3, progress=False)
    db = load_database_for(Config(), tmp_path / "db")
    assert s.n_clips == 3 and len(db) == 6 and not s.skipped
    assert np.all(db.delta_norm > 0) and np.isfinite(db.data.style).all()
    train_tracks = {c.track_id for c in make_splits(music, music / "manifest.csv", seed=0).clips_in("train")}
    assert set(db.track_id) <= train_tracks
