"""Loading an (original, edited) pair and embedding both sides with the configured encoder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..config import Config


def load_image_pair(before: Path, after: Path):
    from ..media.io import load_image

    a, b = load_image(before), load_image(after)
    if a.size != b.size:
        raise DeltaV2AError(
            f"image pair sizes differ: {before} is {a.size[0]}x{a.size[1]}, {after} is {b.size[0]}x{b.size[1]} "
            "(an edit keeps the size; resize one of them first)")
    return a, b


def load_clip(path: Path, cfg: "Config") -> "np.ndarray":
    """A clip at the configured rate, cut to `audio.max_duration` (Appendix C: 20 s)."""
    from ..media.io import load_audio

    x, sr = load_audio(path, sample_rate=cfg.audio.sample_rate)
    return x[:, : int(cfg.audio.max_duration * sr)]


def embed_pair(kind: str, before: Path, after: Path, cfg: "Config") -> tuple["np.ndarray", "np.ndarray"]:
    """Embed both sides of a pair; audio pairs may differ in length (tails, playback rate)."""
    import numpy as np

    from .encoding import load_encoder

    if kind == "image":
        enc = load_encoder(cfg.encoders.image, "image")
        e = enc.encode_images(list(load_image_pair(before, after)))
    else:
        enc = load_encoder(cfg.encoders.audio, "audio")
        e = np.concatenate([enc.encode_audio([load_clip(p, cfg)], cfg.audio.sample_rate) for p in (before, after)])
    return e[0], e[1]
