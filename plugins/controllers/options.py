"""The built-in controllers' options (pydantic models, `Options` of each controller class).

Kept apart from the registered classes so registering them imports no pydantic: the classes
name these models with `OptionsRef` (api/optionsref.py), resolved when options are used.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from deltav2a.api.options import PluginOptions


class MLPOptions(PluginOptions):
    hidden_dims: list[int] = Field([256, 256, 128], min_length=1, description="widths of the style blocks")
    dropout: float = Field(0.3, ge=0, lt=1, description="dropout after each block")
    gate_bias: float = Field(-2.0, description="initial bias of the E(A) gate (sigmoid(-2) = 0.12)")


class AROptions(PluginOptions):
    condition_dim: int = Field(256, ge=1, description="size of the GRU condition vector")
    hidden_dim: int = Field(512, ge=1, description="width of the condition and head MLPs")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout in the condition MLP")
    max_steps: int = Field(2, ge=1, description="most effects chosen per answer (greedy decoding)")
    label_smoothing: float = Field(0.03, ge=0, lt=1, description="of the next-effect cross-entropy")
    param_loss_weight: float = Field(50.0, description="weight of the parameter Huber loss")


class KNNOptions(PluginOptions):
    k: int = Field(8, ge=1, le=512, description="neighbours that vote and average")
    style_weight: float = Field(1.0, ge=0, description="weight of the Hellinger distance of labels")
    audio_weight: float = Field(0.25, ge=0, description="weight of the standardised E(A) distance")
    strength_weight: float = Field(1.0, ge=0, description="weight of |strength difference| (when known)")
    max_records: int = Field(100_000, ge=1, description="records kept (seeded sample beyond this)")
    params_from: Literal["neighbours", "head"] = Field(
        "neighbours", description="parameters: the mean over the nearest records with the effect, or a small "
                                  "head learned on (label, strength) at fit (decision 9.60)")
    head_hidden: int = Field(128, ge=1, le=4096, description="width of the parameter head's two hidden layers")
    head_epochs: int = Field(60, ge=1, le=10_000, description="passes over the records when fitting the head")
    head_lr: float = Field(3e-3, gt=0, description="AdamW learning rate of the head")
    head_weight_decay: float = Field(1e-2, ge=0, description="AdamW weight decay of the head")
    head_dropout: float = Field(0.1, ge=0, lt=1, description="dropout after each hidden layer of the head")
