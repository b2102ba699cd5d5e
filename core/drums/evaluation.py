"""Evaluation against labels and the task's output files (JSON, CSV, pools, metrics, PNG).

Four variants are read off the same results, so they are compared on identical features:
`rules` (argmax p_rule), `text` (argmax p_text), `fused` (argmax of the fusion, before the
guards) and `fused+guards` (the assigned role). Metrics are scikit-learn's accuracy and
macro F1 over the five roles; files that could not be scored are listed, not guessed.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import DeltaV2AError
from .types import ROLE_ORDER, SampleResult

if TYPE_CHECKING:  # pragma: no cover
    from .assigner import BatchResult
    from .config import RoleAssignerConfig

VARIANTS = {"rules": "rule", "text": "text", "fused": "fused", "fused+guards": "final"}
ROLES = [r.value for r in ROLE_ORDER]
CSV_FEATURES = ("energy", "sharpness", "attack_time", "decay_time", "low_ratio", "mid_ratio",
                "high_ratio", "spectral_flatness", "zero_crossing_rate", "duration",
                "body_pitch_hz", "tonality", "ring_time", "spectral_centroid_hz", "strikes")


def read_labels(path: Path) -> dict[str, str]:
    """file name -> role from a CSV with columns `file` and `role` (other columns ignored)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeltaV2AError(f"cannot read labels {path}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "file" not in reader.fieldnames or "role" not in reader.fieldnames:
        raise DeltaV2AError(f"labels {path} needs the columns 'file' and 'role'")
    out: dict[str, str] = {}
    for i, row in enumerate(reader, start=2):
        role = (row.get("role") or "").strip().upper()
        if role not in ROLES:
            raise DeltaV2AError(f"labels {path} line {i}: role {row.get('role')!r} is not one of {', '.join(ROLES)}")
        out[Path((row.get("file") or "").strip()).name] = role
    if not out:
        raise DeltaV2AError(f"labels {path} has no rows")
    return out


def results_csv(results: Sequence[SampleResult]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["sample_id", "file", "role", "confidence"]
    for stage in ("rule", "text", "fused", "final"):
        head += [f"{stage}_{r}" for r in ROLES]
    head += list(CSV_FEATURES) + ["guards_fired"]
    w.writerow(head)
    for s in results:
        row = [s.sample_id, s.filepath, s.role.value, f"{s.scores.confidence:.6f}"]
        for stage in ("rule", "text", "fused", "final"):
            row += [f"{getattr(s.scores, stage)[r]:.6f}" for r in ROLES]
        f = s.features.as_dict()
        row += [f"{f[k]:.6f}" for k in CSV_FEATURES] + [";".join(s.guards_fired)]
        w.writerow(row)
    return buf.getvalue()


def write_assignments(batch: "BatchResult", out: Path, cfg: "RoleAssignerConfig") -> dict[str, Path]:
    """results.json, results.csv and pools.json (each written whole or not at all)."""
    from ..atomic import write_json, write_text
    from .pools import build_pools, excess

    pools = build_pools(batch.results, cfg)
    counts = {r: sum(1 for s in batch.results if s.role.value == r) for r in ROLES}
    paths = {"json": out / "results.json", "csv": out / "results.csv", "pools": out / "pools.json"}
    write_json(paths["json"], {
        "n_scored": len(batch.results), "n_skipped": len(batch.skipped), "role_counts": counts,
        "text_encoder": cfg.text.encoder.name if cfg.text.enabled else None,
        "results": [s.as_dict() for s in batch.results], "skipped": batch.skipped,
        "config": cfg.model_dump(mode="json")})
    write_text(paths["csv"], results_csv(batch.results))
    write_json(paths["pools"], {**pools.as_dict(), "excess_after_rebalancing": excess(pools, cfg),
                                "max_sizes": cfg.pool.max_sizes, "required_roles": cfg.pool.required_roles})
    return paths


def evaluate(results: Sequence[SampleResult], labels: dict[str, str]) -> dict:
    """Accuracy, macro F1 and confusion matrix (rows = truth, columns = prediction) per variant."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    scored = [s for s in results if Path(s.filepath).name in labels]
    if not scored:
        raise DeltaV2AError("no scored file has a label (labels are matched by file name)")
    y = [labels[Path(s.filepath).name] for s in scored]
    out: dict = {"n": len(scored), "roles": ROLES, "variants": {}}
    for name, stage in VARIANTS.items():
        pred = [getattr(s.scores, stage).argmax().value for s in scored]
        out["variants"][name] = {
            "accuracy": float(accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, labels=ROLES, average="macro", zero_division=0)),
            "per_role_f1": dict(zip(ROLES, map(float, f1_score(y, pred, labels=ROLES, average=None, zero_division=0)))),
            "confusion": confusion_matrix(y, pred, labels=ROLES).tolist(),
            "errors": [{"file": Path(s.filepath).name, "truth": t, "predicted": p}
                       for s, t, p in zip(scored, y, pred) if t != p],
        }
    return out


def metrics_markdown(m: dict, skipped: Sequence[dict]) -> str:
    lines = [f"# Drum role evaluation ({m['n']} labelled hits scored, {len(skipped)} skipped)", "",
             "| variant | accuracy | macro F1 |", "|---|---|---|"]
    for name, v in m["variants"].items():
        lines.append(f"| {name} | {v['accuracy']:.3f} | {v['macro_f1']:.3f} |")
    for name, v in m["variants"].items():
        lines += ["", f"## {name}: confusion (rows = truth, columns = prediction)", "",
                  "| truth \\ pred | " + " | ".join(ROLES) + " |", "|---" * (len(ROLES) + 1) + "|"]
        for r, row in zip(ROLES, v["confusion"]):
            lines.append(f"| {r} | " + " | ".join(str(x) for x in row) + " |")
    if skipped:
        lines += ["", "## skipped", ""] + [f"- {s['file']}: {s['reason']}" for s in skipped]
    return "\n".join(lines) + "\n"


def plot_confusions(m: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..atomic import atomic_path

    fig, axes = plt.subplots(1, len(m["variants"]), figsize=(4.2 * len(m["variants"]), 4.9))
    for ax, (name, v) in zip(np.atleast_1d(axes), m["variants"].items()):
        cm = np.asarray(v["confusion"])
        ax.imshow(cm, cmap="Blues")
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=8)
        ax.set_xticks(range(len(ROLES)), ROLES, rotation=45, fontsize=7)
        ax.set_yticks(range(len(ROLES)), ROLES, fontsize=7)
        ax.set_title(f"{name}\nacc {v['accuracy']:.2f}  macro F1 {v['macro_f1']:.2f}", fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("truth", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
