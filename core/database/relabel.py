"""Relabel a database for another vocabulary (or label temperature) without rendering.

A record's style label is a function of what the database already stores: s =
softmax(normalize(E(A') - E(A)) . V^T / T). So a vocabulary switch needs only the new term
embeddings V and one matrix product per shard; the audio is never rendered or encoded
again. Every other column (and any column a later version adds) is copied unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DeltaV2AError
from . import store

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config


def relabel_database(src: str | os.PathLike, out: str | os.PathLike, cfg: "Config") -> dict:
    """Write `out`: the database `src` with style labels for `cfg.vocabulary` and
    `cfg.database.temperature`. `src` must be built with `cfg`'s audio encoder."""
    import hashlib
    import json

    import numpy as np
    import pyarrow as pa

    from ..style.encoding import load_encoder, term_embeddings
    from ..style.label import style_labels
    from ..style.vocab import load_vocabulary

    src, out = Path(src), Path(out)
    meta = store.read_meta(src)
    if meta.get("status") != "complete":
        raise DeltaV2AError(f"database {src} is incomplete: finish it before relabelling")
    encoder = load_encoder(cfg.encoders.audio, "audio")
    store.check_compatible(meta, src, audio_encoder=encoder)
    vocab = load_vocabulary(cfg.vocabulary)
    V = np.asarray(term_embeddings(encoder, vocab, "audio"), dtype=np.float32)
    T = float(cfg.database.temperature)

    identity = json.loads(json.dumps(meta["identity"]))
    identity["vocabulary"] = {"name": vocab.name, "fingerprint": vocab.fingerprint(), "terms": list(vocab.terms)}
    identity["database"]["temperature"] = T
    identity["relabelled_from"] = meta["fingerprint"]
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    dims = dict(meta["dims"], style=vocab.size)
    out.mkdir(parents=True, exist_ok=True)
    K = vocab.size
    for s in range(int(meta["n_shards"])):
        path = src / store.shard_name(s)
        table = store.read_shard(path)
        info = store.shard_info(table)
        before = store.vectors(table, "embedding")
        after = store.vectors(table, "embedding_after")
        labels, _ = style_labels(before, after, V, T) if len(before) else (np.zeros((0, K), np.float32), None)
        col = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(labels, np.float32).reshape(-1)), K)
        i = table.schema.get_field_index("style")
        table = table.replace_schema_metadata(None).set_column(i, pa.field("style", col.type), col)
        info["fingerprint"] = fingerprint
        store.write_shard(out / store.shard_name(s), table, info)
    new_meta = dict(meta, identity=identity, fingerprint=fingerprint, dims=dims)
    store.write_meta(out, new_meta)
    return {"records": int(meta.get("records", 0)), "shards": int(meta["n_shards"]), "renders": 0}
