"""Which effects, with which settings, each database record applies.

The sampling rule (seed 000, "생성 절차" step 1-2 and limitation 2), in the controller's
normalised [0, 1] space of each parameter (`Param.normalise`, linear or log), with
u_b = the parameter's normalised bypass:

* **End bypass** (u_b = 0 or 1: wet level, drive, cutoffs, bit depth ...): u is uniform
  over the part of [0, 1] at least `param_min_intensity` (0.35) away from u_b, i.e.
  [0.35, 1] or [0, 0.65]. This is the notes' "at least 35 % of the dynamic range" floor;
  0 lifts it (uniform over [0, 1]).
* **Mid bypass** (0 < u_b < 1: playback_rate.rate and reverb.damping, both at 0.5): a
  floor of 0.35 on both sides would leave [0, 0.15] and [0.85, 1] only, so these use the
  `param_mid_bypass_exclusion` (0.15) instead: u is uniform over [0, 1] minus the open
  interval (u_b - 0.15, u_b + 0.15), i.e. [0, 0.35] and [0.65, 1] for u_b = 0.5 (a rate
  of 0.5-0.81x or 1.23-2x). This is our reading of the notes' one-line mention of the
  setting: "mid-bypass" names the parameters whose bypass sits inside the range, and the
  exclusion is the band around it that a sample may not fall in. 0 lifts it.

Effects: the number of active effects k is uniform in [min_active, max_active] (1-2 in
the notes, limitation 1; max_active is capped by the number of effects), the k effects
uniform without replacement. Inactive effects' parameters sit at bypass, as
`ControllerData` expects.

Order: the config's `effects.chain_order` (the notes' fixed lowpass -> bitcrush -> reverb
-> highpass -> distortion -> delay -> playback_rate, limitation 3), or with
`randomize_chain_order` a uniform permutation of the active Pedalboard effects; effects
rendered outside Pedalboard (playback_rate) always stay last, as `AudioChain` renders them.

Random draws happen in a fixed sequence (k, the effects, each active parameter in layout
order, then the permutation), so one generator state gives one augmentation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..config import DatabaseConfig
    from ..model.layout import ParamLayout
    from ..render.settings import ChainSettings

END_TOLERANCE = 1e-9  # u_b closer than this to 0 or 1 counts as an end bypass


def clip_key(clip_id: str) -> tuple[int, int]:
    """Two 32-bit words from the clip id, so a record's random stream names its clip.

    Keyed by the id (the path relative to the audio root) rather than a position in a
    list, a clip's records stay the same when other clips are added, removed or limited.
    """
    digest = hashlib.sha256(clip_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little")


def record_rng(seed: int, clip_id: str, augmentation: int, attempt: int) -> "np.random.Generator":
    """The generator of one (clip, augmentation, attempt): independent of workers and order."""
    import numpy as np

    if seed < 0:
        raise DeltaV2AError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), *clip_key(clip_id), int(augmentation), int(attempt)]))


def allowed_intervals(bypass: float, min_intensity: float, mid_exclusion: float
                      ) -> list[tuple[float, float]]:
    """Closed intervals of [0, 1] a parameter with normalised bypass `bypass` may take."""
    if bypass <= END_TOLERANCE or bypass >= 1.0 - END_TOLERANCE:
        gap = float(min_intensity)
    else:
        gap = float(mid_exclusion)
    if gap <= 0.0:
        return [(0.0, 1.0)]
    pieces = [(0.0, bypass - gap), (bypass + gap, 1.0)]
    out = [(max(0.0, lo), min(1.0, hi)) for lo, hi in pieces]
    out = [(lo, hi) for lo, hi in out if lo <= hi]
    if not out:  # cannot happen with gap <= 1 at an end or <= 0.5 inside; kept as a guard
        raise DeltaV2AError(f"no value is at least {gap:g} from a bypass of {bypass:g}")
    return out


def sample_interval(rng: "np.random.Generator", intervals: Sequence[tuple[float, float]]) -> float:
    """Uniform over the union of intervals (a point interval only if all are points)."""
    lengths = [hi - lo for lo, hi in intervals]
    total = sum(lengths)
    if total <= 0.0:
        lo, _ = intervals[int(rng.integers(len(intervals)))]
        return float(lo)
    v = float(rng.uniform(0.0, total))
    for (lo, hi), length in zip(intervals, lengths):
        if v <= length:
            return min(hi, lo + v)
        v -= length
    return float(intervals[-1][1])


@dataclass(frozen=True)
class Augmentation:
    """One sampled chain: activity, normalised parameters (bypass when inactive), order."""

    active: "np.ndarray"      # (E,) bool
    params: "np.ndarray"      # (P,) float64 in [0, 1]
    order: tuple[str, ...]    # active effects in render order


class AugmentationSampler:
    """Draws `Augmentation`s for one layout and database config."""

    def __init__(self, layout: "ParamLayout", db: "DatabaseConfig",
                 chain_order: Sequence[str]) -> None:
        from ..api import registry as plugins

        self.layout = layout
        self.db = db
        self.min_active = int(db.min_active)
        self.max_active = min(int(db.max_active), layout.n_effects)
        if self.min_active > layout.n_effects:
            raise DeltaV2AError(
                f"database.min_active={db.min_active} but the chain has only "
                f"{layout.n_effects} effects ({', '.join(layout.effects)})")
        self.randomize = bool(db.randomize_chain_order)
        rank = {n: i for i, n in enumerate(chain_order)}
        # the fixed order: config order first, effects it does not name after, as AudioChain does
        self.fixed_rank = {n: (rank.get(n, len(rank)), i) for i, n in enumerate(layout.effects)}
        self.outside = {n for n in layout.effects
                        if getattr(plugins.get("audio_effect", n), "outside_pedalboard", False)}
        self.intervals = [allowed_intervals(p.bypass_normalised, db.param_min_intensity,
                                            db.param_mid_bypass_exclusion)
                          for p in layout.params]
        self.bypass = [p.bypass_normalised for p in layout.params]

    def sample(self, rng: "np.random.Generator") -> Augmentation:
        import numpy as np

        E = self.layout.n_effects
        k = int(rng.integers(self.min_active, self.max_active + 1))
        chosen = np.sort(rng.choice(E, size=k, replace=False))
        active = np.zeros(E, dtype=bool)
        active[chosen] = True
        params = np.asarray(self.bypass, dtype=np.float64)
        for j, owner in enumerate(self.layout.param_effect):
            if active[owner]:
                params[j] = sample_interval(rng, self.intervals[j])
        names = [self.layout.effects[i] for i in chosen]
        inside = sorted((n for n in names if n not in self.outside), key=self.fixed_rank.__getitem__)
        outside = sorted((n for n in names if n in self.outside), key=self.fixed_rank.__getitem__)
        if self.randomize and len(inside) > 1:
            inside = [inside[i] for i in rng.permutation(len(inside))]
        return Augmentation(active=active, params=params, order=tuple(inside + outside))

    def raw(self, aug: Augmentation) -> "np.ndarray":
        """(P,) raw values: denormalised positions, the raw bypass for inactive effects."""
        import numpy as np

        return np.asarray([p.denormalise(u) for p, u in zip(self.layout.params, aug.params)],
                          dtype=np.float64)

    def settings(self, aug: Augmentation) -> "ChainSettings":
        """`aug`'s active effects with their raw values (`ParamLayout.to_raw`), chain order."""
        return self.layout.to_raw(aug.params, aug.active)

    def chain(self, aug: Augmentation, tail: str, max_tail_seconds: float):
        """The `AudioChain` that renders `aug`'s settings, in `aug.order`."""
        from ..render.chain import AudioChain

        return AudioChain(self.settings(aug), order=aug.order, tail=tail,  # type: ignore[arg-type]
                          max_tail_seconds=max_tail_seconds)


__all__ = ["Augmentation", "AugmentationSampler", "allowed_intervals", "clip_key",
           "record_rng", "sample_interval"]
