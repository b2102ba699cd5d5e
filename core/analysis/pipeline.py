"""`all`: extract -> sensitivity -> linearity -> discover -> decoder, with one summary.

Each step reads what the previous one wrote in the same folder, so a step can also be
rerun on its own (the CLI has one command per step). The checks each step makes are
turned into console lines and, for every failed check, a warning; the run does not stop
at a failed check, because the later steps are how one finds out whether it mattered.
`summary.json` collects the headline numbers and the warnings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from .extract import Item
    from .settings import AnalysisConfig

Echo = Callable[[str], None]


@dataclass
class Report:
    """Console lines and warnings of the steps run so far."""

    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)

    def line(self, text: str) -> None:
        self.lines.append(text)

    def warn(self, text: str) -> None:
        self.warnings.append(text)


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def sensitivity_step(folder: Path, cfg: "AnalysisConfig", report: Report) -> list[dict]:
    from ..atomic import write_json
    from .sensitivity import extract_sensitivity, plot_sensitivity

    th = cfg.thresholds.min_distance
    rows = extract_sensitivity(folder, th)
    write_json(Path(folder) / "sensitivity_results.json", {
        "threshold": th, "intensities": sorted({r["intensity"] for r in rows}), "source": "extract",
        "results": rows})
    plot_sensitivity(rows, th, Path(folder) / "sensitivity.png")
    ok = sum(r["sensitive"] for r in rows)
    report.line(f"sensitivity: {ok}/{len(rows)} effect x intensity cells above min_distance {th:g}")
    for r in rows:
        if not r["sensitive"]:
            report.warn(f"sensitivity: {r['modality']} {r['effect']} {r['intensity_label']}: mean ||delta|| "
                        f"{r['mean']:.4f} <= {th:g} ({r['encoder']} barely sees it)")
    report.numbers["sensitivity"] = {"cells": len(rows), "sensitive": ok}
    return rows


def linearity_step(folder: Path, cfg: "AnalysisConfig", report: Report) -> dict:
    from .extract import load_extract
    from .linearity import run_linearity

    th = cfg.thresholds
    res = run_linearity(load_extract(folder), th, folder)
    within = [r for r in res["within"] if r["consistent"] is not None]
    cross = [r for r in res["cross"] if r["invariant"] is not None]
    report.line(f"linearity: {sum(r['consistent'] for r in within)}/{len(within)} effect x intensity cells "
                f"consistent within categories (cosine > {th.min_cosine:g}, CV < {th.max_cv:g}); "
                f"{sum(r['invariant'] for r in cross)}/{len(cross)} invariant across categories "
                f"(variance < {th.max_variance:g})")
    for r in res["within"]:
        where = f"{r['modality']} {r['effect']} {r['intensity_label']}"
        if r["consistent"] is None:
            report.warn(f"linearity: {where}: untested (no category has {th.min_items} usable deltas)")
        elif not r["consistent"]:
            report.warn(f"linearity: {where}: within-category cosine {_f(r['mean_cosine'])} "
                        f"(min {th.min_cosine:g}), CV {_f(r['mean_cv'])} (max {th.max_cv:g})")
    for r in res["cross"]:
        if r["invariant"] is False:
            report.warn(f"cross-category: {r['modality']} {r['effect']} {r['intensity_label']}: variance "
                        f"{r['variance']:.4f} >= {th.max_variance:g} (mean cosine {_f(r['mean_cosine'])})")
    untested = sorted({f"{r['modality']} {r['effect']}" for r in res["cross"] if r["invariant"] is None})
    if untested:
        report.warn(f"cross-category: untested for {', '.join(untested)} (needs 3 categories with "
                    f"{th.min_items} usable deltas each)")
    report.numbers["linearity"] = {
        "within_consistent": sum(r["consistent"] for r in within), "within_tested": len(within),
        "cross_invariant": sum(r["invariant"] for r in cross), "cross_tested": len(cross)}
    return res


def discover_step(folder: Path, cfg: "AnalysisConfig", report: Report) -> dict:
    from .discover import run_discover
    from .extract import load_extract

    res = run_discover(load_extract(folder), cfg, folder)
    rows, cols, M = res["image_effects"], res["audio_effects"], res["matrix"]
    report.line("discover: best audio effect per image effect: "
                + ", ".join(f"{r} -> {res['best_audio_for_image'][r]} ({M[i].max():.3f})" for i, r in enumerate(rows)))
    for c in res["note_pairs"]:
        txt = (f"{c['image_effect']} vs {c['audio_effect']}: {c['score']:.3f} (matrix mean {c['matrix_mean']:.3f}, "
               f"z {c['z']:.2f}, rank {c['row_rank']}/{c['row_size']} in its row)")
        report.line(f"discover: {txt}")
        if not c["above_chance"]:
            report.warn(f"discover: {txt} is not above chance")
    for modality in ("image", "audio"):
        t = res["text"][modality]
        if t["unknown_words"]:
            report.line(f"discover: words the {t['encoder']} text side does not know (ignored): "
                        + ", ".join(t["unknown_words"]))
        if t["n_failed"]:
            report.warn(f"discover: {t['n_failed']} prompts could not be encoded by {t['encoder']}")
    for modality, sims, names in (("image", res["sim1"], rows), ("audio", res["sim2"], cols)):
        for name, v in zip(names, sims):
            if v <= 0:
                report.warn(f"discover: the {modality} prototype of {name} points away from its text anchor "
                            f"(cosine {v:.3f}); its row/column of the matrix is unreliable")
    report.numbers["discover"] = {"note_pairs": res["note_pairs"], "best_audio_for_image": res["best_audio_for_image"]}
    return res


def decoder_step(folder: Path, cfg: "AnalysisConfig", report: Report, echo: Echo | None = None) -> dict:
    from .decoder import run_decoder

    s = run_decoder(folder, cfg, log=echo)
    d = s["spectral"]["distances"]
    report.line(f"decoder: best epoch {s['best_epoch']}, validation MSE {s['val_mse']:.4f} "
                f"(mean-parameter baseline {s['mean_baseline_val_mse']:.4f}); log-mel distance to the target "
                f"render {d['predicted']['mean']:.2f} dB vs baseline {d['mean_baseline']['mean']:.2f} dB "
                f"(unprocessed {d['unprocessed']['mean']:.2f} dB, n={s['spectral']['n']})")
    if s["val_mse"] >= s["mean_baseline_val_mse"]:
        report.warn("decoder: validation MSE is not below the mean-parameter baseline")
    if not s["spectral"]["beats_baseline"]:
        report.warn("decoder: re-rendered spectrograms are not closer to the target than the baseline's")
    report.numbers["decoder"] = s
    return s


def run_all(out: Path, cfg: "AnalysisConfig", images: Sequence["Item"], audio: Sequence["Item"],
            sources: dict, overwrite: bool = False, echo: Echo = print,
            progress: Callable[[int], None] | None = None,
            after_extract: Callable[[], None] | None = None) -> Report:
    """All five steps into `out`; `after_extract` runs once the extract is done (closes a progress bar)."""
    from ..atomic import write_json
    from .extract import run_extract

    out = Path(out)
    report = Report()
    t0 = time.perf_counter()
    timings = {}
    run_extract(out, cfg, images, audio, sources=sources, overwrite=overwrite, progress=progress, log=echo)
    timings["extract"] = time.perf_counter() - t0
    if after_extract is not None:
        after_extract()
    report.line(f"extract: {len(images)} images x {len(cfg.effects.image)} effects, {len(audio)} clips x "
                f"{len(cfg.effects.audio)} effects, intensities "
                + ", ".join(f"{k}={v:g}" for k, v in cfg.intensities.items()))
    for name, step in (("sensitivity", sensitivity_step), ("linearity", linearity_step),
                       ("discover", discover_step)):
        t = time.perf_counter()
        step(out, cfg, report)
        timings[name] = time.perf_counter() - t
    t = time.perf_counter()
    decoder_step(out, cfg, report, echo)
    timings["decoder"] = time.perf_counter() - t
    report.numbers["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    write_json(out / "summary.json", _plain({"lines": report.lines, "warnings": report.warnings,
                                             "numbers": report.numbers}))
    return report


def _plain(obj):
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
