"""The one plugin contract (issue 12, item 2): typed options for encoders and controllers,
`{name, options}` in the config (the old controller form still loads), `plugin-info` renders
any plugin's schema, and one audio-effect base whose sample-rate limits live on the `Param`."""

from __future__ import annotations

import json

import numpy as np
import pedalboard
import pytest
import yaml

from conftest import ROOT, run_cli
from deltav2a.api.effects import AudioEffect
from deltav2a.api.hookspecs import hookimpl
from deltav2a.api.params import Param
from deltav2a.api.registry import load_registry, reset_registry
from deltav2a.config import Config, ControllerConfig, dump_config, load_config, load_config_with
from deltav2a.errors import DeltaV2AError

QUICK = ROOT / "configs" / "quick.yaml"


def _one_line_error(res, *needles: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    for needle in needles:
        assert needle in res.stderr, res.stderr


# ------------------------------------------------------------------ options validation


@pytest.mark.parametrize("sets,needles", [
    (["controller.options.hiden_dims=[64]"],
     ["controller 'mlp' has no option 'hiden_dims'", "known: hidden_dims, dropout, gate_bias"]),
    (["controller.name=knn", "controller.options.k=0"], ["controller 'knn'", "option k=0"]),
    (["controller.kind=ar", "controller.options.dropout=lots"], ["controller 'ar'", "dropout='lots'"]),
    (["encoders.image.options.lexicon_verison=3"],
     ["encoders.image: encoder 'perceptual-image' has no option 'lexicon_verison'"]),
    (["encoders.audio=clap", "encoders.audio.options.batch_size=many"], ["encoder 'clap'", "batch_size='many'"]),
])
def test_bad_option_is_one_line_exit_2(sets, needles):
    args = [a for s in sets for a in ("--set", s)]
    _one_line_error(run_cli("config", "show", *args), *needles)


def test_bad_option_stops_run_before_anything_is_written(tmp_path):
    out = tmp_path / "never"
    res = run_cli("run", str(QUICK), "-o", str(out), "--set", "experiment.controllers=[mlp,knn]",
                  "--set", "experiment.options.knn.kk=3")
    _one_line_error(res, "experiment.options.knn: controller 'knn' has no option 'kk'")
    assert not out.exists()


def test_good_options_reach_the_plugin():
    from deltav2a.api.registry import get
    from deltav2a.style.encoding import load_encoder

    res = run_cli("config", "show", "--json", "--set", "controller.name=knn", "--set", "controller.options.k=3")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["controller"] == {"name": "knn", "options": {"k": 3},
                                                   "audio_condition_dropout": 0.0, "strength_input": True}
    opts = get("controller", "knn").parse_options({"k": "5"})  # YAML/CLI text is coerced
    assert opts.k == 5 and opts.max_records == 100_000
    enc = load_encoder("perceptual-audio", "audio", lexicon_version=2)  # a number is a version name
    assert enc.options == {"lexicon_version": "2"} and enc.dim == 23


# ------------------------------------------------------------------ the old controller form


OLD = {"kind": "mlp", "mlp": {"hidden_dims": [64, 32], "dropout": 0.3, "gate_bias": -2.0},
       "ar": {"condition_dim": 256, "hidden_dim": 512, "dropout": 0.1, "max_steps": 3,
              "label_smoothing": 0.03, "param_loss_weight": 50.0},
       "knn": {"k": 8, "style_weight": 1.0, "audio_weight": 0.25, "strength_weight": 1.0,
               "max_records": 100000},
       "audio_condition_dropout": 0.1}


def test_old_controller_form_is_normalised():
    cfg = Config.model_validate({"controller": OLD, "experiment": {"controllers": ["mlp", "ar", "knn"]}})
    # the named controller's changed values become its options, the others' experiment.options
    assert cfg.controller.name == "mlp" and cfg.controller.options == {"hidden_dims": [64, 32]}
    assert cfg.controller.audio_condition_dropout == 0.1
    assert cfg.experiment.options == {"ar": {"max_steps": 3}}
    assert cfg.controller_config("ar").options == {"max_steps": 3}
    assert cfg.controller_config("ar").audio_condition_dropout == 0.1
    assert cfg.controller_config("knn").options == {}
    # the normalised config is written in the new form and reads back the same
    text = dump_config(cfg)
    assert Config.model_validate(yaml.safe_load(text)) == cfg
    assert "options:\n    hidden_dims:" in text and "  kind: mlp" not in text


def test_stored_controller_config_picks_the_trained_controller():
    """An old model's controller.json stored the whole section with `kind` = the config's
    choice, not necessarily the controller it trained (an experiment trains several)."""
    ar = ControllerConfig.model_validate(OLD, context={"controller": "ar"})
    assert ar.name == "ar" and ar.options == {"max_steps": 3}
    assert ControllerConfig.model_validate(OLD).name == "mlp"


def test_old_set_key_and_old_files_still_load(tmp_path):
    assert load_config_with(QUICK, ["controller.kind=knn"]).controller.name == "knn"
    # the model directory shipped until decision 16.64 was written before issue 12
    # (kind/mlp/ar/knn sections); its config.yaml is kept as a fixture
    old_model = ROOT / "tests" / "data" / "model_config_pre_issue12.yaml"
    assert "kind: mlp" in old_model.read_text()
    assert load_config(old_model).controller.name == "mlp"
    old = tmp_path / "old.yaml"
    old.write_text("controller:\n  kind: ar\n  ar: {max_steps: 4}\n")
    res = run_cli("config", "show", "-c", str(old), "--set", "controller.options.hidden_dim=64")
    assert res.returncode == 0, res.stderr
    assert "name: ar" in res.stdout and "max_steps: 4" in res.stdout and "hidden_dim: 64" in res.stdout


def test_shipped_model_loads_with_its_own_options():
    """The shipped k-NN's stored options, not the plugin's defaults (k 8, E(A) weight 0.25,
    neighbours' parameters), are what loads (decision 9.153)."""
    from deltav2a.experiment.stages import load_model

    cfg, loaded = load_model(ROOT / "core" / "models" / "default")
    assert loaded.metadata.controller == "knn" and loaded.module.k == 32
    assert loaded.module.audio_weight == 0.0 and loaded.metadata.config["options"]["params_from"] == "head"


def test_untrusted_model_options_are_only_data(tmp_path):
    """A model directory's options are validated as plain values: a key that would switch on
    unsafe loading is refused for encoders and unknown to every controller."""
    from deltav2a.api.registry import get
    from deltav2a.style.encoding import model_config

    (tmp_path / "config.yaml").write_text(
        "encoders:\n  image: {name: clip, options: {allow_unsafe_checkpoint: true}}\n")
    with pytest.raises(DeltaV2AError, match="cannot enable unsafe checkpoint loading"):
        model_config(tmp_path)
    (tmp_path / "config.yaml").write_text("controller:\n  kind: knn\n  knn: {weights_only: false}\n")
    cfg = model_config(tmp_path)
    with pytest.raises(DeltaV2AError, match="controller 'knn' has no option 'weights_only'"):
        get("controller", "knn").parse_options(cfg.controller.options)


# ------------------------------------------------------------------ plugin-info


def test_plugin_info_json_of_every_kind():
    knn = json.loads(run_cli("plugin-info", "knn", "--json").stdout)
    k = next(o for o in knn["options"] if o["name"] == "k")
    assert k == {"name": "k", "type": "int", "default": 8, "doc": "neighbours that vote and average",
                 "ge": 1, "le": 512, "set": "controller.options.k"}
    assert knn["set_name"] == "controller.name=knn"
    clip = json.loads(run_cli("plugin-info", "clip", "--json").stdout)
    unsafe = next(o for o in clip["options"] if o["name"] == "allow_unsafe_checkpoint")
    assert unsafe["type"] == "bool" and unsafe["default"] is False
    assert unsafe["set"] == "encoders.image.options.allow_unsafe_checkpoint"
    lowpass = json.loads(run_cli("plugin-info", "lowpass", "--json").stdout)
    cutoff = lowpass["params"][0]
    assert cutoff["unit"] == "Hz" and cutoff["max_fraction_of_nyquist"] == 0.98 and cutoff["maximum"] == 20000.0
    v3 = json.loads(run_cli("plugin-info", "v3", "--json").stdout)
    assert v3["kind"] == "vocabulary" and len(v3["terms"]) == 24
    listed = json.loads(run_cli("list-plugins", "--json", "--kind", "controller").stdout)["plugins"]
    assert {o["name"] for o in next(p for p in listed if p["name"] == "ar")["options"]} >= {"max_steps"}


def test_plugin_info_human_tables():
    knn = run_cli("plugin-info", "knn").stdout
    assert "--set controller.options.NAME=VALUE" in knn and "int (ge 1, le 512)" in knn
    enc = run_cli("plugin-info", "perceptual-audio").stdout
    assert "encoders.audio.options" in enc and "lexicon_version" in enc and "str | null" in enc
    low = run_cli("plugin-info", "lowpass", env={"COLUMNS": "300"}).stdout  # one row per line
    assert "(held below 0.98 x the Nyquist frequency)" in low
    assert "options: none" in run_cli("plugin-info", "search").stdout
    # the docstring's source line breaks are not kept: at 300 columns a paragraph is one line
    wide = run_cli("plugin-info", "perceptual-audio", env={"COLUMNS": "300"}).stdout
    assert "flatness, five band energies, crest factor" in wide


# ------------------------------------------------------------------ sample-rate limits per Param


class _Darken(AudioEffect):
    """A third-party low-pass whose frequency is not called cutoff_hz: the limit is declared."""

    name = "test_darken"
    params = (Param("corner_hz", 100.0, 20000.0, default=20000.0, bypass=20000.0, scale="log", unit="Hz",
                    max_fraction_of_nyquist=0.98, doc="-3 dB frequency"),)

    def build(self, values):
        return pedalboard.LowpassFilter(cutoff_frequency_hz=float(values["corner_hz"]))


class _Plugin:
    @hookimpl
    def register_audio_effects(self, register):
        register(_Darken)


@pytest.fixture
def darken_registry():
    reset_registry(load_registry(extra=[(_Plugin(), "third_party")]))
    try:
        yield
    finally:
        reset_registry(None)


def test_declared_nyquist_limit_is_honoured_at_22k(darken_registry):
    from deltav2a.render.chain import AudioChain
    from deltav2a.render.settings import ChainSettings

    sr = 22050
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal((2, sr))).astype(np.float32)
    held = 0.98 * sr / 2
    # unguarded, JUCE's filter at 20 kHz > Nyquist renders NaN: what the limit prevents
    raw = pedalboard.Pedalboard([pedalboard.LowpassFilter(20000.0)])(x, sr)
    assert not np.isfinite(raw).all()
    expected = pedalboard.Pedalboard([pedalboard.LowpassFilter(held)])(x, sr)
    out = AudioChain(ChainSettings.parse(["test_darken:corner_hz=20000"]), tail="cut")(x, sr)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(_Darken().process(x, sr, corner_hz=20000.0), expected)
    # at 48 kHz the value is below the limit and passes unchanged
    assert _Darken().at_sample_rate(48000, {"corner_hz": 20000.0}) == {"corner_hz": 20000.0}


def test_param_limit_is_checked():
    with pytest.raises(ValueError, match="max_fraction_of_nyquist"):
        Param("f", 1.0, 10.0, default=1.0, bypass=1.0, max_fraction_of_nyquist=1.5)
