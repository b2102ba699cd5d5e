"""The fourth pass's variants of the `acoustic` drum preset, whole set and held out.

Each variant is the `acoustic` preset with its acoustic signature changed for one or more
roles and/or guard 5's `struck_only` switched on (docs/drums.md "Fourth pass"). Every file
is scored once through the task's code (features, rule terms, p_text of the configured text
side); then for each variant the rules -> fusion -> guards are recomputed on a grid of the
rule temperature and the signature's share (cv_drums.GRID / SHARES; alpha stays the note's
0.9), and reported as cv_drums.py reports a preset: the shipped point (share 0.5, T 0.1) on
the whole set, and held out, i.e. the grid point chosen (fused + guards macro F1, ties to the
shipped point) without the scored group, by sample pack (`--groups pack`) or file (`loo`).

    .venv/bin/python benchmarks/drums_variants.py ../shared/data/drums [--groups pack|loo]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from cv_drums import GRID, SHARES

SHARE = 0.5   # acoustic's: weights = (1 - SHARE) * note + SHARE * signature


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
    ap.add_argument("--groups", choices=("pack", "loo"), default="pack")
    args = ap.parse_args()
    labels = read_labels(args.labels or args.folder / "labels.csv")
    roles = [r.value for r in ROLE_ORDER]

    note = RoleAssignerConfig.preset("note").rule_scoring.weights
    base = RoleAssignerConfig.preset("acoustic")
    # the signature behind acoustic's weights
    sig0 = {r: {t: (base.rule_scoring.weights[r].get(t, 0.0) - (1 - SHARE) * note[r].get(t, 0.0)) / SHARE
                for t in set(note[r]) | set(base.rule_scoring.weights[r])} for r in note}
    sig0 = {r: {t: v for t, v in w.items() if abs(v) > 1e-9} for r, w in sig0.items()}

    def with_(**roles_sig):
        s = copy.deepcopy(sig0)
        s.update(roles_sig)
        return s

    def strike_all(w):
        s = copy.deepcopy(sig0)
        for r in ("CORE", "ACCENT", "MOTION", "FILL"):
            s[r] = {t: v * (1 - w) for t, v in s[r].items()}
            s[r]["A_fast"] = s[r].get("A_fast", 0.0) + w
        return s

    strokes = {"FILL": {"T_tom_or_G": 0.7, "R": 0.3}}
    variants = [  # (name, signature, guard 5 struck_only)
        ("acoustic", sig0, False),
        ("+ guard 5 struck_only", sig0, True),
        ("+ strokes (FILL T_tom_or_G 0.7, R 0.3)", with_(**strokes), False),
        ("acoustic2 (both)", with_(**strokes), True),
        ("ACCENT 1-T, M, A_fast thirds", with_(ACCENT={"one_minus_T": 1 / 3, "M": 1 / 3, "A_fast": 1 / 3}), False),
        ("ACCENT 1-T 0.4, M 0.3, A_fast 0.3", with_(ACCENT={"one_minus_T": 0.4, "M": 0.3, "A_fast": 0.3}), False),
        ("ACCENT and MOTION with A_fast thirds",
         with_(ACCENT={"one_minus_T": 1 / 3, "M": 1 / 3, "A_fast": 1 / 3},
               MOTION={"one_minus_T": 1 / 3, "H": 1 / 3, "A_fast": 1 / 3}), False),
        ("A_fast 0.25 in every struck role", strike_all(0.25), False),
        ("A_fast 0.5 in every struck role", strike_all(0.5), False),
        ("TEXTURE A_slow 0.7, R 0.3", with_(TEXTURE={"A_slow": 0.7, "R": 0.3}), False),
    ]

    files = sorted(p for p in args.folder.iterdir() if p.name in labels)
    batch = RoleAssigner(base).assign_many(files)
    res = batch.results
    names = [Path(s.filepath).name for s in res]
    y = [labels[n] for n in names]
    groups = [n.split("_")[0] if args.groups == "pack" else n for n in names]
    temps = GRID["rule_scoring.temperature"]
    points = [(SHARE, base.rule_scoring.temperature)] + [
        (s, t) for s in SHARES for t in temps if (s, t) != (SHARE, base.rule_scoring.temperature)]
    print(f"{len(res)} scored, {len(batch.skipped)} skipped; held out by {args.groups} ({len(set(groups))} groups); "
          "fused + guards, accuracy / macro F1")

    def f1(yt, yp):
        return f1_score(yt, yp, labels=roles, average="macro", zero_division=0)

    for name, sig, struck in variants:
        preds = []
        for share, temp in points:
            cfg = base.model_copy(deep=True)
            cfg.rule_scoring.weights = {r: {t: (1 - share) * note[r].get(t, 0.0) + share * sig[r].get(t, 0.0)
                                            for t in set(note[r]) | set(sig[r])} for r in note}
            cfg.rule_scoring.temperature = temp
            cfg.guards.low_confidence_texture_extra.struck_only = struck
            out = []
            for s in res:
                t = rule_terms(s.features, cfg)
                _, p_rule = rule_scores(t, cfg)
                final, _ = apply_guards(fuse(p_rule, s.scores.text, cfg), t, cfg)
                out.append(final.argmax().value)
            preds.append(out)
        held = [None] * len(y)
        for g in sorted(set(groups)):
            train = [j for j in range(len(y)) if groups[j] != g]
            sc = [f1([y[j] for j in train], [p[j] for j in train]) for p in preds]
            b = next(i for i, v in enumerate(sc) if v >= max(sc) - 1e-12)
            for j in range(len(y)):
                if groups[j] == g:
                    held[j] = preds[b][j]
        print(f"  {name:<42} whole {accuracy_score(y, preds[0]):.3f} / {f1(y, preds[0]):.3f}   "
              f"held out {accuracy_score(y, held):.3f} / {f1(y, held):.3f}")


if __name__ == "__main__":
    main()
