"""The plugin system: discovery, isolation of broken plugins, conflicts, restriction, cost."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import run_cli

BUILTIN_AUDIO = {"lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "stutter", "playback_rate",
                 "narrowband", "smear", "scatter"}
BUILTIN_IMAGE = {"adaptive_blur", "motion_blur", "adaptive_sharpen", "add_noise", "spread", "sepia_tone", "solarize"}


def make_dist(site: Path, dist: str, module: str, source: str, ep_name: str | None = None) -> None:
    """A minimal installed distribution: a module plus a dist-info with a deltav2a entry point."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[deltav2a]\n{ep_name or module} = {module}\n")


GOOD = """
from deltav2a.api.hookspecs import hookimpl
from deltav2a.api.effects import ImageEffect

class Invert(ImageEffect):
    '''Invert every channel (a test effect).'''
    name = "test_invert"
    def render(self, img, intensity):
        img.negate()

@hookimpl
def register_image_effects(register):
    register(Invert)

@hookimpl
def register_commands(cli):
    @cli.command("hello-plugin")
    def hello():
        '''Say hello from a plugin.'''
        print("hello from a plugin")
"""

BROKEN_IMPORT = "raise ImportError('this plugin is broken on purpose')\n"

BROKEN_HOOK = """
from deltav2a.api.hookspecs import hookimpl
from deltav2a.api.effects import ImageEffect

class Half(ImageEffect):
    '''Registered before the hook fails: must not leak into the registry.'''
    name = "test_half_registered"

@hookimpl
def register_image_effects(register):
    register(Half)
    raise RuntimeError("hook exploded")
"""

DUPLICATE = """
from deltav2a.api.hookspecs import hookimpl
from deltav2a.api.effects import AudioEffect

class Reverb(AudioEffect):
    '''A second effect called reverb.'''
    name = "reverb"

@hookimpl
def register_audio_effects(register):
    register(Reverb)
"""


@pytest.fixture
def site(tmp_path):
    s = tmp_path / "site"
    s.mkdir()
    return s


def listing(site: Path, **env):
    res = run_cli("list-plugins", "--json", env={"PYTHONPATH": str(site), **env})
    return res, (json.loads(res.stdout) if res.returncode == 0 else None)


def test_builtins_register_through_entry_points():
    from deltav2a.api.registry import get_registry

    reg = get_registry()
    assert BUILTIN_AUDIO <= set(reg.names("audio_effect"))
    assert BUILTIN_IMAGE <= set(reg.names("image_effect"))
    assert {"v1", "v2", "v3"} <= set(reg.names("vocabulary"))
    for rec in reg.all():
        assert rec.distribution == "deltav2a", rec
        assert rec.summary, f"{rec.kind} {rec.name} has no summary"
    assert reg.failures == []


def test_broken_plugins_are_isolated_and_reported(site):
    make_dist(site, "good-plugin", "good_plugin", GOOD)
    make_dist(site, "broken-import", "broken_import", BROKEN_IMPORT)
    make_dist(site, "broken-hook", "broken_hook", BROKEN_HOOK)
    res, data = listing(site)
    assert res.returncode == 0, res.stderr
    names = {p["name"] for p in data["plugins"]}
    assert "test_invert" in names and BUILTIN_AUDIO <= names
    assert "test_half_registered" not in names
    errors = {e["distribution"]: e["error"] for e in data["errors"]}
    assert "ImportError" in errors["broken-import"] and "broken on purpose" in errors["broken-import"]
    assert "hook exploded" in errors["broken-hook"]
    warnings = [l for l in res.stderr.splitlines() if l.startswith("deltav2a: warning")]
    assert len(warnings) == 2, res.stderr
    # the table view lists them too, and the plugin's command works
    table = run_cli("list-plugins", env={"PYTHONPATH": str(site)})
    assert table.returncode == 0 and "broken-import" in table.stdout
    hello = run_cli("hello-plugin", env={"PYTHONPATH": str(site)})
    assert hello.returncode == 0 and "hello from a plugin" in hello.stdout


def test_strict_mode_raises(site):
    make_dist(site, "broken-import", "broken_import", BROKEN_IMPORT)
    res = run_cli("list-plugins", env={"PYTHONPATH": str(site), "DELTAV2A_STRICT_PLUGINS": "1"})
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert "broken_import" in res.stderr and "broken on purpose" in res.stderr


def test_duplicate_names_name_both_distributions(site):
    make_dist(site, "dup-plugin", "dup_plugin", DUPLICATE)
    res, data = listing(site)
    assert res.returncode == 0
    msg = " ".join(e["error"] for e in data["errors"])
    assert "reverb" in msg and "deltav2a" in msg and "dup-plugin" in msg
    # using the ambiguous name is a clear one-line error, other effects still work
    info = run_cli("plugin-info", "reverb", "--kind", "audio_effect", env={"PYTHONPATH": str(site)})
    assert info.returncode == 2 and "dup-plugin" in info.stderr and "Traceback" not in info.stderr
    ok = run_cli("plugin-info", "lowpass", env={"PYTHONPATH": str(site)})
    assert ok.returncode == 0


def test_load_only_named_plugins(site):
    make_dist(site, "good-plugin", "good_plugin", GOOD)
    make_dist(site, "broken-import", "broken_import", BROKEN_IMPORT)
    res, data = listing(site, DELTAV2A_PLUGINS="good-plugin")
    assert {p["name"] for p in data["plugins"]} == {"test_invert"}
    assert data["errors"] == []
    res, data = listing(site, DELTAV2A_PLUGINS="")
    assert data["plugins"] == []


def test_in_process_registration_and_kind_filter():
    from deltav2a.api.registry import load_registry

    import importlib.util
    import types

    mod = types.ModuleType("inproc")
    exec(GOOD, mod.__dict__)
    reg = load_registry(extra=[(mod, "inproc")], entry_points=False)
    assert reg.names("image_effect") == ["test_invert"]
    assert reg.record("image_effect", "test_invert").distribution == "(in-process)"


def test_user_directory_vocabulary(tmp_path, monkeypatch):
    v3 = Path(__file__).resolve().parents[1] / "vocabularies" / "v3.yaml"
    home = tmp_path / "home"
    (home / "vocabularies").mkdir(parents=True)
    text = v3.read_text().replace("name: v3", "name: mine")
    (home / "vocabularies" / "mine.yaml").write_text(text)
    res = run_cli("vocab", "show", "mine", "--json", env={"DELTAV2A_HOME": str(home)})
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["terms"][:2] == ["granular", "polished"]
    (home / "vocabularies" / "broken.yaml").write_text("terms: [a, a]\n")
    res = run_cli("vocab", "show", "broken", env={"DELTAV2A_HOME": str(home)})
    assert res.returncode == 2 and "broken.yaml" in res.stderr and "Traceback" not in res.stderr


def test_listing_plugins_imports_nothing_heavy():
    code = textwrap.dedent("""
        import sys, io, contextlib
        from deltav2a.cli.main import main
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            try:
                main(["list-plugins", "--json"])
            except SystemExit as e:
                assert e.code == 0, e.code
        heavy = sorted(m for m in ("torch", "numpy", "wand", "pedalboard", "open_clip",
                                   "laion_clap", "transformers", "scipy", "PIL") if m in sys.modules)
        print(",".join(heavy))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"heavy modules imported: {res.stdout}"


def test_plugin_info_shows_parameters():
    res = run_cli("plugin-info", "reverb", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    names = [p["name"] for p in info["params"]]
    assert names == ["room_size", "damping", "wet_level", "dry_level"]
    for p in info["params"]:
        assert {"minimum", "maximum", "scale", "bypass", "default"} <= set(p)
    res = run_cli("plugin-info", "no_such_thing")
    assert res.returncode == 2 and "no plugin named" in res.stderr


@pytest.mark.parametrize("args,absent", [
    # --help loads every plugin (they may add commands) but validates no options: no pydantic
    (["--help"], ("torch", "numpy", "pedalboard", "pydantic", "rich.table", "yaml")),
    # the table is plain text: rich's console and tables cost more than the rest of the listing
    (["list-plugins"], ("torch", "numpy", "pedalboard", "rich.table", "rich.console")),
])
def test_start_up_imports_stay_light(args, absent):
    """Issue 12's start-up budget (< 0.3 s): what `--help` and `list-plugins` must not import."""
    code = textwrap.dedent(f"""
        import sys, io, contextlib
        from deltav2a.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main({args!r})
            except SystemExit as e:
                assert e.code in (0, None), e.code
        print(",".join(m for m in {absent!r} if m in sys.modules))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"imported: {res.stdout}"
