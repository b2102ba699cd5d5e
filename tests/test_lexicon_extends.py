"""`extends` in a lexicon file: a version holds only its differences from a shipped one.

Lexicons v5 and v6 were full copies of v4 with two and one entries changed; they now say
`extends: "4"`. What must not change is what a model was trained against: the resolved
directions, hence the encoders' fingerprints. And a lexicon is data from elsewhere: `extends`
may name a shipped version only, never a path, so a file cannot make the loader read anything
outside the package's data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from deltav2a.errors import DeltaV2AError
from deltav2a_plugins.encoders import lexicon as lx
from deltav2a_plugins.encoders.perceptual_audio import PerceptualAudioEncoder
from deltav2a_plugins.encoders.perceptual_image import PerceptualImageEncoder

#: the fingerprints of v5 and v6 when they were full copies of v4 (before `extends`)
FULL_COPY_FINGERPRINTS = {
    ("5", "image"): "perceptual-image/5/ac4ec9121671e689", ("5", "audio"): "perceptual-audio/5/6d0f44c1d9e7b3c2",
    ("6", "image"): "perceptual-image/3/763dfb40e3b67fd7", ("6", "audio"): "perceptual-audio/3/4d565f3c7c5035b7",
}


@pytest.mark.parametrize("version", ["5", "6"])
def test_shipped_versions_hold_only_their_changes_and_keep_their_fingerprints(tmp_path, version):
    raw = yaml.safe_load(lx.LEXICON_FILES[version].read_text())
    assert raw["extends"] == "4" and len(raw["words"]) <= 2 and "neutral" not in raw
    for cls, side in ((PerceptualImageEncoder, "image"), (PerceptualAudioEncoder, "audio")):
        assert cls(lexicon_version=version).fingerprint() == FULL_COPY_FINGERPRINTS[(version, side)]
    # the resolved file written out as a full copy is the same lexicon, word for word
    full = lx.read_lexicon_file(lx.LEXICON_FILES[version])
    assert "extends" not in full and len(full["words"]) == len(lx.read_lexicon_file(lx.LEXICON_FILES["4"])["words"])
    copy = tmp_path / "copy.yaml"
    copy.write_text(yaml.safe_dump(full, sort_keys=False))
    for cls in (PerceptualImageEncoder, PerceptualAudioEncoder):
        a, b = cls(lexicon_version=version), cls(lexicon=str(copy))
        assert a.lexicon.digest() == b.lexicon.digest() and a.lexicon.glosses == b.lexicon.glosses
        assert a.fingerprint() == b.fingerprint()


def test_a_user_lexicon_extends_a_shipped_one(tmp_path):
    """A researcher's file re-grounds one word; every other word and the normalisation are the
    base's, and the file is its own lexicon (own version, own fingerprint)."""
    lex = tmp_path / "mine.yaml"
    lex.write_text(yaml.safe_dump({"lexicon_version": "mine-1", "extends": "4", "words": {
        "muffled": {"gloss": "re-grounded", "like": {"calm": 1.0}},
        "zz new": {"gloss": "a new word", "like": {"bright": 1.0}}}}))
    base, mine = PerceptualAudioEncoder(lexicon_version="4"), PerceptualAudioEncoder(lexicon=str(lex))
    assert mine.table.version == base.table.version == "3"  # v4's normalisation_version
    assert mine.lexicon.version == "mine-1" and mine.fingerprint() != base.fingerprint()
    assert mine.lexicon.directions["muffled"] != base.lexicon.directions["muffled"]
    assert mine.lexicon.directions["granular"] == base.lexicon.directions["granular"]
    # exactly what copying v4 and editing the copy gives (words built `like` muffled follow it)
    full = yaml.safe_load(lx.LEXICON_FILES["4"].read_text())
    full["lexicon_version"] = "mine-1"
    full["words"].update(yaml.safe_load(lex.read_text())["words"])
    copy = tmp_path / "copy.yaml"
    copy.write_text(yaml.safe_dump(full, sort_keys=False))
    assert PerceptualAudioEncoder(lexicon=str(copy)).fingerprint() == mine.fingerprint()
    assert np.allclose(mine.lexicon.directions["zz new"], base.lexicon.directions["bright"])
    assert mine.lexicon.neutral == base.lexicon.neutral


@pytest.mark.parametrize("extends,match", [
    ("99", "'extends' must name a shipped lexicon version"),
    ("../perceptual_lexicon_v4.yaml", "'extends' must name a shipped lexicon version"),
    (str(lx.LEXICON_FILES["4"]), "'extends' must name a shipped lexicon version"),
    (True, "'extends' must name a shipped lexicon version"),
    (["4"], "'extends' must name a shipped lexicon version"),
])
def test_extends_names_a_shipped_version_only(tmp_path, extends, match):
    lex = tmp_path / "lex.yaml"
    lex.write_text(yaml.safe_dump({"lexicon_version": "x", "extends": extends, "words": {}}))
    with pytest.raises(DeltaV2AError, match=match) as e:
        PerceptualImageEncoder(lexicon=str(lex)).encode_text(["muffled"])
    assert "\n" not in str(e.value)


def test_extends_with_malformed_words_or_a_loop_is_one_line(tmp_path, monkeypatch):
    lex = tmp_path / "lex.yaml"
    lex.write_text(yaml.safe_dump({"lexicon_version": "x", "extends": "4", "words": ["muffled"]}))
    with pytest.raises(DeltaV2AError, match="'words' must be a mapping"):
        PerceptualImageEncoder(lexicon=str(lex)).encode_text(["muffled"])
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump({"lexicon_version": "a", "extends": "b"}))
    b.write_text(yaml.safe_dump({"lexicon_version": "b", "extends": "a"}))
    monkeypatch.setitem(lx.LEXICON_FILES, "a", a)
    monkeypatch.setitem(lx.LEXICON_FILES, "b", b)
    with pytest.raises(DeltaV2AError, match="leads back to itself"):
        lx.read_lexicon_file(a)


def test_a_bad_extends_through_the_cli_is_one_line_and_exit_2(tmp_path):
    from conftest import run_cli

    lex = tmp_path / "lex.yaml"
    lex.write_text(yaml.safe_dump({"lexicon_version": "x", "extends": "/etc/passwd", "words": {}}))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"encoders": {"image": {"name": "perceptual-image",
                                                          "options": {"lexicon": str(lex)}}}}))
    out = tmp_path / "out"
    r = run_cli("vocab", "audit", "-c", str(cfg), "-o", str(out))
    assert r.returncode == 2 and "Traceback" not in r.stderr and not out.exists(), r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and "'extends' must name a shipped lexicon version" in errors[0], r.stderr


def test_an_extending_file_is_parsed_once_per_content(tmp_path, monkeypatch):
    """The loader and both normalisation checks read the same file; an extending file is parsed
    once (its base with it) and parsed again only when its content changes."""
    lex = tmp_path / "mine.yaml"
    lex.write_text(yaml.safe_dump({"lexicon_version": "m", "extends": "4", "words": {
        "muffled": {"gloss": "g", "like": {"calm": 1.0}}}}))
    reads = []
    real = lx._read_yaml
    monkeypatch.setattr(lx, "_read_yaml", lambda path, what: reads.append(Path(path).name) or real(path, what))
    first = lx.read_lexicon_file(lex)
    assert lx.read_lexicon_file(lex) is first and reads.count("mine.yaml") == 1
    assert lx._CACHE.get("neutral") is None  # the cache key is the file's, never a section name
    lex.write_text(yaml.safe_dump({"lexicon_version": "m2", "extends": "4", "words": {}}))
    assert lx.read_lexicon_file(lex)["lexicon_version"] == "m2" and reads.count("mine.yaml") == 2
