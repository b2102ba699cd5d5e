"""`linearity` (Phase 0-b of the pipeline note): are the deltas of one effect one direction?

A transition can only be transferred if the embedding change an effect causes is (a) the
same direction for every item of a kind and (b) of a predictable size, and (c) does not
depend on what the picture or song is about. Per modality, effect and intensity:

* within a category: the mean pairwise cosine of the deltas (direction consistency,
  passes above `min_cosine`, 0.8) and the coefficient of variation std/mean of their norms
  (magnitude consistency, passes below `max_cv`, 0.3; sample std, ddof 1);
* across categories: each category's prototype (mean unit delta), the cosines between all
  pairs of prototypes, and their variance (context invariance, passes below
  `max_variance`, 0.05). The variance is computed over pairs, so it needs at least three
  categories (two give one pair, whose variance is 0 by construction: reported as
  untested). The mean of those cosines is reported too, because equal but low cosines
  pass the variance test while meaning the opposite of invariance.

Deltas of norm 0 (an effect that changed nothing the encoder sees) have no direction; they
are left out of the cosines and counted. Categories with fewer than `min_items` usable
deltas are left out and listed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .extract import DeltaSet
    from .settings import Thresholds

ZERO_NORM = 1e-9


def unit_rows(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit vectors of the non-zero rows, mask of those rows)."""
    d = np.asarray(d, dtype=np.float64)
    n = np.linalg.norm(d, axis=1)
    keep = n > ZERO_NORM
    return d[keep] / n[keep, None], keep


def mean_pairwise_cosine(units: np.ndarray) -> float:
    """Mean of u_i . u_j over i < j, in O(n d): (|sum u|^2 - n) / (n (n - 1))."""
    n = units.shape[0]
    if n < 2:
        return float("nan")
    s = units.sum(axis=0)
    return float((s @ s - n) / (n * (n - 1)))


def _cv(norms: np.ndarray) -> float:
    if norms.size < 2 or norms.mean() <= ZERO_NORM:
        return float("nan")
    return float(norms.std(ddof=1) / norms.mean())


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def within_category(ds: "DeltaSet", th: "Thresholds") -> list[dict]:
    rows = []
    categories = sorted(set(ds.category.tolist()))
    for effect in ds.effects:
        for label in ds.labels:
            per_cat, skipped = [], []
            for cat in categories:
                d = ds.delta[ds.select(effect, label, cat)]
                units, keep = unit_rows(d)
                if units.shape[0] < th.min_items:
                    skipped.append({"category": cat, "usable": int(units.shape[0]), "zero_deltas": int((~keep).sum())})
                    continue
                norms = np.linalg.norm(d.astype(np.float64), axis=1)
                cos = mean_pairwise_cosine(units)
                cv = _cv(norms)
                per_cat.append({
                    "category": cat, "n": int(d.shape[0]), "zero_deltas": int((~keep).sum()),
                    "mean_cosine": cos, "mean_norm": float(norms.mean()), "cv": cv,
                    "direction_consistent": bool(cos > th.min_cosine),
                    "magnitude_consistent": bool(cv < th.max_cv),
                    "consistent": bool(cos > th.min_cosine and cv < th.max_cv),
                })
            row = {"modality": ds.modality, "encoder": ds.encoder, "effect": effect, "intensity_label": label,
                   "intensity": ds.intensity_of(label), "categories": per_cat, "skipped_categories": skipped}
            if per_cat:
                cos = float(np.mean([c["mean_cosine"] for c in per_cat]))
                cv = float(np.mean([c["cv"] for c in per_cat]))
                row.update({"mean_cosine": cos, "mean_cv": cv,
                            "categories_consistent": sum(c["consistent"] for c in per_cat),
                            "consistent": bool(cos > th.min_cosine and cv < th.max_cv)})
            else:
                row.update({"mean_cosine": None, "mean_cv": None, "categories_consistent": 0, "consistent": None})
            rows.append(row)
    return rows


def category_prototypes(ds: "DeltaSet", effect: str, label: str | None, min_items: int
                        ) -> tuple[list[str], np.ndarray]:
    """Categories with enough usable deltas and their prototypes (mean unit delta, renormalised)."""
    cats, protos = [], []
    for cat in sorted(set(ds.category.tolist())):
        units, _ = unit_rows(ds.delta[ds.select(effect, label, cat)])
        if units.shape[0] < min_items:
            continue
        p = units.mean(axis=0)
        n = np.linalg.norm(p)
        if n <= ZERO_NORM:
            continue
        cats.append(cat)
        protos.append(p / n)
    dim = ds.delta.shape[1]
    return cats, np.asarray(protos, dtype=np.float64).reshape(len(protos), dim)


def cross_category(ds: "DeltaSet", th: "Thresholds") -> list[dict]:
    rows = []
    for effect in ds.effects:
        for label in ds.labels + ["all"]:
            cats, P = category_prototypes(ds, effect, None if label == "all" else label, th.min_items)
            C = P @ P.T
            iu = np.triu_indices(len(cats), k=1)
            pair = C[iu]
            row = {"modality": ds.modality, "encoder": ds.encoder, "effect": effect, "intensity_label": label,
                   "categories": cats, "n_pairs": int(pair.size),
                   "cosine_matrix": np.round(C, 6).tolist(),
                   "mean_cosine": _num(float(pair.mean())) if pair.size else None,
                   "min_cosine": _num(float(pair.min())) if pair.size else None}
            if pair.size >= 2:
                var = float(pair.var())
                row.update({"variance": var, "invariant": bool(var < th.max_variance), "note": ""})
            else:
                row.update({"variance": 0.0 if pair.size == 1 else None, "invariant": None,
                            "note": f"{len(cats)} categories with >= {th.min_items} usable deltas: "
                                    "the variance over category pairs needs at least 3"})
            rows.append(row)
    return rows


def run_linearity(deltas: dict[str, "DeltaSet"], th: "Thresholds", out: Path) -> dict:
    """Write linearity_results.json, cross_category_variance.json and linearity.png."""
    from ..atomic import write_json

    within, cross = [], []
    for ds in deltas.values():
        within += within_category(ds, th)
        cross += cross_category(ds, th)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    thresholds = {"min_cosine": th.min_cosine, "max_cv": th.max_cv, "max_variance": th.max_variance,
                  "min_items": th.min_items}
    write_json(out / "linearity_results.json", _clean({"thresholds": thresholds, "results": within}))
    write_json(out / "cross_category_variance.json", _clean({"thresholds": thresholds, "results": cross}))
    plot_linearity(within, cross, th, out / "linearity.png")
    return {"within": within, "cross": cross}


def _clean(obj):
    """NaN -> None, so the JSON is standard."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def plot_linearity(within: list[dict], cross: list[dict], th: "Thresholds", path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    modalities = [m for m in ("image", "audio") if any(r["modality"] == m for r in within)]
    fig, axes = plt.subplots(3, len(modalities), figsize=(6.5 * len(modalities), 9), squeeze=False)
    for col, m in enumerate(modalities):
        sub = [r for r in within if r["modality"] == m]
        effects = list(dict.fromkeys(r["effect"] for r in sub))
        labels = list(dict.fromkeys(r["intensity_label"] for r in sub))
        width = 0.8 / max(1, len(labels))
        x = np.arange(len(effects))
        for k, label in enumerate(labels):
            cos = [next((r["mean_cosine"] for r in sub if r["effect"] == e and r["intensity_label"] == label), None)
                   for e in effects]
            cv = [next((r["mean_cv"] for r in sub if r["effect"] == e and r["intensity_label"] == label), None)
                  for e in effects]
            axes[0, col].bar(x + k * width, [np.nan if v is None else v for v in cos], width, label=label)
            axes[1, col].bar(x + k * width, [np.nan if v is None else v for v in cv], width, label=label)
        csub = [r for r in cross if r["modality"] == m]
        clabels = list(dict.fromkeys(r["intensity_label"] for r in csub))
        cw = 0.8 / max(1, len(clabels))
        for k, label in enumerate(clabels):
            var = [next((r["variance"] for r in csub if r["effect"] == e and r["intensity_label"] == label), None)
                   for e in effects]
            axes[2, col].bar(x + k * cw, [np.nan if v is None else v for v in var], cw, label=label)
        for row, (title, line) in enumerate((("within-category mean pairwise cosine", th.min_cosine),
                                             ("within-category CV of ||delta||", th.max_cv),
                                             ("variance of cross-category prototype cosines", th.max_variance))):
            ax = axes[row, col]
            ax.axhline(line, color="k", ls="--", lw=1)
            ax.set_xticks(x + 0.4 - (cw if row == 2 else width) / 2)
            ax.set_xticklabels(effects, fontsize=8)
            ax.set_title(f"{m} ({sub[0]['encoder']}): {title}", fontsize=9)
            ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
