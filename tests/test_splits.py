"""Audio splits: track inference, whole-track 8:1:1 assignment, manifests, the split file."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from deltav2a.errors import DeltaV2AError
from deltav2a.database.splits import (SplitWarning, assign_tracks, infer_track_id, load_splits,
                             make_splits, write_splits)

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}
CLI = ("import sys; from deltav2a.cli import main as m; "
       "m._MODULES = tuple(dict.fromkeys(m._MODULES + ('database_cmd',))); m.main(sys.argv[1:])")


def run_cli(*args: str):
    import subprocess

    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True,
                          timeout=120)


def touch_clips(root: Path, names: list[str]) -> None:
    """Split discovery never decodes audio, so a few bytes per file are enough."""
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"RIFF")


@pytest.mark.parametrize("name,track", [
    ("blues - blues 001 - 2.mp3", "blues::blues_blues_001"),
    ("blues - blues 001 - 0.mp3", "blues::blues_blues_001"),
    ("Hip Hop - Track 12 - 10.wav", "hip_hop::hip_hop_track_12"),
    ("librosa__hungarian_dance__3.ogg", "librosa::hungarian_dance"),
    ("name__3.ogg", "name"),
    ("a__b__c__12.flac", "a::b__c"),
    ("standalone song.wav", "standalone song"),
    ("take__x.wav", "take__x"),          # a suffix that is not a number is part of the name
])
def test_infer_track_id(name, track):
    assert infer_track_id(name) == track


def test_assignment_keeps_tracks_whole_near_ratio_and_seeded():
    rng = np.random.default_rng(1)
    sizes = {f"t{i:03d}": int(rng.integers(1, 6)) for i in range(120)}
    total = sum(sizes.values())
    a = assign_tracks(sizes, RATIOS, seed=7)
    assert set(a) == set(sizes)                          # every track exactly once
    clips = Counter()
    for t, s in a.items():
        clips[s] += sizes[t]
    for s, r in RATIOS.items():
        assert abs(clips[s] - r * total) <= max(sizes.values()), (s, clips[s], r * total)
    assert assign_tracks(dict(reversed(list(sizes.items()))), RATIOS, seed=7) == a  # input order
    assert assign_tracks(sizes, RATIOS, seed=8) != a


def test_every_split_gets_a_track_with_exactly_three_tracks():
    for seed in range(10):
        a = assign_tracks({"big": 50, "b": 1, "c": 2}, RATIOS, seed)
        assert sorted(a.values()) == ["test", "train", "val"]


def test_too_few_tracks_is_a_clear_error():
    with pytest.raises(DeltaV2AError, match="only 2 parent track.*needs at least 3 tracks"):
        assign_tracks({"a": 10, "b": 4}, RATIOS, 0)
    # a zero ratio needs no track
    a = assign_tracks({"a": 10, "b": 4}, {"train": 0.9, "val": 0.1, "test": 0.0}, 0)
    assert sorted(a.values()) == ["train", "val"]
    with pytest.raises(DeltaV2AError, match="add up to 1"):
        assign_tracks({"a": 1, "b": 1, "c": 1}, {"train": 0.8, "val": 0.1, "test": 0.2}, 0)


def test_folder_split_roundtrip_and_leakage_check(tmp_path):
    audio = tmp_path / "audio"
    names = [f"{g} - {g} {i:03d} - {k}.mp3" for g in ("blues", "jazz") for i in range(6)
             for k in range(3)]
    touch_clips(audio, names + ["sub/extra__1.wav", "sub/extra__2.wav", "notes.txt"])
    sp = make_splits(audio, seed=3)
    assert len(sp.clips) == len(names) + 2
    tracks = {}
    for c in sp.clips:
        assert tracks.setdefault(c.track_id, c.split) == c.split
    assert len(tracks) == 13 and "extra" in tracks
    counts = sp.counts()
    assert all(counts[s]["clips"] > 0 for s in RATIOS)

    out = tmp_path / "out" / "splits.json"
    write_splits(sp, out)
    data = json.loads(out.read_text())
    assert data["audio_root"] == "../audio"            # relative: both can move together
    loaded = load_splits(out)
    assert loaded.clips == sp.clips and loaded.content_hash() == sp.content_hash()
    assert loaded.path_of(loaded.clips[0]).is_file()

    # a hand-edited file that puts one track in two splits is refused
    first = data["clips"][0]
    twin = next(c for c in data["clips"][1:] if c["track_id"] == first["track_id"])
    twin["split"] = next(s for s in RATIOS if s != first["split"])
    out.write_text(json.dumps(data))
    with pytest.raises(DeltaV2AError, match="in both"):
        load_splits(out)


def test_manifest_defines_clips_and_tracks(tmp_path):
    audio = tmp_path / "a"
    touch_clips(audio, [f"clip{i}.ogg" for i in range(8)] + ["unlisted.ogg"])
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "track_id", "other"])
        for i in range(8):
            w.writerow([f"clip{i}.ogg", f"track{i // 2}" if i < 6 else "", "x"])
    with pytest.warns(SplitWarning, match="1 audio file"):
        sp = make_splits(audio, manifest, seed=0)
    assert [c.file for c in sp.clips] == [f"clip{i}.ogg" for i in range(8)]
    ids = {c.file: c.track_id for c in sp.clips}
    assert ids["clip0.ogg"] == ids["clip1.ogg"] == "track0"
    assert ids["clip6.ogg"] == "clip6"                  # empty cell: inferred from the name

    bad = tmp_path / "bad.csv"
    bad.write_text("file,track_id\nclip0.ogg,t\nmissing.ogg,t\n")
    with pytest.raises(DeltaV2AError, match="1 file.*not found.*missing.ogg"):
        make_splits(audio, bad)
    bad.write_text("name,track\nclip0.ogg,t\n")
    with pytest.raises(DeltaV2AError, match="needs the columns file, track_id"):
        make_splits(audio, bad)
    with pytest.raises(DeltaV2AError, match="manifest not found"):
        make_splits(audio, tmp_path / "nope.csv")


def test_empty_or_missing_folder_errors(tmp_path):
    with pytest.raises(DeltaV2AError, match="not found"):
        make_splits(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DeltaV2AError, match="no audio files"):
        make_splits(tmp_path / "empty")
    with pytest.raises(DeltaV2AError, match="splits file not found"):
        load_splits(tmp_path / "none.json")


def test_cli_writes_split_file_and_reports_errors(tmp_path):
    audio = tmp_path / "audio"
    touch_clips(audio, [f"song{t}__{k}.wav" for t in range(5) for k in range(2)])
    out = tmp_path / "s.json"
    r = run_cli("splits", str(audio), "-o", str(out), "--seed", "4")
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout and out.is_file()
    loaded = load_splits(out)
    assert loaded.seed == 4 and len(loaded.clips) == 10

    few = tmp_path / "few"
    touch_clips(few, ["x__1.wav", "y__1.wav"])
    r = run_cli("splits", str(few), "-o", str(tmp_path / "f.json"))
    assert r.returncode == 2
    assert r.stderr.startswith("error: only 2 parent track") and "Traceback" not in r.stderr
    assert not (tmp_path / "f.json").exists()


@pytest.mark.shared_data
def test_shared_music_manifest_split(shared_data):
    music = shared_data / "music"
    sp = make_splits(music, music / "manifest.csv", seed=0)
    by_track: dict[str, set] = {}
    for c in sp.clips:
        by_track.setdefault(c.track_id, set()).add(c.split)
    assert all(len(s) == 1 for s in by_track.values())  # no leakage
    n = len(sp.clips)
    counts = sp.counts()
    biggest = max(Counter(c.track_id for c in sp.clips).values())
    for s, r in RATIOS.items():
        assert abs(counts[s]["clips"] - r * n) <= biggest
    # names alone give the same grouping as the manifest here
    assert [c.track_id for c in make_splits(music, seed=0).clips] == [c.track_id for c in sp.clips]
