"""Plugin options: one pydantic model per plugin class, validated with one-line errors.

Every encoder and controller declares what a user may set as `Options`, a subclass of
`PluginOptions` (unknown keys are refused). The config holds `{name, options}` for both kinds
(`encoders.image`, `encoders.audio`, `controller`), so a third-party plugin gets options,
defaults, validation and a `plugin-info` table exactly as the built-ins do. Effects declare
`Param`s instead (api/params.py): their values are numbers a controller predicts.

Validation only checks and coerces plain values: it never imports, opens or loads anything,
so options read from an untrusted model directory cannot do more than the plugin's own
checks allow (docs/security.md; `style/encoding.py` `model_config` refuses the unsafe keys).
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable

    from ..config import Config


class PluginOptions(BaseModel):
    """Base of every plugin's `Options`: unknown keys are errors, values are validated.

    Describe each field with `Field(default, description="...")`: `plugin-info` shows the
    type, the default and the description.
    """

    model_config = ConfigDict(extra="forbid")


def validate_options(label: str, model: type[PluginOptions], raw: Mapping[str, Any] | None) -> PluginOptions:
    """`raw` as an instance of `model`; a DeltaV2AError naming `label` and the bad key otherwise.

    `label` names the plugin (`encoder 'clip'`, `controller 'mlp'`).
    """
    if raw is not None and not isinstance(raw, Mapping):
        raise DeltaV2AError(f"{label}: options must be a mapping of NAME: VALUE, got {type(raw).__name__}")
    try:
        return model.model_validate(dict(raw or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(x) for x in err["loc"]) or "(options)"
        known = ", ".join(model.model_fields) or "none"
        if err["type"] == "extra_forbidden":
            raise DeltaV2AError(f"{label} has no option '{key}' (known: {known})") from None
        value = err.get("input")
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise DeltaV2AError(f"{label}: option {key}={shown}: {err['msg']}") from None


def _type_name(annotation: Any) -> str:
    """`int`, `list[int]`, `str | None` ... for people, not for Python."""
    if annotation is None or annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is typing.Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def describe_options(model: type[PluginOptions] | None) -> list[dict]:
    """Name, type, default, description (and numeric bounds) of each option, in order."""
    if model is None:
        return []
    out = []
    for name, field in model.model_fields.items():
        row: dict[str, Any] = {"name": name, "type": _type_name(field.annotation),
                               "default": field.get_default(call_default_factory=True),
                               "doc": field.description or ""}
        for meta in field.metadata:  # annotated_types bounds (Field(ge=..., le=...))
            for bound in ("ge", "gt", "le", "lt"):
                if getattr(meta, bound, None) is not None:
                    row[bound] = getattr(meta, bound)
        out.append(row)
    return out


def check_config_options(cfg: "Config", controllers: "Iterable[str]" = ()) -> None:
    """Validate the encoders' and controllers' options of a config against their plugins.

    Called before work starts (`config show`, `train`, `run`'s preflight), so a typo in an
    option is one line naming the config key, not a failure halfway through a run. The
    controllers are `controller.name` plus `controllers` (what an experiment trains).
    """
    from .registry import get

    for side in ("image", "audio"):
        choice = getattr(cfg.encoders, side)
        try:
            get("encoder", choice.name).parse_options(choice.options)
        except DeltaV2AError as exc:
            raise DeltaV2AError(f"encoders.{side}: {exc}") from None
    for name in dict.fromkeys([cfg.controller.name, *controllers]):
        where = "controller" if name == cfg.controller.name else f"experiment.options.{name}"
        try:
            get("controller", name).parse_options(cfg.controller_config(name).options)
        except DeltaV2AError as exc:
            raise DeltaV2AError(f"{where}: {exc}") from None
