"""`study build`: choose cases by the notes' groups, render them, write the manifest.

The notes' table asks for 4 high-‖δz‖ cases, 2 low-‖δz‖ cases, 3 with one active effect and
3 with two. Groups are disjoint here (docs/decisions.md 13.3): candidates are random (image,
image effect, intensity, clip) transfers; "high" and "low" are the candidates at or above the
`high_quantile` / at or below the `low_quantile` of their ‖δ‖ (or absolute thresholds), and the
effect-count groups are drawn from the candidates in between, so each case answers one question.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import DeltaV2AError
from . import GROUPS, MANIFEST


@dataclass
class Selection:
    """How many cases per group and where "high" and "low" start."""

    counts: dict[str, int] = field(default_factory=lambda: {"high_delta": 4, "low_delta": 2,
                                                            "one_effect": 3, "two_effects": 3})
    high_quantile: float = 0.75
    low_quantile: float = 0.25
    high_norm: float | None = None  # absolute thresholds override the quantiles
    low_norm: float | None = None
    allow_short: bool = False  # a group with too few candidates: take what there is (else error)

    def thresholds(self, norms: list[float]) -> tuple[float, float]:
        import numpy as np

        hi = self.high_norm if self.high_norm is not None else float(np.quantile(norms, self.high_quantile))
        lo = self.low_norm if self.low_norm is not None else float(np.quantile(norms, self.low_quantile))
        if lo >= hi:
            raise DeltaV2AError(f"the low-delta threshold ({lo:.4g}) must be below the high one ({hi:.4g})")
        return hi, lo


def select(cands: list[dict], sel: Selection) -> tuple[list[dict], dict]:
    """Pick the cases: most extreme ‖δ‖ first for the norm groups, then effect counts.

    Returns the chosen candidates (with "group" set) and the thresholds used, with how many
    cases each group got."""
    for g in sel.counts:
        if g not in GROUPS:
            raise DeltaV2AError(f"unknown study group '{g}' (known: {', '.join(GROUPS)})")
    norms = [c["delta_norm"] for c in cands]
    hi, lo = sel.thresholds(norms)
    used: set[int] = set()
    chosen: list[dict] = []
    got: dict[str, int] = {}

    def take(group: str, pool: list[int]) -> None:
        want = sel.counts.get(group, 0)
        pool = [i for i in pool if i not in used]
        if len(pool) < want and not sel.allow_short:
            raise DeltaV2AError(f"only {len(pool)} candidate(s) for group {group}, {want} wanted: "
                                "give more --candidates, other thresholds, a smaller count or --allow-short")
        got[group] = min(want, len(pool))
        for i in pool[:want]:
            used.add(i)
            chosen.append({**cands[i], "group": group, "candidate": i})

    by_norm = sorted(range(len(cands)), key=lambda i: cands[i]["delta_norm"])
    take("high_delta", [i for i in reversed(by_norm) if cands[i]["delta_norm"] >= hi])
    take("low_delta", [i for i in by_norm if cands[i]["delta_norm"] <= lo])
    middle = [i for i in range(len(cands)) if lo < cands[i]["delta_norm"] < hi]
    take("one_effect", [i for i in middle if len(cands[i]["effects"]) == 1])
    take("two_effects", [i for i in middle if len(cands[i]["effects"]) == 2])
    if not chosen:
        raise DeltaV2AError("no candidate fits any group")
    return chosen, {"high_norm": hi, "low_norm": lo, "got": got}


def build_study(model_dir: Path | None, images: list[Path], clips: list[Path], output: Path, *,
                selection: Selection, candidates: int = 48, seconds: float = 10.0,
                intensity_range: tuple[float, float] = (0.1, 1.0), seed: int = 0,
                progress: Callable[[int, int], None] | None = None) -> dict:
    """Run `candidates` random transfers, select the cases, render them into `output`."""
    import numpy as np

    from ..atomic import write_json
    from ..media.io import load_audio, load_image, save_audio, save_image
    from ..api.registry import get
    from ..transfer.view import image_effect_names, load_model, run_transfer

    if (output / MANIFEST).exists():
        raise DeltaV2AError(f"{output} already holds a study ({MANIFEST}); choose a new folder")
    if not images or not clips:
        raise DeltaV2AError("a study needs at least one image and one audio clip")
    if candidates < sum(selection.counts.values()):
        raise DeltaV2AError(f"--candidates {candidates} is fewer than the {sum(selection.counts.values())} cases wanted")
    model = load_model(model_dir)
    effects = image_effect_names(model)
    rng = np.random.default_rng(seed)
    img_order = [images[i] for i in rng.permutation(len(images))]
    clip_order = [clips[i] for i in rng.permutation(len(clips))]
    audio_cache: dict[Path, tuple] = {}

    def clip(path: Path) -> tuple:
        if path not in audio_cache:
            if len(audio_cache) >= 8:  # bounded memory on long clip lists
                audio_cache.pop(next(iter(audio_cache)))
            x, sr = load_audio(path)
            audio_cache[path] = (x[:, : int(seconds * sr)], sr)
        return audio_cache[path]

    def render(c: dict) -> tuple:
        before = load_image(c["image"])
        after = get("image_effect", c["image_effect"])().apply(before, c["intensity"], seed=c["effect_seed"])
        x, sr = clip(Path(c["audio"]))
        return before, after, x, run_transfer(model, before, after, x, sr)

    cands: list[dict] = []
    n_warnings = 0
    for n in range(candidates):
        img_path = img_order[n % len(img_order)]
        clip_path = clip_order[n % len(clip_order)]
        effect = effects[int(rng.integers(len(effects)))]
        intensity = round(float(rng.uniform(*intensity_range)), 3)
        c = {"image": str(img_path), "audio": str(clip_path), "image_effect": effect,
             "intensity": intensity, "effect_seed": int(rng.integers(2**31))}
        with warnings.catch_warnings(record=True) as caught:  # e.g. cut reverb tails: counted, not printed
            warnings.simplefilter("always")
            view = render(c)[3]
        n_warnings += len(caught)
        c.update({"delta_norm": view.delta_norm, "confidence": view.confidence,
                  "strength": view.strength, "effects": view.effects.to_records(), "top": view.top[:3]})
        cands.append(c)
        if progress:
            progress(n + 1, candidates)
    chosen, thr = select(cands, selection)
    cases = []
    for k, case in enumerate(chosen):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # already counted in the candidate pass
            before, after, x, view = render(case)  # deterministic: the same transfer again
        cid = f"c{k + 1:02d}"
        folder = output / "cases" / cid
        save_image(before, folder / "original.png")
        save_image(after, folder / "edited.png")
        save_audio(x, view.sample_rate, folder / "original.wav")
        save_audio(view.audio, view.sample_rate, folder / "processed.wav")
        write_json(folder / "sidecar.json", view.sidecar)
        cases.append({"id": cid, **case, "n_effects": len(case["effects"])})
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": str(model.model_dir), "seed": seed, "candidates": candidates, "seconds": seconds,
        "intensity_range": list(intensity_range),
        "selection": {"counts": selection.counts, "high_quantile": selection.high_quantile,
                      "low_quantile": selection.low_quantile, **thr},
        "candidate_delta_norms": [c["delta_norm"] for c in cands],
        "candidate_effect_counts": [len(c["effects"]) for c in cands],
        "render_warnings": n_warnings,
        "cases": cases,
    }
    from ..artifact import write_json as write_artifact
    from .store import FORMAT

    write_artifact(output / MANIFEST, FORMAT, manifest)  # last: a folder without it is no study
    return {**FORMAT.header(), **manifest}
