"""User-facing errors.

Anything a user can cause (bad file, unknown effect, out-of-range value) raises
`DeltaV2AError`; the CLI prints it as one line and exits non-zero. Any other exception
is a bug and keeps its traceback.
"""


class DeltaV2AError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class PluginError(DeltaV2AError):
    """A plugin failed to load, register, or two plugins claim the same name."""
