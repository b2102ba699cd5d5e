"""On-disk layout of an inverse-mapping database: Parquet shards plus one `db.json`.

    DB_DIR/
      db.json              identity (config, encoder, vocabulary, layout, splits hashes),
                           status "building" | "complete", counts once complete
      shard-00000.parquet  records of clips [0, c), c = clips per shard
      shard-00001.parquet  records of clips [c, 2c) ...
      .build.lock          held (flock) while a build runs

A shard covers a fixed block of clip indices, so its name and content do not depend on
which worker finished first. It is written to a temporary file beside it, flushed to disk
and renamed over its final name (`os.replace` is atomic; `artifact.write_parquet`), so a
shard file is either absent or complete, whenever the build is killed. Each shard carries its own key-value
metadata (the database fingerprint, its clip ids, the clips it skipped and its row
count), which is how a rerun tells a finished shard from a stale or damaged one.

pyarrow and numpy are imported inside functions (the CLI imports this module).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..artifact import Format
from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

    from ..config import Config
    from ..api.encoders import Encoder
    from ..model.layout import ParamLayout
    from ..model.data import ControllerData
    from ..api.vocabulary import Vocabulary

FORMAT = Format("deltav2a-db", 1, "deltav2a database description", fingerprint_keys=("fingerprint",),
                remedy="rebuild it with `deltav2a build-db`")
META_FILE = "db.json"
LOCK_FILE = ".build.lock"
SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".parquet"
TEMP_PREFIX = "." + SHARD_PREFIX   # atomic_path names temporaries ".<target name>.XXXX.parquet"
META_KEY = "deltav2a"   # the shard's JSON info in its Parquet key-value metadata

#: vector columns: name -> (numpy dtype, size key in db.json "dims")
VECTOR_COLUMNS: dict[str, tuple[str, str]] = {
    "style": ("float32", "style"),
    "embedding": ("float32", "embedding"),
    "embedding_after": ("float32", "embedding"),
    "active": ("bool", "effects"),
    "params": ("float32", "params"),
    "params_raw": ("float64", "params"),
}
SCALAR_COLUMNS: dict[str, str] = {
    "clip_index": "int32",
    "augmentation": "int32",
    "seed": "int64",
    "attempt": "int8",
    "attempts": "int8",
    "n_active": "int8",
    "delta_norm": "float32",
    "below_min_norm": "bool",
    "strength": "float32",   # audio-side edit size in [0, 1] (strength.chain_strength)
}
TEXT_COLUMNS = ("clip_id", "track_id", "split")


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:05d}{SHARD_SUFFIX}"


def shard_index(name: str) -> int | None:
    if not (name.startswith(SHARD_PREFIX) and name.endswith(SHARD_SUFFIX)):
        return None
    body = name[len(SHARD_PREFIX):-len(SHARD_SUFFIX)]
    return int(body) if body.isdigit() else None


def schema(dims: Mapping[str, int]) -> "pa.Schema":
    import numpy as np
    import pyarrow as pa

    def arrow(dtype: str) -> "pa.DataType":
        return pa.from_numpy_dtype(np.dtype(dtype))

    fields = [pa.field("clip_index", arrow("int32"))]
    fields += [pa.field(n, pa.string()) for n in TEXT_COLUMNS]
    fields += [pa.field(n, arrow(t)) for n, t in SCALAR_COLUMNS.items() if n != "clip_index"]
    fields += [pa.field(n, pa.list_(arrow(t), int(dims[key])))
               for n, (t, key) in VECTOR_COLUMNS.items()]
    fields.append(pa.field("chain_order", pa.list_(pa.string())))
    return pa.schema(fields)


def to_table(columns: Mapping[str, Any], dims: Mapping[str, int]) -> "pa.Table":
    """Column arrays (see `SCALAR_COLUMNS` etc.) -> a table with the fixed schema."""
    import numpy as np
    import pyarrow as pa

    sch = schema(dims)
    n = len(columns["clip_index"])
    arrays = []
    for f in sch:
        value = columns[f.name]
        if f.name in VECTOR_COLUMNS:
            dtype, key = VECTOR_COLUMNS[f.name]
            arr = np.ascontiguousarray(value, dtype=dtype).reshape(n, int(dims[key]))
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), int(dims[key])))
        elif f.name == "chain_order":
            arrays.append(pa.array([list(v) for v in value], type=f.type))
        elif f.name in TEXT_COLUMNS:
            arrays.append(pa.array([str(v) for v in value], type=pa.string()))
        else:
            arrays.append(pa.array(np.asarray(value, dtype=SCALAR_COLUMNS[f.name]), type=f.type))
    return pa.Table.from_arrays(arrays, schema=sch)


def vectors(table: "pa.Table", name: str) -> "np.ndarray":
    """A fixed-size-list column as an (N, d) numpy array."""
    import numpy as np

    col = table.column(name)
    width = col.type.list_size
    dtype = VECTOR_COLUMNS[name][0]
    if table.num_rows == 0:
        return np.zeros((0, width), dtype=dtype)
    flat = col.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=dtype).reshape(-1, width)


def write_shard(path: Path, table: "pa.Table", info: Mapping[str, Any]) -> None:
    """Atomically (fsynced) write a shard with its `info` in the Parquet key-value metadata."""
    from ..artifact import write_parquet

    meta: dict[str | bytes, str | bytes] = dict(table.schema.metadata or {})
    meta[META_KEY.encode("utf-8")] = json.dumps(info, sort_keys=True)
    write_parquet(path, table, meta)


def read_shard_info(path: Path) -> dict | None:
    """A shard's metadata, or None when the file is not a readable shard."""
    from ..artifact import parquet_metadata

    footer = parquet_metadata(path)
    if footer is None or META_KEY not in footer.metadata:
        return None
    try:
        info = json.loads(footer.metadata[META_KEY])
    except ValueError:  # any damage means "redo this shard"
        return None
    if not isinstance(info, dict):
        return None
    info["_rows"] = footer.rows
    return info


def read_shard(path: Path) -> "pa.Table":
    from ..artifact import read_parquet

    return read_parquet(path, "database shard", "rerun `deltav2a build-db` to rebuild it")


def shard_info(table: "pa.Table") -> dict:
    """The info `write_shard` stored in a shard read with `read_shard` ({} if none)."""
    raw = (table.schema.metadata or {}).get(META_KEY.encode("utf-8"), b"{}")
    try:
        info = json.loads(raw.decode("utf-8"))
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def write_meta(db_dir: Path, meta: Mapping[str, Any]) -> None:
    """Atomically write `db.json`: the header, then `meta` (its own header fields, if it was
    read from another database, are replaced)."""
    from ..artifact import write_json

    write_json(Path(db_dir) / META_FILE, FORMAT, FORMAT.body(meta))


def read_meta(db_dir: Path) -> dict:
    path = Path(db_dir) / META_FILE
    if not Path(db_dir).exists():
        raise DeltaV2AError(f"database folder not found: {db_dir}")
    if not path.is_file():
        raise DeltaV2AError(f"{db_dir} is not a deltav2a database (no {META_FILE}); "
                            "build one with `deltav2a build-db`")
    from ..artifact import read_json

    _, meta = read_json(path, FORMAT)
    return meta


# ----------------------------------------------------------------------------- loading


@dataclass
class Database:
    """A loaded database: the trainer's arrays plus what identifies each record."""

    path: Path
    meta: dict
    data: "ControllerData"
    clip_id: "np.ndarray"          # (N,) str
    track_id: "np.ndarray"         # (N,) str
    augmentation: "np.ndarray"     # (N,) int
    delta_norm: "np.ndarray"       # (N,) float32
    below_min_norm: "np.ndarray"   # (N,) bool
    params_raw: "np.ndarray"       # (N, P) float64
    embedding_after: "np.ndarray"  # (N, D) float32
    chain_order: list[tuple[str, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def effects(self) -> list[str]:
        return list(self.meta["identity"]["layout"]["effects"])

    @property
    def param_names(self) -> list[str]:
        return list(self.meta["identity"]["layout"]["param_names"])

    @property
    def terms(self) -> list[str]:
        return list(self.meta["identity"]["vocabulary"]["terms"])

    @property
    def fingerprint(self) -> str:
        return str(self.meta["fingerprint"])


def _encoder_identity(encoder: "Encoder | Any") -> tuple[str, str]:
    from ..api.encoders import Encoder
    from ..style.encoding import load_encoder

    if not isinstance(encoder, Encoder):
        encoder = load_encoder(encoder, "audio")
    return encoder.name, encoder.fingerprint()


def check_compatible(meta: Mapping[str, Any], db_dir: Path, *,
                     audio_encoder: "Encoder | Any | None" = None,
                     vocabulary: "Vocabulary | str | None" = None,
                     layout: "ParamLayout | None" = None) -> None:
    """Refuse, in one line, a database made in another space than the caller's."""
    ident = meta["identity"]
    if audio_encoder is not None:
        name, fp = _encoder_identity(audio_encoder)
        built = ident["encoder"]
        if (built["name"], built["fingerprint"]) != (name, fp):
            raise DeltaV2AError(
                f"database {db_dir} was built with audio encoder '{built['name']}' "
                f"(fingerprint {built['fingerprint']}), but '{name}' (fingerprint {fp}) is "
                "asked for: its E(A) and style labels live in another space; rebuild it "
                "with `deltav2a build-db` under this config, or use the encoder it was built with")
    if vocabulary is not None:
        if isinstance(vocabulary, str):
            from ..style.vocab import load_vocabulary

            vocabulary = load_vocabulary(vocabulary)
        built = ident["vocabulary"]
        if built["fingerprint"] != vocabulary.fingerprint():
            raise DeltaV2AError(
                f"database {db_dir} labels styles with vocabulary '{built['name']}' "
                f"(fingerprint {built['fingerprint']}), but '{vocabulary.name}' "
                f"(fingerprint {vocabulary.fingerprint()}) is asked for: rebuild the database")
    if layout is not None:
        diff = layout.difference(ident["layout"])
        if diff:
            raise DeltaV2AError(f"database {db_dir} was built for another effect layout: {diff}")


def load_database(db_dir: str | os.PathLike, *, audio_encoder: "Encoder | Any | None" = None,
                  vocabulary: "Vocabulary | str | None" = None,
                  layout: "ParamLayout | None" = None) -> Database:
    """Read every shard of a complete database into memory.

    Pass the encoder / vocabulary / layout the caller will use and a database built in
    another space is refused with a one-line error instead of training on mismatched data.
    """
    import numpy as np
    import pyarrow as pa

    from ..model.data import ControllerData

    db_dir = Path(db_dir)
    meta = read_meta(db_dir)
    if meta.get("status") != "complete":
        done = len(list(db_dir.glob(f"{SHARD_PREFIX}*{SHARD_SUFFIX}")))
        raise DeltaV2AError(
            f"database {db_dir} is incomplete ({done} of {meta.get('n_shards', '?')} shards): "
            "rerun the same `deltav2a build-db` command to finish it")
    check_compatible(meta, db_dir, audio_encoder=audio_encoder, vocabulary=vocabulary,
                     layout=layout)
    n_shards = int(meta["n_shards"])
    tables = []
    for s in range(n_shards):
        path = db_dir / shard_name(s)
        if not path.is_file():
            raise DeltaV2AError(f"database {db_dir} is missing {path.name}: rerun "
                                "`deltav2a build-db` with the same settings to rebuild it")
        t = read_shard(path)
        info = shard_info(t)
        if info.get("fingerprint") != meta["fingerprint"] or info.get("records") != t.num_rows:
            raise DeltaV2AError(f"database shard {path} does not belong to {db_dir}/{META_FILE}: "
                                "rerun `deltav2a build-db` to rebuild it")
        tables.append(t.replace_schema_metadata(None))
    table = pa.concat_tables(tables) if tables else schema(meta["dims"]).empty_table()
    if table.num_rows != int(meta["records"]):
        raise DeltaV2AError(f"database {db_dir} holds {table.num_rows} records but "
                            f"{META_FILE} says {meta['records']}: rebuild it")
    active, params = vectors(table, "active"), vectors(table, "params")
    if "strength" in table.column_names:
        strength = table.column("strength").to_numpy().astype(np.float32)
    else:  # built before the column existed: the same definition, from the stored columns
        from ..model.layout import ParamLayout
        from ..model.strength import chain_strength

        floor = float(meta.get("identity", {}).get("database", {}).get("param_min_intensity", 0.0))
        strength = chain_strength(active, params, ParamLayout.from_names(
            meta["identity"]["layout"]["effects"]), floor)
    data = ControllerData(style=vectors(table, "style"), audio=vectors(table, "embedding"),
                          active=active, params=params, strength=strength)
    return Database(
        path=db_dir, meta=meta, data=data,
        clip_id=np.asarray(table.column("clip_id").to_pylist(), dtype=object),
        track_id=np.asarray(table.column("track_id").to_pylist(), dtype=object),
        augmentation=table.column("augmentation").to_numpy(),
        delta_norm=table.column("delta_norm").to_numpy(),
        below_min_norm=table.column("below_min_norm").to_numpy(zero_copy_only=False),
        params_raw=vectors(table, "params_raw"),
        embedding_after=vectors(table, "embedding_after"),
        chain_order=[tuple(v) for v in table.column("chain_order").to_pylist()],
    )


def load_database_for(cfg: "Config", db_dir: str | os.PathLike) -> Database:
    """`load_database` checked against a config's audio encoder, vocabulary and effects."""
    from ..model.layout import ParamLayout

    return load_database(db_dir, audio_encoder=cfg.encoders.audio, vocabulary=cfg.vocabulary,
                         layout=ParamLayout.from_names(cfg.effects.audio))


__all__ = ["Database", "check_compatible", "load_database", "load_database_for", "read_meta",
           "read_shard", "read_shard_info", "shard_info", "shard_name", "to_table", "vectors", "write_meta",
           "write_shard"]
