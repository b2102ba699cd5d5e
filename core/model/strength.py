"""How big an edit is: a monotone map ||E(x') - E(x)|| -> strength in [0, 1].

The calibrated confidence c = sigmoid((||d|| - tau_c) / s_c) answers "did anything change";
on the shipped encoders it reaches 1 by image intensity ~0.2, so it cannot tell a gentle
edit from a strong one. Strength is a second reading of the same norm, fitted to be
proportional to the edit's *known* size:

* image side: the configured image effects at known intensities (0.1 .. 1.0) over reference
  photos, isotonic regression ||d|| -> intensity (`StrengthMap.fit` on `image_edit_samples`, stored with the
  model's calibration);
* audio side: the database records, whose known size is `chain_strength` (how far the
  chain's active parameters are from bypass, rescaled so the sampling floor is 0), stored
  per record in the database and fitted the same way against the records' ||d||.

Both sides therefore speak the same unit (0 = no change, 1 = the largest edit the effects
make), which is what lets the controller take the image strength as its strength input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .layout import ParamLayout

#: intensities at which image effects are applied to fit the image-side map
IMAGE_INTENSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
MAX_KNOTS = 64
#: most image effects a model may store per-effect strength maps for (a model folder is untrusted)
MAX_STRENGTH_EFFECTS = 64
#: longest prototype direction a model may store (the image encoder's embedding size)
MAX_PROTOTYPE_DIM = 65_536
#: softmax temperature over cos(edit direction, effect prototype) under
#: `inference.image_strength: by_direction` (decision 9.100)
DIRECTION_TAU = 0.05
#: share of the norm's rank in a fitted map (see StrengthMap.fit)
RANK_WEIGHT = 0.5


@dataclass(frozen=True)
class StrengthMap:
    """Monotone map ||delta|| -> strength in [0, 1] for one encoder (and modality).

    A piecewise-linear interpolation through knots (np.interp): below the first knot the
    map falls linearly to strength 0 at norm 0 (an unchanged pair has strength 0), above
    the last it stays at the last knot's strength.
    """

    knots_norm: tuple[float, ...]
    knots_strength: tuple[float, ...]

    def __post_init__(self) -> None:
        import numpy as np

        n, s = np.asarray(self.knots_norm, float), np.asarray(self.knots_strength, float)
        if n.ndim != 1 or n.shape != s.shape or n.size < 1:
            raise DeltaV2AError("strength map needs matching, non-empty knot lists")
        if n.size > MAX_KNOTS:
            raise DeltaV2AError(f"strength map has {n.size} knots, more than {MAX_KNOTS}")
        if not (np.isfinite(n).all() and np.isfinite(s).all()):
            raise DeltaV2AError("strength map knots must be finite")
        if np.any(np.diff(n) < 0) or np.any(np.diff(s) < 0) or n[0] < 0:
            raise DeltaV2AError("strength map knots must be non-negative and non-decreasing")
        if s.min() < 0 or s.max() > 1:
            raise DeltaV2AError("strength map strengths must lie in [0, 1]")

    def __call__(self, norm: Any) -> Any:
        import numpy as np

        x = np.asarray(norm, dtype=np.float64)
        xs = np.concatenate([[0.0], np.asarray(self.knots_norm, float)])
        ys = np.concatenate([[0.0], np.asarray(self.knots_strength, float)])
        if xs[1] <= 0.0:  # a knot at norm 0 already says what 0 maps to
            xs, ys = xs[1:], ys[1:]
        out = np.clip(np.interp(np.maximum(x, 0.0), xs, ys), 0.0, 1.0)
        return float(out) if out.ndim == 0 else out

    @classmethod
    def fit(cls, norms: Any, intensities: Any, rank_weight: float = RANK_WEIGHT) -> "StrengthMap":
        """Isotonic regression norm -> intensity (scikit-learn), blended with the norm's rank.

        strength = (1 - w) * isotonic(norm) + w * (share of fitting pairs with a smaller norm).
        The isotonic part alone is the least-squares estimate of the intensity, but pooled over
        effects whose norm scales overlap (a large ||d|| may be a strong blur or a mild sepia)
        it saturates (at 0.68 on the development photos), so the strong edits of the effects
        with large norms all got one strength. The rank part keeps the map strictly increasing
        over the whole range, so within any one effect a stronger edit always reads stronger.
        Thinned to <= 64 knots.
        """
        import numpy as np
        from sklearn.isotonic import IsotonicRegression

        x = np.asarray(norms, dtype=np.float64).ravel()
        y = np.asarray(intensities, dtype=np.float64).ravel()
        if x.shape != y.shape or x.size < 2:
            raise DeltaV2AError("strength map fit needs at least two (norm, intensity) pairs")
        # a pair that did not move says nothing about size (an unchanged pair has strength 0
        # by definition); a norm is never negative
        keep = np.isfinite(x) & np.isfinite(y) & (x > 1e-12)
        x, y = x[keep], np.clip(y[keep], 0.0, 1.0)
        if x.size < 2 or np.ptp(x) <= 0:
            raise DeltaV2AError("strength map fit needs delta norms that differ")
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(x, y)
        # evaluate the fitted step function on norm quantiles: a small, smooth, monotone map
        qs = np.unique(np.quantile(x, np.linspace(0.0, 1.0, MAX_KNOTS)))
        w = float(rank_weight)
        if not 0.0 <= w <= 1.0:
            raise DeltaV2AError(f"rank weight must lie in [0, 1], got {rank_weight}")
        rank = np.searchsorted(np.sort(x), qs, side="right") / x.size
        ys = (1.0 - w) * np.clip(iso.predict(qs), 0.0, 1.0) + w * rank
        ys = np.maximum.accumulate(np.clip(ys, 0.0, 1.0))
        return cls(tuple(float(v) for v in qs), tuple(float(v) for v in ys))

    def as_dict(self) -> dict:
        return {"knots_norm": list(self.knots_norm), "knots_strength": list(self.knots_strength)}

    @classmethod
    def from_dict(cls, d: Any) -> "StrengthMap":
        if not isinstance(d, dict) or "knots_norm" not in d or "knots_strength" not in d:
            raise DeltaV2AError("strength map must be a mapping with knots_norm and knots_strength")
        for key in ("knots_norm", "knots_strength"):  # bounded before anything is converted
            if not isinstance(d[key], list) or len(d[key]) > MAX_KNOTS:
                raise DeltaV2AError(f"strength map {key} must be a list of at most {MAX_KNOTS} numbers")
        try:
            return cls(tuple(float(v) for v in d["knots_norm"]), tuple(float(v) for v in d["knots_strength"]))
        except (TypeError, ValueError):
            raise DeltaV2AError("strength map knots must be lists of numbers") from None


def chain_strength(active: Any, params: Any, layout: "ParamLayout", floor: float = 0.0) -> "np.ndarray":
    """(N,) audio-side edit size of database records, in [0, 1].

    Per active parameter: |u - u_bypass| / (the largest distance possible from bypass);
    averaged over the record's active parameters, then rescaled so the sampling floor
    (`database.param_min_intensity`, the least any active parameter moves) is 0 and the
    range's end is 1. A record with no active effect has strength 0.
    """
    import numpy as np

    active = np.asarray(active, dtype=bool)
    dist = _param_distance(params, layout.bypass_array().astype(np.float64))
    mask = active[:, layout.param_effect_array()]
    count = mask.sum(axis=1)
    mean = np.where(count > 0, (dist * mask).sum(axis=1) / np.maximum(count, 1), 0.0)
    floor = float(floor)
    if not 0.0 <= floor < 1.0:
        raise DeltaV2AError(f"strength floor must lie in [0, 1), got {floor}")
    s = np.clip((mean - floor) / (1.0 - floor), 0.0, 1.0)
    return np.where(count > 0, s, 0.0).astype(np.float32)


def _param_distance(params: Any, bypass: "np.ndarray") -> "np.ndarray":
    """(N, P) |u - u_bypass| / (the largest distance possible from bypass), in [0, 1]."""
    import numpy as np

    params = np.asarray(params, dtype=np.float64)
    reach = np.maximum(bypass, 1.0 - bypass)
    return np.abs(params - bypass[None, :]) / np.maximum(reach, 1e-9)[None, :]


def match_strength(params: Any, strength: Any, layout: "ParamLayout", floor: float = 0.0,
                   iterations: int = 40) -> "np.ndarray":
    """(N, P) normalised parameters moved along their ray from bypass, effect by effect, so that
    each effect's `chain_strength` equals the record's target `strength` (N,) (or a scalar).

    The controller's parameters give the *direction* of each effect (which parameters move,
    which way, in what proportion); the target gives *how far*: the mean normalised distance
    from bypass becomes floor + strength * (1 - floor), the inverse of `chain_strength`'s
    rescaling; `floor` is one number for every effect, or (E,) floors in layout order
    (`match_floor: auto`, each effect's recognisable floor, decision 9.90). Per effect, not per rendered set, so any subset that is rendered has exactly
    the target strength (up to the [0, 1] bounds) and the choice of the set stays independent
    of it. u(g) = clip(bypass + g * (u - bypass), 0, 1) has a mean distance that grows
    continuously with g until every parameter hits its bound, so g is found by bisection and a
    larger target never gives a smaller distance (a target beyond reach ends at the bounds).
    An effect whose parameters sit at bypass has no direction and is left as it is.
    """
    import numpy as np

    u0 = np.atleast_2d(np.asarray(params, dtype=np.float64))
    n = u0.shape[0]
    target = np.broadcast_to(np.asarray(strength, dtype=np.float64).reshape(-1), (n,)).copy()
    if not np.isfinite(target).all():
        raise DeltaV2AError("target strength must be finite")
    floors = effect_floors(floor, layout)
    # (N, E) mean distance wanted, per effect
    want_all = floors[None, :] + np.clip(target, 0.0, 1.0)[:, None] * (1.0 - floors[None, :])
    bypass = layout.bypass_array().astype(np.float64)
    step = u0 - bypass[None, :]
    room = np.where(step >= 0, 1.0 - bypass[None, :], bypass[None, :])  # distance to the bound ahead
    owner = layout.param_effect_array()
    out = u0.copy()
    for e in range(layout.n_effects):
        cols = np.flatnonzero(owner == e)
        want = want_all[:, e]
        d = step[:, cols]
        moving = np.abs(d) > 1e-9
        has_dir = moving.any(axis=1)
        if not has_dir.any():
            continue
        # beyond g_max every moving parameter sits at its bound
        ratio = np.where(moving, room[:, cols] / np.maximum(np.abs(d), 1e-12), 0.0)
        lo, hi = np.zeros(n), np.maximum(ratio.max(axis=1), 1e-9)

        def mean_dist(g: "np.ndarray", cols=cols, d=d) -> "np.ndarray":
            u = np.clip(bypass[None, cols] + g[:, None] * d, 0.0, 1.0)
            return _param_distance(u, bypass[cols]).mean(axis=1)

        for _ in range(int(iterations)):
            mid = 0.5 * (lo + hi)
            short = mean_dist(mid) < want
            lo, hi = np.where(short, mid, lo), np.where(short, hi, mid)
        u = np.clip(bypass[None, cols] + hi[:, None] * d, 0.0, 1.0)  # the least g reaching the target
        out[:, cols] = np.where(has_dir[:, None], u, u0[:, cols])
    return out


def effect_floors(floor: Any, layout: "ParamLayout") -> "np.ndarray":
    """(E,) floors in layout order from one number or one per effect; each finite in [0, 1)."""
    import numpy as np

    f = np.asarray(floor, dtype=np.float64)
    if f.ndim == 0:
        f = np.full(layout.n_effects, float(f))
    if f.shape != (layout.n_effects,):
        raise DeltaV2AError(f"strength floors must be one number or one per effect ({layout.n_effects}), "
                            f"got shape {f.shape}")
    if not (np.isfinite(f).all() and (f >= 0.0).all() and (f < 1.0).all()):
        shown = f.tolist() if f.size > 1 else float(f[0])
        raise DeltaV2AError(f"strength floor must lie in [0, 1), got {shown}")
    return f


def effect_distance(params: Any, layout: "ParamLayout") -> "np.ndarray":
    """(N, E) each effect's mean normalised distance from bypass (what `match_strength` sets)."""
    import numpy as np

    dist = _param_distance(np.atleast_2d(params), layout.bypass_array().astype(np.float64))
    owner = layout.param_effect_array()
    return np.stack([dist[:, owner == e].mean(axis=1) for e in range(layout.n_effects)], axis=1)


#: distances from bypass at which `fit_match_floors` renders each effect's probes
FLOOR_DISTANCES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0)
#: share of the strong edits' agreement an effect's label must reach to count as recognisable
FLOOR_FRACTION = 0.8
#: records at least this far from bypass define an effect's plateau (its strong-edit reading)
PLATEAU_DISTANCE = 0.6
#: a stored floor must not exceed this (a floor near 1 would make every strength the strongest edit)
MAX_FLOOR = 0.95


def recognisable_floor(distances: Sequence[float], agreement: Sequence[float], plateau: float,
                       fraction: float = FLOOR_FRACTION) -> float | None:
    """The least distance from bypass at which `agreement` (the mean centred cosine of the rendered
    labels to the effect's plateau direction, one value per distance) reaches `fraction` x `plateau`
    (the strong records' own mean cosine to that direction): linear between the probe distances,
    starting from (0, 0) (an unchanged clip has a uniform label, no direction). None: never reached.
    """
    import numpy as np

    d = np.concatenate([[0.0], np.asarray(distances, float)])
    a = np.concatenate([[0.0], np.asarray(agreement, float)])
    if d.size < 2 or d.shape != a.shape or np.any(np.diff(d) <= 0) or not np.isfinite(a).all():
        raise DeltaV2AError("recognisable floor needs increasing distances and one finite agreement each")
    if not (0.0 < fraction <= 1.0 and np.isfinite(plateau) and plateau > 0):
        raise DeltaV2AError(f"recognisable floor needs a fraction in (0, 1] and a positive plateau, "
                            f"got {fraction}, {plateau}")
    goal = fraction * plateau
    hit = np.flatnonzero(a >= goal)
    if hit.size == 0:
        return None
    i = int(hit[0])  # i >= 1: a[0] = 0 < goal
    t = (goal - a[i - 1]) / max(a[i] - a[i - 1], 1e-12)
    return float(d[i - 1] + t * (d[i] - d[i - 1]))


def fit_match_floors(cfg: Any, db: Any, layout: "ParamLayout", audio_encoder: Any, V: Any,
                     clip_path: Any, probes: int = 8, seed: int = 0,
                     distances: Sequence[float] = FLOOR_DISTANCES, fraction: float = FLOOR_FRACTION,
                     plateau_distance: float = PLATEAU_DISTANCE, progress: bool = False) -> tuple[dict, dict]:
    """Per effect, the least distance from bypass at which its audio change is recognisable
    (`inference.match_floor: auto`, decision 9.90), from the training database.

    Plateau: the effect's single-effect records at least `plateau_distance` from bypass; their mean
    centred label (the database's audio label of (A, A'), minus 1/K) is the effect's direction, and
    their mean centred cosine to it is how consistently a strong edit of the effect reads that way.
    The records never come nearer bypass than `database.param_min_intensity`, so the gentle end is
    probed: `probes` single-effect records per effect (seeded, distinct clips first) are moved along
    their own ray from bypass (`match_strength`, floor 0) to each of `distances`, rendered on their
    clip (`clip_path(clip_id)`) as the database renders them, labelled as the database labels (`V`:
    the vocabulary's audio term embeddings), and the mean centred cosine to the plateau direction is
    taken per distance. The floor is where it first reaches `fraction` of the plateau's
    (`recognisable_floor`); an effect that never does, or has too few records, keeps the records'
    floor (`database.param_min_intensity`). Returns ({effect: floor}, report).
    """
    import numpy as np

    from ..render.chain import AudioChain
    from ..style.label import style_labels
    from ..style.pairs import load_clip

    data = db.data
    K = data.style.shape[1]
    centred = data.style.astype(np.float64) - 1.0 / K
    dist = effect_distance(data.params, layout)
    single = data.active.sum(axis=1) == 1
    default = min(float(cfg.database.param_min_intensity), MAX_FLOOR)
    rng = np.random.default_rng(seed)
    sr = cfg.audio.sample_rate
    grid = np.asarray(distances, dtype=np.float64)
    clips: dict[str, Any] = {}
    floors: dict[str, float] = {}
    report: dict[str, Any] = {"distances": grid.tolist(), "fraction": float(fraction),
                              "plateau_distance": float(plateau_distance), "probes": int(probes),
                              "effects": {}}
    for e, name in enumerate(layout.effects):
        mine = np.flatnonzero(single & data.active[:, e])
        strong = mine[dist[mine, e] >= plateau_distance]
        ref = centred[strong].mean(axis=0) if strong.size else np.zeros(K)
        if strong.size < 2 or float(np.linalg.norm(ref)) < 1e-9:
            floors[name] = default
            report["effects"][name] = {"floor": default, "reached": False,
                                       "reason": "fewer than 2 strong single-effect records"}
            continue
        ref /= float(np.linalg.norm(ref))
        plateau = float((centred[strong] @ ref / np.maximum(np.linalg.norm(centred[strong], axis=1),
                                                               1e-12)).mean())
        # distinct clips first, then the rest, in a seeded order
        order = rng.permutation(mine)
        seen: set[str] = set()
        firsts = [i for i in order if not (str(db.clip_id[i]) in seen or seen.add(str(db.clip_id[i])))]
        pick = (firsts + [i for i in order if i not in set(firsts)])[:probes]
        agree = np.zeros((len(pick), grid.size))
        active = np.zeros(layout.n_effects, dtype=bool)
        active[e] = True
        for j, rec in enumerate(pick):
            cid = str(db.clip_id[rec])
            if cid not in clips:
                clips[cid] = load_clip(clip_path(cid), cfg)
            u = match_strength(np.repeat(data.params[rec][None, :], grid.size, axis=0), grid, layout, 0.0)
            after = []
            for k in range(grid.size):
                chain = AudioChain(layout.to_raw(u[k], active), order=cfg.effects.chain_order,
                                   tail=cfg.database.tail, max_tail_seconds=cfg.effects.max_tail_seconds)
                y = chain.render(clips[cid], sr, checked=True).audio
                after.append(np.asarray(audio_encoder.encode_audio([y], sr), np.float64)[0])
            before = np.repeat(data.audio[rec][None, :].astype(np.float64), grid.size, axis=0)
            labels, _ = style_labels(before, np.stack(after), V, cfg.database.temperature)
            c = labels.astype(np.float64) - 1.0 / K
            agree[j] = c @ ref / np.maximum(np.linalg.norm(c, axis=1), 1e-12)
            if progress:
                print(f"[floors] {name}: probe {j + 1}/{len(pick)}", flush=True)
        curve = agree.mean(axis=0)
        f = recognisable_floor(grid, curve, plateau, fraction)
        floors[name] = default if f is None else min(float(f), MAX_FLOOR)
        report["effects"][name] = {"floor": floors[name], "reached": f is not None, "plateau": plateau,
                                   "plateau_records": int(strong.size), "agreement": curve.tolist(),
                                   "probe_records": [int(i) for i in pick]}
    return floors, report


def check_match_floors(raw: Any, effects: Sequence[str], where: str = "model") -> dict[str, float]:
    """A stored `calibration.match_floors` checked against the layout (untrusted model data): one
    finite floor in [0, MAX_FLOOR] for every effect, and no other key."""
    import math

    if not isinstance(raw, dict):
        raise DeltaV2AError(f"{where}: calibration.match_floors must be a mapping effect -> floor")
    missing = [e for e in effects if e not in raw]
    extra = [str(k) for k in raw if k not in effects]
    if missing or extra:
        raise DeltaV2AError(f"{where}: calibration.match_floors does not match the effects "
                            f"(missing {missing}, unknown {extra})")
    out = {}
    for e in effects:
        v = raw[e]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or not 0.0 <= v <= MAX_FLOOR:
            raise DeltaV2AError(f"{where}: calibration.match_floors.{e} must be a number in "
                                f"[0, {MAX_FLOOR}], got {v!r}")
        out[e] = float(v)
    return out
@dataclass(frozen=True)
class DirectionalStrength:
    """Image strength conditioned on the edit's direction (`inference.image_strength: by_direction`,
    decision 9.100): one StrengthMap per configured image effect, fitted on that effect's pairs
    only, and a prototype per effect (the normalised mean of its unit image deltas E(x') - E(x)).

    strength = sum_e w_e * map_e(||d||), w = softmax_e(cos(d, prototype_e) / tau). The pooled
    map confounds the edit's type with its size (a noise edit has a larger ||d|| than a blur of
    the same perceived size); reading the size on the map of the effect the edit looks like
    removes that. An edit like one prototype gets (nearly) that effect's map; an edit like none
    (a third-party filter) gets a blend of the maps, never an error.
    """

    effects: tuple[str, ...]
    maps: tuple[StrengthMap, ...]
    prototypes: tuple[tuple[float, ...], ...]
    tau: float = DIRECTION_TAU

    def __post_init__(self) -> None:
        import numpy as np

        e = len(self.effects)
        if not 1 <= e <= MAX_STRENGTH_EFFECTS:
            raise DeltaV2AError(f"per-effect strength needs 1..{MAX_STRENGTH_EFFECTS} effects, got {e}")
        if len(self.maps) != e or len(self.prototypes) != e:
            raise DeltaV2AError("per-effect strength needs one map and one prototype per effect")
        if not all(isinstance(m, StrengthMap) for m in self.maps):
            raise DeltaV2AError("per-effect strength maps must be StrengthMaps")
        if len(set(self.effects)) != e or not all(isinstance(n, str) and n for n in self.effects):
            raise DeltaV2AError("per-effect strength effects must be distinct names")
        if len({len(p) for p in self.prototypes}) != 1:
            raise DeltaV2AError("per-effect strength prototypes must be equal-length vectors")
        P = np.asarray(self.prototypes, dtype=np.float64)
        if P.ndim != 2 or not 1 <= P.shape[1] <= MAX_PROTOTYPE_DIM:
            raise DeltaV2AError("per-effect strength prototypes must be equal-length vectors")
        if not np.isfinite(P).all() or np.any(np.linalg.norm(P, axis=1) <= 1e-12):
            raise DeltaV2AError("per-effect strength prototypes must be finite and non-zero")
        if not (np.isfinite(self.tau) and self.tau > 0):
            raise DeltaV2AError(f"direction temperature must be positive, got {self.tau}")

    @property
    def dim(self) -> int:
        return len(self.prototypes[0])

    def weights(self, delta: Any) -> "np.ndarray":
        """(N, E) softmax over effects of cos(delta, prototype) / tau; an unmoved row is uniform."""
        import numpy as np

        d = np.atleast_2d(np.asarray(delta, dtype=np.float64))
        if d.shape[1] != self.dim:
            raise DeltaV2AError(f"image delta has {d.shape[1]} dimensions, the strength prototypes {self.dim}")
        P = np.asarray(self.prototypes, dtype=np.float64)
        P = P / np.linalg.norm(P, axis=1, keepdims=True)
        n = np.linalg.norm(d, axis=1, keepdims=True)
        cos = np.where(n > 1e-12, d @ P.T / np.maximum(n, 1e-12), 0.0)
        z = cos / float(self.tau)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def __call__(self, delta: Any) -> "np.ndarray":
        """(N,) strength of (N, D) image deltas E(x') - E(x)."""
        import numpy as np

        d = np.atleast_2d(np.asarray(delta, dtype=np.float64))
        norms = np.linalg.norm(d, axis=1)
        per = np.stack([np.asarray(m(norms), float).reshape(-1) for m in self.maps], axis=1)  # (N, E)
        return np.clip((self.weights(d) * per).sum(axis=1), 0.0, 1.0)

    @classmethod
    def fit(cls, deltas: Any, effect_ids: Any, intensities: Any, effects: Sequence[str],
            tau: float = DIRECTION_TAU) -> "DirectionalStrength":
        """Per effect: `StrengthMap.fit` on its own (||d||, intensity) pairs and the normalised mean
        of its unit deltas."""
        import numpy as np

        d = np.atleast_2d(np.asarray(deltas, dtype=np.float64))
        ids = np.asarray(effect_ids).ravel()
        y = np.asarray(intensities, dtype=np.float64).ravel()
        maps, protos = [], []
        for j, name in enumerate(effects):
            sel = ids == j
            n = np.linalg.norm(d[sel], axis=1)
            moved = n > 1e-12
            if moved.sum() < 2:
                raise DeltaV2AError(f"image effect {name} moved fewer than two images: no strength map for it")
            maps.append(StrengthMap.fit(n, y[sel]))
            mean = (d[sel][moved] / n[moved, None]).mean(axis=0)
            protos.append(tuple(float(v) for v in mean / max(np.linalg.norm(mean), 1e-12)))
        return cls(tuple(effects), tuple(maps), tuple(protos), float(tau))

    def as_dict(self) -> dict:
        return {"effects": list(self.effects), "maps": [m.as_dict() for m in self.maps],
                "prototypes": [list(p) for p in self.prototypes], "tau": float(self.tau)}

    @classmethod
    def from_dict(cls, d: Any, tau: float | None = None) -> "DirectionalStrength":
        """From a model's calibration (untrusted): every size is bounded before anything is built.
        `tau`: the temperature to use (the inference option), None = the stored one."""
        if not isinstance(d, dict) or not all(k in d for k in ("effects", "maps", "prototypes")):
            raise DeltaV2AError("per-effect strength must be a mapping with effects, maps and prototypes")
        eff, maps, protos = d["effects"], d["maps"], d["prototypes"]
        for key, v in (("effects", eff), ("maps", maps), ("prototypes", protos)):
            if not isinstance(v, list) or not 1 <= len(v) <= MAX_STRENGTH_EFFECTS:
                raise DeltaV2AError(f"per-effect strength {key} must be a list of 1..{MAX_STRENGTH_EFFECTS} entries")
        if not all(isinstance(p, list) and 1 <= len(p) <= MAX_PROTOTYPE_DIM for p in protos):
            raise DeltaV2AError(f"per-effect strength prototypes must be lists of 1..{MAX_PROTOTYPE_DIM} numbers")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for p in protos for v in p):
            raise DeltaV2AError("per-effect strength prototypes must be lists of numbers")
        t = d.get("tau", DIRECTION_TAU) if tau is None else tau
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise DeltaV2AError("per-effect strength tau must be a number")
        return cls(tuple(eff), tuple(StrengthMap.from_dict(m) for m in maps),
                   tuple(tuple(float(v) for v in p) for p in protos), float(t))


def image_edit_samples(encoder: Any, images: Sequence[Any], effects: Sequence[Any], seed: int = 0,
                       intensities: Sequence[float] = IMAGE_INTENSITIES) -> dict:
    """Every image x effect x intensity: {"delta": (N, D) E(x') - E(x), "effect": (N,) index into
    `effects`, "intensity": (N,)} (the edits the image strength maps are fitted on)."""
    import numpy as np

    deltas, ids, ints = [], [], []
    for i, img in enumerate(images):
        e0 = np.asarray(encoder.encode_images([img])[0], dtype=np.float64)
        edited = [fx.apply(img, float(t), seed=seed + i) for fx in effects for t in intensities]
        e1 = np.asarray(encoder.encode_images(edited), dtype=np.float64)
        deltas.append(e1 - e0[None, :])
        ids.extend([j for j in range(len(effects)) for _ in intensities])
        ints.extend([float(t) for _ in effects for t in intensities])
    if not deltas:
        raise DeltaV2AError("no images to fit the image strength map on")
    return {"delta": np.concatenate(deltas), "effect": np.asarray(ids), "intensity": np.asarray(ints)}


def fit_report(smap: StrengthMap, norms: Any, intensities: Any) -> dict:
    """How well the map recovers the known sizes (Spearman rank correlation, MAE)."""
    import numpy as np
    from scipy.stats import spearmanr

    x, y = np.asarray(norms, float), np.asarray(intensities, float)
    pred = np.asarray(smap(x), float)
    rho = spearmanr(pred, y).statistic if np.ptp(pred) > 0 and np.ptp(y) > 0 else float("nan")
    return {"pairs": int(x.size), "spearman": None if not np.isfinite(rho) else float(rho),
            "mae": float(np.abs(pred - y).mean())}


def own_vote_config(cfg: Any) -> Any:
    """`cfg` with `inference.strength_match: off`: the controller's own answer, each query at its
    own strength (what thresholds are tuned on under `locked`, decision 9.141)."""
    return cfg.model_copy(update={"inference": cfg.inference.model_copy(update={"strength_match": "off"})})


def controller_prediction(cfg: Any, loaded: Any, style: Any, audio: Any, strength: Any,
                          direction: Any = None, floor: float | None = None) -> Any:
    """A loaded controller's `Prediction` as inference uses it (`inference.strength_match`).

    `direction`: the edit's direction label (`StyleLabel.direction`, before the confidence
    mix); None = `style` (the database's labels are directions already).
    `floor`: the mean distance from bypass that strength 0 is matched to by the modes that call
    `match_strength` (one number, or (E,) per-effect floors: `match_floor: auto`); None = `database.param_min_intensity` (the records' own unit, what the
    database stages use). A transfer passes `inference.match_floor` (9.71): the image strength is
    a size on the image's scale (0 = unchanged), and the records' floor, a sampling choice that
    keeps every record audible, would make the gentlest edit as far from bypass as that floor.
    `chain`: the controller is asked with the direction at `inference.reference_strength` (the
    set and each effect's direction come from the label and E(A) alone, so they do not switch
    between two sizes of one edit), then `match_strength` moves each effect from bypass to the
    given strength. `params` (9.37): the activity (so the set) is the controller's own answer
    for `style` at the given strength, as `off`, which reads the label best; the parameters
    are `chain`'s, so within a set the change grows with the strength. `nested` (9.40): the
    parameters are `off`'s; the activity of each effect is the most the controller gives it for
    the direction at any size of the edit up to the given one (`nested_activity`), so an effect
    that a gentler size of the same edit rendered is not dropped by a stronger one. `matched` (9.70):
    the set and each effect's parameter direction are `off`'s (the own answer at the image
    strength), and `match_strength` moves each effect along its ray to the image strength: the
    neighbours' / head's answer barely changes between two sizes of one edit when the image
    strengths are close, while the matched distance grows strictly with the strength.
    `nested_matched`: the set as `nested`, the parameters as `matched`. `locked` (9.120): the
    activity is the controller's vote for the direction at `inference.lock_strength`, so every
    size of one edit renders one set, and the parameters are `off`'s (the own answer at the image
    strength), so the strength moves only the parameters: between intensities the own vote
    switched the set in 78 % of the discordant pairs of the tuning series, while within one set
    the own parameters grew with the strength in 94 % of the pairs. `off`, or a controller
    without a strength input: its own answer. The transfer, the threshold tuning and
    `evaluate` all go through here, so the thresholds are tuned on, and the metrics measure,
    the parameters that are rendered.
    """
    from .controller import Prediction

    mode = cfg.inference.strength_match
    floor = cfg.database.param_min_intensity if floor is None else floor  # a number or (E,) floors
    if mode == "off" or not loaded.strength_input or strength is None:
        return loaded.predict(style, audio, strength)  # (no strength for a strength-input one: its error)
    if mode in ("nested", "matched", "nested_matched"):
        own = loaded.predict(style, audio, strength)
        activity, params = own.activity, own.params
        if mode != "matched":
            activity = nested_activity(loaded, style if direction is None else direction, audio, strength,
                                       cfg.inference.nested_step).astype(own.activity.dtype)
        if mode != "nested":
            params = match_strength(own.params, strength, loaded.layout, floor).astype(own.params.dtype)
        return Prediction(activity, params)
    if mode == "locked":
        own = loaded.predict(style, audio, strength)
        ref = loaded.predict(style if direction is None else direction, audio, cfg.inference.lock_strength)
        return Prediction(ref.activity, own.params)
    ref = loaded.predict(style if direction is None else direction, audio, cfg.inference.reference_strength)
    params = match_strength(ref.params, strength, loaded.layout, floor)
    activity = loaded.predict(style, audio, strength).activity if mode == "params" else ref.activity
    return Prediction(activity, params.astype(ref.params.dtype))


def nested_activity(loaded: Any, direction: Any, audio: Any, strength: Any, step: float) -> "np.ndarray":
    """(N, E) activity for `strength_match: nested` (decision 9.40): per effect, the largest
    activity the controller gives the edit's direction at strength 0, step, 2 step, ... below
    each record's strength, and at that strength itself (a running maximum along the strength
    axis).

    Why: between two sizes of one edit the neighbours' vote switched the effect set (9.37: 35 of
    42 series), and a stronger edit that drops an effect the gentler one rendered changes the
    clip less. Read this way the set can only grow with the strength (before the `max_active`
    cap ranks it), while each effect still enters at the size where the controller first votes
    for it, so strength-specific choices (distortion only for strong edits) survive. The
    direction, not the calibrated label, is asked: the calibrated label is flatter for a smaller
    edit, so it would move the query along with the size.
    """
    import numpy as np

    step = float(step)
    if not step > 0:
        raise DeltaV2AError(f"nested step must be positive, got {step}")
    direction = np.atleast_2d(np.asarray(direction))
    n = direction.shape[0]
    s = np.broadcast_to(np.asarray(strength, dtype=np.float64).reshape(-1), (n,))
    best = np.asarray(loaded.predict(direction, audio, s.astype(np.float32)).activity, dtype=np.float64)
    for g in np.arange(0.0, float(s.max()), step):
        below = s > g + 1e-9
        if not below.any():
            continue
        act = np.asarray(loaded.predict(direction[below], np.asarray(audio)[below], float(g)).activity,
                         dtype=np.float64)
        best[below] = np.maximum(best[below], act)
    return best
