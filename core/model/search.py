"""Inference-time refinement: search the effect chain whose sound follows the image edit.

A trained controller answers in one forward pass but can only be as good as its training
data. The search instead renders candidate chains and keeps the one whose audio-side
reading of (A, A') best matches the image's `StyleLabel`, the way ST-ITO, FxSearcher and
Text2FX optimise effects against an embedding; here it can also start from a trained
controller's proposal (refinement).

Score of a candidate A' (higher is better)::

    a     = softmax(dz . V_audio^T / T),  dz = (E(A') - E(A)) / ||E(A') - E(A)||
    score = cos(a - 1/K, s_img - 1/K) - w * |S_audio(||E(A') - E(A)||) - strength_img|

i.e. the centred cosine the `agreement` diagnostic reports, minus the gap between the audio
strength and the image strength (w = `strength_weight`).

Search (all evaluations count against the budget):

1. **Excerpt.** The loudest `excerpt_seconds` window of A (deterministic) is encoded once;
   every candidate is rendered on it only (tail cut, so A and A' line up).
2. **First pass.** Each effect alone at intensities 0.6, 0.3, 0.9 (round robin, so a small
   budget still tries every effect once). Without an audio `StrengthMap` these renders,
   whose intensity is known, also fit one for this clip.
3. **Effect choice.** Subsets of up to `max_active` effects are grown by a beam over the best
   single effects (each grown subset rendered once at its members' best intensities); the
   best few subsets seen (the initial plan's among the candidates) become arms.
4. **CMA-ES** (package `cma`) over each arm's normalised parameters, one generation per arm
   per iteration; after every two iterations the worst arm is dropped (successive halving),
   until one is left. When the initial plan's subset is an arm, its CMA mean starts at the
   initial plan (smaller step).

The returned `EffectPlan` holds the best candidate seen, and `trajectory` the best score after
the first pass and after each iteration (non-decreasing by construction). With an
evaluation budget the search is deterministic for a seed; a time budget stops wherever the
clock says. The caller renders the full clip once with the plan.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import DeltaV2AError
from ..style.label import centred_cosine
from ..render.settings import ChainSettings

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .layout import ParamLayout
    from .plan import EffectPlan
    from .strength import StrengthMap
    from ..style.label import StyleLabel

FIRST_PASS_INTENSITIES = (0.6, 0.3, 0.9)
BEAM_SINGLES = 4      # subsets are grown from the best this many single effects ...
BEAM_WIDTH = 3        # ... keeping this many subsets per size
N_ARMS = 3            # subsets optimised by CMA-ES at first
ROUNDS_PER_HALVING = 2
SIGMA0 = 0.25         # CMA-ES initial step in normalised units (zero-shot) ...
SIGMA0_REFINE = 0.15  # ... and around a trained controller's proposal
EFFECT_COST = 0.02    # score cost per effect beyond the first: a near-bypass extra effect must earn its place
EXCERPT_HOP_SECONDS = 0.1
MIN_EXCERPT_SECONDS = 0.25


# ----------------------------------------------------------------------------- validation


def _positive(value: Any, what: str, whole: bool) -> float:
    """A finite number > 0 (whole when `whole`), or a one-line error naming `what`."""
    kind = "a whole number" if whole else "a number"
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise DeltaV2AError(f"{what} must be {kind}, got {value!r}") from None
    if not math.isfinite(number) or (whole and number != int(number)):
        raise DeltaV2AError(f"{what} must be {kind}, got {value!r}")
    if number <= 0:
        raise DeltaV2AError(f"{what} must be positive (at least 1 evaluation or some seconds), got {value!r}")
    return number


def check_budget(budget_evals: Any = None, budget_seconds: Any = None) -> tuple[int | None, float | None]:
    """Validate a search budget; a one-line error for 0, negatives, NaN, infinity or text."""
    evals = None if budget_evals is None else int(_positive(budget_evals, "search budget (evaluations)", True))
    seconds = None if budget_seconds is None else _positive(budget_seconds, "search budget (seconds)", False)
    if evals is None and seconds is None:
        raise DeltaV2AError("the search needs a budget: evaluations, seconds or both")
    return evals, seconds


# ----------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Score:
    total: float
    label_match: float
    audio_strength: float
    delta_norm: float


class AudioScorer:
    """Scores a candidate A' against a target image StyleLabel: label match (centred cosine of
    the audio-side label of (A, A') and the image label) + strength match (audio StrengthMap of
    ||E(A') - E(A)|| vs target.strength). Encodes A once.

    `audio_strength` may be None: `search_plan` then fits a map for the clip from its first
    pass (single effects at known intensities).
    """

    def __init__(self, encoder: Any, V_audio: "np.ndarray", temperature: float,
                 audio_strength: "StrengthMap | Callable[[float], float] | None" = None,
                 strength_weight: float = 0.5) -> None:
        import numpy as np

        self.encoder = encoder
        self.V = np.asarray(V_audio, dtype=np.float64)
        if self.V.ndim != 2 or not np.isfinite(self.V).all():
            raise DeltaV2AError(f"audio term embeddings must be a finite (K, D) matrix, got shape {self.V.shape}")
        self.temperature = float(temperature)
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise DeltaV2AError(f"label temperature must be a positive number, got {temperature!r}")
        self.strength_weight = float(strength_weight)
        if not (math.isfinite(self.strength_weight) and self.strength_weight >= 0):
            raise DeltaV2AError(f"strength weight must be >= 0, got {strength_weight!r}")
        self.audio_strength = audio_strength
        self._ref: "np.ndarray | None" = None

    def encode(self, audio: "np.ndarray", sample_rate: int) -> "np.ndarray":
        import numpy as np

        e = np.asarray(self.encoder.encode_audio([audio], sample_rate), dtype=np.float64)[0]
        if e.shape != (self.V.shape[1],):
            raise DeltaV2AError(f"audio encoder gives {e.shape[0]} dimensions, term embeddings {self.V.shape[1]}")
        if not np.isfinite(e).all():
            raise DeltaV2AError("audio encoder returned NaN or infinity")
        return e

    def set_reference(self, audio: "np.ndarray", sample_rate: int) -> None:
        """Encode A (the excerpt the candidates are rendered on) once."""
        self._ref = self.encode(audio, sample_rate)

    def read(self, audio_after: "np.ndarray", sample_rate: int) -> tuple["np.ndarray", float]:
        """The audio-side label of (A, A') and ||E(A') - E(A)||, as the database computes them."""
        from ..style.label import style_labels

        if self._ref is None:
            raise DeltaV2AError("AudioScorer.set_reference(A) must be called before scoring")
        e1 = self.encode(audio_after, sample_rate)
        labels, norms = style_labels(self._ref, e1, self.V, self.temperature)
        return labels[0].astype("float64"), float(norms[0])

    def combine(self, label_match: float, norm: float, target: "StyleLabel",
                strength_fn: "Callable[[float], float] | None" = None) -> Score:
        fn = strength_fn or self.audio_strength
        s_audio = float(target.strength) if fn is None else float(fn(norm))
        total = label_match - self.strength_weight * abs(s_audio - float(target.strength))
        return Score(float(total), float(label_match), s_audio, float(norm))

    def score(self, audio_after: "np.ndarray", sample_rate: int, target: "StyleLabel") -> Score:
        label, norm = self.read(audio_after, sample_rate)
        return self.combine(centred_cosine(label, target.label), norm, target)


def loudest_window(audio: "np.ndarray", sample_rate: int, seconds: float) -> tuple[int, int]:
    """[start, stop) of the loudest `seconds` window (100 ms grid, first maximum wins)."""
    import numpy as np

    n = audio.shape[1]
    w = int(round(seconds * sample_rate))
    if w >= n:
        return 0, n
    power = np.concatenate([[0.0], np.cumsum(np.mean(np.asarray(audio, np.float64) ** 2, axis=0))])
    hop = max(1, int(round(EXCERPT_HOP_SECONDS * sample_rate)))
    starts = np.arange(0, n - w + 1, hop)
    energy = power[starts + w] - power[starts]
    s = int(starts[int(np.argmax(energy))])
    return s, s + w


# ----------------------------------------------------------------------------- search


class _BudgetSpent(Exception):
    pass


@dataclass
class _Candidate:
    subset: tuple[int, ...]          # effect indices, chain order
    u: "np.ndarray"                  # (P,) normalised parameters (only the subset's matter)
    label_match: float
    norm: float
    intensity: float | None = None   # first pass: the known intensity of a single effect
    total: float = float("-inf")


class _Evaluator:
    """Renders a candidate on the excerpt, reads it, and counts the budget."""

    def __init__(self, excerpt, sr, layout, scorer, target, chain_order, budget_evals, budget_seconds,
                 strength_floor=None):
        self.x, self.sr, self.layout = excerpt, sr, layout
        # strength matching (9.32): every candidate is moved along its rays to the image strength
        self.strength_floor = strength_floor
        self.scorer, self.target, self.order = scorer, target, chain_order
        self.budget_evals = budget_evals
        self.deadline = None if budget_seconds is None else time.perf_counter() + budget_seconds
        self.count = 0
        self.history: list[_Candidate] = []
        self.strength_fn = scorer.audio_strength
        # candidates are ranked once the strength map is known (given, or fitted after the first pass)
        self.ready = self.strength_fn is not None
        self.best: _Candidate | None = None

    def spent(self) -> bool:
        if self.count == 0:
            return False  # a time budget shorter than one render still yields a plan
        if self.budget_evals is not None and self.count >= self.budget_evals:
            return True
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def __call__(self, subset, u, intensity=None) -> _Candidate:
        import numpy as np

        from ..render.chain import AudioChain

        if self.spent():
            raise _BudgetSpent
        self.count += 1
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        if self.strength_floor is not None:
            from .strength import match_strength

            u = match_strength(u[None, :], self.target.strength, self.layout, self.strength_floor)[0]
        active = [i in subset for i in range(self.layout.n_effects)]
        settings = self.layout.to_raw(u, active)
        y = AudioChain(settings, order=self.order, tail="cut").render(self.x, self.sr).audio
        label, norm = self.scorer.read(y, self.sr)
        c = _Candidate(tuple(subset), u, centred_cosine(label, self.target.label), norm, intensity)
        self.history.append(c)
        if self.ready:
            self.rescore(c)
        return c

    def rescore(self, c: _Candidate) -> float:
        c.total = (self.scorer.combine(c.label_match, c.norm, self.target, self.strength_fn).total
                   - EFFECT_COST * max(0, len(c.subset) - 1))
        if self.best is None or c.total > self.best.total:
            self.best = c
        return c.total


def _single_effect_u(layout: "ParamLayout", e: int, intensity: float) -> "np.ndarray":
    """Bypass everywhere, effect `e` at `intensity` (the effects' own `params_at_intensity`)."""
    import numpy as np

    from ..api.registry import get

    u = layout.bypass_array().astype(np.float64)
    raw = get("audio_effect", layout.effects[e]).params_at_intensity(intensity)
    for j in layout.effect_params(e):
        p = layout.params[j]
        u[j] = p.normalise(raw[p.name])
    return u


def _init_candidate(init: "EffectPlan", layout: "ParamLayout", max_active: int):
    """The initial plan cut to `max_active` effects (highest activity first) in layout space."""
    import numpy as np

    names = [n for n in init.effects if n in layout.effects]
    unknown = [n for n in init.effects if n not in layout.effects]
    if unknown:
        raise DeltaV2AError(f"initial plan uses effect(s) not in this layout: {', '.join(unknown)}")
    if len(names) > max_active:
        ranked = sorted(names, key=lambda n: (-float(init.activity.get(n, 0.0)), layout.effect_index(n)))
        names = ranked[:max_active]
    u, _ = layout.from_raw(ChainSettings(tuple(s for s in init.settings if s.effect in names)))
    subset = tuple(sorted(layout.effect_index(n) for n in names))
    return subset, np.asarray(u, dtype=np.float64)


def search_plan(audio: "np.ndarray", sample_rate: int, target: "StyleLabel", *,
                scorer: AudioScorer, layout: "ParamLayout", max_active: int,
                init: "EffectPlan | None" = None, budget_evals: int | None = 200,
                budget_seconds: float | None = None, seed: int = 0,
                excerpt_seconds: float = 3.0, chain_order: Sequence[str] | None = None,
                strength_floor: float | None = None) -> "EffectPlan":
    """CMA-ES (package `cma`) over effect choice (<= max_active) and normalised parameters.

    `strength_floor` (the database's `param_min_intensity`) turns on strength matching: every
    candidate's effects are moved along their rays from bypass to the image strength
    (`strength.match_strength`) before it is rendered, so the search chooses the effects and
    their directions and the image strength alone sets how far they go (a constraint, not a
    penalty the label term can outbid). The first pass then needs one intensity per effect.
    """
    import numpy as np

    from ..render.chain import DEFAULT_ORDER, MIN_SAMPLE_RATE
    from .plan import EffectPlan

    budget_evals, budget_seconds = check_budget(budget_evals, budget_seconds)
    if isinstance(max_active, bool) or not isinstance(max_active, int) or not 1 <= max_active <= layout.n_effects:
        raise DeltaV2AError(f"max_active must be a whole number in 1..{layout.n_effects}, got {max_active!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DeltaV2AError(f"search seed must be a whole number >= 0, got {seed!r}")
    try:
        excerpt_seconds = float(excerpt_seconds)
    except (TypeError, ValueError):
        raise DeltaV2AError(f"excerpt length must be a number of seconds, got {excerpt_seconds!r}") from None
    if not (math.isfinite(excerpt_seconds) and excerpt_seconds >= MIN_EXCERPT_SECONDS):
        raise DeltaV2AError(f"excerpt length must be at least {MIN_EXCERPT_SECONDS} s, got {excerpt_seconds}")
    if len(target.label) != scorer.V.shape[0]:
        raise DeltaV2AError(f"target label has {len(target.label)} terms, the audio vocabulary "
                            f"{scorer.V.shape[0]}: were they built with the same vocabulary?")
    try:
        sr_ok = float(sample_rate) >= MIN_SAMPLE_RATE and math.isfinite(float(sample_rate))
    except (TypeError, ValueError):
        sr_ok = False
    if not sr_ok:
        raise DeltaV2AError(f"sample rate must be a number >= {MIN_SAMPLE_RATE:g} Hz, got {sample_rate!r}")
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] == 0:
        raise DeltaV2AError(f"audio must be (channels, samples) with samples > 0, got shape {x.shape}")
    order = tuple(chain_order) if chain_order is not None else DEFAULT_ORDER

    start, stop = loudest_window(x, sample_rate, excerpt_seconds)
    excerpt = np.ascontiguousarray(x[:, start:stop])
    scorer.set_reference(excerpt, sample_rate)
    ev = _Evaluator(excerpt, sample_rate, layout, scorer, target, order, budget_evals, budget_seconds,
                    strength_floor)
    first_pass = FIRST_PASS_INTENSITIES[:1] if strength_floor is not None else FIRST_PASS_INTENSITIES
    start_subset = start_u = None
    if init is not None and init.steps:
        start_subset, start_u = _init_candidate(init, layout, max_active)
    trajectory: list[float] = []

    try:
        if start_subset is not None:
            ev(start_subset, start_u)
        # -- first pass: each effect alone at known intensities (round robin)
        for t in first_pass:
            for e in range(layout.n_effects):
                ev((e,), _single_effect_u(layout, e, t), intensity=t)
    except _BudgetSpent:
        pass
    _settle_strength(ev)
    arms: list[tuple[tuple[int, ...], "np.ndarray"]] = []
    try:
        arms = _choose_arms(ev, layout, max_active)
    except _BudgetSpent:
        arms = _rank_subsets(ev)[:N_ARMS]
    if ev.best is not None:
        trajectory.append(ev.best.total)
    try:
        _cma_rounds(ev, layout, arms, seed, refine_subset=start_subset, trajectory=trajectory)
    except _BudgetSpent:
        if ev.best is not None and (not trajectory or ev.best.total > trajectory[-1]):
            trajectory.append(ev.best.total)

    best = ev.best
    assert best is not None  # spent() always allows the first render
    active = [i in best.subset for i in range(layout.n_effects)]
    source = "search" if init is None else f"{init.source}+refine"
    return EffectPlan(layout.to_raw(best.u, active), source=source, strength=float(target.strength),
                      trajectory=tuple(float(v) for v in trajectory))


def _settle_strength(ev: _Evaluator) -> None:
    """Fit this clip's audio StrengthMap from the first pass when none was given, then score."""
    from .strength import StrengthMap

    if ev.strength_fn is None and ev.strength_floor is None:  # matched candidates share one known size
        pts = [(c.norm, c.intensity) for c in ev.history if c.intensity is not None]
        try:
            ev.strength_fn = StrengthMap.fit([p[0] for p in pts], [p[1] for p in pts])
        except DeltaV2AError:
            ev.strength_fn = None  # too few renders: strength term neutral (gap 0)
    ev.ready = True
    for c in ev.history:
        ev.rescore(c)


def _rank_subsets(ev: _Evaluator) -> list:
    """Distinct subsets seen so far, best first, each with its best parameters.

    An initial plan's subset competes like any other (it is in the history with the initial
    parameters): forcing it into the arms cost refinement more than it gained on the benchmark
    whenever the trained controller's choice was poor.
    """
    best: dict[tuple[int, ...], _Candidate] = {}
    for c in ev.history:
        if c.subset not in best or c.total > best[c.subset].total:
            best[c.subset] = c
    ranked = sorted(best.values(), key=lambda c: -c.total)
    return [(c.subset, c.u) for c in ranked]


def _choose_arms(ev: _Evaluator, layout: "ParamLayout", max_active: int) -> list:
    """Beam over subsets grown from the best single effects; the best few become arms."""
    import numpy as np

    singles: dict[int, _Candidate] = {}
    for c in ev.history:
        if len(c.subset) == 1 and c.intensity is not None:
            e = c.subset[0]
            if e not in singles or c.total > singles[e].total:
                singles[e] = c
    top = sorted(singles, key=lambda e: (-singles[e].total, e))[:BEAM_SINGLES]
    seen = {(e,) for e in singles}
    level = [(e,) for e in top[:BEAM_WIDTH]]
    scored = {s: singles[s[0]].total for s in level}
    for _size in range(2, max_active + 1):
        grown = []
        for sub in level:
            for e in top:
                new = tuple(sorted(set(sub) | {e}))
                if len(new) != len(sub) + 1 or new in seen:
                    continue
                seen.add(new)
                u = layout.bypass_array().astype(np.float64)
                for m in new:  # each member at its own best first-pass setting
                    for j in layout.effect_params(m):
                        u[j] = singles[m].u[j]
                scored[new] = ev(new, u).total
                grown.append(new)
        level = sorted(grown, key=lambda s: -scored[s])[:BEAM_WIDTH]
        if not level:
            break
    return _rank_subsets(ev)[:N_ARMS]


def _cma_rounds(ev: _Evaluator, layout: "ParamLayout", arms: list, seed: int,
                refine_subset, trajectory: list[float]) -> None:
    """One CMA-ES generation per live arm per round; drop the worst arm every few rounds."""
    import cma
    import numpy as np

    states = []
    for k, (subset, u0) in enumerate(arms):
        cols = [j for e in subset for j in layout.effect_params(e)]
        pad = len(cols) < 2  # cma needs two dimensions; the spare one is ignored
        x0 = [float(u0[j]) for j in cols] + ([0.5] if pad else [])
        sigma = SIGMA0_REFINE if subset == refine_subset else SIGMA0
        es = cma.CMAEvolutionStrategy(x0, sigma, {
            "bounds": [0.0, 1.0], "seed": seed * 1009 + k + 1, "verbose": -9,
            "verb_log": 0, "verb_disp": 0, "tolflatfitness": 10, "maxiter": 10_000})
        seen = [c.total for c in ev.history if c.subset == subset]
        states.append({"subset": subset, "cols": cols, "u0": np.asarray(u0, np.float64),
                       "es": es, "best": max(seen, default=float("-inf"))})
    rounds = 0
    while states:
        for st in list(states):
            es = st["es"]
            if es.stop():
                states.remove(st)
                continue
            xs = es.ask()
            fs = []
            for xv in xs:
                u = st["u0"].copy()
                u[st["cols"]] = np.asarray(xv[: len(st["cols"])], np.float64)
                c = ev(st["subset"], u)
                st["best"] = max(st["best"], c.total)
                fs.append(-c.total)
            es.tell(xs, fs)
        rounds += 1
        if ev.best is not None:
            trajectory.append(max(ev.best.total, trajectory[-1] if trajectory else ev.best.total))
        if len(states) > 1 and rounds % ROUNDS_PER_HALVING == 0:
            states.remove(min(states, key=lambda s: s["best"]))
