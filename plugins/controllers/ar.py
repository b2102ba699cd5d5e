"""The notes' autoregressive controller (Appendix E): effects one at a time, then params.

    condition h0 = f(style, E(A))                       (MLP, condition_dim = 256)
    step t:  h_t = GRUCell([embed(prev token), prev params], h_{t-1})
             next token  = EffectHead(h_t)              (E effects + EOS; CE, label smoothing)
             its params  = ParamHead([h_t, embed(token)]) (Huber on that effect's columns)
    stop at EOS or after max_steps effects

Training uses teacher forcing on the ground-truth effects in chain (layout) order: the
previous token and its parameters fed to step t are the true ones. Decoding is greedy. An
effect already chosen, and the start token, are masked out at every step (an effect
appears at most once in a chain), in training and decoding alike; label smoothing is spread
over the allowed tokens only.

`predict_batch` answers in the common controller format: activity is 1 for the effects the
greedy decode chose and 0 elsewhere (a decision, not a probability, so activity
thresholds anywhere in (0, 1] leave it unchanged), params are the decoded values for the
chosen effects and bypass elsewhere.

Records with more active effects than max_steps are truncated to the first max_steps in
chain order (the notes' DB has at most 2 = max_steps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from deltav2a.training.losses import huber, smoothed_cross_entropy

if TYPE_CHECKING:  # pragma: no cover
    from deltav2a.config import LossConfig

    from .options import AROptions as ARConfig
    from deltav2a.model.layout import ParamLayout


class ARNet(nn.Module):
    def __init__(self, style_dim: int, audio_dim: int, layout: "ParamLayout", cfg: "ARConfig"):
        super().__init__()
        self.layout = layout
        self.style_dim = int(style_dim)
        self.audio_dim = int(audio_dim)
        self.max_steps = int(cfg.max_steps)
        self.label_smoothing = float(cfg.label_smoothing)
        self.param_loss_weight = float(cfg.param_loss_weight)
        E, P = layout.n_effects, layout.n_params
        C, H = int(cfg.condition_dim), int(cfg.hidden_dim)
        self.eos = E
        self.bos = E + 1
        self.condition = nn.Sequential(
            nn.Linear(self.style_dim + self.audio_dim, H), nn.LayerNorm(H), nn.ReLU(),
            nn.Dropout(cfg.dropout), nn.Linear(H, C),
        )
        self.token_embedding = nn.Embedding(E + 2, C)
        self.update = nn.GRUCell(C + P, C)
        self.effect_head = nn.Sequential(
            nn.Linear(C, H), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(H, E + 1))
        self.param_head = nn.Sequential(
            nn.Linear(2 * C, H), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(H, P))
        self.register_buffer("param_effect",
                             torch.as_tensor(layout.param_effect, dtype=torch.long), persistent=False)
        self.register_buffer("bypass", torch.as_tensor(layout.bypass, dtype=torch.float32),
                             persistent=False)

    # -- pieces shared by training and decoding --------------------------------------------

    def _columns(self, token: torch.Tensor) -> torch.Tensor:
        """(N,) token -> (N, P) mask of that effect's parameter columns (none for EOS/BOS)."""
        return self.param_effect[None, :] == token[:, None]

    def _step(self, h: torch.Tensor, prev_token: torch.Tensor, prev_params: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.token_embedding(prev_token), prev_params], dim=-1)
        h = self.update(x, h)
        return h, self.effect_head(h)

    def _params_for(self, h: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.param_head(torch.cat([h, self.token_embedding(token)], dim=-1)))

    def _allowed(self, used: torch.Tensor) -> torch.Tensor:
        """(N, E+1) tokens allowed next: unused effects and EOS (BOS is never a target)."""
        eos_ok = torch.ones_like(used[:, :1])
        return torch.cat([~used, eos_ok], dim=-1)

    # -- training ----------------------------------------------------------------------------

    def compute_loss(self, style: torch.Tensor, audio: torch.Tensor, active: torch.Tensor,
                     params: torch.Tensor, loss_cfg: "LossConfig"
                     ) -> tuple[torch.Tensor, dict[str, float]]:
        """CE(next token) + param_loss_weight * Huber(that effect's params), teacher forced."""
        n, E = active.shape
        active = active.bool()
        count = active.sum(dim=1)
        rank = active.long().cumsum(dim=1) - 1
        width = max(E, self.max_steps) + 1
        seq = torch.full((n, width), self.eos, dtype=torch.long, device=style.device)
        rows, cols = active.nonzero(as_tuple=True)
        seq[rows, rank[rows, cols]] = cols

        h = self.condition(torch.cat([style, audio], dim=-1))
        prev = torch.full((n,), self.bos, dtype=torch.long, device=style.device)
        prev_params = torch.zeros_like(params)
        used = torch.zeros_like(active)
        ce_sum = style.new_zeros(())
        ce_count = style.new_zeros(())
        hub_sum = style.new_zeros(())
        hub_count = style.new_zeros(())
        for t in range(self.max_steps):
            valid = count >= t  # step t exists: an effect (t < count) or the EOS (t == count)
            if not bool(valid.any()):
                break
            target = seq[:, t]
            h, logits = self._step(h, prev, prev_params)
            ce = smoothed_cross_entropy(logits, target, self._allowed(used), self.label_smoothing)
            ce_sum = ce_sum + (ce * valid).sum()
            ce_count = ce_count + valid.sum()
            is_effect = target != self.eos
            cols_mask = self._columns(target) & is_effect[:, None]
            pred = self._params_for(h, target)
            hub = huber(pred, params, loss_cfg.huber_delta) * cols_mask
            hub_sum = hub_sum + hub.sum()
            hub_count = hub_count + cols_mask.sum()
            # teacher forcing: feed the true token and its true parameters to the next step
            prev = target
            prev_params = params * cols_mask
            used = used | (nn.functional.one_hot(target, E + 1)[:, :E].bool() & is_effect[:, None])
        l_ce = ce_sum / ce_count.clamp(min=1)
        l_par = hub_sum / hub_count.clamp(min=1)
        total = l_ce + self.param_loss_weight * l_par
        return total, {"loss": float(total.detach()), "act_loss": float(l_ce.detach()),
                       "param_loss": float(l_par.detach())}

    # -- decoding --------------------------------------------------------------------------

    def decode(self, style: torch.Tensor, audio: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Greedy decode: (tokens (N, max_steps) with -1 after the end, activity, params)."""
        n = style.shape[0]
        E = self.layout.n_effects
        h = self.condition(torch.cat([style, audio], dim=-1))
        prev = torch.full((n,), self.bos, dtype=torch.long, device=style.device)
        prev_params = style.new_zeros((n, self.layout.n_params))
        used = torch.zeros((n, E), dtype=torch.bool, device=style.device)
        done = torch.zeros(n, dtype=torch.bool, device=style.device)
        out_params = self.bypass[None, :].repeat(n, 1)
        tokens = torch.full((n, self.max_steps), -1, dtype=torch.long, device=style.device)
        for t in range(self.max_steps):
            h, logits = self._step(h, prev, prev_params)
            logits = logits.masked_fill(~self._allowed(used), float("-inf"))
            choice = logits.argmax(dim=-1)
            choice = torch.where(done, torch.full_like(choice, self.eos), choice)
            is_effect = choice != self.eos
            tokens[:, t] = torch.where(is_effect, choice, torch.full_like(choice, -1))
            cols_mask = self._columns(choice) & is_effect[:, None]
            values = self._params_for(h, choice)
            out_params = torch.where(cols_mask, values, out_params)
            used = used | (nn.functional.one_hot(choice, E + 1)[:, :E].bool() & is_effect[:, None])
            done = done | ~is_effect
            if bool(done.all()):
                break
            prev = choice
            prev_params = values * cols_mask
        return tokens, used.to(style.dtype), out_params

    def predict_batch(self, style: torch.Tensor, audio: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        _, activity, params = self.decode(style, audio)
        return activity, params
