"""Balanced sampling by inverse effect frequency.

The database draws 1-2 active effects per record uniformly, but filtering (minimum delta
norm, resampling) and user settings can leave some effects rarer than others; the notes
train with a sampler that evens that out. A record's weight is the *mean* of the inverse
frequencies of its active effects: a record pairing a rare effect with a common one is
boosted, but less than a record of the rare effect alone (`max` would give both the same
boost and over-sample common effects that happen to co-occur with rare ones). Records with
no active effect form their own category with its own inverse frequency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch


def effect_frequencies(active: "np.ndarray") -> "np.ndarray":
    """(E,) fraction of records in which each effect is active."""
    import numpy as np

    active = np.asarray(active, dtype=bool)
    return active.mean(axis=0) if active.shape[0] else np.zeros(active.shape[1])


def record_weights(active: "np.ndarray") -> "np.ndarray":
    """(N,) sampling weight: mean inverse frequency of each record's active effects.

    Weights are scaled to mean 1, so they read as "times as likely as uniform".
    """
    import numpy as np

    active = np.asarray(active, dtype=bool)
    n = active.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    freq = effect_frequencies(active)
    inv = np.where(freq > 0, 1.0 / np.maximum(freq, 1e-12), 0.0)
    count = active.sum(axis=1)
    w = (active * inv[None, :]).sum(axis=1) / np.maximum(count, 1)
    empty = count == 0
    if empty.any():
        w[empty] = 1.0 / empty.mean()
    return w / w.mean()


def balanced_indices(active: "np.ndarray", generator: "torch.Generator",
                     num_samples: int | None = None) -> "torch.Tensor":
    """One epoch of record indices drawn with replacement by `record_weights`.

    Same as iterating a `WeightedRandomSampler` with this generator, without the DataLoader.
    """
    import torch

    w = torch.as_tensor(record_weights(active), dtype=torch.float64)
    n = int(w.shape[0] if num_samples is None else num_samples)
    return torch.multinomial(w, n, replacement=True, generator=generator)
