"""Transfer quality on held-out media: does A' change the way I' changed, and by as much?

`diagnose quality` runs every held-out photo x clip x image effect x intensity through each
requested controller (and two baselines) and scores what was rendered:

* label agreement: centred cosine between the image pair's calibrated label and the label
  the audio encoder reads off (A, A') (`diagnostics.agreement`), and top-1 agreement;
* mean effects per transfer: how many effects were actually rendered;
* strength rank correlation: per (photo, image effect, clip), Spearman's rho of the image
  intensity against the log-mel distance A -> A', then averaged. A series whose distance
  does not change at all (a controller that ignores the intensity) counts as rho = 0;
* stronger-edit share: over (photo, effect, clip), the share where the 0.9 edit gives a
  strictly larger log-mel distance than the 0.3 edit.

Baselines: a random chain (the database's sampler: 1-2 effects, random parameters, drawn per
transfer) and the best fixed chain (one audio effect at intensity 0.6 whatever the image;
which effect is chosen by agreement on the other half of the photos, 2-fold by photo, so it
is never chosen on the photos it is scored on). A fixed chain renders the same A' for every
intensity, so its strength numbers are 0 by construction.

All labels used by the metric are read in one space, the first model's (its image encoder,
calibration and audio encoder), so controllers trained with other calibrations are compared
on the same ruler; each controller still gets its own model's input.

Controllers are rendered through `TransferModel.transfer`, the path users run (`search` and
`NAME+refine` through TransferModel's `controller="search"` / `refine=True` modes, with
`--budget-evals` candidate renders per transfer); one the installed code cannot run (a mode
it lacks, a controller with no model given) is listed under `unavailable` with the reason,
never approximated.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import DeltaV2AError
from ..style.label import centred_cosine

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..transfer.pipeline import TransferModel

DEFAULT_INTENSITIES = (0.1, 0.3, 0.5, 0.7, 0.9)
PAIR = (0.3, 0.9)
#: resamples of the photos-and-clips bootstrap (bootstrap_spread)
BOOTSTRAP_REPS = 400
FIXED_INTENSITY = 0.6
METRICS = ("label_agreement", "top1_agreement", "mean_effects", "strength_rho", "stronger_share")
METRIC_TITLES = {"label_agreement": "label agreement (centred cosine)", "top1_agreement": "top-1 agreement",
                 "mean_effects": "mean effects per transfer", "strength_rho": "strength rank correlation",
                 "stronger_share": "stronger edit -> stronger change (0.3 vs 0.9)"}


def photo_halves(files: Sequence[Path], seed: int) -> tuple[list[Path], list[Path]]:
    """`deltav2a run`'s split of its photos: (calibration half, held-out half), the list
    shuffled with random.Random(seed) and cut in two (a single photo serves as both). The one
    definition, so the stages, `diagnose quality` and the benchmarks cannot disagree on it."""
    shuffled = list(files)
    random.Random(seed).shuffle(shuffled)
    half = max(1, len(shuffled) // 2)
    return sorted(shuffled[:half]), sorted(shuffled[half:] or shuffled[:half])


def heldout_photos(files: Sequence[Path], seed: int) -> list[Path]:
    """The photos `deltav2a run` did not calibrate on (the second of `photo_halves`)."""
    return photo_halves(files, seed)[1]


def quality_photos(files: Sequence[Path], n: int | None, seed: int, run_seed: int, all_photos: bool = False
                   ) -> list[Path]:
    """The photos `diagnose quality` scores: a `seed`ed sample of `n` from the half `run` did not
    calibrate on, that half fixed by the model's own `run_seed` (decision 9.130: another --seed
    draws another sample from the same held-out half, never a calibration photo)."""
    pool = list(files) if all_photos else heldout_photos(files, run_seed)
    return seeded_sample(pool, n, seed)


def seeded_sample(files: Sequence[Path], n: int | None, seed: int) -> list[Path]:
    files = sorted(files)
    if n is None or len(files) <= n:
        return files
    return sorted(random.Random(seed).sample(files, n))


def one_clip_per_track(clips: Sequence[Any], n: int, seed: int) -> list[Any]:
    """Up to `n` split clips, one per track (tracks in seeded order) before any track gets a
    second: clips of one track sound alike, so this spreads the sample over the music."""
    rng = random.Random(seed)
    by_track: dict[str, list] = {}
    for c in sorted(clips, key=lambda c: c.file):
        by_track.setdefault(c.track_id, []).append(c)
    for v in by_track.values():
        rng.shuffle(v)
    tracks = sorted(by_track)
    rng.shuffle(tracks)
    out: list = []
    while len(out) < n and any(by_track[t] for t in tracks):
        for t in tracks:
            if by_track[t] and len(out) < n:
                out.append(by_track[t].pop())
    return sorted(out, key=lambda c: c.file)


def parse_intensities(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(sorted({round(float(v), 6) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise DeltaV2AError(f"--intensities must be comma-separated numbers, got '{text}'") from None
    if len(vals) < 3:
        raise DeltaV2AError("--intensities needs at least 3 distinct values (a rank correlation)")
    if not all(0 < v <= 1 for v in vals):
        raise DeltaV2AError("--intensities must lie in (0, 1]")
    return vals


def log_mel(audio: "np.ndarray", sr: int, length: int | None = None) -> "np.ndarray":
    """64-band log-mel (dB, fixed reference, -100 dB floor) of the mono mix, cut or
    zero-padded to `length` samples (a sped-up A' that ends early has changed)."""
    import librosa
    import numpy as np

    y = np.asarray(audio, dtype=np.float32).mean(axis=0)
    if length is not None:
        y = y[:length] if y.size >= length else np.pad(y, (0, length - y.size))
    m = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=1024, n_mels=64)
    return librosa.power_to_db(m, ref=1.0, amin=1e-10, top_db=None).clip(min=-100.0)


def logmel_distance(a: "np.ndarray", b: "np.ndarray", sr: int, mel_a: "np.ndarray | None" = None) -> float:
    """Mean |dB difference| of the log-mels of A and A' (A' at A's length); pass A's log-mel
    as `mel_a` to compute it once per clip. One fixed dB reference for both sides, so a
    quieter A' counts as a change, and the floor keeps silence from blowing up."""
    import numpy as np

    ma = log_mel(a, sr) if mel_a is None else mel_a
    return float(np.mean(np.abs(log_mel(b, sr, np.asarray(a).shape[-1]) - ma)))


# ---------------------------------------------------------------------------- methods


@dataclass
class Method:
    """One thing that turns an image edit into A': a loaded model in one inference mode."""

    name: str
    model: "TransferModel"


def _modes_supported() -> set[str]:
    """Which of TransferModel's inference modes this code has (`controller=`, `refine=`)."""
    import inspect

    from ..transfer.pipeline import TransferModel

    return set(inspect.signature(TransferModel.__init__).parameters)


def resolve_methods(models: Sequence["TransferModel"], wanted: Sequence[str], budget_evals: int | None = None
                    ) -> tuple[list[Method], dict[str, str]]:
    """Requested names -> runnable methods, and {name: why not} for the rest.

    `NAME` is every model whose controller is NAME (one method each: named NAME when it is the
    only one, else `NAME:FOLDER`, so copies of one controller differing in their inference
    settings are compared side by side instead of all but the first being dropped); `search` is
    the zero-shot search with the first model's calibration and strength maps; `NAME+refine`
    refines the first such model's plan. The last two load the model again in that mode;
    whatever the installed code refuses (no search plugin, no refine option, a bad budget) is
    reported, not approximated.
    """
    from ..transfer.pipeline import TransferModel

    by_name: dict[str, "TransferModel"] = {}
    all_of: dict[str, list["TransferModel"]] = {}
    for tm in models:
        by_name.setdefault(tm.controller.metadata.controller, tm)
        all_of.setdefault(tm.controller.metadata.controller, []).append(tm)
    supported = _modes_supported()
    budget = {} if budget_evals is None else {"budget_evals": int(budget_evals)}
    methods, unavailable = [], {}
    for name in wanted:
        base, _, suffix = name.partition("+")
        if suffix and suffix != "refine":
            raise DeltaV2AError(f"unknown controller variant '{name}' (use NAME or NAME+refine)")
        if name == "search" or suffix:
            key = "controller" if name == "search" else "refine"
            if key not in supported:
                unavailable[name] = f"this TransferModel has no '{key}' mode"
                continue
            if suffix and base not in by_name:
                unavailable[name] = f"no model with a '{base}' controller was given (--model)"
                continue
            source = models[0] if name == "search" else by_name[base]
            mode = {"controller": "search"} if name == "search" else {"refine": True}
            try:
                methods.append(Method(name, TransferModel(source.model_dir, **mode, **budget)))
            except DeltaV2AError as exc:
                unavailable[name] = str(exc)
        elif base not in by_name:
            unavailable[name] = f"no model with a '{base}' controller was given (--model)"
        elif len(all_of[base]) == 1:
            methods.append(Method(name, by_name[base]))
        else:
            seen: set[str] = set()
            for i, tm in enumerate(all_of[base]):
                label = f"{name}:{Path(tm.model_dir).name}"
                if label in seen:  # two folders of one name: number them in the order given
                    label = f"{label}#{i + 1}"
                seen.add(label)
                methods.append(Method(label, tm))
    return methods, unavailable


def _render(method: Method, before, after, x, sr, emb) -> tuple["np.ndarray", int]:
    """A' and the number of effects rendered, through the users' transfer path."""
    res = method.model.transfer(before, after, x, sr, audio_emb=emb)
    return res.audio, len(res.sidecar.get("effects", []))


# ---------------------------------------------------------------------------- the run


def run_quality(models: Sequence["TransferModel"], photos: Sequence[Path], clips: Sequence[Path],
                controllers: Sequence[str], intensities: Sequence[float] = DEFAULT_INTENSITIES,
                seed: int = 0, progress: bool = False, budget_evals: int | None = None) -> dict:
    """Render the grid and score every method; returns the JSON-ready result (no NaN)."""
    import numpy as np
    from tqdm import tqdm

    from ..render.chain import AudioChain, ChainSettings, EffectSetting
    from ..database.sampling import AugmentationSampler
    from ..style.encoding import term_embeddings
    from ..media.io import load_audio, load_image
    from ..api.registry import get
    from ..style.label import style_labels

    if not models:
        raise DeltaV2AError("give at least one model")
    if len(photos) < 2:
        raise DeltaV2AError("need at least 2 photos (the fixed chain is chosen on the other half)")
    ref = models[0]
    cfg = ref.cfg
    methods, unavailable = resolve_methods(models, controllers, budget_evals)
    loaded = list({id(tm): tm for tm in [ref, *(m.model for m in methods)]}.values())
    for tm in loaded:
        tm.cfg.effects.tail = "cut"  # A and A' of equal length, for every method alike
    rng = np.random.default_rng(seed)
    V_aud = term_embeddings(ref.audio_encoder, ref.vocab, "audio")
    terms = list(ref.vocab.terms)
    clip_data, mels = [], []
    max_len = int(cfg.audio.max_duration * cfg.audio.sample_rate)
    for f in clips:
        # decoded once at the model's rate (no resampling per transfer), at most max_duration
        x, sr = load_audio(f, sample_rate=cfg.audio.sample_rate)
        x = x[:, :max_len]
        clip_data.append((x, sr, {id(tm): tm.audio_embedding(x, sr) for tm in loaded}))
        mels.append(log_mel(x, sr))

    def audio_label(k: int, y) -> "np.ndarray":
        x, sr, embs = clip_data[k]
        return style_labels(embs[id(ref)], ref.audio_embedding(y, sr), V_aud, cfg.database.temperature)[0][0]

    # the fixed chains: one audio effect each, the same A' whatever the image
    fixed: dict[str, list[dict]] = {}
    for name in cfg.effects.audio:
        chain = AudioChain(ChainSettings([EffectSetting(name, get("audio_effect", name).params_at_intensity(FIXED_INTENSITY))]),
                           tail="cut", max_tail_seconds=cfg.effects.max_tail_seconds)
        fixed[name] = []
        for k, (x, sr, _) in enumerate(clip_data):
            y = chain.render(x, sr).audio
            fixed[name].append({"label": audio_label(k, y), "dist": logmel_distance(x, y, sr, mels[k])})
    sampler = AugmentationSampler(ref.layout, cfg.database, cfg.effects.chain_order)
    image_fx = [(n, get("image_effect", n)()) for n in cfg.effects.image]

    rows: list[dict] = []  # one per (photo, effect, intensity, clip, method)
    image_rows: list[dict] = []  # one per (photo, effect, intensity): the reference image label
    total = len(photos) * len(image_fx) * len(intensities)
    bar = tqdm(total=total, desc="quality", unit="edit", disable=not progress)
    for p, path in enumerate(photos):
        before = load_image(path)
        for e, (fx_name, fx) in enumerate(image_fx):
            for t in intensities:
                after = fx.apply(before, float(t), seed=seed + p)
                reading = ref.read_edit([before], [after])[0]
                img = reading.label
                image_rows.append({"photo": p, "effect": fx_name, "intensity": float(t), "label": img,
                                   "delta_norm": float(reading.delta_norm), "confidence": float(reading.confidence),
                                   "strength": float(reading.strength)})
                for k, (x, sr, embs) in enumerate(clip_data):
                    key = {"photo": p, "effect": fx_name, "intensity": float(t), "clip": k}
                    for m in methods:
                        y, n_fx = _render(m, before, after, x, sr, embs[id(m.model)])
                        rows.append(_row(key, m.name, img, audio_label(k, y), logmel_distance(x, y, sr, mels[k]), n_fx))
                    aug = sampler.sample(rng)
                    y = sampler.chain(aug, "cut", cfg.effects.max_tail_seconds).render(x, sr).audio
                    rows.append(_row(key, "random chain", img, audio_label(k, y), logmel_distance(x, y, sr, mels[k]),
                                     int(aug.active.sum())))
                bar.update(1)
    bar.close()

    fixed_rows, chosen = _fixed_chain_rows(image_rows, fixed, len(clip_data))
    rows.extend(fixed_rows)
    names = [m.name for m in methods] + ["random chain", "best fixed chain"]
    summary = {n: score(rows, n, terms, intensities) for n in names}
    curves = {n: _distance_curve(rows, n, intensities) for n in names}
    return _finite({
        "sizes": {"photos": len(photos), "clips": len(clips), "image_effects": len(image_fx),
                  "intensities": list(intensities), "transfers_per_method": len(image_rows) * len(clips)},
        "photos": [str(p) for p in photos], "clips": [str(c) for c in clips],
        "models": {m.name: str(m.model.model_dir) for m in methods},
        "search_budget_evals": budget_evals,
        "reference_model": str(ref.model_dir), "seed": seed,
        "best_fixed_chain": {"intensity": FIXED_INTENSITY, "chosen_per_photo_half": chosen},
        "methods": summary, "unavailable": unavailable,
        "distance_by_intensity": curves,
        "image_strength": _image_strength(image_rows, intensities),
    })


def _row(key: dict, method: str, img, aud, dist: float, n_fx: int) -> dict:
    return {**key, "method": method, "cos": centred_cosine(img, aud), "top1": bool(img.argmax() == aud.argmax()),
            "audio_top": int(aud.argmax()), "dist": float(dist), "effects": int(n_fx)}


def _fixed_chain_rows(image_rows: list[dict], fixed: dict, n_clips: int) -> tuple[list[dict], dict]:
    """Best fixed chain, 2-fold by photo: chosen on the photos of the other half."""
    import numpy as np

    photos = sorted({r["photo"] for r in image_rows})
    halves = [set(photos[0::2]), set(photos[1::2])]
    rows, chosen = [], {}
    for h, scored in enumerate(halves):
        pick = [r for r in image_rows if r["photo"] not in scored]

        def mean_cos(name: str) -> float:
            return float(np.mean([centred_cosine(r["label"], fixed[name][k]["label"])
                                  for r in pick for k in range(n_clips)]))

        best = max(fixed, key=mean_cos)
        chosen[f"half_{h}"] = best
        for r in image_rows:
            if r["photo"] in scored:
                for k in range(n_clips):
                    key = {"photo": r["photo"], "effect": r["effect"], "intensity": r["intensity"], "clip": k}
                    rows.append(_row(key, "best fixed chain", r["label"], fixed[best][k]["label"],
                                     fixed[best][k]["dist"], 1))
    return rows, chosen


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho; 0 for a series that does not move (no tracking at all)."""
    import numpy as np
    from scipy.stats import spearmanr

    if np.ptp(np.asarray(y, dtype=float)) <= 1e-12:
        return 0.0
    rho = spearmanr(x, y).statistic
    return 0.0 if not math.isfinite(rho) else float(rho)


def bootstrap_spread(rows: list[dict], reps: int = BOOTSTRAP_REPS, seed: int = 0) -> dict:
    """Standard deviation of each metric when the photos and the clips are resampled.

    Why: a protocol's transfers are not independent: they share a handful of photos and clips,
    and a different handful moves every number together. Resampling photos and clips with
    replacement (a two-way cluster bootstrap, seeded) gives the spread a reader should put
    beside each figure before calling a 0.02 difference, or a target met by 0.005, real
    (decision 9.110). Series-level values (strength rho, the stronger-edit pair) are computed
    once; a resample only re-weights them, so this stays cheap.
    """
    import numpy as np

    photos = sorted({r["photo"] for r in rows})
    clips = sorted({r["clip"] for r in rows})
    if len(photos) < 2 and len(clips) < 2:
        return {}
    pi, ci = {p: i for i, p in enumerate(photos)}, {c: i for i, c in enumerate(clips)}
    cell = np.zeros((len(photos), len(clips), 3))          # sums of cos, top1, count
    series: dict[tuple, dict[float, float]] = {}
    for r in rows:
        c = cell[pi[r["photo"]], ci[r["clip"]]]
        c += (r["cos"], float(r["top1"]), 1.0)
        series.setdefault((r["photo"], r["effect"], r["clip"]), {})[r["intensity"]] = r["dist"]
    ser = np.zeros((len(photos), len(clips), 4))           # sum rho, n rho, sum pair, n pair
    for (p, _e, c), s in series.items():
        v = ser[pi[p], ci[c]]
        if len(s) > 1:
            v[:2] += (_spearman(sorted(s), [s[t] for t in sorted(s)]), 1.0)
        if PAIR[0] in s and PAIR[1] in s:
            v[2:] += (float(s[PAIR[1]] > s[PAIR[0]] + 1e-9), 1.0)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(reps):
        w = np.outer(np.bincount(rng.integers(0, len(photos), len(photos)), minlength=len(photos)),
                     np.bincount(rng.integers(0, len(clips), len(clips)), minlength=len(clips)))
        a, t = (w[..., None] * cell).sum((0, 1)), (w[..., None] * ser).sum((0, 1))
        draws.append([a[0] / a[2], a[1] / a[2],
                      t[0] / t[1] if t[1] else np.nan, t[2] / t[3] if t[3] else np.nan])
    sd = np.nanstd(np.asarray(draws), axis=0)
    keys = ("label_agreement", "top1_agreement", "strength_rho", "stronger_share")
    return {k: float(v) for k, v in zip(keys, sd) if np.isfinite(v)}


def score(rows: list[dict], method: str, terms: Sequence[str], intensities: Sequence[float]) -> dict:
    """The summary of one method (overall and per image effect)."""
    import numpy as np

    mine = [r for r in rows if r["method"] == method]
    if not mine:
        return {"n": 0}

    def block(rs: list[dict]) -> dict:
        series: dict[tuple, dict[float, float]] = {}
        for r in rs:
            series.setdefault((r["photo"], r["effect"], r["clip"]), {})[r["intensity"]] = r["dist"]
        rhos = [_spearman(sorted(s), [s[t] for t in sorted(s)]) for s in series.values()]
        flat = sum(1 for s in series.values() if np.ptp(list(s.values())) <= 1e-12)
        pairs = [s[PAIR[1]] > s[PAIR[0]] + 1e-9 for s in series.values() if PAIR[0] in s and PAIR[1] in s]
        return {"n": len(rs),
                "label_agreement": float(np.mean([r["cos"] for r in rs])),
                "top1_agreement": float(np.mean([r["top1"] for r in rs])),
                "mean_effects": float(np.mean([r["effects"] for r in rs])),
                "strength_rho": float(np.mean(rhos)) if rhos else None,
                "stronger_share": float(np.mean(pairs)) if pairs else None,
                "series": len(series), "flat_series": int(flat),
                "mean_logmel_distance_db": float(np.mean([r["dist"] for r in rs]))}

    out = block(mine)
    out["spread"] = bootstrap_spread(mine)
    tops = np.bincount([r["audio_top"] for r in mine], minlength=len(terms))
    order = np.argsort(-tops, kind="stable")[:3]
    out["audio_top_terms"] = [{"term": terms[i], "share": float(tops[i] / len(mine))} for i in order if tops[i]]
    out["per_image_effect"] = {e: block([r for r in mine if r["effect"] == e])
                               for e in dict.fromkeys(r["effect"] for r in mine)}
    return out


def _distance_curve(rows: list[dict], method: str, intensities: Sequence[float]) -> list[float | None]:
    import numpy as np

    out = []
    for t in intensities:
        d = [r["dist"] for r in rows if r["method"] == method and r["intensity"] == float(t)]
        out.append(float(np.mean(d)) if d else None)
    return out


def _image_strength(image_rows: list[dict], intensities: Sequence[float]) -> dict:
    """How the image side itself responds to intensity: mean ||delta||, confidence, strength."""
    import numpy as np

    return {"intensities": list(intensities),
            "delta_norm": [float(np.mean([r["delta_norm"] for r in image_rows if r["intensity"] == t]))
                           for t in intensities],
            "confidence": [float(np.mean([r["confidence"] for r in image_rows if r["intensity"] == t]))
                           for t in intensities],
            "strength": [float(np.mean([r["strength"] for r in image_rows if r["intensity"] == t]))
                         for t in intensities]}


def _finite(obj: Any) -> Any:
    """Strict JSON: non-finite floats become null, numpy scalars plain numbers."""
    from ..analysis.discover import _clean

    return _clean(obj)


# ---------------------------------------------------------------------------- reports


def _fmt(v: Any, metric: str) -> str:
    if v is None:
        return "–"
    return f"{v:.2f}" if metric == "mean_effects" else f"{v:.3f}"


def quality_markdown(res: dict) -> str:
    """The table: one column per method, one row per metric, then per-effect strength rho."""
    names = list(res["methods"])
    s = res["sizes"]
    lines = [f"Held-out: {s['photos']} photos x {s['clips']} clips x {s['image_effects']} image effects x "
             f"intensities {', '.join(f'{t:g}' for t in s['intensities'])} = {s['transfers_per_method']} "
             "transfers per method.", "",
             "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for m in METRICS:
        lines.append(f"| {METRIC_TITLES[m]} | " + " | ".join(_fmt(res["methods"][n].get(m), m) for n in names) + " |")
    if any(res["methods"][n].get("spread") for n in names):
        lines.append("| ± sd over photos and clips (bootstrap): agreement / top-1 / rho / share | " + " | ".join(
            " / ".join(f"{sp[k]:.3f}" if k in sp else "–" for k in
                       ("label_agreement", "top1_agreement", "strength_rho", "stronger_share"))
            if (sp := res["methods"][n].get("spread")) else "–" for n in names) + " |")
    ts = [float(t) for t in s["intensities"]]
    if PAIR[0] in ts and PAIR[1] in ts:  # how much stronger, not only how often
        i, j = ts.index(PAIR[0]), ts.index(PAIR[1])
        lines.append("| log-mel distance A->A' at 0.3 / 0.9 (dB) | " + " | ".join(
            f"{c[i]:.1f} / {c[j]:.1f}" if (c := res["distance_by_intensity"][n])[i] is not None else "–"
            for n in names) + " |")
    lines.append("| audio encoder's most frequent top-1 term | " + " | ".join(
        (f"{t[0]['term']} ({100 * t[0]['share']:.0f} %)" if (t := res["methods"][n].get("audio_top_terms")) else "–")
        for n in names) + " |")
    chosen = res["best_fixed_chain"]["chosen_per_photo_half"]
    lines += ["", f"Best fixed chain: one effect at intensity {res['best_fixed_chain']['intensity']}, chosen on the "
              f"other half of the photos ({', '.join(sorted(set(chosen.values())))}); its strength numbers are 0 "
              "by construction (the same A' at every intensity)."]
    if res["unavailable"]:
        lines += ["", "Not run: " + "; ".join(f"`{n}`: {why}" for n, why in res["unavailable"].items()) + "."]
    effects = list(next(iter(res["methods"].values())).get("per_image_effect", {}))
    if effects:
        lines += ["", "Strength rank correlation per image effect:", "",
                  "| image effect | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for e in effects:
            lines.append(f"| {e} | " + " | ".join(
                _fmt(res["methods"][n].get("per_image_effect", {}).get(e, {}).get("strength_rho"), "r")
                for n in names) + " |")
    return "\n".join(lines) + "\n"


def quality_plot(res: dict, path: Path) -> Path:
    """Left: the five metrics per method. Right: mean log-mel distance vs image intensity."""
    import numpy as np

    from ..media.plots import _plt, save_figure

    plt = _plt()
    names = list(res["methods"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    metrics = [m for m in METRICS if m != "mean_effects"]
    width = 0.8 / max(len(names), 1)
    for i, n in enumerate(names):
        vals = [res["methods"][n].get(m) or 0.0 for m in metrics]
        ax1.bar(np.arange(len(metrics)) + i * width, vals, width,
                label=f"{n} ({_fmt(res['methods'][n].get('mean_effects'), 'mean_effects')} fx)")
    ax1.set_xticks(np.arange(len(metrics)) + width * (len(names) - 1) / 2)
    ax1.set_xticklabels(["agreement\n(centred cos)", "top-1", "strength\nrho", "stronger\n0.3 vs 0.9"], fontsize=8)
    ax1.axhline(0, color="grey", linewidth=0.8)
    ax1.legend(fontsize=7)
    ax1.set_title("transfer quality (held-out)")
    ts = res["sizes"]["intensities"]
    for n in names:
        ax2.plot(ts, [v if v is not None else np.nan for v in res["distance_by_intensity"][n]], marker="o", label=n)
    ax2.set_xlabel("image edit intensity")
    ax2.set_ylabel("log-mel distance A -> A' (dB)")
    ax2.set_title("does a stronger image edit give a stronger audio change?")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
