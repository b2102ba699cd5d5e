"""Building the inverse-mapping database: render random chains, encode, label, store.

For every train clip A and augmentation i (seed 000, "생성 절차", Phase A-2):

    sample 1..K active effects and their normalised parameters (sampling.py) -> ChainSettings
    A' = chain(A)                       (AudioChain, tail="cut": A' keeps A's length)
    d  = E(A') - E(A)
    if ||d|| < delta_min_norm: resample (attempt 1, 2, ... delta_resample_attempts)
    style = softmax(d/||d|| . V_aud^T / T)   (uncalibrated, T = database.temperature)

When every attempt stays below `delta_min_norm`, the attempt with the largest ||d|| is
kept and flagged `below_min_norm` (so every clip yields exactly N records and the user can
filter them), rather than silently dropping the augmentation.

Determinism: each (clip, augmentation, attempt) draws from its own generator seeded by
(seed, clip id, augmentation, attempt) (`sampling.record_rng`). The unit of work is one
clip with all its augmentations, so the same code runs on the same inputs whichever
process handles it, and shards cover fixed blocks of clip indices: same seed, same
records, whatever the number of workers.

Parallelism: a process pool (forkserver where available, else spawn; never fork, which
would copy Pedalboard/encoder state) whose workers build their own encoder and chains in
the initializer. The parent only collects finished clips and writes shards.

Resumability: finished shards are atomic files (store.py); a rerun with the same settings
validates what is there, deletes leftover temporaries, and renders only the missing
shards. A rerun with different settings is refused unless `overwrite=True`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ..errors import DeltaV2AError
from . import store

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..config import Config
    from .splits import SplitClip

SILENT_PEAK = 1e-6  # -120 dBFS: below this a clip has nothing for an effect to change


class DatabaseWarning(UserWarning):
    """A clip was skipped (empty, unreadable, silent, too short, non-finite)."""


@dataclass(frozen=True)
class ClipTask:
    index: int
    clip_id: str
    track_id: str
    path: str


@dataclass
class ClipResult:
    index: int
    clip_id: str
    skipped: str | None
    columns: dict[str, Any] | None
    timings: dict[str, float] = field(default_factory=dict)
    renders: int = 0


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs, picklable (sent once per worker)."""

    config: dict
    seed: int
    augmentations: int
    split: str
    V: Any  # (K, D) float32 term embeddings of the vocabulary, audio side
    #: the parent's DELTAV2A_* variables (plugin selection, home): a fork server started
    #: earlier in this process would otherwise hand workers the environment of that moment
    env: dict = field(default_factory=dict)


@dataclass
class BuildSummary:
    out_dir: Path
    fingerprint: str
    n_clips: int
    n_shards: int
    records: int
    skipped: list[dict]
    shards_written: int
    shards_reused: int
    seconds: float
    new_records: int
    workers: int
    timings: dict[str, float]
    renders: int

    @property
    def records_per_second(self) -> float:
        return self.new_records / self.seconds if self.seconds > 0 else 0.0


# ----------------------------------------------------------------------------- worker side


class ClipWorker:
    """Renders, encodes and labels all augmentations of one clip at a time."""

    def __init__(self, spec: JobSpec) -> None:
        import numpy as np

        from ..config import Config
        from ..style.encoding import load_encoder
        from ..model.layout import ParamLayout
        from .sampling import AugmentationSampler

        _steady_malloc()
        self.spec = spec
        self.cfg = Config.model_validate(spec.config)
        self.encoder = load_encoder(self.cfg.encoders.audio, "audio")
        self.layout = ParamLayout.from_names(self.cfg.effects.audio)
        self.sampler = AugmentationSampler(self.layout, self.cfg.database, self.cfg.effects.chain_order)
        self.V = np.asarray(spec.V, dtype=np.float32)

    def run(self, task: ClipTask) -> ClipResult:
        try:
            return self._run(task)
        except DeltaV2AError as exc:
            return ClipResult(task.index, task.clip_id, str(exc), None)

    def _run(self, task: ClipTask) -> ClipResult:
        import numpy as np

        from ..style.pairs import load_clip
        from ..style.label import style_labels

        cfg, db = self.cfg, self.cfg.database
        sr = cfg.audio.sample_rate
        N = self.spec.augmentations
        t0 = time.perf_counter()
        x = load_clip(Path(task.path), cfg)  # DeltaV2AError: empty, unreadable, zero-length, NaN
        peak = max(float(x.max()), -float(x.min())) if x.size else 0.0  # max |x|, no |x| copy
        if peak < SILENT_PEAK:
            raise DeltaV2AError(f"audio file {task.path} is silent (peak below -120 dBFS)")
        t1 = time.perf_counter()
        e_a = self._encode(x, sr)
        t_enc = time.perf_counter() - t1
        t_render = 0.0
        renders = 0

        E, P = self.layout.n_effects, self.layout.n_params
        active = np.zeros((N, E), dtype=bool)
        params = np.zeros((N, P), dtype=np.float32)
        raw = np.zeros((N, P), dtype=np.float64)
        after = np.zeros((N, e_a.shape[0]), dtype=np.float32)
        attempt_kept = np.zeros(N, dtype=np.int8)
        attempts = np.zeros(N, dtype=np.int8)
        below = np.zeros(N, dtype=bool)
        orders: list[list[str]] = []
        kept: list = []
        e_a64 = e_a.astype(np.float64)
        # every record's first chain, drawn before any render: interleaved with the renders
        # (which evict the interpreter's working set from the caches) the same Python work
        # cost 2.4x as much (0.46 vs 0.19 ms per record, decision 15.60). Each draw has its
        # own generator (record_rng), so the records do not depend on when it is made.
        first = [self._draw(task.clip_id, a, 0) for a in range(N)]
        for a in range(N):
            best: tuple | None = None
            tries = 0
            for attempt in range(1 + db.delta_resample_attempts):
                tries += 1
                if attempt == 0:
                    aug, chain = first[a]
                    first[a] = None  # the chain holds its Pedalboard once rendered
                else:
                    aug, chain = self._draw(task.clip_id, a, attempt)
                r0 = time.perf_counter()
                y = chain.render(x, sr, checked=True).audio  # x: checked by load_clip
                r1 = time.perf_counter()
                e_b = self._encode(y, sr)
                t_render += r1 - r0
                t_enc += time.perf_counter() - r1
                renders += 1
                norm = float(np.linalg.norm(e_b.astype(np.float64) - e_a64))
                if best is None or norm > best[0]:
                    best = (norm, attempt, aug, e_b, chain.names)
                if norm >= db.delta_min_norm:
                    break
            assert best is not None
            norm, attempt, aug, e_b, names = best
            active[a] = aug.active
            params[a] = aug.params
            kept.append(aug)
            after[a] = e_b
            attempt_kept[a] = attempt
            attempts[a] = tries
            below[a] = norm < db.delta_min_norm
            orders.append(list(names))
        for a, aug in enumerate(kept):  # after the renders, like the draws before them
            raw[a] = self.sampler.raw(aug)
        before = np.repeat(e_a[None, :], N, axis=0)
        style, norms = style_labels(before, after, self.V, db.temperature)
        from ..model.strength import chain_strength

        columns = {
            "clip_index": np.full(N, task.index, dtype=np.int32),
            "clip_id": [task.clip_id] * N,
            "track_id": [task.track_id] * N,
            "split": [self.spec.split] * N,
            "augmentation": np.arange(N, dtype=np.int32),
            "seed": np.full(N, self.spec.seed, dtype=np.int64),
            "attempt": attempt_kept,
            "attempts": attempts,
            "n_active": active.sum(axis=1).astype(np.int8),
            "delta_norm": norms.astype(np.float32),
            "below_min_norm": below,
            "strength": chain_strength(active, params, self.layout, db.param_min_intensity),
            "style": style,
            "embedding": before,
            "embedding_after": after,
            "active": active,
            "params": params,
            "params_raw": raw,
            "chain_order": orders,
        }
        timings = {"load": t1 - t0, "encode": t_enc, "render": t_render}
        return ClipResult(task.index, task.clip_id, None, columns, timings, renders)

    def _draw(self, clip_id: str, augmentation: int, attempt: int) -> tuple:
        """(Augmentation, AudioChain) of one (clip, augmentation, attempt)."""
        from .sampling import record_rng

        aug = self.sampler.sample(record_rng(self.spec.seed, clip_id, augmentation, attempt))
        return aug, self.sampler.chain(aug, self.cfg.database.tail, self.cfg.effects.max_tail_seconds)

    def _encode(self, audio: "np.ndarray", sr: int) -> "np.ndarray":
        import numpy as np

        e = np.asarray(self.encoder.encode_audio([audio], sr), dtype=np.float32)[0]
        if not np.isfinite(e).all():
            raise DeltaV2AError(f"audio encoder '{self.encoder.name}' returned NaN or Inf")
        return e


_WORKER: ClipWorker | None = None

#: glibc's own ceiling for its dynamic mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
#: and the trim threshold it pairs with it (twice the mmap threshold)
MALLOC_MMAP_THRESHOLD = 32 << 20
MALLOC_TRIM_THRESHOLD = 64 << 20


def _steady_malloc() -> bool:
    """Keep a build worker's large arrays in the heap (glibc only; True if set).

    A record allocates and frees a few tens of MB (the clip's copies inside Pedalboard, A',
    the encoder's frames): in a fresh process glibc maps the large blocks with mmap or trims
    the heap top after each record, and the pages are faulted in again for the next one.
    Measured (1 worker, 44.1 kHz, normalisation 4, 16 clips x 40): 400-1,100 page faults and
    1-4 ms of system CPU time per record, all through the build (decision 15.63); with the
    thresholds below, a few hundred in the first clip, then none. The values are the ceiling
    glibc's own dynamic threshold reaches anyway after freeing a 32 MB block, so this only
    takes it there at once (which fixes the thresholds for the rest of the process: up to
    64 MB of freed heap is kept for reuse instead of being returned). Records are unchanged:
    where an array lives does not change a value (tested, bit for bit). A user's own MALLOC_*_
    environment settings win.
    """
    if not sys.platform.startswith("linux") or any(
            k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc; musl's mallopt is a stub
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False
    # -3: M_MMAP_THRESHOLD, -1: M_TRIM_THRESHOLD (malloc.h)
    return bool(mallopt(-3, MALLOC_MMAP_THRESHOLD) and mallopt(-1, MALLOC_TRIM_THRESHOLD))


def _die_with(parent_pid: int) -> None:
    """End this worker when the build's main process ends, however it ends (kill -9 too).

    A pool worker's parent is the forkserver, not the CLI, so PR_SET_PDEATHSIG alone does
    not reach it; a daemon thread waits on a pidfd of the main process instead (polling
    its pid where pidfds are missing) and exits at once. The forkserver then sees its
    last client gone and exits by itself.
    """
    import threading

    try:  # the forkserver dying (its own parent gone) also ends us at once
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass

    def watch() -> None:
        import select
        import time

        try:
            fd = os.pidfd_open(parent_pid)
        except (AttributeError, OSError):
            fd = None
        if fd is not None:
            select.select([fd], [], [])
            os._exit(1)
        while True:  # pragma: no cover - kernels before 5.3
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="deltav2a-parent-watch", daemon=True).start()


def _one_math_thread() -> Any:
    """Limit BLAS/OpenMP pools to one thread in this process (threadpoolctl; the limit holds
    until the returned object's `restore_original_limits`, or its `with` block ends).

    A build worker is one unit of parallelism already: numpy's OpenBLAS would otherwise
    start a thread per core for the long dot products of the input checks, so two workers
    on two cores run four busy threads. The records do not change: those dot products only
    decide finiteness, the encoder sums with einsum, and the labels' small matrix product
    splits no sum across threads (tests compare records built with and without the limit).
    Ray actors need no call: Ray sets OMP_NUM_THREADS=1 for a one-CPU actor, which
    OpenBLAS reads when it loads (checked: one thread).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _init_worker(spec: JobSpec, parent_pid: int | None = None) -> None:
    import signal

    if parent_pid is not None:
        _die_with(parent_pid)
    _one_math_thread()  # for the life of this pool process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for key in [k for k in os.environ if k.startswith("DELTAV2A_") and k not in spec.env]:
        del os.environ[key]
    os.environ.update(spec.env)
    global _WORKER
    _WORKER = ClipWorker(spec)


def _run_task(task: ClipTask) -> ClipResult:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.run(task)


# ----------------------------------------------------------------------------- planning


@dataclass
class Plan:
    cfg: "Config"
    clips: list["SplitClip"]
    paths: list[Path]
    identity: dict
    fingerprint: str
    augmentations: int
    clips_per_shard: int
    seed: int
    V: Any
    dims: dict[str, int]

    @property
    def n_shards(self) -> int:
        return max(1, math.ceil(len(self.clips) / self.clips_per_shard))

    def shard_clips(self, s: int) -> range:
        return range(s * self.clips_per_shard, min(len(self.clips), (s + 1) * self.clips_per_shard))


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def plan_database(cfg: "Config", splits_path: str | os.PathLike, *,
                  augmentations: int | None = None, limit_clips: int | None = None,
                  audio_root: str | os.PathLike | None = None, seed: int | None = None,
                  split: str = "train") -> Plan:
    """Check the inputs and fix everything that determines the records."""
    import numpy as np

    from ..config import effective_record_seed
    from ..style.encoding import load_encoder, term_embeddings
    from ..model.layout import ParamLayout
    from .splits import clips_hash, load_splits, missing_files
    from ..style.vocab import load_vocabulary

    splits = load_splits(Path(splits_path), Path(audio_root) if audio_root else None)
    clips = splits.clips_in(split)
    if not clips:
        counts = ", ".join(f"{k} {v['clips']}" for k, v in splits.counts().items())
        raise DeltaV2AError(f"the {split} split of {splits_path} is empty ({counts} clips): "
                            "nothing to build a database from")
    seed = effective_record_seed(cfg) if seed is None else int(seed)
    if seed < 0:
        raise DeltaV2AError(f"seed must be >= 0, got {seed}")
    if limit_clips is not None:
        if limit_clips < 1:
            raise DeltaV2AError(f"--limit-clips must be at least 1, got {limit_clips}")
        if limit_clips < len(clips):
            rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD8]))
            keep = np.sort(rng.choice(len(clips), size=limit_clips, replace=False))
            clips = [clips[int(i)] for i in keep]
    missing = missing_files(splits, clips)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DeltaV2AError(f"{len(missing)} {split} clip(s) listed in {splits_path} are missing "
                            f"under {splits.audio_root}: {shown} (fix the folder, pass "
                            "--audio-root, or rerun `deltav2a splits`)")
    N = cfg.database.augmentations_per_clip if augmentations is None else int(augmentations)
    if N < 1:
        raise DeltaV2AError(f"augmentations must be at least 1, got {N}")

    encoder = load_encoder(cfg.encoders.audio, "audio")
    vocab = load_vocabulary(cfg.vocabulary)
    layout = ParamLayout.from_names(cfg.effects.audio)
    for name in cfg.effects.chain_order:  # a typo in the order must not pass silently
        from ..api import registry as plugins

        plugins.get("audio_effect", name)
    V = np.asarray(term_embeddings(encoder, vocab, "audio"), dtype=np.float32)
    if V.shape != (vocab.size, encoder.dim):
        raise DeltaV2AError(f"term embeddings have shape {V.shape}, expected "
                            f"({vocab.size}, {encoder.dim})")
    import pedalboard

    db = cfg.database.record_settings("workers")  # how many processes ran changes nothing in the records
    cps = max(1, cfg.database.shard_size // N)
    identity = {
        "seed": seed,
        "split": split,
        "augmentations": N,
        "clips_per_shard": cps,
        "database": db,
        "audio": cfg.audio.model_dump(mode="json"),
        "effects": {"audio": list(cfg.effects.audio), "chain_order": list(cfg.effects.chain_order),
                    "max_tail_seconds": cfg.effects.max_tail_seconds},
        "layout": layout.describe(),
        "layout_fingerprint": layout.fingerprint(),
        "encoder": {"name": encoder.name, "options": dict(cfg.encoders.audio.options),
                    "fingerprint": encoder.fingerprint(), "dim": int(encoder.dim)},
        "vocabulary": {"name": vocab.name, "fingerprint": vocab.fingerprint(),
                       "terms": list(vocab.terms)},
        "splits": {"content_sha256": splits.content_hash(), "limit_clips": limit_clips,
                   "clips_sha256": clips_hash(clips), "n_clips": len(clips)},
        "pedalboard": getattr(pedalboard, "__version__", "unknown"),
        "strength": "chain_strength/1",  # the per-record audio strength column (core/model/strength.py)
    }
    dims = {"style": vocab.size, "embedding": int(encoder.dim), "effects": layout.n_effects,
            "params": layout.n_params}
    return Plan(cfg=cfg, clips=list(clips), paths=[splits.path_of(c) for c in clips],
                identity=identity, fingerprint=_fingerprint(identity), augmentations=N,
                clips_per_shard=cps, seed=seed, V=V, dims=dims)


def _identity_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and k not in ("encoder", "vocabulary"):
            out += _identity_diff(a, b, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}")
    return out


# ----------------------------------------------------------------------------- building


@contextlib.contextmanager
def _build_lock(out_dir: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no cross-process guard
        yield
        return
    fh = open(out_dir / store.LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DeltaV2AError(f"another build-db is writing to {out_dir} right now") from None
        yield
    finally:
        fh.close()  # closing releases the lock (and so does the process dying)


def _our_files(out_dir: Path) -> list[Path]:
    return [p for p in out_dir.iterdir()
            if p.name == store.META_FILE or store.shard_index(p.name) is not None
            or p.name.startswith(store.TEMP_PREFIX)]


def _prepare_dir(out_dir: Path, plan: Plan, overwrite: bool) -> None:
    meta_path = out_dir / store.META_FILE
    if overwrite:
        for p in _our_files(out_dir):
            p.unlink()
        return
    if meta_path.is_file():
        try:
            old = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise DeltaV2AError(f"{meta_path} is unreadable; pass --overwrite to rebuild "
                                f"the database in {out_dir}") from None
        if not store.FORMAT.accepts(old):
            raise DeltaV2AError(f"{out_dir} holds a database of another format or version; "
                                "pass --overwrite to rebuild it")
        if old.get("fingerprint") != plan.fingerprint:
            diff = _identity_diff(old.get("identity", {}), plan.identity)
            raise DeltaV2AError(
                f"{out_dir} holds a database built with other settings (differs in: "
                f"{', '.join(diff) or 'fingerprint'}); pass --overwrite to replace it, or "
                "choose another output folder")
        return


def _shard_ok(path: Path, plan: Plan, s: int) -> bool:
    info = store.read_shard_info(path)
    if info is None:
        return False
    ids = [plan.clips[i].file for i in plan.shard_clips(s)]
    skipped = info.get("skipped", [])
    expected = (len(ids) - len(skipped)) * plan.augmentations
    return (info.get("fingerprint") == plan.fingerprint and info.get("shard") == s
            and info.get("clips") == ids and info.get("records") == expected
            and info.get("_rows") == expected)


def _write_meta(out_dir: Path, plan: Plan, status: str, extra: dict | None = None) -> None:
    meta = {"status": status,
            "fingerprint": plan.fingerprint, "identity": plan.identity, "dims": plan.dims,
            "n_clips": len(plan.clips), "n_shards": plan.n_shards,
            "clips_per_shard": plan.clips_per_shard, "augmentations": plan.augmentations}
    meta.update(extra or {})
    store.write_meta(out_dir, meta)


def _concat(results: Sequence[ClipResult]) -> dict[str, Any]:
    import numpy as np

    parts = [r.columns for r in results if r.columns is not None]
    out: dict[str, Any] = {}
    keys = ["clip_index", "clip_id", "track_id", "split", "augmentation", "seed", "attempt",
            "attempts", "n_active", "delta_norm", "below_min_norm", "strength", "style", "embedding",
            "embedding_after", "active", "params", "params_raw", "chain_order"]
    for k in keys:
        vals = [p[k] for p in parts]
        if k in ("clip_id", "track_id", "split", "chain_order"):
            out[k] = [v for chunk in vals for v in chunk]
        elif vals:
            out[k] = np.concatenate(vals)
        else:
            out[k] = np.zeros((0,), dtype=np.float32)
    return out


def _resolve_workers(workers: int | None, cfg: "Config", n_tasks: int) -> int:
    w = cfg.database.workers if workers is None else int(workers)
    if w < 0:
        raise DeltaV2AError(f"workers must be >= 0 (0 = one per CPU core), got {w}")
    if w == 0:
        w = os.cpu_count() or 1
    return max(1, min(w, n_tasks)) if n_tasks else 1


#: imported once by the fork server, so each worker starts in ~0.3 s instead of ~1.3 s
_PRELOAD = ["numpy", "scipy.signal", "soxr", "pedalboard", "deltav2a.database.generate"]


def _pool_context():
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)  # no effect once the server runs
        return ctx
    return mp.get_context("spawn")


def _run_pool(tasks: Sequence[ClipTask], spec: JobSpec, n_workers: int) -> Iterator[ClipResult]:
    """Results in completion order. A worker that dies (OOM killer, crash) raises
    BrokenProcessPool here instead of hanging the build, and Ctrl-C stops the workers at
    once; shards already written stay."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(n_workers, mp_context=_pool_context(), initializer=_init_worker,
                               initargs=(spec, os.getpid()))
    clean = False
    try:
        futures = [pool.submit(_run_task, t) for t in tasks]
        for fut in as_completed(futures):
            yield fut.result()
        clean = True
    except BrokenProcessPool as exc:
        raise RuntimeError(f"a build-db worker process died ({exc}); finished shards are kept, "
                           "rerun the same command to resume") from None
    finally:
        if clean:
            pool.shutdown(wait=True)
        else:  # interrupted or failed: do not wait for clips in flight
            procs = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
            for proc in procs:
                proc.join(timeout=5)


def build_database(cfg: "Config", splits_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                   augmentations: int | None = None, workers: int | None = None,
                   limit_clips: int | None = None, overwrite: bool = False,
                   audio_root: str | os.PathLike | None = None, seed: int | None = None,
                   progress: bool = True, split: str = "train",
                   on_shard: Callable[[int], None] | None = None) -> BuildSummary:
    """Build (or finish building) the database for one split's clips (train by default).

    Val and test databases, built from their own clips, give leakage-free model selection
    and evaluation.

    Returns what was done; the records themselves are read with `load_database`.
    `on_shard(index)` is called after each shard is on disk (tests, progress hooks).
    """
    plan = plan_database(cfg, splits_path, augmentations=augmentations, limit_clips=limit_clips,
                         audio_root=audio_root, seed=seed, split=split)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DeltaV2AError(f"database output {out} exists and is not a folder")
    if out.is_dir() and not (out / store.META_FILE).exists():
        ours = set(_our_files(out)) | {out / store.LOCK_FILE}
        strays = sorted(p.name for p in out.iterdir() if p not in ours)
        if strays:
            raise DeltaV2AError(f"{out} is not empty and is not a deltav2a database "
                                f"(found {strays[0]}); choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    with _build_lock(out):
        return _build_locked(plan, out, workers, overwrite, progress, on_shard)


#: identity entries that only change the style labels, which are recomputed from the stored
#: embeddings E(A), E(A') without rendering or encoding anything again. "encoder" is allowed
#: when only its text side changed (e.g. another perceptual lexicon): same name and dimension,
#: and re-encoding a stored clip gives its stored E(A) (`_same_media_encoder`)
RELABEL_ONLY = {"vocabulary", "database.temperature", "encoder"}


def _same_media_encoder(old: dict, plan: Plan, table: Any) -> bool:
    """True when the configured audio encoder still maps the database's first clip to its stored E(A)."""
    import numpy as np

    from ..style.encoding import load_encoder
    from ..style.pairs import load_clip

    a, b = old.get("identity", {}).get("encoder", {}), plan.identity["encoder"]
    if a.get("name") != b.get("name") or a.get("dim") != b.get("dim") or table.num_rows == 0:
        return False
    i = int(table.column("clip_index")[0].as_py())
    x = load_clip(Path(plan.paths[i]), plan.cfg)
    e = np.asarray(load_encoder(plan.cfg.encoders.audio, "audio").encode_audio([x], plan.cfg.audio.sample_rate),
                   dtype=np.float32)[0]
    return bool(np.allclose(e, store.vectors(table, "embedding")[0], rtol=1e-5, atol=1e-6))


def _relabel(out: Path, plan: Plan) -> bool:
    """A complete database that differs from `plan` only in vocabulary / label temperature gets
    its style column recomputed in place (exactly what a fresh build would write: the labels
    are a function of the stored float32 embeddings), instead of being re-rendered.

    Crash-safe: the description says "building" with the new fingerprint first, and a shard
    is rewritten atomically with the new fingerprint; a shard left behind by a kill no longer
    matches and is rebuilt normally by the next run.
    """
    import pyarrow as pa

    from ..style.label import style_labels

    meta_path = out / store.META_FILE
    if not meta_path.is_file():
        return False
    try:
        old = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not store.FORMAT.accepts(old) or old.get("status") != "complete":
        return False
    diff = _identity_diff(old.get("identity", {}), plan.identity)
    if not diff or not set(diff) <= RELABEL_ONLY or old.get("n_shards") != plan.n_shards:
        return False
    dims_old = {k: v for k, v in (old.get("dims") or {}).items() if k != "style"}
    if dims_old != {k: v for k, v in plan.dims.items() if k != "style"}:
        return False
    if "encoder" in diff:
        first = out / store.shard_name(0)
        if store.read_shard_info(first) is None or not _same_media_encoder(old, plan, store.read_shard(first)):
            return False
    _write_meta(out, plan, "building")
    temperature = plan.cfg.database.temperature
    K = int(plan.dims["style"])
    for s in range(plan.n_shards):
        path = out / store.shard_name(s)
        info = store.read_shard_info(path)
        if info is None or info.get("fingerprint") != old.get("fingerprint"):
            continue  # missing or foreign: the normal build below redoes it
        table = store.read_shard(path)
        info.pop("_rows", None)
        if table.num_rows:
            style, _ = style_labels(store.vectors(table, "embedding"), store.vectors(table, "embedding_after"),
                                    plan.V, temperature)
        else:
            import numpy as np

            style = np.zeros((0, K), np.float32)
        col = pa.FixedSizeListArray.from_arrays(pa.array(style.reshape(-1)), K)
        i = table.schema.get_field_index("style")
        table = table.replace_schema_metadata(None).set_column(i, pa.field("style", col.type), col)
        info["fingerprint"] = plan.fingerprint
        store.write_shard(path, table, info)
    return True


def _build_locked(plan: Plan, out: Path, workers: int | None, overwrite: bool, progress: bool,
                  on_shard: Callable[[int], None] | None) -> BuildSummary:
    if overwrite and _relabel(out, plan):
        overwrite = False  # the relabelled shards are exactly what a rebuild would write
    _prepare_dir(out, plan, overwrite)
    for p in out.iterdir():  # temporaries of a build that was killed
        if p.name.startswith(store.TEMP_PREFIX):
            p.unlink()
    done: set[int] = set()
    for s in range(plan.n_shards):
        path = out / store.shard_name(s)
        if path.exists():
            if _shard_ok(path, plan, s):
                done.add(s)
            else:
                warnings.warn(f"{path} is damaged or stale; rebuilding it", DatabaseWarning,
                              stacklevel=3)
                path.unlink()
    for p in out.iterdir():  # shards beyond this plan cannot be ours
        idx = store.shard_index(p.name)
        if idx is not None and idx >= plan.n_shards:
            p.unlink()
    _write_meta(out, plan, "building")

    pending = [s for s in range(plan.n_shards) if s not in done]
    tasks = [ClipTask(i, plan.clips[i].file, plan.clips[i].track_id, str(plan.paths[i]))
             for s in pending for i in plan.shard_clips(s)]
    n_workers = _resolve_workers(workers, plan.cfg, len(tasks))
    spec = JobSpec(config=plan.cfg.model_dump(mode="json"), seed=plan.seed,
                   augmentations=plan.augmentations, split=plan.identity["split"], V=plan.V,
                   env={k: v for k, v in os.environ.items() if k.startswith("DELTAV2A_")})
    buffers: dict[int, dict[int, ClipResult]] = {s: {} for s in pending}
    timings = {"load": 0.0, "encode": 0.0, "render": 0.0}
    counters = {"renders": 0, "new_records": 0, "skipped": 0}
    N = plan.augmentations

    from tqdm import tqdm

    bar = tqdm(total=len(tasks) * N, unit="rec", desc="build-db", disable=not progress,
               file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def finish(r: ClipResult) -> None:
        s = r.index // plan.clips_per_shard
        buffers[s][r.index] = r
        for k, v in r.timings.items():
            timings[k] = timings.get(k, 0.0) + v
        counters["renders"] += r.renders
        if r.skipped is not None:
            counters["skipped"] += 1
            warnings.warn(f"skipped clip {r.clip_id}: {r.skipped}", DatabaseWarning, stacklevel=2)
            bar.set_postfix(skipped=counters["skipped"])
        else:
            counters["new_records"] += N
        bar.update(N)
        if len(buffers[s]) == len(plan.shard_clips(s)):
            results = [buffers[s][i] for i in plan.shard_clips(s)]
            table = store.to_table(_concat(results), plan.dims)
            info = {"fingerprint": plan.fingerprint, "shard": s,
                    "clips": [r.clip_id for r in results],
                    "skipped": [{"clip_id": r.clip_id, "reason": r.skipped}
                                for r in results if r.skipped is not None],
                    "records": table.num_rows}
            store.write_shard(out / store.shard_name(s), table, info)
            del buffers[s]
            if on_shard is not None:
                on_shard(s)

    start = time.perf_counter()
    try:
        if tasks and n_workers == 1 and plan.cfg.executor.kind == "local":
            with _one_math_thread():  # the caller's own limits come back afterwards
                worker = ClipWorker(spec)
                for t in tasks:
                    finish(worker.run(t))
        elif tasks and plan.cfg.executor.kind == "ray":
            from ..executor import ray_map

            for r in ray_map(ClipWorker, (spec,), "run", tasks, n_workers, plan.cfg.executor):
                finish(r)
        elif tasks:
            for r in _run_pool(tasks, spec, n_workers):
                finish(r)
    finally:
        bar.close()
    seconds = time.perf_counter() - start

    # every shard is on disk now: gather the totals from the shards themselves
    records = 0
    skipped: list[dict] = []
    for s in range(plan.n_shards):
        info = store.read_shard_info(out / store.shard_name(s))
        if info is None:  # pragma: no cover - written just above
            raise DeltaV2AError(f"shard {s} of {out} vanished during the build")
        records += int(info["records"])
        skipped += info.get("skipped", [])
    _write_meta(out, plan, "complete", {"records": records, "skipped_clips": len(skipped),
                                        "skipped": skipped})
    if records == 0:
        raise DeltaV2AError(f"no usable clips: all {len(plan.clips)} {plan.identity['split']} "
                            f"clips were skipped (first: {skipped[0]['clip_id']}: "
                            f"{skipped[0]['reason']})")
    return BuildSummary(out_dir=out, fingerprint=plan.fingerprint, n_clips=len(plan.clips),
                        n_shards=plan.n_shards, records=records, skipped=skipped,
                        shards_written=len(pending), shards_reused=len(done), seconds=seconds,
                        new_records=counters["new_records"], workers=n_workers if tasks else 0,
                        timings=timings, renders=counters["renders"])


__all__ = ["BuildSummary", "ClipTask", "ClipWorker", "DatabaseWarning", "JobSpec", "Plan",
           "build_database", "plan_database"]
