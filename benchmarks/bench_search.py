"""Inference-time search: extra time per transfer and the score it reaches per budget, one core.

Target: the search adds <= 3 s to a transfer of a 10 s clip with the perceptual encoders, on
one CPU core (the trained controller's own render of the full clip is not extra: every
transfer renders once).

Targets are real image edits: held-out photos of ../shared/data edited by four image effects
at intensities 0.3 and 0.9, read by the default model's image encoder into calibrated
labels. The image-side StrengthMap does not exist yet on this branch, so the target strength
is the known edit intensity (an oracle for strength; the direction is the real image label).
All searches are scored with one audio StrengthMap fitted here the way the database will
(single effects at known intensities 0.1..1.0 on the benchmark clips' excerpts), so scores of
different budgets, of the trained controller's plan and of refinement are comparable.

For each target: the default model's (mlp) plan scored as is; zero-shot search at several
evaluation budgets; refinement of the mlp plan at the default budget. Time is measured for
the search alone, wall and CPU time of the one pinned core (on this shared machine wall time
includes waiting for the core; CPU time is the cost itself). Warm process: the one-time
import of `cma` is reported separately.

    .venv/bin/python benchmarks/bench_search.py [--data ../shared/data] [--quick]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench_perceptual import _pin_one_core  # noqa: E402  (benchmarks/ is the script's folder)

HERE = Path(__file__).resolve().parent
IMAGE_EFFECTS = ["adaptive_blur", "add_noise", "adaptive_sharpen", "sepia_tone"]
INTENSITIES = [0.3, 0.9]
CLIPS = ["hyperrogue__hr3_caves__1.ogg", "librosa__kevin_macleod_p_i_tchaikovsky_dance_of_the_sugar__3.ogg",
         "singularity__nebula__1.ogg"]
IMAGES = ["budgie__blue_periwinkle.jpg", "ubuntu__sand.jpg"]
BUDGETS = [24, 40, 60, 120]
TARGET_SECONDS = 3.0


def _pick(folder: Path, wanted: list[str], n: int, pattern: str) -> list[Path]:
    """The named files when present, else the first n by name (deterministic)."""
    got = [folder / w for w in wanted if (folder / w).is_file()]
    if len(got) < n:
        got += [p for p in sorted(folder.glob(pattern)) if p not in got][: n - len(got)]
    return got[:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("DELTAV2A_SHARED_DATA", str(HERE.parent.parent / "shared" / "data")))
    ap.add_argument("--quick", action="store_true", help="one clip, one photo, two image effects")
    args = ap.parse_args()
    _pin_one_core()
    load_before = os.getloadavg()[0]

    import numpy as np

    t0 = time.perf_counter()
    import cma  # noqa: F401
    cma_import_s = time.perf_counter() - t0

    from deltav2a.atomic import write_json
    from deltav2a.render.chain import AudioChain, ChainSettings
    from deltav2a.style.encoding import term_embeddings
    from deltav2a.media.io import load_audio, load_image
    from deltav2a.model.plan import EffectPlan
    from deltav2a.api.registry import get
    from deltav2a.model.search import AudioScorer, loudest_window, search_plan
    from deltav2a.model.strength import StrengthMap
    from deltav2a.style.label import StyleLabel
    from deltav2a.transfer.pipeline import TransferModel

    data = Path(args.data)
    tm = TransferModel()
    cfg = tm.cfg
    sc = cfg.inference.search
    n_clips, n_images, fx = (1, 1, IMAGE_EFFECTS[:2]) if args.quick else (len(CLIPS), 1, IMAGE_EFFECTS)
    clips = [load_audio(p) for p in _pick(data / "music", CLIPS, n_clips, "*.ogg")]
    images = [load_image(p) for p in _pick(data / "images", IMAGES, n_images, "*.jpg")]
    V_aud = term_embeddings(tm.audio_encoder, tm.vocab, "audio")
    T = cfg.database.temperature
    max_active = int(getattr(cfg.inference, "max_active", None) or cfg.database.max_active)

    # one audio StrengthMap for all searches (single effects at known intensities)
    norms, known = [], []
    for x, sr in clips:
        s, e = loudest_window(x, sr, sc.excerpt_seconds)
        ex = x[:, s:e]
        e0 = tm.audio_encoder.encode_audio([ex], sr)[0].astype(np.float64)
        for name in tm.layout.effects:
            for t in np.linspace(0.1, 1.0, 6):
                y = AudioChain(ChainSettings.from_dict({name: get("audio_effect", name).params_at_intensity(float(t))}),
                               tail="cut").render(ex, sr).audio
                e1 = tm.audio_encoder.encode_audio([y], sr)[0].astype(np.float64)
                norms.append(float(np.linalg.norm(e1 - e0)))
                known.append(float(t))
    smap = StrengthMap.fit(norms, known)

    def scorer() -> AudioScorer:
        return AudioScorer(tm.audio_encoder, V_aud, T, smap, sc.strength_weight)

    def run(x, sr, target, budget, init=None, seed=0):
        c0 = time.process_time()
        t0 = time.perf_counter()
        plan = search_plan(x, sr, target, scorer=scorer(), layout=tm.layout, max_active=max_active,
                           init=init, budget_evals=budget, budget_seconds=None, seed=seed,
                           excerpt_seconds=sc.excerpt_seconds, chain_order=cfg.effects.chain_order)
        run.cpu = time.process_time() - c0
        return plan, time.perf_counter() - t0

    def clip_label_match(x, sr, target, plan):
        """What `diagnose agreement` measures: the label of the whole clip's (A, A'), full render."""
        from deltav2a.model.search import centred_cosine
        from deltav2a.style.label import style_labels

        y = AudioChain(plan.settings, order=cfg.effects.chain_order, tail="cut").render(x, sr).audio
        e0, e1 = tm.audio_encoder.encode_audio([x], sr), tm.audio_encoder.encode_audio([y], sr)
        return centred_cosine(style_labels(e0, e1, V_aud, T)[0][0], target.label)

    def score_plan(x, sr, target, plan):
        s, e = loudest_window(x, sr, sc.excerpt_seconds)
        ex = x[:, s:e]
        sco = scorer()
        sco.set_reference(ex, sr)
        y = AudioChain(plan.settings, order=cfg.effects.chain_order, tail="cut").render(ex, sr).audio \
            if plan.steps else ex
        return sco.score(y, sr, target)

    # warm-up (imports, caches) on the first clip
    x0, sr0 = clips[0]
    warm_target = StyleLabel(np.eye(len(tm.vocab.terms))[0], tuple(tm.vocab.terms), 1.0, 1.0, 0.5)
    run(x0, sr0, warm_target, 10)

    rows = []
    for ci, (x, sr) in enumerate(clips):
        emb = tm.audio_embedding(x, sr)
        for ii, img in enumerate(images):
            for name in fx:
                for inten in INTENSITIES:
                    after = get("image_effect", name)().apply(img, inten, seed=0)
                    read = tm.read_edit([img], [after])[0]
                    # the benchmark's target strength is the known intensity (the search's job)
                    target = StyleLabel(read.label, read.terms, read.delta_norm, read.confidence, inten)
                    mlp = tm.controller_plan(read, emb)
                    row = {"clip": ci, "image": ii, "image_effect": name, "intensity": inten,
                           "image_top": target.top(2), "mlp": {"effects": mlp.effects,
                                                                "score": score_plan(x, sr, target, mlp).__dict__}}
                    for b in BUDGETS:
                        plan, secs = run(x, sr, target, b)
                        row[f"search_{b}"] = {"effects": plan.effects, "seconds": secs, "cpu_seconds": run.cpu,
                                              "score": plan.trajectory[-1], "iterations": len(plan.trajectory),
                                              "excerpt": score_plan(x, sr, target, plan).__dict__,
                                              "settings": plan.settings.to_dict()}
                    plan, secs = run(x, sr, target, sc.budget_evals, init=mlp)
                    row["refine"] = {"effects": plan.effects, "seconds": secs, "cpu_seconds": run.cpu, "score": plan.trajectory[-1],
                                     "excerpt": score_plan(x, sr, target, plan).__dict__}
                    t1 = time.perf_counter()
                    AudioChain(plan.settings, order=cfg.effects.chain_order, tail=cfg.effects.tail).render(x, sr)
                    row["refine"]["clip_label_match"] = clip_label_match(x, sr, target, plan)
                    row["mlp"]["clip_label_match"] = clip_label_match(x, sr, target, mlp)
                    row[f"search_{sc.budget_evals}"]["clip_label_match"] = clip_label_match(
                        x, sr, target, EffectPlan(ChainSettings.from_dict(row[f"search_{sc.budget_evals}"]["settings"]), "search"))
                    row["full_render_seconds"] = time.perf_counter() - t1
                    rows.append(row)
                    print(f"clip {ci} {name} {inten}: mlp {row['mlp']['score']['total']:.3f} "
                          + " ".join(f"b{b} {row[f'search_{b}']['score']:.3f}/{row[f'search_{b}']['seconds']:.2f}s"
                                     f"/{row[f'search_{b}']['cpu_seconds']:.2f}cpu"
                                     for b in BUDGETS)
                          + f" refine {row['refine']['score']:.3f} {plan.effects}", flush=True)

    def agg(key, field):
        vals = np.asarray([r[key][field] for r in rows], dtype=float)
        return {"mean": float(vals.mean()), "median": float(np.median(vals)), "max": float(vals.max())}

    summary = {"mlp_score_mean": float(np.mean([r["mlp"]["score"]["total"] for r in rows])),
               "mlp_label_match_mean": float(np.mean([r["mlp"]["score"]["label_match"] for r in rows])),
               "mlp_effects_mean": float(np.mean([len(r["mlp"]["effects"]) for r in rows])),
               # whole-clip agreement (centred cosine, full render) at the default budget
               "clip_label_match_mean": {k: float(np.mean([r[k]["clip_label_match"] for r in rows]))
                                         for k in ("mlp", f"search_{sc.budget_evals}", "refine")}}
    for b in BUDGETS:
        k = f"search_{b}"
        summary[k] = {"score_mean": float(np.mean([r[k]["score"] for r in rows])),
                      "label_match_mean": float(np.mean([r[k]["excerpt"]["label_match"] for r in rows])),
                      "strength_gap_mean": float(np.mean([abs(r[k]["excerpt"]["audio_strength"] - r["intensity"])
                                                          for r in rows])),
                      "effects_mean": float(np.mean([len(r[k]["effects"]) for r in rows])),
                      "seconds": agg(k, "seconds"), "cpu_seconds": agg(k, "cpu_seconds")}
    summary["refine"] = {"budget": sc.budget_evals,
                         "score_mean": float(np.mean([r["refine"]["score"] for r in rows])),
                         "label_match_mean": float(np.mean([r["refine"]["excerpt"]["label_match"] for r in rows])),
                         "effects_mean": float(np.mean([len(r["refine"]["effects"]) for r in rows])),
                         "seconds": agg("refine", "seconds"), "cpu_seconds": agg("refine", "cpu_seconds")}
    default = ({"wall": summary[f"search_{sc.budget_evals}"]["seconds"],
                "cpu": summary[f"search_{sc.budget_evals}"]["cpu_seconds"]}
               if sc.budget_evals in BUDGETS else None)
    out = {
        "machine": {"python": platform.python_version(), "processor": platform.machine(), "threads": 1,
                    "pinned_cores": 1, "cpus": os.cpu_count(), "load_average_1min_before": load_before,
                    "load_average_1min_after": os.getloadavg()[0],
                    "note": "shared 2-core machine, other jobs running: times are upper bounds"},
        "encoders": {"image": tm.image_encoder.name, "audio": tm.audio_encoder.name},
        "clip_seconds": [x.shape[1] / sr for x, sr in clips],
        "excerpt_seconds": sc.excerpt_seconds, "strength_weight": sc.strength_weight,
        "default_budget_evals": sc.budget_evals, "cma_import_seconds": cma_import_s,
        "target_extra_seconds": TARGET_SECONDS,
        "default_budget_seconds": default,
        # CPU time of the one pinned core: what the search costs when the core is not shared
        "met": None if default is None else bool(default["cpu"]["median"] <= TARGET_SECONDS),
        "audio_strength_map": smap.as_dict(),
        "summary": summary, "rows": rows,
    }
    path = HERE / "results" / ("search_quick.json" if args.quick else "search.json")
    write_json(path, out)
    print(json.dumps({k: out[k] for k in ("default_budget_seconds", "met", "cma_import_seconds")}, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
