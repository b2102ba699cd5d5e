"""The notes' final controller: a style-label MLP with a gated audio residual (~191K params).

    style (K) -> [Linear -> LayerNorm -> ReLU -> Dropout] x 3 (256, 256, 128) = style_feat
    gate       = sigmoid(Linear(128 -> 128)(style_feat)), bias initialised to gate_bias (-2)
    audio_feat = Linear(D -> 128) -> LayerNorm -> ReLU -> Dropout  on E(A)
    feat       = style_feat + gate * audio_feat
    activity   = Linear(128 -> E)            (logits; sigmoid at inference)
    params     = Sigmoid(Linear(128 -> P))   (normalised positions)

Experiment 3 of the notes found E(A) alone carries no parameter information and style +
E(A) only a little more than style alone, so the audio path is a residual whose gate
starts almost closed (sigmoid(-2) = 0.12) and has to earn its contribution.

This module imports torch at the top; the registered `MLPController` class (in this
package's __init__) only imports it from `build()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn

from deltav2a.training.losses import controller_loss

if TYPE_CHECKING:  # pragma: no cover
    from deltav2a.config import LossConfig

    from .options import MLPOptions as MLPConfig
    from deltav2a.model.layout import ParamLayout


def _block(d_in: int, d_out: int, dropout: float) -> list[nn.Module]:
    return [nn.Linear(d_in, d_out), nn.LayerNorm(d_out), nn.ReLU(), nn.Dropout(dropout)]


def mlp_parameter_count(style_dim: int, audio_dim: int, n_effects: int, n_params: int,
                        hidden_dims: Sequence[int] = (256, 256, 128)) -> int:
    """Closed form of `MLPNet`'s parameter count (a Linear(a, b) has a*b + b, a LayerNorm(b) 2b)."""
    total, d = 0, style_dim
    for h in hidden_dims:
        total += d * h + h + 2 * h
        d = h
    total += d * d + d                      # gate Linear
    total += audio_dim * d + d + 2 * d      # audio Linear + LayerNorm
    total += d * n_effects + n_effects      # activity head
    total += d * n_params + n_params        # param head
    return total


class MLPNet(nn.Module):
    def __init__(self, style_dim: int, audio_dim: int, layout: "ParamLayout", cfg: "MLPConfig"):
        super().__init__()
        self.layout = layout
        self.style_dim = int(style_dim)
        self.audio_dim = int(audio_dim)
        layers: list[nn.Module] = []
        d = self.style_dim
        for h in cfg.hidden_dims:
            layers += _block(d, int(h), cfg.dropout)
            d = int(h)
        self.backbone = nn.Sequential(*layers)
        self.gate = nn.Linear(d, d)
        with torch.no_grad():
            self.gate.bias.fill_(cfg.gate_bias)
        self.audio_proj = nn.Sequential(*_block(self.audio_dim, d, cfg.dropout))
        self.activity_head = nn.Linear(d, layout.n_effects)
        self.param_head = nn.Linear(d, layout.n_params)

    def forward(self, style: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(activity logits (N, E), normalised params (N, P))."""
        style_feat = self.backbone(style)
        gate = torch.sigmoid(self.gate(style_feat))
        feat = style_feat + gate * self.audio_proj(audio)
        return self.activity_head(feat), torch.sigmoid(self.param_head(feat))

    def gate_values(self, style: torch.Tensor) -> torch.Tensor:
        """How open the audio gate is for these style labels (diagnostics)."""
        return torch.sigmoid(self.gate(self.backbone(style)))

    def compute_loss(self, style: torch.Tensor, audio: torch.Tensor, active: torch.Tensor,
                     params: torch.Tensor, loss_cfg: "LossConfig"
                     ) -> tuple[torch.Tensor, dict[str, float]]:
        logits, params_pred = self(style, audio)
        return controller_loss(logits, params_pred, active, params, self.layout, loss_cfg)

    def predict_batch(self, style: torch.Tensor, audio: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, params_pred = self(style, audio)
        return torch.sigmoid(logits), params_pred
