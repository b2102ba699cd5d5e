"""Built-in controllers (registered through the deltav2a entry points).

The registered classes are light: torch and the network modules (`mlp.py`, `ar.py`) are
imported only when `build()` is called (`knn.py` too), so listing plugins stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deltav2a.api.controllers import Controller
from deltav2a.api.hookspecs import hookimpl
from deltav2a.api.optionsref import OptionsRef

from .search import SearchController

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from deltav2a.config import ControllerConfig
    from deltav2a.model.layout import ParamLayout


class MLPController(Controller):
    """Style-label MLP with a gated E(A) residual: the notes' final controller (~191K params).

    Three Linear-LayerNorm-ReLU-Dropout blocks (256, 256, 128) on the style label; E(A)
    enters through one such block, scaled by a sigmoid gate computed from the style
    features whose bias starts at -2 (gate about 0.12). An activity head gives one logit per
    effect, a sigmoid parameter head one normalised position per parameter.
    """

    name = "mlp"
    Options = OptionsRef("deltav2a_plugins.controllers.options:MLPOptions")

    @classmethod
    def build(cls, style_dim: int, audio_dim: int, layout: "ParamLayout",
              cfg: "ControllerConfig") -> "torch.nn.Module":
        from .mlp import MLPNet

        return MLPNet(style_dim, audio_dim, layout, cls.parse_options(cfg.options))


class ARController(Controller):
    """Autoregressive controller (notes, Appendix E): picks effects one by one, then their params.

    A condition vector f(style, E(A)) is updated by a GRU cell with each chosen effect and its
    parameters; each step predicts the next effect or end-of-sequence (cross-entropy with
    label smoothing) and that effect's parameters (Huber). Greedy decoding, at most
    `max_steps` effects. Activity output is 1 for chosen effects, 0 otherwise.
    """

    name = "ar"
    Options = OptionsRef("deltav2a_plugins.controllers.options:AROptions")

    @classmethod
    def build(cls, style_dim: int, audio_dim: int, layout: "ParamLayout",
              cfg: "ControllerConfig") -> "torch.nn.Module":
        from .ar import ARNet

        return ARNet(style_dim, audio_dim, layout, cls.parse_options(cfg.options))


class KNNController(Controller):
    """k-nearest-neighbour baseline over the training database (no gradient training).

    Fitting stores the database's labels, E(A), activity, parameters (and strength, when the
    database has it); a query takes its k nearest records by a weighted Hellinger distance of
    labels + standardised E(A) distance (+ strength difference). Activity is the neighbours'
    vote, each parameter the mean over the neighbours where its effect is active.
    """

    name = "knn"
    Options = OptionsRef("deltav2a_plugins.controllers.options:KNNOptions")
    fits_data = True

    @classmethod
    def build(cls, style_dim: int, audio_dim: int, layout: "ParamLayout",
              cfg: "ControllerConfig") -> "torch.nn.Module":
        from .knn import KNNNet

        return KNNNet(style_dim, audio_dim, layout, cls.parse_options(cfg.options))

    @classmethod
    def inference(cls, style_dim: int, audio_dim: int, layout: "ParamLayout", cfg: "ControllerConfig",
                  state, where: str):
        """The stored records as numpy arrays: a transfer needs no torch (knn_arrays.py)."""
        from .knn_arrays import KNNArrays

        return KNNArrays(style_dim, audio_dim, layout, cls.parse_options(cfg.options), state, where)


@hookimpl
def register_controllers(register):
    register(MLPController)
    register(ARController)
    register(SearchController)
    register(KNNController)
