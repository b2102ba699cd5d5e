"""`deltav2a plugin new NAME --kind KIND`: a ready-to-install plugin package with its own test.

The templates (`templates/KIND.py` and `templates/test_KIND.py`) are the smallest working
plugin of each kind, written like the examples in docs/plugins.md; `$name`, `$module`,
`$cls`, `$options` and `$dist` are filled in with `string.Template`. Nothing is overwritten: the target
folder must not exist.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DeltaV2AError

KINDS = ("audio_effect", "image_effect", "vocabulary", "encoder", "controller")
HOOKS = {"audio_effect": "register_audio_effects", "image_effect": "register_image_effects",
         "vocabulary": "register_vocabularies", "encoder": "register_encoders",
         "controller": "register_controllers"}
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
TEMPLATES = Path(__file__).parent / "templates"

PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "A DeltaV2A $label plugin: $name."
requires-python = ">=3.11"
dependencies = ["deltav2a"]

[project.optional-dependencies]
test = ["pytest"]

# The line that makes DeltaV2A find this package (see docs/plugins.md).
[project.entry-points.deltav2a]
$module = "$module"

[tool.setuptools]
packages = ["$module"]
"""

README = """# $dist

A DeltaV2A $label plugin registering `$name`, made by `deltav2a plugin new $name --kind $kind`.

    pip install -e .            # deltav2a list-plugins now shows it
    deltav2a plugin-info $name
    python -m pytest tests      # its own test

Edit `$module/__init__.py`; docs/plugins.md in DeltaV2A explains each part.
"""


def names_for(name: str) -> dict[str, str]:
    if not NAME_RE.match(name):
        raise DeltaV2AError(f"plugin name {name!r} must be lower case letters, digits, '-' or '_', "
                            "start with a letter and have at most 40 characters")
    module = "deltav2a_" + name.replace("-", "_")
    cls = "".join(part.capitalize() for part in re.split(r"[-_]", name))
    return {"name": name, "module": module, "cls": cls, "options": cls + "Options",
            "dist": "deltav2a-" + name.replace("_", "-")}


def scaffold(name: str, kind: str, out: Path) -> list[Path]:
    """Write the package for plugin `name` of `kind` into the new folder `out`."""
    from string import Template

    from ..atomic import write_text

    kind = kind.replace("-", "_")
    if kind not in KINDS:
        raise DeltaV2AError(f"unknown plugin kind '{kind}' (known: {', '.join(KINDS)})")
    if out.exists():
        raise DeltaV2AError(f"{out} already exists: choose a new folder (nothing is overwritten)")
    values = {**names_for(name), "kind": kind, "label": kind.replace("_", " "), "hook": HOOKS[kind]}
    files = {
        out / "pyproject.toml": PYPROJECT,
        out / "README.md": README,
        out / values["module"] / "__init__.py": (TEMPLATES / f"{kind}.py.txt").read_text(),
        out / "tests" / f"test_{values['module']}.py": (TEMPLATES / f"test_{kind}.py.txt").read_text(),
    }
    written = []
    for path, text in files.items():
        write_text(path, Template(text).substitute(values))
        written.append(path)
    return written
