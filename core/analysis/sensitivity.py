"""Experiment 1 / pipeline step 2: does an encoder notice each effect at each intensity?

For every encoder x effect x intensity, the statistics of ||E(x') - E(x)|| over a folder of
media, and a verdict `mean > threshold` (the pipeline note's `min_distance`, 0.01).
Audio effects are swept with `AudioEffect.params_at_intensity`; tails are cut so both
sides of a pair have the same length.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config


def list_media(folder: Path, extensions: Sequence[str], limit: int | None, seed: int) -> list[Path]:
    if not folder.is_dir():
        raise DeltaV2AError(f"not a folder: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in extensions and p.is_file())
    if not files:
        raise DeltaV2AError(f"no {'/'.join(e.lstrip('.') for e in extensions[:4])} files in {folder}")
    if limit is not None and len(files) > limit:
        files = sorted(random.Random(seed).sample(files, limit))
    return files


def _stats(norms, modality, encoder, effect, intensity, threshold) -> dict:
    import numpy as np

    n = np.asarray(norms, dtype=np.float64)
    return {"modality": modality, "encoder": encoder, "effect": effect, "intensity": intensity,
            "n": int(n.size), "mean": float(n.mean()), "std": float(n.std()),
            "min": float(n.min()), "max": float(n.max()), "sensitive": bool(n.mean() > threshold)}


def image_sensitivity(files: list[Path], cfg: "Config", effects: Sequence[str], intensities: Sequence[float],
                      threshold: float, seed: int, progress=None) -> list[dict]:
    import numpy as np

    from ..style.encoding import load_encoder
    from ..media.io import load_image
    from ..api.registry import get

    enc = load_encoder(cfg.encoders.image, "image")
    images, skipped = [], 0
    for f in files:
        try:
            images.append(load_image(f))
        except DeltaV2AError as exc:
            skipped += 1
            print(f"deltav2a: warning: skipping {exc}")
    if not images:
        raise DeltaV2AError("no readable images")
    base = enc.encode_images(images)
    rows = []
    for name in effects:
        fx = get("image_effect", name)()
        for x in intensities:
            edited = [fx.apply(im, x, seed=seed + i) for i, im in enumerate(images)]
            norms = np.linalg.norm(enc.encode_images(edited) - base, axis=1)
            rows.append(_stats(norms, "image", enc.name, name, x, threshold))
            if progress:
                progress()
    return rows


def audio_sensitivity(files: list[Path], cfg: "Config", effects: Sequence[str], intensities: Sequence[float],
                      threshold: float, progress=None) -> list[dict]:
    import numpy as np

    from ..render.chain import AudioChain, ChainSettings, EffectSetting
    from ..style.encoding import load_encoder
    from ..style.pairs import load_clip
    from ..api.registry import get

    enc = load_encoder(cfg.encoders.audio, "audio")
    sr = cfg.audio.sample_rate
    clips = []
    for f in files:
        try:
            clips.append(load_clip(f, cfg))
        except DeltaV2AError as exc:
            print(f"deltav2a: warning: skipping {exc}")
    if not clips:
        raise DeltaV2AError("no readable audio clips")
    base = enc.encode_audio(clips, sr)
    rows = []
    for name in effects:
        cls = get("audio_effect", name)
        for x in intensities:
            chain = AudioChain(ChainSettings([EffectSetting(name, cls.params_at_intensity(x))]), tail="cut")
            edited = [chain.render(c, sr).audio for c in clips]
            norms = np.linalg.norm(enc.encode_audio(edited, sr) - base, axis=1)
            rows.append(_stats(norms, "audio", enc.name, name, x, threshold))
            if progress:
                progress()
    return rows


def extract_sensitivity(folder: Path, threshold: float) -> list[dict]:
    """The same statistics from a `deltav2a analysis extract` folder, without re-encoding."""
    import numpy as np

    from .extract import load_extract

    rows = []
    for modality, ds in load_extract(folder).items():
        for name in ds.effects:
            for label in ds.labels:
                norms = np.linalg.norm(ds.delta[ds.select(name, label)].astype(np.float64), axis=1)
                row = _stats(norms, modality, ds.encoder, name, ds.intensity_of(label), threshold)
                rows.append({**row, "intensity_label": label})
    return rows


def plot_sensitivity(rows: list[dict], threshold: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    modalities = [m for m in ("image", "audio") if any(r["modality"] == m for r in rows)]
    fig, axes = plt.subplots(1, len(modalities), figsize=(6 * len(modalities), 4), squeeze=False)
    for ax, m in zip(axes[0], modalities):
        sub = [r for r in rows if r["modality"] == m]
        for eff in dict.fromkeys(r["effect"] for r in sub):
            pts = [r for r in sub if r["effect"] == eff]
            ax.errorbar([r["intensity"] for r in pts], [r["mean"] for r in pts],
                        yerr=[r["std"] for r in pts], marker="o", capsize=3, label=eff)
        ax.axhline(threshold, color="k", ls="--", lw=1, label="threshold")
        ax.set_title(f"{m}: {sub[0]['encoder']}")
        ax.set_xlabel("intensity")
        ax.set_ylabel("||E(x') - E(x)||")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
