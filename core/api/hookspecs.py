"""The five plugin kinds, plus CLI commands, as pluggy hooks.

Each hook receives a `register` callable, as in Simon Willison's `llm`: a plugin calls it
once per thing it provides. Registering must stay cheap: pass classes or small spec
objects, never load models or import torch here.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT = "deltav2a"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_image_effects(register: Callable[[type], None]) -> None:
    """Register `deltav2a.api.effects.ImageEffect` subclasses."""


@hookspec
def register_audio_effects(register: Callable[[type], None]) -> None:
    """Register `deltav2a.api.effects.AudioEffect` subclasses."""


@hookspec
def register_encoders(register: Callable[[type], None]) -> None:
    """Register `deltav2a.api.encoders.Encoder` subclasses (image or audio side)."""


@hookspec
def register_vocabularies(register: Callable[[Any], None]) -> None:
    """Register vocabularies: a path to a YAML file, or a `deltav2a.api.vocabulary.Vocabulary`."""


@hookspec
def register_controllers(register: Callable[[type], None]) -> None:
    """Register controller classes (style label + audio embedding -> effects)."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the `deltav2a` typer app."""
