"""Grouped cross-validation of the drum presets' tunable settings (held-out beside in-sample).

A setting chosen by looking at the labelled set (the `tuned` preset's rule temperature, the
fusion weight alpha, the text tau) is only worth shipping if choosing it on *other* files
gives the same gain on the files left out. This script scores every file once through the
task's own code (features, rule terms, p_text of the configured text side), then for each
candidate setting recomputes rules -> fusion -> guards with that setting, and reports:

* in-sample: the best grid point chosen on the whole set, scored on the whole set;
* held-out: for each group, the grid point chosen (by fused + guards macro F1, ties to the
  grid's first = most note-like point) on the OTHER groups only, used to predict that group;
  the pooled predictions give one accuracy / macro F1 over all files.

With `--share S` (for `acoustic` and `acoustic2`, whose weights are (1 - S) * note + S * signature, S = 0.5)
the signature is recovered from the preset and the share joins the grid (SHARES), so the
held-out numbers also cover choosing how much say the acoustic signature gets.

Groups: `pack` = the sample pack, the file-name prefix before the first "_" (ambi, bd, drum,
elec, misc, perc, sn, vinyl), so no pack's sound design is seen when it is scored; or `loo`
= one file per group. The grid is small and fixed here (no per-file choice).

    .venv/bin/python benchmarks/cv_drums.py ../shared/data/drums [--preset tuned] [--groups pack|loo]
    .venv/bin/python benchmarks/cv_drums.py ../shared/data/drums --preset acoustic --share 0.5
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

#: candidate values, the note's first (ties go to the first)
GRID = {
    "rule_scoring.temperature": [1.0, 0.3, 0.1, 0.05, 0.03],
    "fusion.alpha": [0.9, 0.7, 0.5],
}
#: candidate shares of the acoustic signature in the rule weights (with --share)
SHARES = [0.5, 0.3, 0.7]


def mixed_weights(note: dict, preset: dict, share: float, new_share: float) -> dict:
    """Weights (1 - new_share) * note + new_share * signature, where the preset's weights are
    (1 - share) * note + share * signature (so signature = (preset - (1 - share) * note) / share)."""
    out = {}
    for role in note:
        terms = set(note[role]) | set(preset[role])
        sig = {t: (preset[role].get(t, 0.0) - (1 - share) * note[role].get(t, 0.0)) / share for t in terms}
        w = {t: (1 - new_share) * note[role].get(t, 0.0) + new_share * sig[t] for t in terms}
        out[role] = {t: v for t, v in w.items() if abs(v) > 1e-12}
    return out


def main() -> None:
    from sklearn.metrics import accuracy_score, f1_score

    from deltav2a.drums import RoleAssigner, RoleAssignerConfig
    from deltav2a.drums.evaluation import read_labels
    from deltav2a.drums.features import rule_terms
    from deltav2a.drums.fusion import apply_guards, fuse
    from deltav2a.drums.rules import rule_scores
    from deltav2a.drums.types import ROLE_ORDER

    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--labels", type=Path, default=None)
    ap.add_argument("--preset", default="tuned", help="base preset; the grid overrides its values")
    ap.add_argument("--groups", choices=("pack", "loo"), default="pack")
    ap.add_argument("--fix", action="append", default=[], metavar="KEY",
                    help="keep this grid key at the preset's value (repeatable)")
    ap.add_argument("--share", type=float, default=None,
                    help="the preset's weights are (1 - S) note + S signature: re-choose S from SHARES too")
    args = ap.parse_args()
    labels = read_labels(args.labels or args.folder / "labels.csv")
    roles = [r.value for r in ROLE_ORDER]

    base = RoleAssignerConfig.preset(args.preset)
    files = sorted(p for p in args.folder.iterdir() if p.name in labels)
    batch = RoleAssigner(base).assign_many(files)
    res = batch.results
    names = [Path(s.filepath).name for s in res]
    y = [labels[n] for n in names]
    terms = [rule_terms(s.features, base) for s in res]
    groups = [n.split("_")[0] if args.groups == "pack" else n for n in names]
    print(f"{len(res)} scored, {len(batch.skipped)} skipped; preset {args.preset}; groups: {args.groups} "
          f"({len(set(groups))})")

    def get(cfg, key):
        a, b = key.split(".")
        return getattr(getattr(cfg, a), b)

    grid = dict(GRID)
    if args.share is not None:
        grid["share"] = sorted(SHARES, key=lambda v: v != args.share)
    keys = [k for k in grid if k not in args.fix]
    points = [dict(zip(keys, v)) for v in itertools.product(*(grid[k] for k in keys))]
    # the preset's own values first, so ties keep what ships
    here = {k: (args.share if k == "share" else get(base, k)) for k in keys}
    points.sort(key=lambda p: p != here)
    note_w = RoleAssignerConfig.preset("note").rule_scoring.weights

    preds: dict[int, dict[str, list[str]]] = {}
    for i, pt in enumerate(points):
        cfg = base.model_copy(deep=True)
        for k, v in pt.items():
            if k == "share":
                cfg.rule_scoring.weights = mixed_weights(note_w, base.rule_scoring.weights, args.share, v)
                continue
            a, b = k.split(".")
            setattr(getattr(cfg, a), b, v)
        out = {"rules": [], "text": [], "fused": [], "fused+guards": []}
        for s, t in zip(res, terms):
            _, p_rule = rule_scores(t, cfg)
            fused = fuse(p_rule, s.scores.text, cfg)
            final, _ = apply_guards(fused, t, cfg)
            out["rules"].append(p_rule.argmax().value)
            out["text"].append(s.scores.text.argmax().value)
            out["fused"].append(fused.argmax().value)
            out["fused+guards"].append(final.argmax().value)
        preds[i] = out

    def f1(yt, yp):
        return f1_score(yt, yp, labels=roles, average="macro", zero_division=0)

    def best(idx):
        yt = [y[j] for j in idx]
        scores = [f1(yt, [preds[i]["fused+guards"][j] for j in idx]) for i in range(len(points))]
        top = max(scores)
        return next(i for i, s in enumerate(scores) if s >= top - 1e-12)

    allidx = list(range(len(res)))
    ins = best(allidx)
    held = {k: [None] * len(res) for k in preds[0]}
    chosen = []
    for g in sorted(set(groups)):
        test = [j for j in allidx if groups[j] == g]
        train = [j for j in allidx if groups[j] != g]
        b = best(train)
        chosen.append((g, points[b]))
        for k in held:
            for j in test:
                held[k][j] = preds[b][k][j]

    def row(pred):
        return f"accuracy {accuracy_score(y, pred):.3f}  macro F1 {f1(y, pred):.3f}"

    print(f"preset as shipped {here}:")
    for k, v in preds[0].items():
        print(f"  {k:<13} {row(v)}")
    print(f"in-sample best {points[ins]}:")
    for k, v in preds[ins].items():
        print(f"  {k:<13} {row(v)}")
    print(f"held-out ({args.groups}, chosen on the other groups):")
    for k, v in held.items():
        print(f"  {k:<13} {row(v)}")
    if args.groups == "pack":
        for g, p in chosen:
            print(f"  without {g:<6} chose {p}")


if __name__ == "__main__":
    main()
