"""The artifact layer (core/artifact.py): headers, fsynced Parquet shards, safetensors + JSON.

Everything here runs the real thing: pyarrow writes and reads the shards, safetensors the
weights, the installed `deltav2a` entry point the CLI case; the formats are the shipped ones.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deltav2a.artifact import (Checksum, Format, load_tensors, meta_shapes, parquet_metadata, read_json,
                               read_parquet, save_tensors, save_weights, tensor_header, verify_checksum,
                               write_json, write_parquet)
from deltav2a.errors import DeltaV2AError

from conftest import ROOT, run_cli

TOY = Format("toy-artifact", 3, "toy file", version_key="format_version", checksum_key="weights",
             fingerprint_keys=("fingerprint", "encoder.fingerprint"), remedy="make a new one")
SHIPPED = ROOT / "core" / "models" / "default"


def _table(n: int = 5):
    import pyarrow as pa

    return pa.table({"i": pa.array(np.arange(n, dtype=np.int32)),
                     "v": pa.array(np.linspace(0, 1, n).astype(np.float32))})


# ------------------------------------------------------------------ header


def test_json_round_trip_keeps_header_fingerprints_and_checksum(tmp_path):
    path = write_json(tmp_path / "a.json", TOY, {"fingerprint": "fp1", "encoder": {"fingerprint": "fp2"}, "x": [1.5]},
                      checksum=Checksum("a.bin", "ab" * 32))
    raw = json.loads(path.read_text())
    assert list(raw)[:2] == ["format", "format_version"] and list(raw)[-1] == "weights"
    header, body = read_json(path, TOY)
    assert (header.format, header.version) == ("toy-artifact", 3)
    assert header.fingerprints == {"fingerprint": "fp1", "encoder.fingerprint": "fp2"}
    assert header.checksum == Checksum("a.bin", "ab" * 32) and body["x"] == [1.5]
    with pytest.raises(ValueError, match="restates header"):
        write_json(tmp_path / "b.json", TOY, {"format": "x"})


@pytest.mark.parametrize("edit, needles", [
    ({"format": "other-thing"}, ["found format 'other-thing' version 3", "not a toy file; make a new one"]),
    ({"format_version": 4}, ["found format 'toy-artifact' version 4", "written by a newer deltav2a"]),
    ({"format_version": 2}, ["version 2", "an older toy file; make a new one"]),
    ({"format_version": "3"}, ["version '3'", "without a valid version"]),
    ({"format_version": True}, ["version True", "without a valid version"]),
    ({"format": None}, ["found no format field"]),
])
def test_a_wrong_format_or_version_is_one_line_naming_file_found_and_expected(tmp_path, edit, needles):
    path = tmp_path / "a.json"
    raw = {"format": "toy-artifact", "format_version": 3, **edit}
    path.write_text(json.dumps({k: v for k, v in raw.items() if v is not None}))
    with pytest.raises(DeltaV2AError) as err:
        read_json(path, TOY)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path))
    assert "expected 'toy-artifact' version 3" in msg
    for n in needles:
        assert n in msg, msg


def test_each_shipped_format_refuses_a_future_version(tmp_path):
    from deltav2a.analysis import decoder, extract
    from deltav2a.database import splits, store
    from deltav2a.model import weights

    for fmt in (splits.FORMAT, store.FORMAT, extract.FORMAT, weights.FORMAT, decoder.FORMAT):
        raw = {"format": fmt.name, fmt.version_key: fmt.version + 1}
        with pytest.raises(DeltaV2AError, match=f"version {fmt.version + 1}, expected '{fmt.name}' "
                                                f"version {fmt.version} \\(written by a newer"):
            fmt.check(raw, tmp_path / "x.json")
        assert fmt.accepts({"format": fmt.name, fmt.version_key: fmt.version})


def test_the_cli_reports_a_future_splits_file_in_one_line_with_exit_2(tmp_path):
    bad = tmp_path / "splits.json"
    bad.write_text(json.dumps({"format": "deltav2a-splits", "version": 2, "clips": []}))
    res = run_cli("build-db", "--splits", str(bad), "-o", str(tmp_path / "db"), "-q")
    assert res.returncode == 2, (res.returncode, res.stderr)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
    assert str(bad) in errors[0] and "version 2" in errors[0] and "expected 'deltav2a-splits' version 1" in errors[0]
    assert not (tmp_path / "db" / "db.json").exists()


def test_existing_files_keep_loading(tmp_path):
    """The shipped model's JSON reads through the layer with its checksum and fingerprints,
    and its weights pass the bounded, checked load."""
    from deltav2a.model import weights

    header, raw = read_json(SHIPPED / "controller.json", weights.FORMAT)
    assert header.checksum is not None and header.checksum.file == "controller.safetensors"
    assert header.fingerprints["vocabulary.fingerprint"] == raw["vocabulary"]["fingerprint"]
    verify_checksum(header, SHIPPED / "controller.safetensors", "shipped", "controller.json")
    state = load_tensors(SHIPPED / "controller.safetensors", "shipped", max_elements=weights.MAX_PARAMETERS,
                         backend="numpy")
    assert state and all(np.isfinite(a).all() for a in state.values() if a.dtype.kind == "f")


# ------------------------------------------------------------------ Parquet shards


def test_parquet_round_trip_with_metadata(tmp_path):
    path = write_parquet(tmp_path / "s.parquet", _table(), {"deltav2a": '{"a": 1}', b"plan": b"x"})
    info = parquet_metadata(path)
    assert info is not None and info.rows == 5 and info.metadata == {"deltav2a": '{"a": 1}', "plan": "x"}
    t = read_parquet(path, "shard")
    assert t.column("i").to_pylist() == list(range(5))
    assert [p.name for p in tmp_path.iterdir()] == ["s.parquet"]  # no temporary left


def test_a_truncated_shard_reads_as_redo_and_loads_as_one_line(tmp_path):
    path = write_parquet(tmp_path / "s.parquet", _table(200), {"k": "v"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert parquet_metadata(path) is None
    assert parquet_metadata(tmp_path / "missing.parquet") is None
    with pytest.raises(DeltaV2AError) as err:
        read_parquet(path, "database shard", "rebuild it")
    assert "\n" not in str(err.value) and str(path) in str(err.value) and str(err.value).endswith("rebuild it")


def _fsync_recorder(monkeypatch):
    """Wrap os.fsync: record which path each call flushed and whether the target existed yet."""
    calls: list[str] = []
    real = os.fsync

    def spy(fd):
        calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return calls


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name a descriptor")
def test_shards_are_fsynced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    from deltav2a.database import store

    calls = _fsync_recorder(monkeypatch)
    target = tmp_path / store.shard_name(0)
    write_parquet(target, _table())
    assert len(calls) == 2, calls
    tmp_name = Path(calls[0]).name
    assert tmp_name.startswith(f".{target.name}.") and tmp_name.endswith(".parquet")  # the temporary
    assert Path(calls[1]) == tmp_path.resolve()  # then the folder that holds the rename
    # the database's and the extract's shard writers are this one
    calls.clear()
    store.write_shard(tmp_path / store.shard_name(1), _table(), {"fingerprint": "f", "records": 5})
    assert len(calls) == 2 and Path(calls[0]).name.startswith(f".{store.shard_name(1)}.")
    assert store.read_shard_info(tmp_path / store.shard_name(1))["_rows"] == 5
    from deltav2a.analysis import extract

    src = Path(extract.__file__).read_text()
    assert "pq.write_table" not in src and "write_parquet(" in src


# ------------------------------------------------------------------ safetensors + JSON


def _module():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


def test_weights_round_trip_and_checksum(tmp_path):
    import torch

    from deltav2a.artifact import module_tensors

    m = _module()
    save_weights(tmp_path / "w.safetensors", tmp_path / "w.json", TOY, module_tensors(m), {"fingerprint": "f"})
    header, _ = read_json(tmp_path / "w.json", TOY)
    verify_checksum(header, tmp_path / "w.safetensors", "toy", "w.json")
    state = load_tensors(tmp_path / "w.safetensors", "toy", max_elements=100, expected=meta_shapes(_module))
    fresh = _module()
    fresh.load_state_dict(state, strict=True)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), fresh.state_dict().values()))
    assert tensor_header(tmp_path / "w.safetensors", "toy")["0.weight"].shape == (3, 4)


def test_a_corrupt_or_missing_checksum_is_refused(tmp_path):
    from deltav2a.artifact import module_tensors

    save_weights(tmp_path / "w.safetensors", tmp_path / "w.json", TOY, module_tensors(_module()), {})
    header, raw = read_json(tmp_path / "w.json", TOY)
    w = tmp_path / "w.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last tensor
    w.write_bytes(bytes(data))
    with pytest.raises(DeltaV2AError, match="not the weights file this metadata was written with"):
        verify_checksum(header, w, "toy", "w.json")
    raw.pop("weights")
    (tmp_path / "w.json").write_text(json.dumps(raw))
    header, _ = read_json(tmp_path / "w.json", TOY)
    with pytest.raises(DeltaV2AError, match="records no weights checksum"):
        verify_checksum(header, w, "toy", "w.json")


def _raw_safetensors(path: Path, header: dict, body: bytes = b"", claimed: int | None = None) -> None:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if claimed is None else claimed) + text + body)


def test_a_header_claiming_a_huge_size_is_refused_before_allocation(tmp_path):
    path = tmp_path / "huge.safetensors"
    _raw_safetensors(path, {}, claimed=1 << 62)  # reading it would ask for 4 EiB
    with pytest.raises(DeltaV2AError, match=r"implausible header \(4611686018427387904 bytes\)"):
        tensor_header(path, "toy")
    # a header that fits but describes a 10^12-element tensor in a 64-byte file
    _raw_safetensors(path, {"w": {"dtype": "F32", "shape": [1_000_000, 1_000_000], "data_offsets": [0, 64]}},
                     b"\0" * 64)
    with pytest.raises(DeltaV2AError, match=r"1,000,000,000,000 parameters \(limit 1,000\)"):
        load_tensors(path, "toy", max_elements=1000, backend="numpy")
    # an architecture the metadata asks for, larger than the limit, is refused from the shapes alone
    with pytest.raises(DeltaV2AError, match="parameters"):
        load_tensors(path, "toy", max_elements=1000, expected={"w": (10, 10), "big": (10 ** 6,)})
    for bad, why in ((b"\x01\x02", "too short"), (struct.pack("<Q", 100) + b"{}", "truncated header"),
                     (struct.pack("<Q", 2) + b"[]", "bad header")):
        path.write_bytes(bad)
        with pytest.raises(DeltaV2AError, match=why):
            tensor_header(path, "toy")


def test_names_shapes_and_finite_values_are_checked(tmp_path):
    import torch

    path = tmp_path / "w.safetensors"
    save_tensors(path, {"a": torch.zeros(2, 3), "b": torch.ones(4)}, TOY)
    assert tensor_header(path, "toy")["a"].dtype == "F32"
    with pytest.raises(DeltaV2AError, match=r"a: file has \[2, 3\], expected \[3, 2\]"):
        load_tensors(path, "toy", max_elements=100, expected={"a": (3, 2), "b": (4,)})
    with pytest.raises(DeltaV2AError, match=r"weights do not fit the toy \(c: file has nothing\)"):
        load_tensors(path, "toy", max_elements=100, expected={"a": None, "c": (1,)}, owner="the toy")
    assert load_tensors(path, "toy", max_elements=100, expected={"a": None, "b": (4,)})["b"].sum() == 4
    save_tensors(path, {"a": torch.tensor([1.0, float("inf")]), "i": torch.arange(3)})
    for backend in ("torch", "numpy"):
        with pytest.raises(DeltaV2AError, match="weight tensor 'a' contains NaN or Inf"):
            load_tensors(path, "toy", max_elements=100, backend=backend)


def test_the_decoder_gets_the_same_checks(tmp_path):
    """A decoder folder whose weights hold a NaN, or whose JSON claims a huge audio_dim, is
    refused in one line (the decoder used to load without either check)."""
    from deltav2a.analysis.decoder import FORMAT, META, WEIGHTS, load_decoder

    folder = tmp_path / "dec"
    folder.mkdir()
    save_tensors(folder / WEIGHTS, {"x": __import__("torch").tensor([float("nan")])}, FORMAT)
    from deltav2a.artifact import checksum_of

    write_json(folder / META, FORMAT, {"audio_dim": 10 ** 9, "condition_dim": 4, "encoder": {}, "layout": {}},
               checksum=checksum_of(folder / WEIGHTS))
    with pytest.raises(DeltaV2AError, match="audio_dim must be an integer"):
        load_decoder(folder)
    raw = json.loads((folder / META).read_text())
    raw["format_version"] = 9
    (folder / META).write_text(json.dumps(raw))
    with pytest.raises(DeltaV2AError, match="written by a newer deltav2a"):
        load_decoder(folder)


def test_a_controller_with_a_flipped_weight_bit_is_refused(tmp_path):
    from deltav2a.model.weights import load_controller

    model = tmp_path / "m"
    shutil.copytree(SHIPPED, model)
    w = model / "controller.safetensors"
    data = bytearray(w.read_bytes())
    data[-3] ^= 0x01
    w.write_bytes(bytes(data))
    with pytest.raises(DeltaV2AError, match="checksum differs"):
        load_controller(model / "controller", inference_only=True)


def test_the_layer_imports_no_heavy_library():
    code = ("import sys, deltav2a.artifact, deltav2a.database.store, deltav2a.database.splits; "
            "print(sorted(m for m in ('numpy', 'pyarrow', 'torch', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_header_field_added_later_keeps_old_files_loading(tmp_path):
    """study.json had only "version": 1 before it had a format; such folders still load, and
    a version the code does not read is still refused (decision 12.24)."""
    from deltav2a.study.store import FORMAT, load_manifest

    old = {"version": 1, "cases": [{"id": "c01"}]}
    (tmp_path / "study.json").write_text(json.dumps(old))
    assert load_manifest(tmp_path)["cases"] == [{"id": "c01"}]
    assert FORMAT.accepts({**FORMAT.header(), "cases": []})
    (tmp_path / "study.json").write_text(json.dumps({**old, "version": 2}))
    with pytest.raises(DeltaV2AError, match="found no format field, version 2, expected 'deltav2a-study' "
                                            "version 1 \\(written by a newer deltav2a\\)"):
        load_manifest(tmp_path)
    (tmp_path / "study.json").write_text(json.dumps({**old, "format": "deltav2a-db"}))
    with pytest.raises(DeltaV2AError, match="not a study manifest"):
        load_manifest(tmp_path)
