"""The k-NN controller's inference on numpy arrays: no torch in a transfer.

A transfer with the shipped (k-NN) model needs nothing from torch but its container: the
records are stored buffers, and a query is a distance, a sort and a few means. Importing
torch for it costs ~3 s and ~0.5 GiB of resident memory (the CUDA build pinned in
requirements.lock pages in ~490 MiB of shared libraries), which is a quarter of the memory
budget of a 30-minute transfer (issue 10, `benchmarks/bench_memory.py`). `KNNArrays`
answers the same queries as `knn.KNNNet.predict_batch` from the same safetensors file,
loaded with `safetensors.numpy`:

* the same features (Hellinger term on sqrt(label), standardised E(A), strength), built in
  float32 like the module's buffers;
* distances in float64 (the module's `torch.cdist` uses the float32 |q|^2 + |b|^2 - 2 q.b
  expansion, whose rounding is ~1e-6 of |q|^2: the neighbour lists agree except at such
  near-ties, and `tests/test_knn.py` pins the two paths to each other);
* ties broken by record order (a stable sort), which `torch.topk` only promises in practice;
* the means over the neighbours rounded once from float64, so parameters agree with the
  module's to a float32 ulp (the same effects, thresholds and neighbours).

Training (`fit`) and evaluation keep using the torch module; this class is built only by
`load_controller(..., inference_only=True)`, which `TransferModel` uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from deltav2a.errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .options import KNNOptions as KNNConfig
    from deltav2a.model.layout import ParamLayout

#: the persistent buffers of `knn.KNNNet` (its `data_buffers`), i.e. the file's tensors
STATE = ("style", "audio", "active", "params", "strength", "audio_mean", "audio_std")
QUERY_CHUNK = 64  # queries per distance block: 64 x 100k records x 8 B = 51 MB at the cap


def _z(audio: "np.ndarray", mean: "np.ndarray", std: "np.ndarray") -> "np.ndarray":
    import numpy as np

    return ((np.asarray(audio, np.float64) - mean) / std)


RANGE_MAX_CLIPS = 4096  # clips used to estimate it (4096^2 distances at most)
RANGE_QUANTILE = 0.99  # of the stored clips' nearest-other-clip distances (decision 9.38)


def _nearest(queries: "np.ndarray", clips: "np.ndarray", skip_self: bool = False) -> "np.ndarray":
    """(N,) mean squared distance of each standardised query to its nearest clip, in blocks of
    QUERY_CHUNK rows; `skip_self`: the queries are the clips themselves (row i is not its own
    neighbour)."""
    import numpy as np

    sq = (clips * clips).sum(axis=1)
    out = np.empty(queries.shape[0])
    for i in range(0, queries.shape[0], QUERY_CHUNK):
        c = queries[i:i + QUERY_CHUNK]
        d2 = np.maximum((c * c).sum(axis=1)[:, None] + sq[None, :] - 2.0 * (c @ clips.T), 0.0)
        if skip_self:
            d2[np.arange(c.shape[0]), np.arange(i, i + c.shape[0])] = np.inf
        out[i:i + QUERY_CHUNK] = d2.min(axis=1)
    return out / clips.shape[1]


def stored_clip_range(audio: "np.ndarray", mean: "np.ndarray", std: "np.ndarray") -> tuple["np.ndarray", float]:
    """The stored clips (standardised E(A), one row per clip: records of one clip share E(A))
    and how far they are from their nearest other stored clip: the RANGE_QUANTILE quantile of
    those mean squared distances. The quantile, not the maximum, so one isolated training clip
    does not stretch the range for everyone. inf with fewer than two clips: nothing is then
    called unlike the training clips. Computed once per loaded model."""
    import numpy as np

    clips = np.unique(_z(audio, mean, std), axis=0)
    if clips.shape[0] < 2:
        return clips, float("inf")
    sample = clips
    if clips.shape[0] > RANGE_MAX_CLIPS:  # bounded work: a seeded sample estimates the quantile
        sample = clips[np.sort(np.random.default_rng(0).choice(clips.shape[0], RANGE_MAX_CLIPS, replace=False))]
    return clips, float(np.quantile(_nearest(sample, sample, skip_self=True), RANGE_QUANTILE))


def unlike_training(audio: "np.ndarray", mean: "np.ndarray", std: "np.ndarray",
                    clips_range: tuple["np.ndarray", float]) -> "np.ndarray":
    """(N,) bool: each query clip's nearest stored clip is farther than the stored range
    (`stored_clip_range`'s answer)."""
    clips, clip_range = clips_range
    return _nearest(_z(audio, mean, std), clips) > clip_range


class KNNArrays:
    """Stored k-NN records as numpy arrays, with `predict_arrays(style, audio)`."""

    training = False  # what `controller.predict` reads off a module

    def __init__(self, style_dim: int, audio_dim: int, layout: "ParamLayout", cfg: "KNNConfig",
                 state: Mapping[str, "np.ndarray"], where: str = "knn controller") -> None:
        import numpy as np

        from .knn_head import HEAD_TENSORS, head_shapes

        head = str(getattr(cfg, "params_from", "neighbours")) == "head"
        names = STATE + (HEAD_TENSORS if head else ())
        missing = [k for k in names if k not in state]
        extra = sorted(set(state) - set(names))
        if missing or extra:
            what = f"{missing[0]}: file has nothing" if missing else f"unexpected tensor {extra[0]}"
            raise DeltaV2AError(f"{where}: weights do not fit the 'knn' controller ({what})")
        a = {k: np.asarray(state[k]).astype(np.float32, copy=False) for k in STATE}
        n = a["style"].shape[0] if a["style"].ndim == 2 else -1
        E, P = layout.n_effects, layout.n_params
        expected = {"audio": (n, int(audio_dim)), "active": (n, E), "params": (n, P),
                    "audio_mean": (int(audio_dim),), "audio_std": (int(audio_dim),)}
        if a["style"].ndim != 2 or a["style"].shape[1] not in (int(style_dim), int(style_dim) - 1):
            expected["style"] = (n, int(style_dim))
        for name, shape in expected.items():
            if a[name].shape != shape:
                raise DeltaV2AError(f"{where}: weights do not fit the 'knn' controller ({name}: file has "
                                    f"{list(a[name].shape)}, expected {list(shape)})")
        if a["strength"].shape not in ((0,), (n,)):
            raise DeltaV2AError(f"{where}: weights do not fit the 'knn' controller (strength: file has "
                                f"{list(a['strength'].shape)}, expected [0] or [{n}])")
        if head:  # the learned parameter head (knn_head.py): sized by the architecture
            for name, shape in head_shapes(int(style_dim), int(cfg.head_hidden), P).items():
                w = np.asarray(state[name]).astype(np.float32, copy=False)
                if w.shape != shape:
                    raise DeltaV2AError(f"{where}: weights do not fit the 'knn' controller ({name}: file has "
                                        f"{list(w.shape)}, expected {list(shape)})")
                a[name] = w
        self.head = head
        self.layout, self.style_dim, self.audio_dim = layout, int(style_dim), int(audio_dim)
        self.cfg = cfg  # k and the three distance weights, as `KNNNet` reads them
        self.state = a
        self.param_effect = layout.param_effect_array()
        self.bypass = np.asarray(layout.bypass, dtype=np.float32)

    @property
    def n_records(self) -> int:
        return int(self.state["style"].shape[0])

    def _features(self, style: "np.ndarray", audio: "np.ndarray", strength: "np.ndarray | None",
                  with_audio: bool = True) -> "np.ndarray":
        """`KNNNet._features` in numpy (float32, the same operations in the same order)."""
        import numpy as np

        f32 = np.float32
        w = self.cfg
        parts = [np.sqrt(np.maximum(style, f32(0))) * f32((float(w.style_weight) / 2.0) ** 0.5)]
        if w.audio_weight > 0 and with_audio:
            z = (audio - self.state["audio_mean"]) / self.state["audio_std"]
            parts.append(z * f32((float(w.audio_weight) / self.audio_dim) ** 0.5))
        if strength is not None:
            parts.append(strength.reshape(-1, 1) * f32(float(w.strength_weight) ** 0.5))
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)

    def neighbours(self, style: "np.ndarray", audio: "np.ndarray",
                   strength: "np.ndarray | None" = None, among: "np.ndarray | None" = None) -> "np.ndarray":
        """(N, k) indices of the nearest stored records, nearest first, ties by record order;
        `among` (R,) bool restricts the search to those records (k shrinks to their number)."""
        import numpy as np

        if self.n_records == 0:
            raise DeltaV2AError("knn controller holds no records: fit it on a database first")
        s = self.state
        use_strength = (strength is not None and s["strength"].size == self.n_records
                        and self.cfg.strength_weight > 0)
        bank = self._features(s["style"], s["audio"], s["strength"] if use_strength else None).astype(np.float64)
        rows = np.arange(self.n_records) if among is None else np.flatnonzero(among)
        if rows.size == 0:
            raise DeltaV2AError("knn: no stored record to search among")
        bank = bank[rows]
        bank_sq = (bank * bank).sum(axis=1)
        unlike = np.zeros(style.shape[0], dtype=bool)
        if self.cfg.audio_weight > 0:
            if getattr(self, "_range", None) is None:
                self._range = stored_clip_range(s["audio"], s["audio_mean"], s["audio_std"])
            unlike = unlike_training(audio, s["audio_mean"], s["audio_std"], self._range)
        if unlike.any():  # clips unlike every stored one: no audio term (knn.py's module doc)
            bank_na = self._features(s["style"], s["audio"], s["strength"] if use_strength else None,
                                     with_audio=False).astype(np.float64)[rows]
            bank_na_sq = (bank_na * bank_na).sum(axis=1)
        k = min(int(self.cfg.k), rows.size)
        out = []
        for i in range(0, style.shape[0], QUERY_CHUNK):
            sl = slice(i, i + QUERY_CHUNK)
            q = self._features(style[sl], audio[sl], strength[sl] if use_strength else None).astype(np.float64)
            # float64 expansion: ~1e-16 relative rounding, chunk x records x 8 B of memory
            d2 = (q * q).sum(axis=1)[:, None] + bank_sq[None, :] - 2.0 * (q @ bank.T)
            u = unlike[sl]
            if u.any():
                qa = self._features(style[sl][u], audio[sl][u], strength[sl][u] if use_strength else None,
                                    with_audio=False).astype(np.float64)
                d2[u] = (qa * qa).sum(axis=1)[:, None] + bank_na_sq[None, :] - 2.0 * (qa @ bank_na.T)
            out.append(rows[np.argsort(d2, axis=1, kind="stable")[:, :k]])
        return np.concatenate(out)

    def predict_arrays(self, style: "np.ndarray", audio: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
        """(N, E) activity and (N, P) parameters, as `KNNNet.predict_batch` answers them."""
        import numpy as np

        strength = None
        if self.n_records and style.shape[1] == self.state["style"].shape[1] + 1:
            style, strength = style[:, :-1], style[:, -1]  # label + strength (controller.with_strength)
        if style.shape[0] == 0:
            return (np.zeros((0, self.layout.n_effects), np.float32),
                    np.zeros((0, self.layout.n_params), np.float32))
        idx = self.neighbours(style, audio, strength)
        activity = self.state["active"][idx].mean(axis=1, dtype=np.float32)  # (N, E): the vote
        if self.head:  # `params_from: head` (knn_head.py): the learned head, not the neighbours
            from .knn_head import HEAD_TENSORS, head_forward

            if strength is None or self.state["strength"].size != self.n_records:
                raise DeltaV2AError("knn: params_from 'head' needs a strength with each query and stored "
                                    "records with a strength")
            params = head_forward({n: self.state[n] for n in HEAD_TENSORS}, style, strength)
            seen = (self.state["active"] > 0.5).any(axis=0)[self.param_effect]
            params = np.where(seen[None, :], params, self.bypass[None, :])
            return activity.astype(np.float32), params.astype(np.float32)
        # each effect's parameters: the mean over the k nearest records that HAVE it (9.34);
        # summed in float64 and rounded once: torch's float32 order depends on the shapes, so
        # the two agree to an ulp (~1e-7 of a normalised parameter), not bit for bit
        params = np.tile(self.bypass, (style.shape[0], 1))
        has = self.state["active"] > 0.5
        for e in range(self.layout.n_effects):
            cols = np.flatnonzero(self.param_effect == e)
            if cols.size == 0 or not has[:, e].any():
                continue
            ids = self.neighbours(style, audio, strength, among=has[:, e])
            params[:, cols] = self.state["params"][ids][:, :, cols].mean(axis=1, dtype=np.float64)
        return activity.astype(np.float32), params.astype(np.float32)

