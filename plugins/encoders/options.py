"""The built-in encoders' options (pydantic models, `Options` of each encoder class).

Kept apart from the encoders so registering them imports no pydantic: the classes name these
models with `OptionsRef` (api/optionsref.py), resolved when options are validated or shown.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field, field_validator

from deltav2a.api.options import PluginOptions


class ClipOptions(PluginOptions):
    model: str = Field("ViT-L-14", description="open_clip architecture")
    pretrained: Optional[str] = Field("openai", description="weights tag (decides QuickGELU and image "
                                      "normalisation); empty with a checkpoint")
    checkpoint: Optional[str] = Field(None, description="local weights file or folder (env DELTAV2A_CLIP_CHECKPOINT)")
    quick_gelu: Union[bool, Literal["auto"], None] = Field(None, description="override the tag's QuickGELU choice")
    device: Optional[str] = Field("auto", description="auto, cpu, cuda or cuda:N")
    batch_size: int = Field(16, description="images per forward pass")
    allow_unsafe_checkpoint: bool = Field(False, description="permit a pickled checkpoint you named to run "
                                          "code on load (never from a model directory)")


class ClapOptions(PluginOptions):
    amodel: str = Field("HTSAT-base", description="laion-clap audio architecture")
    tmodel: str = Field("roberta", description="text model (only roberta, the released checkpoints' one)")
    checkpoint: Optional[str] = Field(None, description="weights file (env DELTAV2A_CLAP_CHECKPOINT)")
    text_model_dir: Optional[str] = Field(None, description="local roberta folder (env DELTAV2A_CLAP_TEXT_MODEL)")
    max_duration: Optional[float] = Field(20.0, description="seconds kept from the start of a clip (0 = all)")
    window_seconds: float = Field(10.0, description="length of the windows whose embeddings are averaged")
    sample_rate: int = Field(48000, description="the model's sample rate")
    allow_unsafe_checkpoint: bool = Field(False, description="permit a pickled checkpoint you named to run "
                                          "code on load (never from a model directory)")
    device: Optional[str] = Field("auto", description="auto, cpu, cuda or cuda:N")
    batch_size: int = Field(8, description="windows per forward pass")


class PerceptualOptions(PluginOptions):
    normalisation: Optional[str] = Field(None, description="normalisation table (YAML path) replacing the "
                                         "one the lexicon names, for experiments")
    normalisation_version: Optional[str] = Field(None, description="a shipped normalisation (NORMALISATION_FILES: "
                                                 "'3' is the faster analysis 2, decision 15.11; '4' analysis 3, decision 15.50; "
                                                 "default: the one "
                                                 "the lexicon names)")
    lexicon: Optional[str] = Field(None, description="lexicon file (YAML path) replacing the shipped one")
    lexicon_version: Optional[str] = Field(None, description="a shipped lexicon (LEXICON_FILES; default: "
                                           "'3'; '4' reads normalisation 3 (issue 16, third pass), the shipped model's; '5' needs "
                                           "normalisation 5; '6' is v4 with its own *steady* (decision 16.74); '1' is the first "
                                           "shipped models' lexicon)")
    lexicon_supplements: list[str] = Field([], description="supplement names or YAML paths added to the lexicon")
    device: Optional[str] = Field(None, description="accepted and ignored (configs for the neural encoders work)")
    batch_size: Optional[int] = Field(None, description="accepted and ignored")

    @field_validator("lexicon_version", "normalisation_version", mode="before")
    @classmethod
    def _version_text(cls, v: Any) -> Any:
        # YAML reads `lexicon_version: 3` as a number; the shipped versions are names
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
