"""The shared readers turn every unusable data file into a one-line DeltaV2AError."""

from __future__ import annotations

import pytest

from deltav2a.config import Config
from deltav2a.errors import DeltaV2AError
from deltav2a.fileio import load_model_yaml, read_json, read_yaml, sha256_file


@pytest.mark.parametrize("text,needle", [
    ("{not json", "not valid JSON"), ("[1, 2]", "JSON object"), (b"\xff\xfe\x00", "cannot read"),
])
def test_read_json_errors(tmp_path, text, needle):
    p = tmp_path / "x.json"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DeltaV2AError, match=needle) as err:
        read_json(p, "thing")
    assert "\n" not in str(err.value) and "thing" in str(err.value)


def test_read_json_missing_and_ok(tmp_path):
    with pytest.raises(DeltaV2AError, match="cannot read thing"):
        read_json(tmp_path / "nope.json", "thing")
    (tmp_path / "ok.json").write_text('{"a": 1}')
    assert read_json(tmp_path / "ok.json", "thing") == {"a": 1}


def test_read_yaml_and_model_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("a: [1\n")
    with pytest.raises(DeltaV2AError, match="not valid YAML"):
        read_yaml(p, "config")
    p.write_text("")
    assert read_yaml(p, "config", allow_empty=True) is None
    with pytest.raises(DeltaV2AError, match="mapping"):
        read_yaml(p, "config")
    p.write_text("training: {epochs: 0}\n")
    with pytest.raises(DeltaV2AError, match="training.epochs"):
        load_model_yaml(Config, p, "config")
    p.write_text("seed: 3\n")
    assert load_model_yaml(Config, p, "config", {"training": {"epochs": 2}}).training.epochs == 2


def test_sha256_file(tmp_path):
    p = tmp_path / "b"
    p.write_bytes(b"abc")
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
