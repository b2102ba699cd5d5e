"""Typed settings of the analysis pipeline (pipeline note, seed 001), loaded from YAML.

A separate model from `deltav2a.config.Config`: the note's experiment has its own effect set,
intensities, thresholds and decoder hyperparameters, and `Config` forbids unknown keys. The
encoder and audio sections are the same classes as in `Config`, so an `encoders:` block is
written the same way in both files. Defaults equal `configs/analysis.yaml` except
`discover.category_words`, which that file fills in for the dev corpus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..config import AudioConfig, Config, EncodersConfig
from ..errors import DeltaV2AError
from ..executor import ExecutorConfig

NOTE_IMAGE_EFFECTS = ["blur", "brightness", "saturation", "contrast"]
NOTE_AUDIO_EFFECTS = ["lpf", "highshelf", "saturation", "reverb"]
NOTE_INTENSITIES = {"low": 0.25, "mid": 0.5, "high": 0.9}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EffectSets(_Section):
    image: list[str] = list(NOTE_IMAGE_EFFECTS)
    audio: list[str] = list(NOTE_AUDIO_EFFECTS)

    @field_validator("image", "audio")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("an effect is listed twice")
        return v


class Thresholds(_Section):
    min_distance: float = Field(0.01, ge=0, description="sensitivity: mean ||delta|| above this")
    min_cosine: float = Field(0.8, ge=-1, le=1, description="within-category direction consistency")
    max_cv: float = Field(0.3, ge=0, description="within-category magnitude consistency (std/mean)")
    max_variance: float = Field(0.05, ge=0, description="variance of cosines between category prototypes")
    min_items: int = Field(2, ge=2, description="items a category needs to enter the linearity tests")


class ExtractSettings(_Section):
    block_size: int = Field(8, ge=1, description="items per resumable shard")
    category_column: str = "collection"
    group_column: str = Field("track_id", description="manifest column keeping related clips together "
                                                      "in the decoder's split (used when present)")


class DiscoverSettings(_Section):
    image_templates: list[str] = ["A {synonym} photo of {category}"]
    audio_templates: list[str] = ["A {synonym} {category} song"]
    #: category name -> word used in the templates (for names that are not English words)
    category_words: dict[str, dict[str, str]] = {"image": {}, "audio": {}}
    #: extra synonym files or folders, after the shipped data and $DELTAV2A_HOME/synonyms
    synonym_paths: list[str] = []

    @field_validator("image_templates", "audio_templates")
    @classmethod
    def _has_slots(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one template is needed")
        for t in v:
            if "{synonym}" not in t:
                raise ValueError(f"template {t!r} has no {{synonym}} slot")
            try:
                t.format(synonym="x", category="y")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"template {t!r} may only use {{synonym}} and {{category}} ({exc})") from None
        return v


class DecoderSettings(_Section):
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    epochs: int = Field(100, ge=1)
    val_fraction: float = Field(0.2, gt=0, lt=1)
    samples_per_clip: int = Field(32, ge=1, description="random DSP settings drawn per clip")
    param_jitter: float = Field(0.05, ge=0, le=0.5, description="std of the normalised-parameter "
                                                                  "noise around the intensity curve")
    min_strength: float = Field(0.05, ge=0, lt=1)
    use_strength: bool = Field(True, description="condition = [text, strength]; false: the text alone, "
                                                 "as in the note (then only each effect's mean setting "
                                                 "can be learnt)")
    d_model: int = Field(64, ge=8)
    heads: int = Field(4, ge=1)
    audio_tokens: int = Field(4, ge=1)
    condition_tokens: int = Field(2, ge=1)
    hidden: list[int] = [128, 128]
    dropout: float = Field(0.1, ge=0, lt=1)
    condition_templates: list[str] = ["a {synonym} photo", "{synonym}", "a {synonym} picture"]
    pairing: Literal["best_audio_per_image", "all_positive"] = "best_audio_per_image"
    val_render_limit: int = Field(48, ge=1, description="validation samples re-rendered for the "
                                                        "spectrogram distance")
    n_mels: int = Field(64, ge=8)
    n_fft: int = Field(2048, ge=256)
    hop: int = Field(512, ge=64)
    floor_db: float = Field(80.0, gt=0, description="log-mel values are floored this far below "
                                                    "the target's peak")

    @model_validator(mode="after")
    def _heads(self) -> "DecoderSettings":
        if self.d_model % self.heads:
            raise ValueError("d_model must be a multiple of heads")
        for t in self.condition_templates:
            if "{synonym}" not in t:
                raise ValueError(f"condition template {t!r} has no {{synonym}} slot")
        return self


class AnalysisConfig(_Section):
    seed: int = 0
    encoders: EncodersConfig = EncodersConfig()
    audio: AudioConfig = AudioConfig()
    effects: EffectSets = EffectSets()
    intensities: dict[str, float] = dict(NOTE_INTENSITIES)
    thresholds: Thresholds = Thresholds()
    extract: ExtractSettings = ExtractSettings()
    discover: DiscoverSettings = DiscoverSettings()
    decoder: DecoderSettings = DecoderSettings()
    executor: ExecutorConfig = ExecutorConfig()

    @field_validator("intensities")
    @classmethod
    def _grid(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("at least one intensity is needed")
        for k, x in v.items():
            if not 0 < float(x) <= 1:
                raise ValueError(f"intensity {k}={x} must lie in (0, 1]")
        return {str(k): float(x) for k, x in v.items()}

    def core_config(self) -> Config:
        """The project config the shared helpers (clip loading, encoders) expect."""
        return Config(seed=self.seed, encoders=self.encoders, audio=self.audio)


def parse_intensities(text: str) -> dict[str, float]:
    """`low=0.25,mid=0.5` or a plain grid `0.1,0.2,0.3` (labels are the numbers)."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        label, eq, value = part.partition("=")
        if not eq:
            label, value = part, part
        try:
            x = float(value)
        except ValueError:
            raise DeltaV2AError(f"--intensities: {part!r} is not a number or LABEL=NUMBER") from None
        if not 0 < x <= 1:
            raise DeltaV2AError(f"--intensities: {part!r} must lie in (0, 1]")
        label = label.strip()
        if label in out:
            raise DeltaV2AError(f"--intensities: {label!r} is given twice")
        out[label] = x
    if not out:
        raise DeltaV2AError("--intensities: no values given")
    return out


def load_analysis_config(path: str | Path | None = None,
                         overrides: dict[str, Any] | None = None) -> AnalysisConfig:
    """Defaults, then the YAML file (if any), then `overrides` (nested dicts)."""
    from ..fileio import load_model_yaml

    return load_model_yaml(AnalysisConfig, path, "analysis config", overrides)
