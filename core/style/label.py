"""Style labels: the direction of an edit, read against the vocabulary.

    d = E(x') - E(x);  dz = d / ||d||;  s = softmax(dz . V^T / T)
    calibrated:  s_final = c * s + (1 - c) / K,  c = sigmoid((||d|| - tau_c) / s_c)

The notes write the confidence as a function of "||dz||", but dz is unit-length by
construction; what carries information is the raw delta norm ||E(x') - E(x)||, which is
what the calibration was fitted on, so that is what `norm` means here. An unchanged pair
(||d|| = 0) has no direction and gets the uniform label, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

EPS = 1e-12


@dataclass(frozen=True)
class Calibration:
    tau_c: float
    s_c: float


def confidence(norm: "np.ndarray | float", tau_c: float, s_c: float) -> "np.ndarray":
    """c = sigmoid((||d|| - tau_c) / s_c): "did anything change" (the one place it is computed)."""
    import numpy as np

    z = -(np.asarray(norm, dtype=np.float64) - float(tau_c)) / float(s_c)
    return 1.0 / (1.0 + np.exp(np.clip(z, -700.0, 700.0)))


@dataclass(frozen=True)
class StyleLabel:
    """One modality's reading of an edit: direction (label) + size (strength).

    `label` is the calibrated distribution over the vocabulary terms (the direction),
    `confidence` the calibrated sigmoid of the delta norm ("did anything change"),
    `strength` the StrengthMap of the same norm ("how big": 0 = nothing, 1 = the largest
    edit the effects make). Built by `read_edit`; the controllers' input.
    """

    label: "np.ndarray"          # (K,) calibrated probabilities over vocabulary terms
    terms: tuple[str, ...]
    delta_norm: float            # ||E(x') - E(x)|| in the encoder space
    confidence: float            # calibrated sigmoid in [0, 1]: "did anything change"
    strength: float              # in [0, 1]: how big the edit is (StrengthMap of delta_norm)
    #: the uncalibrated label softmax(dz . V^T / T): direction only. The calibrated `label`
    #: mixes in the confidence (flatter for a smaller edit), so it changes with the size of
    #: one edit; the direction does not. None: not known (then `label` stands in).
    direction: "np.ndarray | None" = None

    def __post_init__(self) -> None:
        import math

        import numpy as np

        from ..errors import DeltaV2AError

        label = np.asarray(self.label, dtype=np.float64).reshape(-1)
        if label.shape[0] != len(self.terms):
            raise DeltaV2AError(f"style label has {label.shape[0]} values for {len(self.terms)} terms")
        if not np.isfinite(label).all():
            raise DeltaV2AError("style label contains NaN or infinity")
        for name in ("delta_norm", "confidence", "strength"):
            if not math.isfinite(float(getattr(self, name))):
                raise DeltaV2AError(f"style label {name} is not a finite number")
        if not 0.0 <= float(self.strength) <= 1.0:
            raise DeltaV2AError(f"style strength must lie in [0, 1], got {float(self.strength)}")
        if self.direction is not None:
            direction = np.asarray(self.direction, dtype=np.float64).reshape(-1)
            if direction.shape != label.shape or not np.isfinite(direction).all():
                raise DeltaV2AError("style direction must be a finite label over the same terms")
            object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "terms", tuple(self.terms))

    @property
    def direction_label(self) -> "np.ndarray":
        """The direction of the edit, independent of its size (the calibrated label when unknown)."""
        return self.label if self.direction is None else self.direction

    @property
    def unchanged(self) -> bool:
        return self.delta_norm <= EPS

    def top(self, k: int) -> list[tuple[str, float]]:
        return top_terms(self.label, self.terms, k)

    def entropy_bits(self) -> float:
        return float(entropy_bits(self.label))

    def as_dict(self, k: int = 5) -> dict:
        """Strict JSON: top-k terms, the full label, norm, confidence, strength, entropy."""
        import math

        def num(v: float) -> float | None:
            v = float(v)
            return v if math.isfinite(v) else None

        return {"top": [{"term": t, "p": num(p)} for t, p in self.top(k)],
                "delta_norm": num(self.delta_norm), "confidence": num(self.confidence),
                "strength": num(self.strength), "entropy_bits": num(self.entropy_bits()),
                "label": {t: num(p) for t, p in zip(self.terms, self.label)}}


def read_edit(before: "np.ndarray", after: "np.ndarray", V: "np.ndarray", terms: Sequence[str],
              temperature: float, calibration: Calibration | None = None,
              strength_map: "Callable[[np.ndarray], np.ndarray] | None" = None,
              strength_of_delta: "Callable[[np.ndarray], np.ndarray] | None" = None) -> list[StyleLabel]:
    """(N, D) embeddings before/after -> N StyleLabels.

    Without a calibration the confidence is 1 for any moved pair; without a strength map
    the strength is the confidence (what older models, fitted before strength existed, had).
    `strength_of_delta` (e.g. a `DirectionalStrength`, `inference.image_strength: by_direction`)
    reads the strength from the whole (N, D) delta after - before and replaces `strength_map`.
    """
    import numpy as np

    labels, norms = style_labels(before, after, V, temperature, calibration)
    direction = style_labels(before, after, V, temperature)[0] if calibration is not None else labels
    norms64 = norms.astype(np.float64)
    if calibration is not None:
        conf = confidence(norms64, calibration.tau_c, calibration.s_c)
    else:
        conf = (norms64 > EPS).astype(np.float64)
    if strength_of_delta is not None:
        d = np.atleast_2d(np.asarray(after, np.float64)) - np.atleast_2d(np.asarray(before, np.float64))
        strength = np.asarray(strength_of_delta(d), float).reshape(-1)
    else:
        strength = np.asarray(strength_map(norms64), float) if strength_map is not None else conf
    strength = np.where(norms64 > EPS, strength, 0.0)
    return [StyleLabel(labels[i], tuple(terms), float(norms[i]), float(conf[i]), float(strength[i]), direction[i])
            for i in range(labels.shape[0])]


def style_labels(before: "np.ndarray", after: "np.ndarray", V: "np.ndarray", temperature: float,
                 calibration: Calibration | None = None) -> tuple["np.ndarray", "np.ndarray"]:
    """Batch form: (N, D) embeddings -> (N, K) labels and (N,) delta norms."""
    import numpy as np

    before = np.atleast_2d(np.asarray(before, dtype=np.float64))
    after = np.atleast_2d(np.asarray(after, dtype=np.float64))
    V = np.asarray(V, dtype=np.float64)
    if before.shape != after.shape:
        from ..errors import DeltaV2AError

        raise DeltaV2AError(f"embedding shapes differ: {before.shape} vs {after.shape}")
    d = after - before
    norm = np.linalg.norm(d, axis=1)
    moved = norm > EPS
    dz = np.zeros_like(d)
    dz[moved] = d[moved] / norm[moved, None]
    logits = dz @ V.T / temperature
    logits -= logits.max(axis=1, keepdims=True)
    s = np.exp(logits)
    s /= s.sum(axis=1, keepdims=True)
    K = V.shape[0]
    s[~moved] = 1.0 / K
    if calibration is not None:
        c = confidence(norm, calibration.tau_c, calibration.s_c)
        s = c[:, None] * s + (1.0 - c[:, None]) / K
    return s.astype(np.float32), norm.astype(np.float32)


def centred_cosine(a: "np.ndarray", b: "np.ndarray") -> float:
    """Cosine of s - 1/K: which terms each label pushes up or down (the raw cosine of two
    probability vectors is ~1 for any two flat labels; see diagnostics.agreement). The one
    pairwise form used by the search and the quality harness."""
    import numpy as np

    K = a.shape[-1]
    x, y = np.asarray(a, np.float64) - 1.0 / K, np.asarray(b, np.float64) - 1.0 / K
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx < 1e-12 or ny < 1e-12:
        return 0.0  # a uniform label has no direction to agree with
    return float(x @ y / (nx * ny))


def entropy_bits(labels: "np.ndarray") -> "np.ndarray":
    import numpy as np

    p = np.clip(np.asarray(labels, dtype=np.float64), 1e-30, 1.0)
    return -(p * np.log2(p)).sum(axis=-1)


def top_terms(label: "np.ndarray", terms: Sequence[str], k: int = 5) -> list[tuple[str, float]]:
    import numpy as np

    idx = np.argsort(-np.asarray(label), kind="stable")[:k]
    return [(terms[i], float(label[i])) for i in idx]

