"""`OptionsRef`: a plugin's `Options` model named by import path, imported on first use.

Defining a pydantic model costs start-up time (pydantic itself, then building the model's
validator), and `deltav2a --help` and `list-plugins` import every plugin module. A plugin
may therefore keep its `Options` in a module of its own and write
`Options = OptionsRef("my_plugin.options:MyOptions")`: reading `cls.Options` imports that
module and returns the model class, so everything else (validation, `plugin-info`) sees an
ordinary pydantic model. Writing `Options = MyOptions` directly is just as valid; the
built-ins use the reference only to keep `--help` from importing pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping

    from .options import PluginOptions


class OptionsRef:
    """A class attribute that resolves `"package.module:Model"` when it is first read."""

    def __init__(self, target: str) -> None:
        module, sep, name = target.partition(":")
        if not sep or not module or not name:
            raise ValueError(f"OptionsRef({target!r}): expected 'package.module:ClassName'")
        self.target = target
        self._model: Any = None

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if self._model is None:
            module, _, name = self.target.partition(":")
            self._model = getattr(importlib.import_module(module), name)
        return self._model

    def __repr__(self) -> str:
        return f"OptionsRef({self.target!r})"


class OptionsPlugin:
    """What encoders and controllers share: `Options`, `parse_options` and `summary`.

    Kept here, free of pydantic, because the CLI imports every plugin class at start-up;
    `parse_options` imports pydantic only when options are actually checked.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    #: what the config's `options` may set (none by default); subclass `PluginOptions`
    Options: ClassVar["type[PluginOptions]"] = OptionsRef("deltav2a.api.options:PluginOptions")  # type: ignore[assignment]

    @classmethod
    def parse_options(cls, raw: "Mapping[str, Any] | None") -> "PluginOptions":
        """`raw` checked against `Options`; one-line DeltaV2AError naming the plugin and key."""
        from .options import validate_options  # pydantic: when options are used, not at import

        return validate_options(f"{cls.kind} '{cls.name}'", cls.Options, raw)

    @classmethod
    def summary(cls) -> str:
        from .effects import _first_line

        return _first_line(cls.__doc__)
