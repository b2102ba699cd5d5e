"""Built-in image effects (registered through the deltav2a entry points).

Importing this package stays cheap: the effect module only imports Wand inside methods,
and it is imported here only when the hook runs.
"""

from deltav2a.api.hookspecs import hookimpl


@hookimpl
def register_image_effects(register):
    from .wand_effects import ALL_EFFECTS

    for effect in ALL_EFFECTS:
        register(effect)
