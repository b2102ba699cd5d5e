"""Diagnostic: the common offset of one-shots in perceptual-audio space, and what removing it does.

The perceptual-audio descriptors are centred on music clips (docs/perceptual_encoders.md).
Every drum one-shot sits on the same side of that centre (deep decay, sparse level, ...), so
its embedding carries a shared offset; the role prompts' cosines are then partly decided by
how each role direction lines up with that offset rather than with the hit itself. This
script measures the offset (no labels needed) and, as a diagnostic only (nothing here is
shipped), scores the text side and the fusion with each pack's embeddings centred on the
mean of the OTHER packs (leave-one-pack-out; packs = file-name prefix before "_"), beside
the raw embeddings. The centring uses no labels; the held-out packs never enter their own
reference.

    .venv/bin/python benchmarks/drums_text_offset.py ../shared/data/drums [--preset note]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    import numpy as np
    from sklearn.metrics import f1_score

    from deltav2a.drums import RoleAssignerConfig
    from deltav2a.drums.evaluation import read_labels
    from deltav2a.drums.features import extract, rule_terms
    from deltav2a.drums.fusion import apply_guards, fuse
    from deltav2a.drums.preprocess import load_hit
    from deltav2a.drums.rules import rule_scores, softmax
    from deltav2a.drums.text import TextScorer
    from deltav2a.drums.types import ROLE_ORDER, ScoreVector
    from deltav2a.errors import DeltaV2AError

    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--labels", type=Path, default=None)
    ap.add_argument("--preset", action="append", default=None, help="presets to score (default: note, tuned)")
    args = ap.parse_args()
    labels = read_labels(args.labels or args.folder / "labels.csv")
    roles = [r.value for r in ROLE_ORDER]
    presets = args.preset or ["note", "tuned"]

    base = RoleAssignerConfig.preset(presets[0])
    ts = TextScorer(base)
    names, A, terms = [], [], []
    for p in sorted(p for p in args.folder.iterdir() if p.name in labels):
        try:
            hit = load_hit(p, base)
        except DeltaV2AError:
            continue
        names.append(p.name)
        A.append(np.asarray(ts.encoder.encode_audio([hit.native], hit.native_sr), dtype=np.float64)[0])
        terms.append(extract(hit.y, hit.sr, base))
    A = np.array(A)
    y = [labels[n] for n in names]
    groups = [n.split("_")[0] for n in names]
    R = ts.role_embeddings.astype(np.float64)
    m = A.mean(axis=0)
    print(f"{len(names)} hits; |mean embedding| {np.linalg.norm(m):.2f} vs mean |embedding| "
          f"{np.linalg.norm(A, axis=1).mean():.2f}")
    print("cos(mean embedding, role prompt): " + ", ".join(
        f"{r} {c:+.2f}" for r, c in zip(roles, R @ (m / np.linalg.norm(m)))))

    def f1(pred):
        return f1_score(y, pred, labels=roles, average="macro", zero_division=0)

    for name in presets:
        cfg = RoleAssignerConfig.preset(name)
        for mode in ("raw", "centred on other packs"):
            out = {"text": [None] * len(y), "fused": [None] * len(y), "fused+guards": [None] * len(y)}
            for g in sorted(set(groups)):
                test = [j for j in range(len(y)) if groups[j] == g]
                ref = A[[j for j in range(len(y)) if groups[j] != g]].mean(axis=0) if mode != "raw" else 0.0
                for j in test:
                    a = A[j] - ref
                    a = a / max(float(np.linalg.norm(a)), 1e-12)
                    p_text = ScoreVector.of(softmax(list(R @ a), cfg.text.tau))
                    t = rule_terms(terms[j], cfg)
                    _, p_rule = rule_scores(t, cfg)
                    fused = fuse(p_rule, p_text, cfg)
                    final, _ = apply_guards(fused, t, cfg)
                    out["text"][j], out["fused"][j], out["fused+guards"][j] = (
                        p_text.argmax().value, fused.argmax().value, final.argmax().value)
            print(f"{name:<6} {mode:<24} " + "  ".join(f"{k} {f1(v):.3f}" for k, v in out.items()))


if __name__ == "__main__":
    main()
