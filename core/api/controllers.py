"""The controller plugin contract: a registered class with a name, a description and `build()`.

The class is light (torch is imported by `build()`, never at registration); what the built
module must do is described in `model/controller.py`, which the trainer and inference use.
Options are a `PluginOptions` model (`Options`, api/options.py); the config holds
`controller: {name, options}`, and `build()` reads them with `cls.parse_options(cfg.options)`.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from .optionsref import OptionsPlugin

if TYPE_CHECKING:  # pragma: no cover
    from .options import PluginOptions
    from collections.abc import Mapping

    import numpy as np
    import torch

    from ..config import ControllerConfig
    # `ParamLayout` (model/layout.py) is named in `build()` as a type only: api imports no
    # layer above it


class Controller(OptionsPlugin):
    """Base class of registered controllers: a name, a description and a module factory."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "controller"
    #: False for controllers that need no training (the `search` controller)
    trainable: ClassVar[bool] = True
    # True: the built module has `fit(data, seed)` that stores the training records (knn);
    # the trainer calls it once instead of running gradient epochs
    fits_data: ClassVar[bool] = False

    @classmethod
    def describe(cls) -> dict:
        from .options import describe_options

        return {"name": cls.name, "kind": cls.kind, "summary": cls.summary(),
                "doc": inspect.cleandoc(cls.__doc__ or ""), "params": [],
                "options": describe_options(cls.Options)}

    @classmethod
    def build(cls, style_dim: int, audio_dim: int, layout: "ParamLayout",
              cfg: "ControllerConfig") -> "torch.nn.Module":  # pragma: no cover - abstract
        """A freshly initialised module (seed torch before calling for reproducible weights)."""
        raise NotImplementedError

    @classmethod
    def inference(cls, style_dim: int, audio_dim: int, layout: "ParamLayout", cfg: "ControllerConfig",
                  state: "Mapping[str, np.ndarray]", where: str) -> Any:
        """A torch-free predictor built from the saved tensors (numpy), or None.

        A controller that can answer queries without torch (knn) returns an object with the
        module protocol's `layout`, `style_dim`, `audio_dim` and `predict_arrays(style, audio)
        -> (activity, params)` on numpy arrays; `load_controller(..., inference_only=True)`
        then never imports torch (~3 s and ~0.5 GiB resident with the CUDA build). None (the
        default): the torch module is built as usual.
        """
        return None


def get_controller(name: str) -> type[Controller]:
    from . import registry

    return registry.get("controller", name)
