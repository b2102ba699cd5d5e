"""The controller plugin contract: a registered class with a name, a description and `build()`.

The class is light (torch is imported by `build()`, never at registration); what the built
module must do is described in `model/controller.py`, which the trainer and inference use.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, ClassVar

from .effects import _first_line

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..config import ControllerConfig
    # `ParamLayout` (model/layout.py) is named in `build()` as a type only: api imports no
    # layer above it


class Controller:
    """Base class of registered controllers: a name, a description and a module factory."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "controller"
    #: False for controllers that need no training (the `search` controller)
    trainable: ClassVar[bool] = True
    # True: the built module has `fit(data, seed)` that stores the training records (knn);
    # the trainer calls it once instead of running gradient epochs
    fits_data: ClassVar[bool] = False

    @classmethod
    def summary(cls) -> str:
        return _first_line(cls.__doc__)

    @classmethod
    def describe(cls) -> dict:
        return {"name": cls.name, "kind": cls.kind, "summary": cls.summary(),
                "doc": inspect.cleandoc(cls.__doc__ or ""), "params": []}

    @classmethod
    def build(cls, style_dim: int, audio_dim: int, layout: "ParamLayout",
              cfg: "ControllerConfig") -> "torch.nn.Module":  # pragma: no cover - abstract
        """A freshly initialised module (seed torch before calling for reproducible weights)."""
        raise NotImplementedError


def get_controller(name: str) -> type[Controller]:
    from . import registry

    return registry.get("controller", name)
