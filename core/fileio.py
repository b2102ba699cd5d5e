"""Reading the project's data files (YAML, checksums) with one-line errors."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, TypeVar

from .errors import DeltaV2AError

M = TypeVar("M")


def read_yaml(path: Path, what: str, allow_empty: bool = False) -> dict | None:
    """A YAML mapping from `path`; `what` names the file in errors ("vocabulary", ...)."""
    import yaml

    # libyaml's parser when present (same safe constructor, ~10x faster: list-plugins reads
    # every vocabulary for its summary)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        raw = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
    except OSError as exc:
        raise DeltaV2AError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DeltaV2AError(f"{what} {path} is not a text file (not UTF-8)") from None
    except yaml.YAMLError as exc:
        raise DeltaV2AError(f"{what} {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if raw is None and allow_empty:
        return None
    if not isinstance(raw, dict):
        raise DeltaV2AError(f"{what} {path} must be a mapping at the top level")
    return raw


def read_json(path: Path, what: str) -> dict:
    """A JSON object from `path`; `what` names the file in errors ("splits file", ...)."""
    import json

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DeltaV2AError(f"cannot read {what} {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DeltaV2AError(f"{what} {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise DeltaV2AError(f"{what} {path} must hold a JSON object")
    return raw


def first_error(exc: Any) -> str:
    """The first problem of a pydantic ValidationError as `loc.path: message (+N more)`."""
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{loc}: {err['msg']}{more}"


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_model_yaml(model: type[M], path: str | Path | None, what: str,
                    overrides: dict[str, Any] | None = None) -> M:
    """Defaults of a pydantic `model`, then the YAML file (if any), then `overrides`."""
    from pydantic import ValidationError

    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise DeltaV2AError(f"{what} file not found: {p}")
        data = read_yaml(p, what, allow_empty=True) or {}
    if overrides:
        data = merge(data, overrides)
    try:
        return model.model_validate(data)  # type: ignore[attr-defined]
    except ValidationError as exc:
        where = f"{what} {path}" if path is not None else what
        raise DeltaV2AError(f"{where}: {first_error(exc)}") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
