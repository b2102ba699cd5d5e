"""DeltaV2A: transition alignment between images and audio.

Importing this package is cheap on purpose (no numpy, torch or encoders): the CLI's
start-up time depends on it.
"""

__version__ = "0.1.0"

from .errors import DeltaV2AError

__all__ = ["DeltaV2AError", "__version__"]
