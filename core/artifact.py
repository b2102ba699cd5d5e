"""Versioned on-disk artifacts: one header, one Parquet shard writer, one safetensors + JSON pair.

Every file DeltaV2A writes for a later run to read back (a splits file, a database's
`db.json` and shards, an extract, controller weights, the analysis decoder) goes through
here, so each guarantee is written once:

* **Header.** A JSON artifact starts with `format` and a version, and may record
  fingerprints (what it was made from) and the SHA-256 of the payload file it describes.
  `Format.check` reads them into a typed `Header`; a file of another format, an older or a
  newer version is refused in one line that names the file, what it found and what this
  code reads. The on-disk spelling is the one each format has always used (`version` for
  splits and databases, `format_version` for controllers, extracts and decoders; the
  weights checksum under `weights`), so every existing file loads unchanged.
* **Parquet shards** are written to a temporary file beside the target, fsynced, renamed
  over it and the rename fsynced (`write_parquet`): a shard is absent or complete, even
  after kill -9 or a power loss, which is what resumable builds rely on. A damaged shard
  reads as "no metadata" (`parquet_metadata` -> None), i.e. "redo it".
* **safetensors + JSON.** `save_weights` writes the tensors, then the JSON (the commit
  point) with the weights' SHA-256. `load_tensors` reads the safetensors header alone first
  (at most `MAX_HEADER_BYTES`), bounds the element count and checks names and shapes before
  anything is allocated, then refuses NaN/Inf; `verify_checksum` catches a weights file from
  another run. No pickle anywhere.

numpy, pyarrow, safetensors and torch are imported inside functions: the CLI imports the
modules that import this one.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

from .errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

#: a safetensors JSON header larger than this is refused before it is read (the shipped
#: controller's is ~1 KiB; 16 MiB holds ~100,000 tensor entries)
MAX_HEADER_BYTES = 1 << 24


# ------------------------------------------------------------------ the header


@dataclass(frozen=True)
class Checksum:
    """The SHA-256 of the payload file a JSON artifact describes (by name, beside it)."""

    file: str
    sha256: str


@dataclass(frozen=True)
class Header:
    """What every versioned JSON artifact says about itself, read by `Format.check`."""

    format: str
    version: int
    fingerprints: dict[str, str] = field(default_factory=dict)  # dotted key -> value
    checksum: Checksum | None = None


@dataclass(frozen=True)
class Format:
    """One on-disk format: its name, the version this code writes and reads, its spelling.

    `what` names a file of it in errors ("database description"); `remedy` says what to do
    about an unreadable one. `version_key` and `checksum_key` are how the format has always
    spelled its version and payload checksum; `fingerprint_keys` are the dotted paths of the
    fingerprints it records (read into `Header.fingerprints` where present).
    """

    name: str
    version: int
    what: str
    version_key: str = "version"
    checksum_key: str | None = None
    fingerprint_keys: tuple[str, ...] = ()
    remedy: str = ""
    #: files written before the format had a `format` field (only a version) still load
    missing_format_ok: bool = False

    def header(self, checksum: Checksum | None = None) -> dict[str, Any]:
        """The header fields to write first in a JSON artifact of this format."""
        out: dict[str, Any] = {"format": self.name, self.version_key: self.version}
        if checksum is not None:
            if self.checksum_key is None:
                raise ValueError(f"format {self.name} records no payload checksum")
            out[self.checksum_key] = {"file": checksum.file, "sha256": checksum.sha256}
        return out

    def accepts(self, raw: Any) -> bool:
        """True when `raw` (a parsed JSON object) is a file of this format and version."""
        if not isinstance(raw, Mapping):
            return False
        named = raw.get("format") == self.name or (self.missing_format_ok and "format" not in raw)
        return named and _is_int(raw.get(self.version_key)) and raw.get(self.version_key) == self.version

    def check(self, raw: Mapping[str, Any], path: str | os.PathLike) -> Header:
        """The typed header of `raw`, or a one-line DeltaV2AError naming the file, what it
        found and what this code reads."""
        if not self.accepts(raw):
            raise DeltaV2AError(self._mismatch(raw, path))
        fingerprints = {}
        for key in self.fingerprint_keys:
            value = _dig(raw, key)
            if isinstance(value, str):
                fingerprints[key] = value
        checksum = None
        if self.checksum_key is not None:
            rec = raw.get(self.checksum_key)
            if (isinstance(rec, Mapping) and isinstance(rec.get("sha256"), str) and rec["sha256"]
                    and isinstance(rec.get("file", ""), str)):
                checksum = Checksum(str(rec.get("file", "")), rec["sha256"])
        return Header(self.name, self.version, fingerprints, checksum)

    def body(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """`raw` without its header fields (to write it again through `write_json`)."""
        drop = {"format", self.version_key, self.checksum_key}
        return {k: v for k, v in raw.items() if k not in drop}

    def _mismatch(self, raw: Any, path: str | os.PathLike) -> str:
        fmt = raw.get("format") if isinstance(raw, Mapping) else None
        ver = raw.get(self.version_key) if isinstance(raw, Mapping) else None
        found = (f"format {_short(fmt)} version {_short(ver)}" if fmt is not None
                 else f"no format field, version {_short(ver)}")
        remedy = f"; {self.remedy}" if self.remedy else ""
        if fmt is None and self.missing_format_ok:
            fmt = self.name  # an early file of this format: judged by its version
        if fmt != self.name:
            why = f"not a {self.what}{remedy}"
        elif _is_int(ver) and ver > self.version:
            why = "written by a newer deltav2a"
        elif _is_int(ver):
            why = f"an older {self.what}{remedy}"
        else:
            why = f"a {self.what} without a valid version{remedy}"
        return f"{path}: found {found}, expected {self.name!r} version {self.version} ({why})"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _dig(raw: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = raw
    for part in dotted.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def write_json(path: str | os.PathLike, fmt: Format, body: Mapping[str, Any],
               checksum: Checksum | None = None) -> Path:
    """Atomic strict JSON: the header first, then `body` (which must not restate it)."""
    from .atomic import write_json as _write

    clash = {"format", fmt.version_key, fmt.checksum_key} & set(body)
    if clash:
        raise ValueError(f"{fmt.name} body restates header fields: {sorted(k for k in clash if k)}")
    path = Path(path)
    record = {**fmt.header(), **body}
    if checksum is not None:
        record.update(fmt.header(checksum))  # the checksum last, as the files always had it
    _write(path, record)
    return path


def read_json(path: str | os.PathLike, fmt: Format) -> tuple[Header, dict]:
    """A JSON artifact of `fmt`: its checked header and the whole object."""
    from .fileio import read_json as _read

    raw = _read(Path(path), fmt.what)
    return fmt.check(raw, path), raw


def checksum_of(path: str | os.PathLike) -> Checksum:
    from .fileio import sha256_file

    path = Path(path)
    return Checksum(path.name, sha256_file(path))


def verify_checksum(header: Header, payload: str | os.PathLike, where: str, meta_name: str) -> None:
    """Refuse a payload the header does not vouch for: no checksum recorded, or another one."""
    from .fileio import sha256_file

    payload = Path(payload)
    if header.checksum is None:
        raise DeltaV2AError(f"{where}: {meta_name} records no weights checksum (weights.sha256); "
                            "refusing weights that cannot be verified")
    if header.checksum.sha256 != sha256_file(payload):
        raise DeltaV2AError(f"{where}: {payload.name} is not the weights file this metadata was "
                            "written with (checksum differs)")


# ------------------------------------------------------------------ Parquet shards


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file (or a folder's entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet(path: str | os.PathLike, table: "pa.Table",
                  metadata: Mapping[str | bytes, str | bytes] | None = None) -> Path:
    """Atomically write `table` (zstd) with `metadata` as its Parquet key-value metadata.

    The bytes are fsynced before the rename and the folder after it, so a shard is either
    absent or complete after a kill or a power loss. `metadata` replaces the table's own
    schema metadata (None: keep it)."""
    import pyarrow.parquet as pq

    from .atomic import atomic_path

    path = Path(path)
    if metadata is not None:
        table = table.replace_schema_metadata({_bytes(k): _bytes(v) for k, v in metadata.items()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
        fsync_path(tmp)
    try:  # make the rename itself durable; a folder cannot be opened for fsync everywhere
        fsync_path(path.parent)
    except OSError:
        pass
    return path


def _bytes(v: str | bytes) -> bytes:
    return v.encode("utf-8") if isinstance(v, str) else bytes(v)


@dataclass(frozen=True)
class ShardInfo:
    """A Parquet file's key-value metadata (decoded; pyarrow's own `ARROW:` keys left out) and
    row count, read from its footer."""

    metadata: dict[str, str]
    rows: int


def parquet_metadata(path: str | os.PathLike) -> ShardInfo | None:
    """The footer of a Parquet file, or None when it is missing, truncated or not Parquet
    (a resumable build then simply redoes that shard)."""
    import pyarrow.parquet as pq

    try:
        md = pq.read_metadata(path)
        meta = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                for k, v in (md.metadata or {}).items() if not k.startswith(b"ARROW:")}
        return ShardInfo(meta, int(md.num_rows))
    except Exception:  # noqa: BLE001 - any damage means "redo this shard"
        return None


def read_parquet(path: str | os.PathLike, what: str, remedy: str = "") -> "pa.Table":
    """The whole table, or a one-line error naming the file (`what`: "database shard")."""
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for damage
        first = str(exc).splitlines()[0] if str(exc) else ""
        tail = f"; {remedy}" if remedy else ""
        raise DeltaV2AError(f"{what} {path} is unreadable ({type(exc).__name__}: {first}){tail}") from None


# ------------------------------------------------------------------ safetensors + JSON


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def tensor_header(path: str | os.PathLike, where: str,
                  max_header_bytes: int = MAX_HEADER_BYTES) -> dict[str, TensorInfo]:
    """Tensor names, dtypes and shapes from a safetensors header alone.

    The 8-byte length is read first and a header claiming more than `max_header_bytes` is
    refused before anything that size is read; nothing of the tensors is touched."""
    import struct

    path = Path(path)
    bad = f"{where}: {path.name} is not a safetensors file"
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise DeltaV2AError(f"{bad} (too short)")
            (size,) = struct.unpack("<Q", head)
            if size > max_header_bytes:
                raise DeltaV2AError(f"{where}: {path.name} has an implausible header ({size} bytes)")
            text = fh.read(size)
            if len(text) < size:
                raise DeltaV2AError(f"{bad} (truncated header)")
            header = json.loads(text.decode("utf-8"))
    except OSError as exc:
        raise DeltaV2AError(f"{where}: cannot read {path.name}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError):
        raise DeltaV2AError(f"{bad} (bad header)") from None
    if not isinstance(header, dict):
        raise DeltaV2AError(f"{bad} (bad header)")
    out: dict[str, TensorInfo] = {}
    for name, rec in header.items():
        if name == "__metadata__" or not isinstance(rec, dict):
            continue
        shape = rec.get("shape", ())
        if not (isinstance(shape, list) and all(_is_int(d) and d >= 0 for d in shape)):
            raise DeltaV2AError(f"{bad} (tensor '{name}' has shape {_short(shape)})")
        out[name] = TensorInfo(str(rec.get("dtype", "")), tuple(shape))
    return out


def check_shapes(found: Mapping[str, TensorInfo], where: str, *, max_elements: int,
                 expected: Mapping[str, tuple[int, ...] | None] | None = None,
                 owner: str = "the model") -> None:
    """Size and shapes from the header, before any allocation.

    `expected`: name -> shape, or None for a tensor sized by the data (present, any shape);
    the element count is then that of the expected tensors (so a metadata file asking for a
    huge architecture is refused even when the weights file is small), else of the file."""
    shapes = {k: v.shape for k, v in found.items()}
    if expected is None:
        n = sum(math.prod(s) for s in shapes.values())
    else:
        n = sum(math.prod(s if s is not None else shapes.get(name, ())) for name, s in expected.items())
    if n > max_elements:
        raise DeltaV2AError(f"{where}: the stored config and weights describe {n:,} parameters "
                            f"(limit {max_elements:,})")
    for name, shape in (expected or {}).items():
        if name not in shapes:
            raise DeltaV2AError(f"{where}: weights do not fit {owner} ({name}: file has nothing)")
        if shape is not None and shapes[name] != shape:
            raise DeltaV2AError(f"{where}: weights do not fit {owner} ({name}: file has "
                                f"{list(shapes[name])}, expected {list(shape)})")


def load_tensors(path: str | os.PathLike, where: str, *, max_elements: int,
                 backend: Literal["torch", "numpy"] = "torch",
                 expected: Mapping[str, tuple[int, ...] | None] | None = None,
                 owner: str = "the model") -> dict[str, Any]:
    """Tensors of a safetensors file, checked before (header, size, shapes) and after
    (finite values) they are read. `backend` "numpy" needs no torch."""
    from safetensors import SafetensorError

    path = Path(path)
    check_shapes(tensor_header(path, where), where, max_elements=max_elements,
                 expected=expected, owner=owner)
    if backend == "numpy":
        from safetensors.numpy import load_file
    else:
        from safetensors.torch import load_file
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, TypeError, ValueError) as exc:
        raise DeltaV2AError(f"{where}: cannot read {path.name}: {exc}") from None
    for name, tensor in state.items():
        if not _finite(tensor):
            raise DeltaV2AError(f"{where}: weight tensor '{name}' contains NaN or Inf")
    return state


def _finite(tensor: Any) -> bool:
    if hasattr(tensor, "is_floating_point"):  # torch
        import torch

        return not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())
    import numpy as np

    return tensor.dtype.kind not in "fc" or bool(np.isfinite(tensor).all())


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, Any], fmt: Format | None = None) -> Path:
    """Atomically write torch tensors as safetensors (the format's name in its metadata)."""
    from safetensors.torch import save_file

    from .atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(dict(tensors), str(tmp), metadata={"format": fmt.name} if fmt is not None else None)
    return path


def save_weights(weights: str | os.PathLike, meta: str | os.PathLike, fmt: Format,
                 tensors: Mapping[str, Any], body: Mapping[str, Any]) -> Path:
    """NAME.safetensors, then its JSON (the commit point: header, `body`, weights' SHA-256)."""
    write_json(meta, fmt, body, checksum=checksum_of(save_tensors(weights, tensors, fmt)))
    return Path(weights)


def meta_shapes(build: Callable[[], Any]) -> dict[str, tuple[int, ...] | None] | None:
    """Parameter shapes of the torch module `build()` makes, built on torch's meta device
    (shapes only, no memory): the `expected` of `load_tensors`. None if the module cannot be
    built there (a plugin that insists on real tensors). Buffers a module lists in
    `data_buffers` (stored records, e.g. the k-NN controller's) are sized by the data, not
    the architecture: their shape is None (only their presence is checked)."""
    import torch

    try:
        with torch.device("meta"):
            module = build()
    except DeltaV2AError:
        raise
    except Exception:  # noqa: BLE001 - a plugin module that insists on real tensors
        return None
    data = set(getattr(module, "data_buffers", ()))
    return {k: (None if k.rsplit(".", 1)[-1] in data else tuple(v.shape))
            for k, v in module.state_dict().items()}


def module_tensors(module: Any) -> dict[str, Any]:
    """A torch module's state as independent, contiguous CPU tensors (what safetensors accepts)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


__all__ = ["Checksum", "Format", "Header", "MAX_HEADER_BYTES", "ShardInfo", "TensorInfo", "check_shapes",
           "checksum_of", "fsync_path", "load_tensors", "meta_shapes", "module_tensors", "parquet_metadata",
           "read_json", "read_parquet", "save_tensors", "save_weights", "tensor_header",
           "verify_checksum", "write_json", "write_parquet"]
