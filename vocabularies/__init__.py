"""The built-in vocabulary data files (YAML); see README.md in this folder."""

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent
