"""Training records in memory: what a controller is fitted on and evaluated against.

`ControllerData` holds plain numpy arrays aligned with a `ParamLayout`, so trainers,
evaluation and the database read the same type without depending on each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .layout import ParamLayout


@dataclass
class ControllerData:
    """N training records: style label, audio embedding E(A), ground-truth activity and params.

    `params` are normalised positions in [0, 1]; inactive effects' columns are expected at
    bypass (they are ignored by the losses and the metrics either way).
    """

    style: "np.ndarray"   # (N, K) float32
    audio: "np.ndarray"   # (N, D) float32
    active: "np.ndarray"  # (N, E) bool
    params: "np.ndarray"  # (N, P) float32
    strength: "np.ndarray | None" = None  # (N,) float32 in [0, 1]: the controller's strength input

    def __post_init__(self) -> None:
        import numpy as np

        if self.strength is not None:
            self.strength = np.ascontiguousarray(self.strength, dtype=np.float32).reshape(-1)
            if self.strength.shape[0] != np.asarray(self.style).shape[0]:
                raise DeltaV2AError("controller data: strength must have one value per record")
            if not np.isfinite(self.strength).all() or (self.strength.size and (
                    self.strength.min() < 0 or self.strength.max() > 1)):
                raise DeltaV2AError("controller data: strength must lie in [0, 1]")

        self.style = np.ascontiguousarray(self.style, dtype=np.float32)
        self.audio = np.ascontiguousarray(self.audio, dtype=np.float32)
        self.active = np.ascontiguousarray(self.active, dtype=bool)
        self.params = np.ascontiguousarray(self.params, dtype=np.float32)
        arrays = {"style": self.style, "audio": self.audio, "active": self.active,
                  "params": self.params}
        for name, arr in arrays.items():
            if arr.ndim != 2:
                raise DeltaV2AError(f"controller data: {name} must be 2-D, got shape {arr.shape}")
        lengths = {name: arr.shape[0] for name, arr in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise DeltaV2AError(f"controller data: arrays disagree on the record count {lengths}")
        for name in ("style", "audio", "params"):
            if not np.isfinite(arrays[name]).all():
                raise DeltaV2AError(f"controller data: {name} contains NaN or infinity")
        if self.params.size and (self.params.min() < 0 or self.params.max() > 1):
            raise DeltaV2AError("controller data: normalised params must lie in [0, 1]")

    def __len__(self) -> int:
        return int(self.style.shape[0])

    @property
    def style_input(self) -> "np.ndarray":
        """What the controller's style branch reads: the label, plus the strength column when set."""
        from .controller import with_strength

        return with_strength(self.style, self.strength)

    @property
    def style_dim(self) -> int:
        return int(self.style.shape[1]) + (0 if self.strength is None else 1)

    @property
    def audio_dim(self) -> int:
        return int(self.audio.shape[1])

    def check_layout(self, layout: "ParamLayout") -> None:
        if self.active.shape[1] != layout.n_effects:
            raise DeltaV2AError(
                f"controller data has {self.active.shape[1]} effect columns, the layout "
                f"{layout.n_effects} ({', '.join(layout.effects)})")
        if self.params.shape[1] != layout.n_params:
            raise DeltaV2AError(
                f"controller data has {self.params.shape[1]} parameter columns, the layout "
                f"{layout.n_params}")

    def subset(self, index: "Sequence[int] | np.ndarray") -> "ControllerData":
        import numpy as np

        idx = np.asarray(index)
        return ControllerData(self.style[idx], self.audio[idx], self.active[idx], self.params[idx],
                              None if self.strength is None else self.strength[idx])

    def without_strength(self) -> "ControllerData":
        return ControllerData(self.style, self.audio, self.active, self.params, None)

    def split(self, val_fraction: float, seed: int) -> tuple["ControllerData", "ControllerData"]:
        """Random record-level split (the real pipeline splits by source clip instead)."""
        import numpy as np

        if not 0 < val_fraction < 1:
            raise DeltaV2AError("val_fraction must lie strictly between 0 and 1")
        order = np.random.default_rng(seed).permutation(len(self))
        n_val = max(1, int(round(val_fraction * len(self))))
        return self.subset(np.sort(order[n_val:])), self.subset(np.sort(order[:n_val]))

    @classmethod
    def synthetic(cls, layout: "ParamLayout", n: int, style_dim: int = 24, audio_dim: int = 32,
                  seed: int = 0, min_active: int = 1, max_active: int = 2,
                  min_intensity: float = 0.35, noise: float = 0.3,
                  temperature: float = 1.0, with_strength: bool = False) -> "ControllerData":
        """A learnable toy version of the inverse-mapping database (tests, smoke runs).

        Like the notes' DB: 1-2 active effects per record, active parameters at least
        `min_intensity` from bypass in normalised space, inactive ones at bypass. The
        style label is a softmax of a fixed random linear map of (activity, param offsets
        from bypass) plus Gaussian noise, so the inverse mapping exists but is noisy; the
        audio embedding is pure noise (the notes found E(A) alone carries no signal).
        Same seed and sizes, same records; split one call into train/val so both come
        from the same linear map.
        """
        import numpy as np

        if not 1 <= min_active <= max_active <= layout.n_effects:
            raise DeltaV2AError("synthetic data: need 1 <= min_active <= max_active <= effects")
        rng = np.random.default_rng(seed)
        world = np.random.default_rng(rng.integers(2**32))
        feat_dim = layout.n_effects + layout.n_params
        proj = world.normal(0.0, 1.0, size=(feat_dim, style_dim)) / np.sqrt(feat_dim) * 4.0
        bypass = layout.bypass_array().astype(np.float64)
        owner = layout.param_effect_array()

        active = np.zeros((n, layout.n_effects), dtype=bool)
        for i in range(n):
            k = rng.integers(min_active, max_active + 1)
            active[i, rng.choice(layout.n_effects, size=k, replace=False)] = True
        params = np.tile(bypass, (n, 1))
        for j, b in enumerate(bypass):
            rows = np.flatnonzero(active[:, owner[j]])
            lo_len = max(0.0, b - min_intensity)
            hi_len = max(0.0, 1.0 - (b + min_intensity))
            u = rng.uniform(0.0, lo_len + hi_len, size=rows.size)
            params[rows, j] = np.where(u < lo_len, u, b + min_intensity + (u - lo_len))
        feats = np.concatenate([active.astype(np.float64), params - bypass[None, :]], axis=1)
        logits = feats @ proj + rng.normal(0.0, noise, size=(n, style_dim))
        logits = logits / temperature
        logits -= logits.max(axis=1, keepdims=True)
        style = np.exp(logits)
        style /= style.sum(axis=1, keepdims=True)
        audio = rng.normal(0.0, 1.0, size=(n, audio_dim))
        params = np.clip(params, 0.0, 1.0)
        strength = None
        if with_strength:
            from .strength import chain_strength

            strength = chain_strength(active, params, layout, min_intensity)
        return cls(style, audio, active, params, strength)
