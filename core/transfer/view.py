"""The one place the web demo and the study touch the transfer model.

Everything else in `deltav2a.web` and `deltav2a.study` reads a `TransferView`, so when the
transfer internals change (typed labels, effect plans) only `run_transfer` needs editing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL.Image import Image as PILImage

    from ..render.settings import ChainSettings


@dataclass
class TransferView:
    """What a page or a study case shows of one transfer."""

    audio: "np.ndarray"
    sample_rate: int
    sidecar: dict
    delta_norm: float
    confidence: float
    strength: float
    label: dict[str, float]
    top: list[dict]
    effects: "ChainSettings"  # the rendered chain (`to_records()` for the page and the study's JSON)


def load_model(model_dir: str | Path | None) -> Any:
    from .pipeline import TransferModel

    return TransferModel(model_dir)


def run_transfer(model: Any, before: "PILImage", after: "PILImage", audio: "np.ndarray",
                 sample_rate: int) -> TransferView:
    """model.transfer(...) -> TransferView; strength comes from the sidecar when the model
    reports one, else the calibration confidence (what today's model scales parameters by)."""
    res = model.transfer(before, after, audio, sample_rate)
    sc = res.sidecar
    st = sc["style"]
    strength = st.get("strength")
    if strength is None:
        strength = st["confidence"]
    return TransferView(
        audio=res.audio, sample_rate=int(res.sample_rate), sidecar=sc,
        delta_norm=float(st["delta_norm"]), confidence=float(st["confidence"]),
        strength=float(strength), label={k: float(v) for k, v in st["label"].items()},
        top=list(st["top"]), effects=res.plan.settings)


def image_effect_names(model: Any) -> list[str]:
    """The image effects the model was trained with (the page offers these first)."""
    return list(model.cfg.effects.image)
