"""`extract`: original, augmented and delta embeddings for every item x effect x intensity.

Step 1 of the pipeline note. For each image (or clip) the original is embedded once, then
every configured effect at every intensity is applied and the result embedded; one row per
(item, effect, intensity) holds both embeddings and their difference. The note stored this
as one JSON list; here it is Parquet (list<float32> columns), because a CLIP run over a few
hundred images is millions of floats that JSON would turn into text.

Resumable: the items of each modality are cut into fixed blocks, and each block is written
atomically as its own shard (`shards/<modality>/block-NNNNN.parquet`) tagged with the hash of
the run's plan (items, effects, intensities, encoder fingerprint, seed, audio settings).
A rerun skips the shards whose tag matches and recomputes the rest; a plan that differs
from the one recorded in the folder is refused unless `overwrite` is given, so two setups
never mix in one table. When every block is done the shards are concatenated into
`image_deltas.parquet` / `audio_deltas.parquet` (the note's `*_deltas.json`).

Categories come from a manifest column (default `collection` of `manifest.csv` in the
folder) or from the first sub-folder of each file. `limit` takes items round-robin over the
categories (each category's order shuffled by the seed), so a small run still covers every
category the linearity and cross-category tests compare.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Sequence

from ..artifact import Format
from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

    from .settings import AnalysisConfig

FORMAT = Format("deltav2a-extract", 1, "extract manifest", version_key="format_version",
                fingerprint_keys=("image.plan_hash", "audio.plan_hash"),
                remedy="rerun `deltav2a analysis extract` into another folder")
MANIFEST = "extract_manifest.json"
SHARDS = "shards"
UNCATEGORISED = "uncategorised"
Modality = Literal["image", "audio"]
CategoryMode = Literal["auto", "manifest", "folders"]

META_COLUMNS = ("modality", "encoder", "effect", "intensity_label", "intensity", "category", "group", "item")
VECTOR_COLUMNS = ("original", "augmented", "delta")


def deltas_path(folder: Path, modality: str) -> Path:
    return Path(folder) / f"{modality}_deltas.parquet"


# ------------------------------------------------------------------ items


@dataclass(frozen=True)
class Item:
    """One input file: id (path relative to its folder, '/'-separated), category, group."""

    id: str
    path: Path
    category: str
    group: str


def _extensions(modality: str) -> tuple[str, ...]:
    from ..media.io import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS

    return IMAGE_EXTENSIONS if modality == "image" else AUDIO_EXTENSIONS


def _from_manifest(folder: Path, manifest: Path, modality: str, column: str, group_column: str
                   ) -> tuple[list[Item], list[str]]:
    notes: list[str] = []
    try:
        with manifest.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise DeltaV2AError(f"cannot read manifest {manifest}: {exc.strerror}") from None
    if not rows:
        raise DeltaV2AError(f"manifest {manifest} has no rows")
    cols = rows[0].keys()
    key = "file" if "file" in cols else "path" if "path" in cols else None
    if key is None:
        raise DeltaV2AError(f"manifest {manifest} needs a 'file' (or 'path') column")
    if column not in cols:
        raise DeltaV2AError(f"manifest {manifest} has no category column '{column}' "
                            f"(columns: {', '.join(cols)})")
    exts = _extensions(modality)
    items, missing = [], 0
    for r in rows:
        rel = (r.get(key) or "").strip()
        p = folder / rel
        if not rel or p.suffix.lower() not in exts:
            continue
        if not p.is_file():
            missing += 1
            continue
        cat = (r.get(column) or "").strip() or UNCATEGORISED
        group = (r.get(group_column) or "").strip() if group_column in cols else ""
        items.append(Item(Path(rel).as_posix(), p, cat, group or Path(rel).as_posix()))
    if missing:
        notes.append(f"{missing} manifest rows name files that do not exist in {folder}")
    listed = {i.id for i in items}
    extra = sum(1 for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in exts
                and p.relative_to(folder).as_posix() not in listed)
    if extra:
        notes.append(f"{extra} {modality} files in {folder} are not in the manifest and were left out")
    return items, notes


def list_items(folder: Path, modality: Modality, categories: CategoryMode = "auto",
               manifest: Path | None = None, category_column: str = "collection",
               group_column: str = "track_id", limit: int | None = None, seed: int = 0
               ) -> tuple[list[Item], dict]:
    """The items of one folder with their categories; `info` says how they were found."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DeltaV2AError(f"not a folder: {folder}")
    if manifest is None and categories in ("auto", "manifest"):
        cand = folder / "manifest.csv"
        if cand.is_file():
            with cand.open(newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
            if category_column in header or categories == "manifest":
                manifest = cand
    if categories == "manifest" and manifest is None:
        raise DeltaV2AError(f"no manifest.csv in {folder} (give one with --manifest)")
    notes: list[str] = []
    if manifest is not None and categories != "folders":
        items, notes = _from_manifest(folder, Path(manifest), modality, category_column, group_column)
        source = f"manifest {manifest} column '{category_column}'"
    else:
        exts = _extensions(modality)
        items = []
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.suffix.lower() in exts:
                rel = p.relative_to(folder)
                cat = rel.parts[0] if len(rel.parts) > 1 else UNCATEGORISED
                items.append(Item(rel.as_posix(), p, cat, rel.as_posix()))
        source = "sub-folders"
    if not items:
        raise DeltaV2AError(f"no {modality} files in {folder}")
    items.sort(key=lambda i: i.id)
    total = len(items)
    if limit is not None and limit < total:
        items = _round_robin(items, limit, seed)
    cats: dict[str, int] = {}
    for it in items:
        cats[it.category] = cats.get(it.category, 0) + 1
    return items, {"folder": str(folder), "categories_from": source, "found": total, "used": len(items),
                   "categories": dict(sorted(cats.items())), "notes": notes}


def _round_robin(items: list[Item], limit: int, seed: int) -> list[Item]:
    by_cat: dict[str, list[Item]] = {}
    for it in items:
        by_cat.setdefault(it.category, []).append(it)
    rng = random.Random(seed)
    queues = []
    for cat in sorted(by_cat):
        q = list(by_cat[cat])
        rng.shuffle(q)
        queues.append(q)
    chosen: list[Item] = []
    while len(chosen) < limit:
        for q in queues:
            if q and len(chosen) < limit:
                chosen.append(q.pop())
    return sorted(chosen, key=lambda i: i.id)


def item_seed(seed: int, item_id: str) -> int:
    """Per-item seed for random effects: independent of block size and item order."""
    return int(hashlib.sha256(f"{seed}|{item_id}".encode()).hexdigest()[:8], 16)


# ------------------------------------------------------------------ plan + shards


def make_plan(modality: Modality, items: Sequence[Item], cfg: "AnalysisConfig", encoder) -> dict:
    effects = cfg.effects.image if modality == "image" else cfg.effects.audio
    plan = {
        "modality": modality,
        "encoder": {"name": encoder.name, "fingerprint": encoder.fingerprint(), "dim": int(encoder.dim)},
        "effects": list(effects),
        "intensities": dict(cfg.intensities),
        "block_size": cfg.extract.block_size,
        "seed": cfg.seed,
        "items": [[i.id, i.category, i.group] for i in items],
    }
    if modality == "audio":
        plan["audio"] = {"sample_rate": cfg.audio.sample_rate, "max_duration": cfg.audio.max_duration}
    return plan


def plan_hash(plan: dict) -> str:
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()[:20]


def _schema(dim: int) -> "pa.Schema":
    import pyarrow as pa

    vec = pa.list_(pa.float32())
    fields = [pa.field(c, pa.float32() if c == "intensity" else pa.string()) for c in META_COLUMNS]
    return pa.schema(fields + [pa.field(c, vec) for c in VECTOR_COLUMNS] + [pa.field("delta_norm", pa.float32())])


def _vectors(arr: "np.ndarray") -> "pa.Array":
    import numpy as np
    import pyarrow as pa

    arr = np.ascontiguousarray(arr, dtype=np.float32)
    n, d = arr.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(arr.reshape(-1)))


def rows_to_table(meta: dict[str, list], original: "np.ndarray", augmented: "np.ndarray",
                  metadata: dict[str, str] | None = None) -> "pa.Table":
    import numpy as np
    import pyarrow as pa

    delta = (augmented.astype(np.float32) - original.astype(np.float32))
    cols = [pa.array(meta[c], type=pa.float32() if c == "intensity" else pa.string()) for c in META_COLUMNS]
    cols += [_vectors(original), _vectors(augmented), _vectors(delta),
             pa.array(np.linalg.norm(delta.astype(np.float64), axis=1).astype(np.float32))]
    table = pa.Table.from_arrays(cols, schema=_schema(original.shape[1]))
    if metadata:
        table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in metadata.items()})
    return table


def _shard_meta(path: Path) -> dict[str, str]:
    """A shard's (or table's) key-value metadata; {} when it is damaged (it is recomputed)."""
    from ..artifact import parquet_metadata

    footer = parquet_metadata(path)
    return footer.metadata if footer is not None else {}


# ------------------------------------------------------------------ reading


@dataclass
class DeltaSet:
    """One modality's extract as arrays: metadata columns and (N, D) float32 vectors."""

    modality: str
    encoder: str
    effect: "np.ndarray"
    intensity_label: "np.ndarray"
    intensity: "np.ndarray"
    category: "np.ndarray"
    group: "np.ndarray"
    item: "np.ndarray"
    original: "np.ndarray"
    augmented: "np.ndarray"
    delta: "np.ndarray"
    plan: dict

    def __len__(self) -> int:
        return int(self.delta.shape[0])

    @property
    def effects(self) -> list[str]:
        return list(dict.fromkeys(self.effect.tolist()))

    @property
    def labels(self) -> list[str]:
        """Intensity labels in increasing intensity."""
        pairs = dict(zip(self.intensity_label.tolist(), self.intensity.tolist()))
        return sorted(pairs, key=lambda k: pairs[k])

    def intensity_of(self, label: str) -> float:
        return float(self.intensity[self.intensity_label == label][0])

    def select(self, effect: str | None = None, label: str | None = None,
               category: str | None = None) -> "np.ndarray":
        import numpy as np

        mask = np.ones(len(self), dtype=bool)
        if effect is not None:
            mask &= self.effect == effect
        if label is not None:
            mask &= self.intensity_label == label
        if category is not None:
            mask &= self.category == category
        return mask


def _matrix(col: "pa.ChunkedArray") -> "np.ndarray":
    import numpy as np

    arr = col.combine_chunks()
    n = len(arr)
    flat = arr.flatten().to_numpy(zero_copy_only=False)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.asarray(flat, dtype=np.float32).reshape(n, -1)


def read_deltas(path: str | Path) -> DeltaSet:
    """Read one `*_deltas.parquet` (or a shard) back into arrays."""
    import numpy as np

    from ..artifact import read_parquet

    p = Path(path)
    if not p.is_file():
        raise DeltaV2AError(f"no extract table at {p} (run `deltav2a analysis extract` first)")
    table = read_parquet(p, "extract table", "rerun `deltav2a analysis extract`")
    missing = [c for c in META_COLUMNS + VECTOR_COLUMNS if c not in table.column_names]
    if missing:
        raise DeltaV2AError(f"{p} is not an extract table (missing columns: {', '.join(missing)})")
    if table.num_rows == 0:
        raise DeltaV2AError(f"extract table {p} has no rows")
    md = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    plan = json.loads(md["plan"]) if "plan" in md else {}

    def strs(c: str) -> "np.ndarray":
        return np.asarray(table.column(c).to_pylist(), dtype=object)

    modality = str(table.column("modality")[0])
    return DeltaSet(modality=modality, encoder=str(table.column("encoder")[0]), effect=strs("effect"),
                    intensity_label=strs("intensity_label"),
                    intensity=table.column("intensity").to_numpy().astype(np.float64),
                    category=strs("category"), group=strs("group"), item=strs("item"),
                    original=_matrix(table.column("original")), augmented=_matrix(table.column("augmented")),
                    delta=_matrix(table.column("delta")), plan=plan)


def load_extract(folder: str | Path) -> dict[str, DeltaSet]:
    """Every modality present in an extract folder."""
    folder = Path(folder)
    out = {m: read_deltas(deltas_path(folder, m)) for m in ("image", "audio")
           if deltas_path(folder, m).is_file()}
    if not out:
        raise DeltaV2AError(f"no image_deltas.parquet or audio_deltas.parquet in {folder} "
                            "(run `deltav2a analysis extract` first)")
    return out


def read_manifest(folder: Path) -> dict:
    p = Path(folder) / MANIFEST
    if not p.is_file():
        return FORMAT.header()
    from ..artifact import read_json

    return read_json(p, FORMAT)[1]


# ------------------------------------------------------------------ the work


def _load_images(block: Sequence[Item]) -> tuple[list, list[Item], list[dict]]:
    from ..media.io import load_image

    ok, images, skipped = [], [], []
    for it in block:
        try:
            images.append(load_image(it.path))
            ok.append(it)
        except DeltaV2AError as exc:
            skipped.append({"item": it.id, "reason": str(exc)})
    return images, ok, skipped


def _load_clips(block: Sequence[Item], core_cfg) -> tuple[list, list[Item], list[dict]]:
    from ..style.pairs import load_clip

    ok, clips, skipped = [], [], []
    for it in block:
        try:
            clips.append(load_clip(it.path, core_cfg))
            ok.append(it)
        except DeltaV2AError as exc:
            skipped.append({"item": it.id, "reason": str(exc)})
    return clips, ok, skipped


def _block_table(modality: Modality, block: Sequence[Item], cfg: "AnalysisConfig", encoder,
                 renderers: dict, progress: Callable[[int], None] | None) -> tuple["pa.Table | None", list[dict]]:
    """Embed one block: originals once, then each effect x intensity."""
    import numpy as np

    labels = list(cfg.intensities)
    if modality == "image":
        media, ok, skipped = _load_images(block)
        encode = encoder.encode_images
    else:
        core_cfg = cfg.core_config()
        media, ok, skipped = _load_clips(block, core_cfg)
        sr = cfg.audio.sample_rate

        def encode(clips):
            return encoder.encode_audio(clips, sr)
    n_cells = len(renderers) * len(labels)
    if not ok:
        if progress:
            progress(len(block) * n_cells)
        return None, skipped
    base = np.asarray(encode(media), dtype=np.float32)
    meta: dict[str, list] = {c: [] for c in META_COLUMNS}
    originals, augmented = [], []
    for effect, per_label in renderers.items():
        for label in labels:
            render = per_label[label]
            edited = [render(m, it) for m, it in zip(media, ok)]
            aug = np.asarray(encode(edited), dtype=np.float32)
            originals.append(base)
            augmented.append(aug)
            for it in ok:
                meta["modality"].append(modality)
                meta["encoder"].append(encoder.name)
                meta["effect"].append(effect)
                meta["intensity_label"].append(label)
                meta["intensity"].append(cfg.intensities[label])
                meta["category"].append(it.category)
                meta["group"].append(it.group)
                meta["item"].append(it.id)
            if progress:
                progress(len(block))
    return rows_to_table(meta, np.concatenate(originals), np.concatenate(augmented)), skipped


def _renderers(modality: Modality, cfg: "AnalysisConfig") -> dict:
    """effect -> label -> callable(media, item) giving the edited media."""
    from ..api.registry import get

    out: dict[str, dict] = {}
    if modality == "image":
        for name in cfg.effects.image:
            fx = get("image_effect", name)()
            out[name] = {label: (lambda im, it, fx=fx, x=x: fx.apply(im, x, seed=item_seed(cfg.seed, it.id)))
                         for label, x in cfg.intensities.items()}
    else:
        from ..render.chain import AudioChain, ChainSettings, EffectSetting

        sr = cfg.audio.sample_rate
        for name in cfg.effects.audio:
            cls = get("audio_effect", name)
            out[name] = {}
            for label, x in cfg.intensities.items():
                chain = AudioChain(ChainSettings([EffectSetting(name, cls.params_at_intensity(x))]), tail="cut")
                out[name][label] = lambda clip, it, chain=chain: chain.render(clip, sr).audio
    return out


class BlockWorker:
    """One block of items on a remote worker (executor `ray`): encoder and renderers are
    built once per worker, then each block gives exactly the table the local loop gives."""

    def __init__(self, modality: Modality, cfg: dict) -> None:
        from ..style.encoding import load_encoder
        from .settings import AnalysisConfig

        self.modality = modality
        self.cfg = AnalysisConfig.model_validate(cfg)
        choice = self.cfg.encoders.image if modality == "image" else self.cfg.encoders.audio
        self.encoder = load_encoder(choice, modality)
        self.renderers = _renderers(modality, self.cfg)

    def run(self, job: tuple[int, Sequence[Item]]) -> tuple[int, "pa.Table | None", list[dict]]:
        b, block = job
        table, bad = _block_table(self.modality, block, self.cfg, self.encoder, self.renderers, None)
        return b, table, bad


def extract_modality(modality: Modality, items: Sequence[Item], out: Path, cfg: "AnalysisConfig",
                     overwrite: bool = False, progress: Callable[[int], None] | None = None,
                     log: Callable[[str], None] | None = None, workers: int = 0) -> dict:
    """Run (or resume) one modality; returns its manifest record.

    Blocks are independent: with `executor.kind: ray` the missing ones run on `workers` Ray
    workers (0 = one per cluster CPU) and are written as they finish."""
    from ..artifact import write_parquet
    from ..style.encoding import load_encoder

    log = log or (lambda s: None)
    out = Path(out)
    choice = cfg.encoders.image if modality == "image" else cfg.encoders.audio
    encoder = load_encoder(choice, modality)
    plan = make_plan(modality, items, cfg, encoder)
    tag = plan_hash(plan)
    manifest = read_manifest(out)
    recorded = manifest.get(modality)
    shard_dir = out / SHARDS / modality
    if recorded and recorded.get("plan_hash") != tag:
        if not overwrite:
            raise DeltaV2AError(
                f"{out} already holds a {modality} extract of another setup (different items, effects, "
                "intensities or encoder); use --overwrite to replace it or choose another output folder")
        log(f"{modality}: replacing the previous extract (--overwrite)")
    table_path = deltas_path(out, modality)
    if table_path.is_file() and _shard_meta(table_path).get("plan_hash") != tag:
        table_path.unlink()  # never leave another setup's table where later steps would read it
    if shard_dir.is_dir():
        for stale in shard_dir.glob("block-*.parquet"):
            if _shard_meta(stale).get("plan") != tag:
                stale.unlink()
    effects = plan["effects"]
    n_cells = len(effects) * len(cfg.intensities)
    bs = cfg.extract.block_size
    blocks = [list(items[i: i + bs]) for i in range(0, len(items), bs)]
    record = {"plan": plan, "plan_hash": tag, "complete": False, "n_blocks": len(blocks)}
    manifest[modality] = record
    _write_manifest(out, manifest)
    skipped: list[dict] = []
    done = 0
    t0 = time.perf_counter()
    todo: list[int] = []
    for b, block in enumerate(blocks):
        path = shard_dir / f"block-{b:05d}.parquet"
        md = _shard_meta(path) if path.is_file() else {}
        if md.get("plan") == tag:
            skipped += json.loads(md.get("skipped", "[]"))
            done += 1
            if progress:
                progress(len(block) * n_cells)
        else:
            todo.append(b)

    def store_block(b: int, table: "pa.Table | None", bad: list[dict]) -> None:
        nonlocal skipped
        skipped += bad
        if table is None:
            table = rows_to_table({c: [] for c in META_COLUMNS}, _empty(encoder.dim), _empty(encoder.dim))
        table = table.replace_schema_metadata({b"plan": tag.encode(), b"skipped": json.dumps(bad).encode()})
        write_parquet(shard_dir / f"block-{b:05d}.parquet", table)

    if todo and cfg.executor.kind == "ray":
        from ..executor import ray_map

        jobs = [(b, blocks[b]) for b in todo]
        for b, table, bad in ray_map(BlockWorker, (modality, cfg.model_dump(mode="json")), "run",
                                     jobs, workers, cfg.executor):
            store_block(b, table, bad)
            if progress:
                progress(len(blocks[b]) * n_cells)
    elif todo:
        renderers = _renderers(modality, cfg)
        for b in todo:
            table, bad = _block_table(modality, blocks[b], cfg, encoder, renderers, progress)
            store_block(b, table, bad)
    if done:
        log(f"{modality}: resumed, {done} of {len(blocks)} blocks were already done")
    combined = _combine(modality, shard_dir, len(blocks), plan, tag)
    write_parquet(table_path, combined)
    for s in skipped:
        log(f"warning: skipped {s['item']}: {s['reason']}")
    record.update({"complete": True, "rows": combined.num_rows, "skipped": skipped,
                   "seconds": round(time.perf_counter() - t0, 2), "table": deltas_path(out, modality).name})
    manifest = read_manifest(out)
    manifest[modality] = record
    _write_manifest(out, manifest)
    return record


def _empty(dim: int) -> "np.ndarray":
    import numpy as np

    return np.zeros((0, dim), dtype=np.float32)


def _combine(modality: str, shard_dir: Path, n_blocks: int, plan: dict, tag: str) -> "pa.Table":
    import pyarrow as pa

    from ..artifact import read_parquet

    tables = [read_parquet(shard_dir / f"block-{b:05d}.parquet", "extract shard",
                           "rerun the same `deltav2a analysis extract` to redo it") for b in range(n_blocks)]
    combined = pa.concat_tables([t.replace_schema_metadata(None) for t in tables])
    if combined.num_rows == 0:
        raise DeltaV2AError(f"no {modality} item could be read")
    return combined.replace_schema_metadata({b"plan": json.dumps(plan).encode(), b"plan_hash": tag.encode()})


def _write_manifest(out: Path, manifest: dict) -> None:
    from ..artifact import write_json

    write_json(Path(out) / MANIFEST, FORMAT, FORMAT.body(manifest))


def run_extract(out: Path, cfg: "AnalysisConfig", images: Sequence[Item] = (), audio: Sequence[Item] = (),
                sources: dict | None = None, overwrite: bool = False,
                progress: Callable[[int], None] | None = None,
                log: Callable[[str], None] | None = None, workers: int = 0) -> dict:
    """Both modalities; `sources` (folder info from `list_items`) is recorded in the manifest."""
    from ..api.registry import get

    if not images and not audio:
        raise DeltaV2AError("nothing to extract: give images and/or audio")
    for name in cfg.effects.image if images else ():
        get("image_effect", name)
    for name in cfg.effects.audio if audio else ():
        get("audio_effect", name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = {}
    if images:
        records["image"] = extract_modality("image", images, out, cfg, overwrite, progress, log, workers)
    if audio:
        records["audio"] = extract_modality("audio", audio, out, cfg, overwrite, progress, log, workers)
    if sources:
        manifest = read_manifest(out)
        manifest.setdefault("sources", {}).update(sources)
        _write_manifest(out, manifest)
    return records


def total_cells(cfg: "AnalysisConfig", n_images: int, n_audio: int) -> int:
    """Renders an extract will do (the progress bar's total)."""
    k = len(cfg.intensities)
    return k * (n_images * len(cfg.effects.image) + n_audio * len(cfg.effects.audio))
