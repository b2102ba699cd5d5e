"""Typed configuration (pydantic), loaded from YAML.

Defaults are the final hyperparameters of the research notes (seed 000, Appendix C,
"attempt14"), except the encoders: a fresh machine has no CLIP/CLAP weights, so the
weight-free perceptual pair is the default and `encoders: {image: clip, audio: clap}` is the
one switch back to the notes' setup (see `configs/paper.yaml`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from .executor import ExecutorConfig


#: the research chain's seven effects (what the notes' numbers were measured on)
NOTES_AUDIO_EFFECTS = ["lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "playback_rate"]
# issue 16 (decision 16.10): `stutter` joins the notes' seven so that "fragmented" is reachable
DEFAULT_AUDIO_EFFECTS = ["lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "stutter",
                         "playback_rate"]
DEFAULT_IMAGE_EFFECTS = ["adaptive_blur", "motion_blur", "adaptive_sharpen", "add_noise", "spread",
                         "sepia_tone", "solarize"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EncoderChoice(_Section):
    name: str
    options: dict[str, Any] = {}


class EncodersConfig(_Section):
    image: EncoderChoice = EncoderChoice(name="perceptual-image")
    audio: EncoderChoice = EncoderChoice(name="perceptual-audio")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        # `image: clip` is shorthand for `image: {name: clip}`
        if isinstance(data, dict):
            return {k: ({"name": v} if isinstance(v, str) else v) for k, v in data.items()}
        return data


class AudioConfig(_Section):
    sample_rate: int = Field(48_000, ge=1_000, le=384_000, description="rate clips are loaded at for encoding and rendering (media.MIN/MAX_SAMPLE_RATE)")
    max_duration: float = Field(20.0, gt=0, description="seconds of each clip that are used (Appendix C)")


class EffectsConfig(_Section):
    image: list[str] = list(DEFAULT_IMAGE_EFFECTS)
    audio: list[str] = list(DEFAULT_AUDIO_EFFECTS)
    chain_order: list[str] = list(DEFAULT_AUDIO_EFFECTS)
    tail: Literal["keep", "cut"] = Field("keep", description="reverb/delay tails when rendering A'")
    max_tail_seconds: float = Field(5.0, ge=0)


class DatabaseConfig(_Section):
    augmentations_per_clip: int = Field(60, ge=1)
    min_active: int = Field(1, ge=1)
    max_active: int = Field(2, ge=1, description="limitation 1 of the notes: set higher to lift it")
    param_min_intensity: float = Field(0.35, ge=0, le=1, description="limitation 2: 0 lifts the floor")
    param_mid_bypass_exclusion: float = Field(0.15, ge=0, le=0.5)
    randomize_chain_order: bool = Field(False, description="limitation 3: sample a chain order per record")
    delta_min_norm: float = Field(0.06, ge=0)
    delta_resample_attempts: int = Field(3, ge=0)
    temperature: float = Field(0.1, gt=0, description="softmax temperature of DB style labels")
    tail: Literal["keep", "cut"] = Field("cut", description="A' keeps A's length so E(A') is comparable")
    shard_size: int = Field(2048, ge=1)
    workers: int = Field(0, ge=0, description="0 = one per CPU core")
    seed: int | None = Field(None, ge=0, description="seed of the augmentation records only (default: the "
                             "experiment seed, which also draws the splits and the calibration half): "
                             "redraws the database with the splits fixed, to see how much a result "
                             "owes to one draw of the records (every split's, on the same clips)")

    def record_settings(self, *drop: str) -> dict[str, Any]:
        """This section as JSON without `seed` (a build records the seed it used on its own, so
        a config that never sets `database.seed` keys its databases and stages as before the
        option existed), less the keys in `drop`."""
        out = self.model_dump(mode="json")
        for k in ("seed", *drop):
            out.pop(k)
        return out

    @model_validator(mode="after")
    def _range(self) -> "DatabaseConfig":
        if self.min_active > self.max_active:
            raise ValueError("min_active must not exceed max_active")
        return self


#: the controller sections that configs before issue 12 held (`controller: {kind: mlp, mlp:
#: {...}, ar: {...}, knn: {...}}`), with the defaults those versions wrote out in full. An old
#: config is normalised to `{name, options}` (decision 12.10): only values that differ from
#: these defaults are kept, so a snapshot of an old model directory reads as a short new one.
LEGACY_CONTROLLER_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"hidden_dims": [256, 256, 128], "dropout": 0.3, "gate_bias": -2.0},
    "ar": {"condition_dim": 256, "hidden_dim": 512, "dropout": 0.1, "max_steps": 2,
           "label_smoothing": 0.03, "param_loss_weight": 50.0},
    "knn": {"k": 8, "style_weight": 1.0, "audio_weight": 0.25, "strength_weight": 1.0,
            "max_records": 100_000},
}


def _changed(name: str, section: Any) -> Any:
    """An old controller section less the values its version wrote as defaults."""
    if not isinstance(section, dict):
        return section  # left for validation to refuse
    defaults = LEGACY_CONTROLLER_DEFAULTS.get(name, {})
    return {k: v for k, v in section.items() if k not in defaults or defaults[k] != v}


def split_legacy_controller(data: dict, name: str | None = None) -> tuple[dict, dict[str, Any]]:
    """Old `controller` mapping -> (new mapping, changed options of the other controllers).

    `name` picks whose section becomes `options` (default: the old `kind`): a model's stored
    config names the controller it was trained as, which may differ from `kind` in an experiment.
    """
    data = dict(data)
    kind = data.pop("kind", None)
    chosen = name or data.get("name") or kind or "mlp"
    sections = {n: data.pop(n) for n in list(LEGACY_CONTROLLER_DEFAULTS) if n in data}
    data["name"] = chosen
    if chosen in sections:
        own = _changed(chosen, sections[chosen])
        extra = data.get("options")
        data["options"] = {**own, **extra} if isinstance(own, dict) and isinstance(extra, dict) else \
            (own if extra is None else extra)
    others = {n: _changed(n, v) for n, v in sections.items() if n != chosen}
    return data, {n: v for n, v in others.items() if v}


def _is_legacy_controller(data: Any) -> bool:
    return isinstance(data, dict) and ("kind" in data or any(n in data for n in LEGACY_CONTROLLER_DEFAULTS))


def normalise_legacy(data: Any) -> Any:
    """A raw config mapping with a pre-issue-12 `controller: {kind, mlp, ar, knn}` rewritten.

    The named controller's section becomes `controller.options`, the other sections' changed
    values `experiment.options` (decision 12.10); anything else is returned as it is.
    """
    if isinstance(data, dict) and _is_legacy_controller(data.get("controller")):
        data = dict(data)
        data["controller"], others = split_legacy_controller(data["controller"])
        if others:
            exp = dict(data["experiment"]) if isinstance(data.get("experiment"), dict) else {}
            have = exp.get("options") if isinstance(exp.get("options"), dict) else {}
            exp["options"] = {**others, **have}
            data["experiment"] = exp
    return data


class ControllerConfig(_Section):
    """Which controller (`name`, a registered plugin) and its `options` (its `Options` model).

    The options are checked against the plugin where it is used (`api/options.py`
    `check_config_options`, the controller's `build`); the two other keys are the trainer's
    and apply to every controller.
    """

    name: str = Field("mlp", description="registered controller plugin (list-plugins --kind controller)")
    options: dict[str, Any] = Field({}, description="the controller's options (plugin-info NAME)")
    audio_condition_dropout: float = Field(0.0, ge=0, le=1, description="zero E(A) with this probability in training")
    strength_input: bool = Field(
        True, description="feed the edit strength (database: chain_strength; inference: the image "
        "StrengthMap) to the controller beside the label, so parameters scale with the edit (issue 9)")

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any, info: ValidationInfo) -> Any:
        # the pre-issue-12 form; a stored model config passes the controller it was trained as
        if _is_legacy_controller(data):
            name = (info.context or {}).get("controller") if info is not None else None
            return split_legacy_controller(data, name)[0]
        return data

    def for_controller(self, name: str, options: dict[str, Any] | None = None) -> "ControllerConfig":
        """This section for controller `name` with `options` (the trainer's keys kept)."""
        return self.model_copy(update={"name": name, "options": dict(options or {})})


class LossConfig(_Section):
    asl_gamma_pos: float = 0.0
    asl_gamma_neg: float = 5.0
    asl_clip: float = 0.05
    huber_delta: float = 0.02
    w_param: float = 1.0
    w_act: float = 0.6
    mismatch_weight: float = 2.0
    mismatch_gamma: float = 2.0
    effect_weights: dict[str, float] = {
        "delay": 3.0, "bitcrush": 2.5, "lowpass": 2.0, "highpass": 2.0,
        "reverb": 1.5, "playback_rate": 1.5, "distortion": 1.0,
    }


class TrainingConfig(_Section):
    epochs: int = Field(600, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-4, gt=0)
    lr_min: float = Field(1e-6, ge=0)
    weight_decay: float = Field(1e-3, ge=0)
    val_fraction: float = Field(0.2, gt=0, lt=1)
    balanced_sampler: bool = True
    selection_metric: str = Field(
        "val_active_param_rmse", description="best epoch by the active-parameter RMSE (ungated; issue 9, "
        "decision 9.5); the notes' val_active_param_rmse_gated gates at 0.5, not at the tuned thresholds")
    threads: int = Field(1, ge=1, description="torch CPU threads (1 is fastest for these small nets)")
    loss: LossConfig = LossConfig()


class ThresholdConfig(_Section):
    grid_min: float = Field(0.05, gt=0, lt=1)
    grid_max: float = Field(0.95, gt=0, lt=1)
    grid_points: int = Field(37, ge=2)
    passes: int = Field(2, ge=1)
    objective: Literal["f1", "gated_rmse"] = Field(
        "f1", description="f1: macro F1 of the rendered (capped) effect set, ties by gated RMSE; "
        "gated_rmse: the notes' procedure (blind to false alarms; reproduces their table)")
    count_tolerance: float | None = Field(
        None, ge=0, le=2, description="f1 only: keep the mean number of effects rendered on val within "
        "this many of the records' true mean (F1 alone under-predicts: issue 9 asks for F1 with the "
        "count within +-0.3); null = no constraint (decision 9.150)")


class SearchConfig(_Section):
    """Inference-time search (`search` controller, `--refine`): budget and scoring."""

    budget_evals: int | None = Field(60, ge=1, description="candidate renders (None: seconds only)")
    budget_seconds: float | None = Field(None, gt=0, description="wall-clock limit (None: evaluations only)")
    excerpt_seconds: float = Field(3.0, ge=0.25, description="candidates are rendered on the loudest window this long")
    strength_weight: float = Field(0.5, ge=0, description="weight of |audio strength - image strength| in the score")
    match_strength: bool = Field(False, description="move every candidate to the image strength before rendering "
                                 "(strength.match_strength): the search then picks effects and directions only; "
                                 "off by default, it tracked strength little better and agreed less (9.32)")


class InferenceConfig(_Section):
    temperature: float = Field(0.015, gt=0, description="T* of the calibrated image-side label")
    tau_c: float = 0.343
    s_c: float = Field(0.206, gt=0)
    activity_threshold_override: float | None = Field(None, ge=0, le=1)
    top_k: int = Field(5, ge=1)
    max_active: int | None = Field(
        None, ge=0, description="most effects rendered per transfer, the clearest by activity / "
        "threshold; null = database.max_active, 0 = no cap (the notes)")
    strength_fit_images: int = Field(24, ge=1, description="calibration images used to fit the image StrengthMap "
                                     "(x every image effect x 10 intensities)")
    calibration_shape: tuple[Annotated[float, Field(ge=0, le=10)], Annotated[float, Field(gt=0, le=10)]] | None = Field(
        None, description="[a, b]: the calibration fixes the norm confidence's shape (tau_c = a, s_c = b times the "
        "calibration pairs' median edit norm) and fits the temperature T alone, so another draw of the "
        "training records moves T by at most a grid step; null = fit T, tau_c and s_c together and break "
        "the grid's ties by the largest T (Appendix D), whose pick jumps between regimes with the draw "
        "(decision 16.79). Read when a model is calibrated (`run`, `calibrate`), not by a transfer")
    scale_by_confidence: bool = Field(
        True, description="move predicted parameters toward bypass by the norm confidence c, so an "
        "image that barely changed leaves the audio almost untouched (not in the notes)")
    strength_match: Literal["off", "chain", "params", "nested", "matched", "nested_matched", "locked"] = Field(
        "off", description="chain: the controller answers for the edit's direction (the uncalibrated "
        "label) at reference_strength, which fixes the effect set and each effect's parameter direction; "
        "the image strength then sets how far each effect moves from bypass (its chain strength, "
        "core/strength.match_strength). off: the controller's own answer at the image strength. Chain "
        "tracks strength better and costs the k-NN label agreement (decision 9.31). "
        "params: the set from the own answer (as off), the parameters from chain (decision 9.37). "
        "nested: an effect voted for at any gentler size of the edit's direction (strengths 0, "
        "nested_step, ... up to the image strength) stays in the set, so a stronger edit never drops "
        "an effect a gentler one had; parameters as off (decision 9.40). matched: set and parameter "
        "directions as off, each effect moved along its ray from bypass to the image strength "
        "(match_strength), so within one set a stronger edit always moves further; nested_matched: "
        "the set as nested, the parameters as matched (decision 9.70). locked: the set is the controller's "
        "vote for the edit's direction at lock_strength (one set for every size of one edit), the "
        "parameters are off's own answer at the image strength, so the strength moves only the "
        "parameters (decision 9.120)")
    match_floor: Annotated[float, Field(ge=0, lt=1)] | Literal["auto"] | None = Field(
        None, description="in a transfer, the mean normalised distance from bypass that image "
        "strength 0 is matched to under strength_match chain / params / matched / nested_matched "
        "(distance = floor + strength * (1 - floor)); null = database.param_min_intensity, the records' "
        "unit. auto: each effect's own floor stored with the model's calibration (`match_floors`, the "
        "least distance at which that effect's audio label reads as its strong edits do, fitted by "
        "`benchmarks/fit_match_floors.py`; decision 9.90). The database stages (threshold tuning, "
        "evaluate) always use the records' unit, since their strengths are chain strengths already "
        "(decision 9.71)")
    reference_strength: float = Field(0.5, ge=0, le=1, description="strength input the controller is asked "
                                      "at under strength_match (0.5: the training database's median)")
    lock_strength: float = Field(0.5, ge=0, le=1, description="strength input the effect set is voted at "
                                 "under strength_match: locked (decision 9.120)")
    lock_margin: float = Field(0.0, ge=0, le=1, description="under strength_match: locked, an effect beyond the "
                               "clearest one (by activity / threshold) is rendered only if its locked vote clears "
                               "its threshold by this much (activity - lock_margin >= threshold); the clearest "
                               "effect is chosen as before. 0 = off. 0.125 = 1/k of a k = 8 k-NN (4/k of the shipped k = 32): "
                               "with k = 8 the effect stays voted if one neighbour's vote is lost (decision 9.130)")
    nested_step: float = Field(0.1, gt=0, le=1, description="spacing of the gentler strengths the controller "
                               "is asked at under strength_match: nested (decision 9.40)")
    image_strength: Literal["pooled", "by_direction"] = Field(
        "pooled", description="how a transfer reads the image edit's size: pooled = one map ||d|| -> strength "
        "fitted over all image effects; by_direction = one map per image effect, blended by a softmax over "
        "cos(edit direction, effect prototype) / image_strength_tau (decision 9.100; needs a model "
        "calibrated with per-effect maps, else a one-line error)")
    image_strength_tau: float = Field(
        0.05, gt=0, le=10, description="softmax temperature over the cosines under image_strength: by_direction "
        "(0.05, decision 9.100: a cosine lead of 0.15 over the next effect gives it 20x that effect's weight, a "
        "near-hard choice; on held-out photos the own effect leads by a median 0.22-0.26 and gets a mean weight "
        "0.89; an edit like no effect, cosines within ~0.05 of each other, gets a blend of the maps)")
    search: SearchConfig = SearchConfig()

    def stage_settings(self) -> dict[str, Any]:
        """This section as JSON for `run`'s stage keys, without `calibration_shape` while it is
        unset, so runs made before the option existed keep their keys and caches."""
        out = self.model_dump(mode="json")
        if out["calibration_shape"] is None:
            out.pop("calibration_shape")
        return out


class SplitConfig(_Section):
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    @model_validator(mode="after")
    def _sum(self) -> "SplitConfig":
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError("train + val + test must be 1")
        return self


class DataConfig(_Section):
    """Where an experiment's media come from; relative paths are relative to the config file.

    A folder left empty (null) is replaced by generated media (core/media/examples.py), so a config
    runs anywhere, e.g. in CI without the development corpus.
    """

    audio: str | None = None
    audio_manifest: str | None = None
    images: str | None = None
    clip_limit: int | None = Field(None, ge=1, description="train clips used for the database (seeded sample)")
    image_limit: int | None = Field(None, ge=2, description="images used (seeded sample), half for calibration")
    synthetic_tracks: int = Field(10, ge=3, description="generated tracks (2 clips each) when audio is null")
    synthetic_images: int = Field(8, ge=2)
    synthetic_seconds: float = Field(4.0, gt=0)


class ExperimentConfig(_Section):
    controllers: list[str] = ["mlp"]
    epochs: dict[str, int] = Field({}, description="per-controller override of training.epochs")
    agreement_pairs: int = Field(40, ge=2)
    example_transfers: int = Field(3, ge=0)
    vocab_audit_items: int = Field(6, ge=0, description="held-out photos and test clips for the "
                                   "vocabulary audit in the report (0: no audit)")
    options: dict[str, dict[str, Any]] = Field(
        {}, description="per-controller options for the controllers trained here other than "
        "controller.name (whose options are controller.options), e.g. {ar: {max_steps: 3}}")


class Config(_Section):
    seed: int = 0
    vocabulary: str = "v3"
    encoders: EncodersConfig = EncodersConfig()
    audio: AudioConfig = AudioConfig()
    effects: EffectsConfig = EffectsConfig()
    splits: SplitConfig = SplitConfig()
    database: DatabaseConfig = DatabaseConfig()
    controller: ControllerConfig = ControllerConfig()
    training: TrainingConfig = TrainingConfig()
    thresholds: ThresholdConfig = ThresholdConfig()
    inference: InferenceConfig = InferenceConfig()
    data: DataConfig = DataConfig()
    experiment: ExperimentConfig = ExperimentConfig()
    executor: ExecutorConfig = ExecutorConfig()

    @model_validator(mode="before")
    @classmethod
    def _legacy_controller(cls, data: Any) -> Any:
        return normalise_legacy(data)

    def controller_config(self, name: str | None = None) -> ControllerConfig:
        """The controller section for training or loading controller `name` (default: controller.name)."""
        name = name or self.controller.name
        if name == self.controller.name:
            return self.controller
        return self.controller.for_controller(name, self.experiment.options.get(name, {}))


def effective_record_seed(cfg: "Config") -> int:
    """The seed the augmentation records are drawn with: database.seed, else the experiment's."""
    return cfg.seed if cfg.database.seed is None else int(cfg.database.seed)


def effective_max_active(cfg: "Config") -> int | None:
    """inference.max_active, defaulting to the database's; None = no cap."""
    m = cfg.inference.max_active
    m = cfg.database.max_active if m is None else m
    return int(m) or None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the YAML file (if any), then `overrides` (nested dicts)."""
    from .fileio import load_model_yaml

    return load_model_yaml(Config, path, "config", overrides)


def dump_config(cfg: Config) -> str:
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


# ------------------------------------------------------------- command-line overrides (issue 11)


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """`key=value` or `key+=value` -> (dotted key, "=" | "+=", YAML-parsed value).

    Values are read as YAML so `--set training.epochs=5` is an int and `--set
    effects.audio=[lowpass,reverb]` a list, exactly as they would be in the config file.
    """
    import yaml

    from .errors import DeltaV2AError

    eq = text.find("=")
    op = "+=" if eq > 0 and text[eq - 1] == "+" else "="
    key, sep, raw = text.partition(op)
    key = key.strip()
    if not sep or not key or any(not part.isidentifier() for part in key.split(".")):
        raise DeltaV2AError(f"--set expects key=value or key+=value with a dotted key "
                            f"(e.g. vocabulary=v1, effects.audio+=phaser), got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, op, value


#: `--set` keys of older versions, still accepted (decision 12.10)
LEGACY_KEYS = {"controller.kind": "controller.name"}


def apply_assignments(data: dict, assignments: list[str]) -> dict:
    """A copy of the raw config mapping `data` with each `--set` applied in order.

    `key+=value` appends to a list (the defaults' list when the file does not set it), and a
    key that is not a config field is refused here, naming the nearest field.
    """
    import copy

    from .errors import DeltaV2AError

    out = copy.deepcopy(data)
    for text in assignments:
        key, op, value = parse_assignment(text)
        key = LEGACY_KEYS.get(key, key)
        parts = key.split(".")
        model: Any = Config
        node = out
        for i, part in enumerate(parts):
            fields = getattr(model, "model_fields", None)
            if fields is not None and part not in fields:
                import difflib

                where = ".".join(parts[:i]) or "the config"
                near = difflib.get_close_matches(part, list(fields), n=3)
                hint = f" (did you mean {', '.join('.'.join(parts[:i] + [n]) for n in near)}?)" if near else ""
                raise DeltaV2AError(f"--set {key}: {where} has no key '{part}'{hint}; "
                                    f"known: {', '.join(fields)}")
            last = i == len(parts) - 1
            field_default = None
            if fields is not None:
                info = fields[part]
                field_default = info.get_default(call_default_factory=True)
                ann = info.annotation
                model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
            else:
                model = None
            if last:
                if op == "+=":
                    current = node.get(part)
                    if current is None:
                        current = field_default.model_dump(mode="json") if isinstance(field_default, BaseModel) \
                            else copy.deepcopy(field_default)
                    if not isinstance(current, list):
                        raise DeltaV2AError(f"--set {key}+=...: '{key}' is not a list")
                    node[part] = current + (value if isinstance(value, list) else [value])
                else:
                    node[part] = value
            else:
                child = node.get(part)
                if isinstance(child, str) and part in ("image", "audio") and parts[0] == "encoders":
                    child = {"name": child}  # the short form `image: clip`
                if not isinstance(child, dict):
                    # a section the file leaves out starts from its defaults (`encoders.image.options.X`
                    # keeps the default encoder's name)
                    child = field_default.model_dump(mode="json") if isinstance(field_default, BaseModel) else {}
                node[part] = child
                node = child
    return out


def load_config_with(path: str | Path | None, assignments: list[str] | None = None) -> Config:
    """`load_config` plus `--set` assignments, validated together (one-line errors)."""
    from pydantic import ValidationError

    from .errors import DeltaV2AError
    from .fileio import first_error, read_yaml

    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise DeltaV2AError(f"config file not found: {p}")
        data = read_yaml(p, "config", allow_empty=True) or {}
    data = apply_assignments(normalise_legacy(data), list(assignments or []))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        where = " ".join(["config", *([str(path)] if path is not None else []),
                          *(["with --set"] if assignments else [])])
        raise DeltaV2AError(f"{where}: {first_error(exc)}") from None
