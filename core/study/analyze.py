"""`study analyze`: the notes' analysis of the listening study.

- Q1 (direction agreement, 1-5): mean with a 95 % t interval over answers.
- Q2 (forced choice): rate of choosing the edited image, exact binomial test against 0.5
  (one-sided "greater", the notes' hypothesis; two-sided reported too), Clopper-Pearson CI.
- The same per group.
- Spearman correlation of the per-case Q1 mean and Q2 rate with ‖δ‖ and strength (per case,
  since answers to one case are not independent of each other).
- Agreement between raters: Krippendorff's alpha (ordinal for Q1, nominal for Q2), which
  allows missing answers and any number of raters.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import DeltaV2AError
from . import GROUPS
from .store import Store


def _q1(values: list[int]) -> dict:
    from scipy import stats

    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "ci95": None}
    mean = sum(values) / n
    if n < 2:
        return {"n": n, "mean": mean, "ci95": None}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half]}


def _q2(chose_edited: list[int]) -> dict:
    from scipy import stats

    n, k = len(chose_edited), sum(chose_edited)
    if n == 0:
        return {"n": 0, "edited": 0, "rate": None}
    test = stats.binomtest(k, n, 0.5, alternative="greater")
    ci = test.proportion_ci(confidence_level=0.95, method="exact")
    return {"n": n, "edited": k, "rate": k / n, "p_greater": float(test.pvalue),
            "p_two_sided": float(stats.binomtest(k, n, 0.5).pvalue), "ci95": [float(ci.low), float(ci.high)]}


def _spearman(x: list[float], y: list[float]) -> dict:
    from scipy import stats

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return {"n": len(x), "rho": None, "p": None, "note": "fewer than 3 cases or a constant column"}
    r = stats.spearmanr(x, y)
    return {"n": len(x), "rho": float(r.statistic), "p": float(r.pvalue)}


def _alpha(rows: list[dict], key: str, level: str) -> dict:
    import krippendorff
    import numpy as np

    raters = sorted({r["rater_id"] for r in rows})
    cases = sorted({r["case_id"] for r in rows})
    if len(raters) < 2:
        return {"alpha": None, "raters": len(raters), "note": "needs two raters or more"}
    data = np.full((len(raters), len(cases)), np.nan)
    ri, ci = {r: i for i, r in enumerate(raters)}, {c: i for i, c in enumerate(cases)}
    for r in rows:
        data[ri[r["rater_id"]], ci[r["case_id"]]] = float(r[key])
    try:
        a = float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))
    except ValueError as exc:  # e.g. every answer the same value: alpha is undefined
        return {"alpha": None, "raters": len(raters), "note": str(exc)}
    return {"alpha": None if math.isnan(a) else a, "raters": len(raters), "level": level}


def analyze(study: Path) -> dict:
    store = Store(study)
    rows = store.rows()
    if not rows:
        raise DeltaV2AError(f"no answers yet in {store.path}")
    result = {"answers": len(rows), "raters": len({r["rater_id"] for r in rows}),
              "cases": len({r["case_id"] for r in rows}),
              "q1": _q1([r["q1"] for r in rows]), "q2": _q2([r["chose_edited"] for r in rows]),
              "groups": {}}
    for g in GROUPS:
        sub = [r for r in rows if r["group"] == g]
        if sub:
            result["groups"][g] = {"q1": _q1([r["q1"] for r in sub]), "q2": _q2([r["chose_edited"] for r in sub])}
    per_case = []
    for cid, case in store.cases.items():
        sub = [r for r in rows if r["case_id"] == cid]
        if sub:
            per_case.append({"case": cid, "group": case.get("group"), "delta_norm": case["delta_norm"],
                             "strength": case["strength"], "n": len(sub),
                             "q1_mean": sum(r["q1"] for r in sub) / len(sub),
                             "q2_rate": sum(r["chose_edited"] for r in sub) / len(sub)})
    result["per_case"] = per_case
    result["spearman"] = {f"{q}~{x}": _spearman([c[x] for c in per_case], [c[q] for c in per_case])
                          for q in ("q1_mean", "q2_rate") for x in ("delta_norm", "strength")}
    result["agreement"] = {"q1_krippendorff_ordinal": _alpha(rows, "q1", "ordinal"),
                           "q2_krippendorff_nominal": _alpha(rows, "chose_edited", "nominal")}
    return result


def _f(v, fmt: str = ".3f") -> str:
    return "n/a" if v is None else format(v, fmt)


def table(res: dict) -> str:
    """The results as a Markdown table (also printed by the command)."""
    def ci(x):
        return "n/a" if not x else f"[{x[0]:.2f}, {x[1]:.2f}]"

    lines = [f"{res['answers']} answers from {res['raters']} raters on {res['cases']} cases", "",
             "| group | n | Q1 mean | Q1 95% CI | Q2 edited rate | Q2 95% CI | p (>0.5, exact) | p (two-sided) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, block in [("all", res), *res["groups"].items()]:
        q1, q2 = block["q1"], block["q2"]
        lines.append(f"| {name} | {q1['n']} | {_f(q1['mean'], '.2f')} | {ci(q1.get('ci95'))} | "
                     f"{_f(q2['rate'])} ({q2['edited']}/{q2['n']}) | {ci(q2.get('ci95'))} | "
                     f"{_f(q2.get('p_greater'), '.4g')} | {_f(q2.get('p_two_sided'), '.4g')} |")
    lines += ["", "| Spearman (per case) | rho | p | cases |", "|---|---|---|---|"]
    for k, s in res["spearman"].items():
        lines.append(f"| {k} | {_f(s['rho'])} | {_f(s['p'], '.4g')} | {s['n']} |")
    lines += ["", "| agreement | Krippendorff's alpha | raters |", "|---|---|---|"]
    for k, a in res["agreement"].items():
        lines.append(f"| {k} | {_f(a['alpha'])} | {a['raters']} |")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> Path:
    from ..media.plots import _plt, save_figure

    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    names = ["all", *res["groups"]]
    blocks = [res, *res["groups"].values()]
    ax = axes[0]
    means = [b["q1"]["mean"] or 0 for b in blocks]
    err = [[m - (b["q1"].get("ci95") or [m, m])[0] for m, b in zip(means, blocks)],
           [(b["q1"].get("ci95") or [m, m])[1] - m for m, b in zip(means, blocks)]]
    ax.bar(names, means, yerr=err, capsize=4, color="tab:blue")
    ax.axhline(3, color="k", ls="--", lw=0.8)
    ax.set_ylim(1, 5)
    ax.set_title("Q1 direction agreement (mean, 95% CI)", fontsize=9)
    ax = axes[1]
    rates = [b["q2"]["rate"] or 0 for b in blocks]
    err = [[r - b["q2"]["ci95"][0] if b["q2"].get("ci95") else 0 for r, b in zip(rates, blocks)],
           [b["q2"]["ci95"][1] - r if b["q2"].get("ci95") else 0 for r, b in zip(rates, blocks)]]
    ax.bar(names, rates, yerr=err, capsize=4, color="tab:orange")
    ax.axhline(0.5, color="k", ls="--", lw=0.8)
    ax.set_ylim(0, 1)
    ax.set_title("Q2 edited-image rate (exact 95% CI)", fontsize=9)
    for a in axes[:2]:
        a.tick_params(axis="x", rotation=20, labelsize=8)
    ax = axes[2]
    pc = res["per_case"]
    ax.scatter([c["delta_norm"] for c in pc], [c["q1_mean"] for c in pc], label="Q1 mean", color="tab:blue")
    ax2 = ax.twinx()
    ax2.scatter([c["delta_norm"] for c in pc], [c["q2_rate"] for c in pc], label="Q2 rate", color="tab:orange",
                marker="x")
    ax.set_xlabel("||delta|| (image)")
    ax.set_ylabel("Q1 mean")
    ax2.set_ylabel("Q2 edited rate")
    s1, s2 = res["spearman"]["q1_mean~delta_norm"], res["spearman"]["q2_rate~delta_norm"]
    ax.set_title(f"per case: Spearman Q1 {_f(s1['rho'], '.2f')}, Q2 {_f(s2['rho'], '.2f')}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
