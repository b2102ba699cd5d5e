"""Experiment 2 and the checks the notes name but never ran.

- label statistics: entropy (bits, vs log2 K), effective dimensions, top-1 mass;
- style F1 per audio effect: a logistic-regression probe label -> "was this effect active",
  80/20 split (seed 000, Experiment 2);
- consistency separation (Appendix G): mean cosine of labels of records with the same effect
  set minus mean cosine of random pairs;
- image-side probe: labels of image pairs -> which image effect, F1 per effect;
- cross-modal agreement: the image label vs the label the audio encoder reads off (A, A').

Effective dimensions = mean over labels of 2^H(s) (the label's perplexity): with the notes'
mean entropy of 4.34 bits this gives ~20.3, consistent with their 20.5 / 24.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


def label_statistics(labels: "np.ndarray") -> dict:
    import numpy as np

    from ..style.label import entropy_bits

    H = entropy_bits(labels)
    K = labels.shape[1]
    return {"n": int(labels.shape[0]), "K": int(K),
            "entropy_bits_mean": float(H.mean()), "entropy_bits_max": float(np.log2(K)),
            "entropy_normalised_mean": float(H.mean() / np.log2(K)) if K > 1 else None,
            "effective_dims_mean": float(np.mean(2.0 ** H)),
            "top1_mass_mean": float(labels.max(axis=1).mean())}


def _split(n: int, seed: int, test_fraction: float = 0.2):
    import numpy as np

    idx = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * (1 - test_fraction)))
    return idx[:cut], idx[cut:]


def style_f1_per_effect(labels: "np.ndarray", active: "np.ndarray", effects: Sequence[str],
                        seed: int = 0) -> dict[str, float]:
    """Per effect: logistic regression on the label, F1 on the held-out 20 %."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    tr, te = _split(labels.shape[0], seed)
    out = {}
    for j, name in enumerate(effects):
        y = active[:, j].astype(int)
        if len(np.unique(y[tr])) < 2:
            out[name] = float("nan")
            continue
        clf = LogisticRegression(max_iter=2000, random_state=seed)
        clf.fit(labels[tr], y[tr])
        out[name] = float(f1_score(y[te], clf.predict(labels[te]), zero_division=0))
    return out


def consistency_separation(labels: "np.ndarray", groups: Sequence[str], n_pairs: int = 20000,
                           seed: int = 0) -> dict:
    """Appendix G: same-effect-set pairs vs random pairs, mean label cosine (bootstrap)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    L = labels / np.maximum(np.linalg.norm(labels, axis=1, keepdims=True), 1e-12)
    groups = np.asarray(groups)
    by_group: dict = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    eligible = [np.asarray(v) for v in by_group.values() if len(v) >= 2]
    if not eligible:
        return {"same": float("nan"), "random": float("nan"), "separation": float("nan"), "n_pairs": 0}
    sizes = np.array([len(v) for v in eligible], dtype=float)
    which = rng.choice(len(eligible), size=n_pairs, p=sizes / sizes.sum())
    same = []
    for w in which:
        a, b = rng.choice(eligible[w], size=2, replace=False)
        same.append(float(L[a] @ L[b]))
    ra = rng.integers(0, len(L), n_pairs)
    rb = (ra + rng.integers(1, len(L), n_pairs)) % len(L)
    rand = np.einsum("ij,ij->i", L[ra], L[rb])
    s, r = float(np.mean(same)), float(rand.mean())
    return {"same": s, "random": r, "separation": s - r, "n_pairs": int(n_pairs)}


def image_effect_probe(labels: "np.ndarray", effect_ids: "np.ndarray", effects: Sequence[str],
                       seed: int = 0) -> dict:
    """Which image effect made this label? Multinomial logistic regression, F1 per effect."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    tr, te = _split(labels.shape[0], seed)
    clf = LogisticRegression(max_iter=3000, random_state=seed)
    clf.fit(labels[tr], effect_ids[tr])
    pred = clf.predict(labels[te])
    f1 = f1_score(effect_ids[te], pred, labels=list(range(len(effects))), average=None, zero_division=0)
    per = {name: float(v) for name, v in zip(effects, f1)}
    return {"f1": per, "mean_f1": float(np.mean(f1)), "accuracy": float((pred == effect_ids[te]).mean()),
            "chance": 1.0 / len(effects), "n_test": int(len(te))}


def agreement(image_labels: "np.ndarray", audio_labels: "np.ndarray") -> dict:
    """Cosine and top-1 agreement between paired labels.

    Labels are probability vectors, so their raw cosine is dominated by the shared uniform
    part (two unrelated flat labels score ~1). `mean_cosine` therefore compares the centred
    labels s - 1/K, i.e. which terms each side pushes up or down; the raw cosine is kept
    for reference.
    """
    import numpy as np

    def cos(x, y):
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
        return np.einsum("ij,ij->i", x, y)

    K = image_labels.shape[1]
    return {"mean_cosine": float(cos(image_labels - 1 / K, audio_labels - 1 / K).mean()),
            "mean_cosine_raw": float(cos(image_labels, audio_labels).mean()),
            "top1_agreement": float((image_labels.argmax(1) == audio_labels.argmax(1)).mean()),
            "n": int(image_labels.shape[0])}
