"""What every built controller module does: (style label, audio embedding) -> effects and parameters.

A controller plugin registers a light class (`api/controllers.py`: no torch at import time,
so listing plugins stays fast) whose `build()` returns a `torch.nn.Module`. Every built module follows the
same small protocol, so the trainer, the evaluation and inference never need to know which
architecture they hold:

* ``module.layout`` - the `ParamLayout` it predicts (E effects, P parameters);
* ``module.style_dim`` / ``module.audio_dim`` - input sizes;
* ``module.compute_loss(style, audio, active, params, loss_cfg)`` -> ``(loss, parts)``:
  the training objective on one batch (``parts`` maps names to floats for logging);
* ``module.predict_batch(style, audio)`` -> ``(activity, params)``: (N, E) activity
  probabilities in [0, 1] and (N, P) normalised parameters in [0, 1], in eval mode.

A controller class with ``fits_data = True`` (knn) builds a module with
``fit(data, seed)`` instead of ``compute_loss``: "training" stores the records as buffers,
which are saved through the same safetensors path.

`predict()` wraps `predict_batch` for numpy arrays of any length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from .layout import ParamLayout
    from ..render.settings import ChainSettings


@dataclass
class Prediction:
    """What every controller returns: activity probabilities and normalised parameters."""

    activity: "np.ndarray"  # (N, E) float32 in [0, 1]
    params: "np.ndarray"    # (N, P) float32 in [0, 1], ungated

    def active(self, thresholds: "float | Sequence[float] | np.ndarray | Mapping[str, float]",
               layout: "ParamLayout") -> "np.ndarray":
        """(N, E) booleans: an effect is active when its probability reaches its threshold."""
        return self.activity >= threshold_vector(thresholds, layout)[None, :]

    def gated(self, thresholds: "float | Sequence[float] | np.ndarray | Mapping[str, float]",
              layout: "ParamLayout") -> "np.ndarray":
        """Parameters with predicted-inactive effects at bypass (what would be rendered)."""
        return layout.gate(self.params, self.active(thresholds, layout))

    def settings(self, index: int, thresholds: Any, layout: "ParamLayout") -> "ChainSettings":
        """Record `index` as `ChainSettings` (raw values) of the active effects, chain order."""
        act = self.active(thresholds, layout)[index]
        return layout.to_raw(self.params[index], act)


def with_strength(style: "np.ndarray", strength: "np.ndarray | float | None") -> "np.ndarray":
    """The controller's style input: (N, K) labels, plus a strength column when given.

    A controller trained with `controller.strength_input` has style_dim K + 1; the extra
    input is the edit strength in [0, 1] (records: `strength.chain_strength`; images: the
    model's image StrengthMap), so predicted parameters can scale with the edit.
    """
    import numpy as np

    style = np.atleast_2d(np.asarray(style, dtype=np.float32))
    if strength is None:
        return style
    s = np.broadcast_to(np.asarray(strength, dtype=np.float32).reshape(-1, 1), (style.shape[0], 1))
    return np.ascontiguousarray(np.concatenate([style, s], axis=1))


def threshold_vector(thresholds: Any, layout: "ParamLayout") -> "np.ndarray":
    """A scalar, a per-effect sequence or an {effect: threshold} mapping -> (E,) float32."""
    import numpy as np

    if isinstance(thresholds, Mapping):
        missing = [e for e in layout.effects if e not in thresholds]
        if missing:
            raise DeltaV2AError(f"no activity threshold for effect(s): {', '.join(missing)}")
        vec = np.asarray([float(thresholds[e]) for e in layout.effects], dtype=np.float32)
    else:
        vec = np.asarray(thresholds, dtype=np.float32)
        if vec.ndim == 0:
            vec = np.full(layout.n_effects, float(vec), dtype=np.float32)
    if vec.shape != (layout.n_effects,):
        raise DeltaV2AError(f"expected {layout.n_effects} activity thresholds, got {vec.shape[0]}")
    if not np.all((vec >= 0) & (vec <= 1)):
        raise DeltaV2AError("activity thresholds must lie in [0, 1]")
    return vec


def _check_inputs(module: Any, style: "np.ndarray", audio: "np.ndarray") -> tuple:
    import numpy as np

    style = np.asarray(style, dtype=np.float32)
    audio = np.asarray(audio, dtype=np.float32)
    if style.ndim != 2 or style.shape[1] != module.style_dim:
        raise DeltaV2AError(
            f"style labels must be (N, {module.style_dim}), got {tuple(style.shape)}: "
            "was the controller trained with another vocabulary?")
    if audio.ndim != 2 or audio.shape[1] != module.audio_dim:
        raise DeltaV2AError(
            f"audio embeddings must be (N, {module.audio_dim}), got {tuple(audio.shape)}: "
            "was the controller trained with another audio encoder?")
    if style.shape[0] != audio.shape[0]:
        raise DeltaV2AError(
            f"{style.shape[0]} style labels but {audio.shape[0]} audio embeddings")
    if not (np.isfinite(style).all() and np.isfinite(audio).all()):
        raise DeltaV2AError("style labels or audio embeddings contain NaN or infinity")
    return style, audio


def predict(module: Any, style: "np.ndarray", audio: "np.ndarray",
            batch_size: int = 4096) -> Prediction:
    """Run any built controller on numpy inputs, in eval mode and without gradients.

    The module's train/eval mode is restored afterwards, so the trainer can call this for
    validation in the middle of an epoch loop.
    """
    import numpy as np

    style, audio = _check_inputs(module, style, audio)
    arrays = getattr(module, "predict_arrays", None)
    if arrays is not None:  # a torch-free predictor (Controller.inference)
        activity, params = arrays(style, audio)
        return Prediction(np.asarray(activity, np.float32), np.asarray(params, np.float32))
    import torch

    was_training = module.training
    module.eval()
    acts, pars = [], []
    try:
        with torch.no_grad():
            for i in range(0, style.shape[0], batch_size):
                # torch.tensor copies: arrays read from Parquet are read-only
                a, p = module.predict_batch(torch.tensor(style[i:i + batch_size]),
                                            torch.tensor(audio[i:i + batch_size]))
                acts.append(a.detach().cpu().numpy().astype(np.float32))
                pars.append(p.detach().cpu().numpy().astype(np.float32))
    finally:
        module.train(was_training)
    layout = module.layout
    if not acts:
        return Prediction(np.zeros((0, layout.n_effects), np.float32),
                          np.zeros((0, layout.n_params), np.float32))
    return Prediction(np.concatenate(acts), np.concatenate(pars))


def count_parameters(module: Any) -> int:
    """Trainable parameters (what the notes' "191K params" counts)."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))
