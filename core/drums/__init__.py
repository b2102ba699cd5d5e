"""Drum role assignment (research note 002) as a DeltaV2A task.

Each drum one-shot gets one of five musical roles (CORE kick, ACCENT snare/clap, MOTION
hat/cymbal, FILL tom/perc hit, TEXTURE ambience/FX/tail) from the note's DSP rules fused
with a text-prompt score read through any registered audio encoder's text side, then
guarded and pooled. Modules: config (pydantic, the note's defaults), types, preprocess,
features, rules, text, fusion (fusion + guards), pools, assigner (`RoleAssigner`),
evaluation. Nothing heavy is imported here: `from deltav2a.drums import RoleAssigner`
costs numpy only when an assigner is used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RoleAssigner", "RoleAssignerConfig", "Role", "SampleResult", "RolePools", "build_pools"]


def __getattr__(name: str) -> Any:
    if name == "RoleAssigner":
        from .assigner import RoleAssigner
        return RoleAssigner
    if name == "RoleAssignerConfig":
        from .config import RoleAssignerConfig
        return RoleAssignerConfig
    if name in ("Role", "SampleResult", "RolePools"):
        from . import types
        return getattr(types, name)
    if name == "build_pools":
        from .pools import build_pools
        return build_pools
    raise AttributeError(name)
