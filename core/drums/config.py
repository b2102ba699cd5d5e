"""The drum task's configuration: pydantic, unknown keys are errors, defaults = note 002.

Every default below is the note's number where the note gives one. Where the note names a
rule but no number (the low-noise texture penalty, the factors of guards 2 and 5, guard 3's
thresholds, the envelope levels that define attack and decay) the value is ours and is marked
"(ours)"; docs/drums.md lists them. The note's values are the `note` preset
(presets/note.yaml, identical to these defaults); other presets change only what
docs/drums.md justifies on the whole labelled set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from ..config import EncoderChoice
from ..errors import DeltaV2AError

ROLES = ("CORE", "ACCENT", "MOTION", "FILL", "TEXTURE")
PRESET_DIR = Path(__file__).resolve().parent / "presets"
#: the terms a rule weight may name (features, their complements, one sum, a constant)
RULE_TERMS = ("E", "S", "A_fast", "D", "D_short", "L", "M", "H", "F", "Z",
              "one_minus_S", "one_minus_E", "L_plus_M", "one",
              # ours (docs/drums.md "Acoustic features"): tonality, body-pitch registers, ring, centroid
              "T", "one_minus_T", "P_kick", "P_tom", "T_kick", "T_tom", "R", "R_short", "C", "A_slow",
              # ours (docs/drums.md "Fourth pass"): several strokes in one sample (a roll, a fill figure)
              "G", "T_tom_or_G")


class _S(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _check_roles(v: Any) -> Any:
    bad = [r for r in v if r not in ROLES]
    if bad:
        raise ValueError(f"unknown role(s) {', '.join(map(str, bad))} (roles: {', '.join(ROLES)})")
    return v


RoleList = Annotated[list[str], AfterValidator(_check_roles)]


class AudioLoad(_S):
    target_sr: int = Field(16000, ge=4000, le=192000, description="DSP analysis rate (note: CLAP's 16 kHz)")
    mono: bool = True
    max_duration_sec: float = Field(2.0, gt=0, le=60)
    trim_silence: bool = True
    trim_top_db: float = Field(60.0, gt=0, description="(ours) librosa.effects.trim threshold")
    peak_normalize: bool = True
    peak_target: float = Field(0.95, gt=0, le=1)
    silence_peak: float = Field(1e-5, gt=0, description="(ours) a file whose peak is below this is silent")
    max_leading_silence_sec: float = Field(30.0, ge=0, le=600, description=(
        "(ours) only the first max_duration_sec + this many seconds of a file are read"))


class BandEdges(_S):
    low: tuple[float, float] = (20.0, 150.0)
    mid: tuple[float, float] = (150.0, 2000.0)
    high: tuple[float, float] = (2000.0, 8000.0)

    @model_validator(mode="after")
    def _ordered(self) -> "BandEdges":
        for name in ("low", "mid", "high"):
            lo, hi = getattr(self, name)
            if not 0 <= lo < hi:
                raise ValueError(f"band '{name}' needs 0 <= low edge < high edge, got [{lo}, {hi}]")
        return self


class DSP(_S):
    band_edges_hz: BandEdges = BandEdges()
    attack_window_sec: float = Field(0.08, gt=0, le=1)
    decay_window_sec: float = Field(0.60, gt=0, le=5)
    n_fft: int = Field(1024, ge=64, le=16384)
    hop_length: int = Field(256, ge=16, le=8192)
    envelope_frame: int = Field(256, ge=16, le=8192, description="(ours) RMS envelope frame for the attack")
    decay_envelope_frame: int = Field(1024, ge=16, le=16384, description=(
        "(ours) RMS envelope frame for the decay: at least one period of the low band's 20 Hz edge, "
        "so the 30 % crossing is the decay and not a ripple trough of a low tone"))
    envelope_hop: int = Field(64, ge=1, le=4096)
    onset_level: float = Field(0.10, gt=0, lt=1, description="(ours) onset = envelope reaches this share of its peak")
    attack_level: float = Field(0.90, gt=0, le=1, description="note: attack ends at 90 % of the peak")
    decay_level: float = Field(0.30, gt=0, lt=1, description="note: decay ends at 30 % of the peak")
    sharpness_ref_db: float = Field(80.0, gt=0, description="(ours) onset-strength peak (dB) that counts as S = 1")
    active_db: float = Field(60.0, gt=0, description="(ours) frames this far under the loudest are left out of flatness/ZCR")
    # Acoustic features the note lacks (all ours; docs/drums.md "Acoustic features"). Only
    # presets whose weights name their terms (T, P_kick, P_tom, T_kick, T_tom, R, R_short, C,
    # A_slow; the strokes' G, T_tom_or_G) are affected; the note's rules never read them.
    body_window_sec: float = Field(0.15, ge=0.02, le=1, description=(
        "(ours) the body of a hit: this long from the envelope peak (4 periods of a 30 Hz kick)"))
    body_band_hz: tuple[float, float] = Field((25.0, 2000.0), description=(
        "(ours) where the body's strongest partial (a membrane's fundamental) is looked for"))
    tonality_semitones: float = Field(1.0, gt=0, le=12, description=(
        "(ours) tonality = share of the body's 20 Hz-8 kHz power within this many semitones of the "
        "partial (or the analysis window's main lobe, 2 / body_window_sec Hz, if wider)"))
    ring_db: float = Field(20.0, gt=0, le=80, description="(ours) ring time = envelope peak to this many dB below it")
    ring_window_sec: float = Field(1.0, gt=0, le=10, description="(ours) normaliser of R = ring_time / this")
    kick_tom_split_hz: float = Field(75.0, gt=0, description=(
        "(ours) body pitch below: kick register (kicks 40-70 Hz), above: tom register (floor tom ~80 Hz up)"))
    tom_max_hz: float = Field(250.0, gt=0, description="(ours) top of the tom register (small rack toms)")
    register_ramp_octaves: float = Field(0.5, gt=0, le=4, description=(
        "(ours) register memberships ramp linearly over this many octaves centred on each edge"))
    centroid_range_hz: tuple[float, float] = Field((100.0, 8000.0), description=(
        "(ours) C = log position of the spectral centroid in this range, clipped to [0, 1]"))
    strike_rise_db: float = Field(10.0, gt=0, le=60, description=(
        "(ours) a re-attack: the attack envelope rises this many dB above its lowest point since the "
        "last stroke (a stroke of a roll comes back well above the previous one's tail)"))
    strike_floor_db: float = Field(20.0, gt=0, le=80, description=(
        "(ours) and reaches within this many dB of the peak (ripple of a decaying tail does not count)"))
    figure_strokes: float = Field(4.0, gt=0, le=100, description=(
        "(ours) G = re-attacks / this, clipped to 1: four strokes after the first make a figure "
        "(a roll or fill), not one hit"))

    @model_validator(mode="after")
    def _ranges(self) -> "DSP":
        for name in ("body_band_hz", "centroid_range_hz"):
            lo, hi = getattr(self, name)
            if not 0 < lo < hi:
                raise ValueError(f"dsp.{name} needs 0 < low < high, got [{lo}, {hi}]")
        if not self.kick_tom_split_hz < self.tom_max_hz:
            raise ValueError("dsp.kick_tom_split_hz must be below dsp.tom_max_hz")
        return self


def _w(**kw: float) -> dict[str, float]:
    return kw


class TexturePenalty(_S):
    enabled: bool = True
    transient_S_threshold: float = 0.55
    decay_short_threshold: float = Field(0.35, description="applies when D (normalised decay) is below it")
    penalty: float = Field(0.18, ge=0)
    low_noise_enabled: bool = True
    low_noise_flatness_threshold: float = Field(0.01, ge=0, le=1, description="(ours) flatness below it: tonal")
    low_noise_penalty: float = Field(0.05, ge=0, description="(ours)")


class RuleScoring(_S):
    weights: dict[str, dict[str, float]] = {
        "CORE": _w(L=0.40, A_fast=0.25, D_short=0.25, one_minus_S=0.10),
        "ACCENT": _w(E=0.35, S=0.35, M=0.20, D_short=0.10),
        "MOTION": _w(H=0.40, one_minus_E=0.20, D_short=0.25, S=0.15),
        "FILL": _w(E=0.30, D=0.35, S=0.25, M=0.10),
        "TEXTURE": _w(D=0.45, one_minus_S=0.25, L_plus_M=0.20, one_minus_E=0.10),
    }
    temperature: float = Field(1.0, gt=0, description="softmax temperature of p_rule (note: plain softmax)")
    texture_penalty: TexturePenalty = TexturePenalty()

    @field_validator("weights", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return {str(k).upper(): w for k, w in v.items()} if isinstance(v, dict) else v

    @field_validator("weights")
    @classmethod
    def _terms(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        if sorted(v) != sorted(ROLES):
            raise ValueError(f"weights must give all five roles ({', '.join(ROLES)}), got {', '.join(v)}")
        for role, terms in v.items():
            bad = [t for t in terms if t not in RULE_TERMS]
            if bad:
                raise ValueError(f"weights.{role}: unknown term(s) {', '.join(bad)} (known: {', '.join(RULE_TERMS)})")
        return v


class TextScoring(_S):
    enabled: bool = True
    encoder: EncoderChoice = EncoderChoice(name="perceptual-audio", options={"lexicon_supplements": ["drums"]})
    prompts: str = Field("drums", description="shipped role-prompt file name (data/role_prompts_<name>.yaml) or a YAML path")
    tau: float = Field(0.07, gt=0, description="softmax temperature of p_text (note: tau_clap)")
    cache_text_embeddings: bool = True

    @field_validator("encoder", mode="before")
    @classmethod
    def _short(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v


class Fusion(_S):
    alpha: float = Field(0.9, ge=0, le=1, description="weight of p_rule; 1 - alpha goes to p_text")
    confidence_margin_threshold: float = Field(0.12, ge=0, le=1)
    role_bias: Annotated[dict[str, float], AfterValidator(_check_roles)] = {}


class TextureSuppress(_S):
    enabled: bool = True
    transient_S_threshold: float = 0.60
    decay_max: float = Field(0.32, description="note: 'D_short < 0.32'; read as normalised decay D < 0.32 (a percussive hit)")
    multiply: float = Field(0.60, ge=0)


class SustainedNoiseSuppress(_S):
    enabled: bool = True
    decay_min: float = 0.70
    flatness_min: float = 0.25
    roles: RoleList = ["CORE", "ACCENT"]
    multiply: float = Field(0.60, ge=0, description="(ours) the note gives no factor")


class MotionMinCondition(_S):
    enabled: bool = True
    high_min: float = Field(0.30, description="(ours) H must reach this")
    decay_short_min: float = Field(0.20, description="(ours) and D_short this (decay under 0.48 s)")
    multiply: float = Field(0.70, ge=0)


class FillConservative(_S):
    enabled: bool = True
    p_min: float = 0.35
    margin_min: float = 0.12


class LowConfidenceTextureExtra(_S):
    enabled: bool = True
    percussive_roles: RoleList = ["CORE", "ACCENT", "MOTION", "FILL"]
    multiply: float = Field(0.80, ge=0, description="(ours) the note gives no factor")
    struck_only: bool = Field(False, description=(
        "(ours) fire only for a struck hit, A_fast > 0 (it peaks within the note's attack window); a hit "
        "that swells in is not a percussive hit narrowly taken by TEXTURE. False: always, as the note"))


class Guards(_S):
    enabled: bool = True
    texture_suppress: TextureSuppress = TextureSuppress()
    sustained_noise_suppress: SustainedNoiseSuppress = SustainedNoiseSuppress()
    motion_min_condition: MotionMinCondition = MotionMinCondition()
    fill_conservative: FillConservative = FillConservative()
    low_confidence_texture_extra: LowConfidenceTextureExtra = LowConfidenceTextureExtra()


class Promote(_S):
    enabled: bool = True


class Rebalance(_S):
    enabled: bool = True
    min_margin_keep: float = Field(0.08, ge=0, le=1)


class Pool(_S):
    required_roles: RoleList = ["CORE", "ACCENT", "MOTION"]
    max_sizes: Annotated[dict[str, Annotated[int, Field(ge=1)]], AfterValidator(_check_roles)] = {
        "CORE": 4, "ACCENT": 4, "MOTION": 10}
    promote_when_missing: Promote = Promote()
    rebalance_when_excess: Rebalance = Rebalance()


class RoleAssignerConfig(_S):
    """All settings of the drum role assigner (configs: core/drums/presets/*.yaml)."""

    audio: AudioLoad = AudioLoad()
    dsp: DSP = DSP()
    rule_scoring: RuleScoring = RuleScoring()
    text: TextScoring = TextScoring()
    fusion: Fusion = Fusion()
    guards: Guards = Guards()
    pool: Pool = Pool()

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> "RoleAssignerConfig":
        from ..fileio import load_model_yaml

        return load_model_yaml(cls, path, "drums config", overrides)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RoleAssignerConfig":
        from pydantic import ValidationError

        from ..fileio import first_error

        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise DeltaV2AError(f"drums config: {first_error(exc)}") from None

    @classmethod
    def preset(cls, name: str) -> "RoleAssignerConfig":
        path = PRESET_DIR / f"{name}.yaml"
        if not path.is_file():
            raise DeltaV2AError(f"unknown drums preset '{name}' (known: {', '.join(preset_names())})")
        return cls.from_yaml(path)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_drums_config(path: str | Path | None = None, preset: str | None = None) -> RoleAssignerConfig:
    """A config file, else a shipped preset, else the note's defaults."""
    if path is not None and preset is not None:
        raise DeltaV2AError("give either --config or --preset, not both")
    if path is not None:
        return RoleAssignerConfig.from_yaml(path)
    if preset is not None:
        return RoleAssignerConfig.preset(preset)
    return RoleAssignerConfig()
