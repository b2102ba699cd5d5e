"""`deltav2a compare`: results of several setups side by side (Markdown, CSV, PNG).

Inputs are run folders (every setup under `results/` becomes a column), result folders
(`results/SETUP/`) or `metrics.json` files. Each column first states its setup (vocabulary,
encoders, effects, controllers, data, seed), then the key metrics. Entropy is shown in bits
and normalised (H / log2 K), because vocabularies of different sizes have different maxima.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..errors import DeltaV2AError


def collect(inputs: list[Path]) -> list[tuple[str, dict]]:
    """(column label, metrics) for every setup found in `inputs`, in the order given."""
    from ..fileio import read_json

    found: list[tuple[Path, dict]] = []
    for p in inputs:
        if p.is_file():
            files = [p]
        elif (p / "results").is_dir():
            files = sorted((p / "results").glob("*/metrics.json"))  # NNN-SETUP: in run order
            if not files:
                raise DeltaV2AError(f"run folder {p} has no results yet (run `deltav2a run` into it)")
        elif (p / "metrics.json").is_file():
            files = [p / "metrics.json"]
        elif p.exists():
            raise DeltaV2AError(f"{p} is neither a run folder, a result folder nor a metrics.json")
        else:
            raise DeltaV2AError(f"not found: {p}")
        for f in files:
            m = read_json(f, "metrics file")
            if "setup" not in m or "results" not in m:
                raise DeltaV2AError(f"{f} records no setup (made before `compare` existed): rerun "
                                    "`deltav2a run` on its config to record one")
            found.append((f, m))
    seen: set[Path] = set()
    out = []
    for f, m in found:
        if f.resolve() in seen:  # the same result named twice
            continue
        seen.add(f.resolve())
        label = m.get("result") or f.parent.name
        if len(inputs) > 1 and f.parent.parent.name == "results":  # several runs: say which
            label = f"{f.parent.parent.parent.name}/{label}"
        out.append((label, m))
    if not out:
        raise DeltaV2AError("nothing to compare")
    return out


def _get(d: Any, *path: str) -> Any:
    for k in path:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def rows_for(metrics: list[dict]) -> list[tuple[str, list[Any]]]:
    """(row name, one value per column): setup rows first, then metrics."""
    from .report import normalised_entropy

    def setup_row(name: str, fn: Callable[[dict], Any]) -> tuple[str, list[Any]]:
        return name, [fn(m["setup"]) for m in metrics]

    rows = [
        setup_row("vocabulary", lambda s: f"{s['vocabulary']} ({s['vocabulary_size']} terms)"),
        setup_row("encoders", lambda s: f"{s['encoders']['image']} + {s['encoders']['audio']}"),
        setup_row("audio effects", lambda s: " ".join(s["effects"]["audio"])),
        setup_row("image effects", lambda s: " ".join(s["effects"]["image"])),
        setup_row("controllers", lambda s: " ".join(s["controllers"])),
        setup_row("data", lambda s: f"audio {s['data']['audio']}, images {s['data']['images']}"),
        setup_row("augmentations/clip", lambda s: s.get("augmentations_per_clip")),
        setup_row("seed", lambda s: s["seed"]),
    ]
    R = [m["results"] for m in metrics]
    K = [m["setup"]["vocabulary_size"] for m in metrics]

    def metric(name: str, *path: str) -> tuple[str, list[Any]]:
        return name, [_get(r, *path) for r in R]

    rows += [
        metric("train records", "db_train", "records"),
        ("stages computed", [len(m.get("computed_this_call") or []) for m in metrics]),
        ("audio renders", [m.get("renders_this_call") for m in metrics]),
        metric("entropy (bits)", "diagnostics_audio", "label_statistics", "entropy_bits_mean"),
        ("entropy / log2 K", [normalised_entropy(_get(r, "diagnostics_audio", "label_statistics",
                                                       "entropy_bits_mean"), k) for r, k in zip(R, K)]),
        metric("top-1 mass", "diagnostics_audio", "label_statistics", "top1_mass_mean"),
        metric("style F1 (mean)", "diagnostics_audio", "style_f1_mean"),
        metric("consistency separation", "diagnostics_audio", "consistency", "separation"),
    ]
    controllers = list(dict.fromkeys(c for m in metrics for c in m["setup"]["controllers"]))
    for c in controllers:
        rows += [
            metric(f"{c}: active RMSE (gated)", f"evaluation_{c}", "tuned", "active_param_rmse_gated"),
            metric(f"{c}: mean baseline", f"evaluation_{c}", "mean_baseline_active_param_rmse"),
            metric(f"{c}: macro F1", f"evaluation_{c}", "tuned", "macro_f1"),
            metric(f"{c}: calibrated T*", f"calibration_{c}", "temperature"),
        ]
    probes = [{p["name"]: p["active_param_rmse"] for p in (r.get("probes") or [])} for r in R]
    rows.append(("probe style+audio RMSE", [p.get("Style + Audio (gated)") for p in probes]))
    rows += [
        metric("agreement: transfer", "agreement", "transfer", "mean_cosine"),
        metric("agreement: random chain", "agreement", "random_chain", "mean_cosine"),
        metric("image probe F1", "diagnostics_image", "probe", "mean_f1"),
    ]
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def write_comparison(inputs: list[Path], out_dir: Path, stem: str = "compare") -> dict[str, Path]:
    """compare.md, compare.csv and compare.png in `out_dir`; returns their paths."""
    import csv
    import io

    from ..atomic import write_text
    from ..media.plots import _plt, save_figure

    cols = collect(inputs)
    metrics = [m for _, m in cols]
    rows = rows_for(metrics)
    labels = [sid for sid, _ in cols]
    short = [f"#{i + 1}" for i in range(len(cols))]
    md = [f"# Comparison of {len(cols)} setup(s)", "",
          "| | " + " | ".join(short) + " |", "|---|" + "---|" * len(cols)]
    md += ["| " + name + " | " + " | ".join(_fmt(v).replace("|", "/") for v in vals) + " |" for name, vals in rows]
    md += ["", "Columns: " + "; ".join(f"{s} = `{lab}`" for s, lab in zip(short, labels)), ""]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["metric", *labels])
    for name, vals in rows:
        w.writerow([name, *["" if v is None else v for v in vals]])
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / f"{stem}.md", "csv": out_dir / f"{stem}.csv", "png": out_dir / f"{stem}.png"}
    write_text(paths["md"], "\n".join(md))
    write_text(paths["csv"], buf.getvalue())

    numeric = [(n, v) for n, v in rows[8:] if any(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                  for x in v) and n not in ("train records", "stages computed", "audio renders")]
    plt = _plt()
    n = max(1, len(numeric))
    ncols = 3
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.6 * nrows + 0.8), squeeze=False)
    for ax, (name, vals) in zip(axes.flat, numeric):
        ys = [float(v) if isinstance(v, (int, float)) else 0.0 for v in vals]
        ax.bar(short, ys, color=[f"C{i}" for i in range(len(ys))])
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(numeric):]:
        ax.axis("off")
    fig.suptitle("; ".join(f"{s}: {m['setup']['vocabulary']}, {m['setup']['encoders']['audio']}, "
                           f"{'+'.join(m['setup']['controllers'])}" for s, m in zip(short, metrics)), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.96))  # room for the setup line on top
    save_figure(fig, paths["png"])
    return paths
