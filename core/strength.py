"""How big an edit is: a monotone map from ||E(x') - E(x)|| to a strength in [0, 1].

The direction of an edit (the style label) says nothing about its size, and raw delta norms
are not comparable across encoders or modalities. Each side therefore maps its norm through
an isotonic fit of norm -> known edit intensity, so "0.3" means the same amount of change
for an image and for a sound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import DeltaV2AError


@dataclass(frozen=True)
class StrengthMap:
    """Monotone map ||delta|| -> strength in [0, 1] for one encoder (and modality)."""

    knots_norm: tuple[float, ...]
    knots_strength: tuple[float, ...]

    def __post_init__(self) -> None:
        import math

        if len(self.knots_norm) != len(self.knots_strength) or len(self.knots_norm) < 2:
            raise DeltaV2AError("a strength map needs at least two (norm, strength) knots of equal count")
        xs = [float(v) for v in self.knots_norm]
        ys = [float(v) for v in self.knots_strength]
        if not all(math.isfinite(v) for v in xs + ys):
            raise DeltaV2AError("strength map knots must be finite numbers")
        if any(b < a for a, b in zip(xs, xs[1:])) or any(b < a for a, b in zip(ys, ys[1:])):
            raise DeltaV2AError("strength map knots must be non-decreasing")
        object.__setattr__(self, "knots_norm", tuple(xs))
        object.__setattr__(self, "knots_strength", tuple(ys))

    def __call__(self, norm: Any) -> Any:
        import numpy as np

        out = np.clip(np.interp(np.asarray(norm, dtype=np.float64), self.knots_norm,
                                self.knots_strength), 0.0, 1.0)
        return float(out) if out.ndim == 0 else out

    @classmethod
    def fit(cls, norms: Sequence[float], intensities: Sequence[float]) -> "StrengthMap":
        """Isotonic regression norm -> intensity (scipy's pool-adjacent-violators).

        Equal norms are pooled first (mean intensity, weighted by count), so the knots are the
        distinct norms and the map is a well-defined function.
        """
        import numpy as np
        from scipy.optimize import isotonic_regression

        x = np.asarray(norms, dtype=np.float64).reshape(-1)
        y = np.asarray(intensities, dtype=np.float64).reshape(-1)
        if x.shape != y.shape:
            raise DeltaV2AError(f"{x.size} norms but {y.size} intensities")
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], np.clip(y[ok], 0.0, 1.0)
        ux, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
        if ux.size < 2:
            raise DeltaV2AError("fitting a strength map needs at least two distinct finite norms")
        means = np.bincount(inverse, weights=y) / counts
        fitted = isotonic_regression(means, weights=counts.astype(np.float64), increasing=True).x
        return cls(tuple(float(v) for v in ux), tuple(float(v) for v in np.clip(fitted, 0.0, 1.0)))

    def as_dict(self) -> dict:
        return {"knots_norm": list(self.knots_norm), "knots_strength": list(self.knots_strength)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "StrengthMap":
        try:
            return cls(tuple(d["knots_norm"]), tuple(d["knots_strength"]))
        except (KeyError, TypeError) as exc:
            raise DeltaV2AError(f"strength map must have knots_norm and knots_strength lists ({exc})") from None
