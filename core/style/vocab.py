"""Vocabularies by name: the registry's vocabularies, or a YAML file by path.

The vocabulary type itself is part of the plugin contract (`api/vocabulary.py`), since
plugins register vocabularies; looking one up by name needs the registry, so it lives
one layer up, here (the registry and the type no longer import each other).
"""

from __future__ import annotations

from pathlib import Path

from ..api.vocabulary import Vocabulary, parse_vocabulary


def load_vocabulary(name_or_path: str) -> Vocabulary:
    """A registered vocabulary by name, or a YAML file by path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return parse_vocabulary(p)
    from ..api.registry import get

    obj = get("vocabulary", name_or_path)
    if isinstance(obj, Vocabulary):
        return obj
    return obj.load()
