"""Training losses of the notes ("Loss Function", Appendix C), written out term by term.

* Activity: asymmetric sigmoid loss (ASL) with a clipped negative probability, times the
  "activity mismatch multiplier" inside the mean (the notes put the multiplier *in* the
  activity loss, not beside it).
* Parameters: the notes' Huber form (quadratic below delta, linear above, i.e. PyTorch's
  SmoothL1 with beta=delta, not `torch.nn.HuberLoss`, which is delta times smaller),
  only on the parameters of effects that are active in the ground truth, each scaled by
  its effect's weight.
* Total: w_param * L_param + w_act * L_act.

Reductions and the two choices the notes leave open are fixed here and in
docs/controllers.md: L_act is the mean over all (record, effect) elements, exactly the
notes' ``mean(...)``; the multiplier is detached (a per-element weight, so each element's
gradient keeps the direction ASL gives it); L_param divides the weighted sum by the
number of active (record, parameter) entries, so an effect weight of 3 really triples that
effect's share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # pragma: no cover
    from ..config import LossConfig
    from ..model.layout import ParamLayout

Reduction = Literal["mean", "sum_effects"]


def asl_elementwise(logits: torch.Tensor, targets: torch.Tensor, gamma_pos: float = 0.0,
                    gamma_neg: float = 5.0, clip: float = 0.05) -> torch.Tensor:
    """Per-element ASL (non-negative): the negatives of the notes' log-likelihood terms.

    y=1: -(1-p)^gamma_pos * log(p);  y=0: -(p_m)^gamma_neg * log(1-p_m), p_m = max(p-clip, 0).
    Soft targets in between mix the two branches linearly.
    """
    y = targets.to(logits.dtype)
    p = torch.sigmoid(logits)
    pos = -F.logsigmoid(logits)  # -log p, exact for large |logits|
    if gamma_pos != 0.0:  # (1-p)^0 is 1; skipping it avoids 0 * inf in its gradient at p=1
        pos = pos * (1.0 - p).pow(gamma_pos)
    if clip > 0.0:
        p_m = (p - clip).clamp(min=0.0)
        log_not = torch.log1p(-p_m)  # 1 - p_m >= clip > 0: always finite
    else:
        p_m = p
        log_not = -F.softplus(logits)  # log(1 - p), exact
    neg = -log_not
    if gamma_neg != 0.0:
        neg = neg * p_m.pow(gamma_neg)
    return y * pos + (1.0 - y) * neg


def mismatch_multiplier(logits: torch.Tensor, targets: torch.Tensor, weight: float = 2.0,
                        gamma: float = 2.0) -> torch.Tensor:
    """1 + w * (1 - p_t)^gamma with p_t = y p + (1-y)(1-p); detached (a weight, see module doc)."""
    with torch.no_grad():
        y = targets.to(logits.dtype)
        p = torch.sigmoid(logits)
        p_t = y * p + (1.0 - y) * (1.0 - p)
        return 1.0 + weight * (1.0 - p_t).pow(gamma)


def activity_loss(logits: torch.Tensor, targets: torch.Tensor, cfg: "LossConfig",
                  reduction: Reduction = "mean") -> torch.Tensor:
    """L_act = mean(L_ASL,elem * multiplier) over all (record, effect) elements.

    `reduction="sum_effects"` sums over effects and averages over records instead (E times
    larger); it exists for comparison with ASL's original implementation, not as default.
    """
    elem = asl_elementwise(logits, targets, cfg.asl_gamma_pos, cfg.asl_gamma_neg, cfg.asl_clip)
    elem = elem * mismatch_multiplier(logits, targets, cfg.mismatch_weight, cfg.mismatch_gamma)
    if reduction == "mean":
        return elem.mean()
    if reduction == "sum_effects":
        return elem.sum(dim=-1).mean()
    raise ValueError(f"unknown reduction {reduction!r}")


def huber(pred: torch.Tensor, target: torch.Tensor, delta: float) -> torch.Tensor:
    """The notes' Huber: d^2 / (2 delta) if |d| <= delta else |d| - delta/2 (elementwise)."""
    d = (pred - target).abs()
    return torch.where(d <= delta, d * d / (2.0 * delta), d - 0.5 * delta)


def effect_weight_vector(layout: "ParamLayout", cfg: "LossConfig") -> list[float]:
    """Per-effect loss weights in layout order; effects the config does not name weigh 1."""
    return [float(cfg.effect_weights.get(e, 1.0)) for e in layout.effects]


def param_loss(pred: torch.Tensor, target: torch.Tensor, active: torch.Tensor,
               layout: "ParamLayout", cfg: "LossConfig") -> torch.Tensor:
    """Weighted Huber over ground-truth-active parameters.

    L_param = sum_{n,j} a_nj w_e(j) h_nj / max(1, sum_{n,j} a_nj), where a_nj says whether
    parameter j's effect is active in record n. Inactive effects' parameters carry no
    loss: the activity head decides them, and gating puts them at bypass.
    """
    idx = torch.as_tensor(layout.param_effect, dtype=torch.long, device=pred.device)
    mask = active.to(pred.dtype)[:, idx]
    w_eff = torch.as_tensor(effect_weight_vector(layout, cfg), dtype=pred.dtype, device=pred.device)
    w = w_eff[idx][None, :]
    h = huber(pred, target, cfg.huber_delta)
    return (h * w * mask).sum() / mask.sum().clamp(min=1.0)


def controller_loss(logits: torch.Tensor, params_pred: torch.Tensor, active: torch.Tensor,
                    params_true: torch.Tensor, layout: "ParamLayout", cfg: "LossConfig"
                    ) -> tuple[torch.Tensor, dict[str, float]]:
    """Total = w_param * L_param + w_act * L_act, plus both parts for logging."""
    l_act = activity_loss(logits, active, cfg)
    l_par = param_loss(params_pred, params_true, active, layout, cfg)
    total = cfg.w_param * l_par + cfg.w_act * l_act
    return total, {"loss": float(total.detach()), "act_loss": float(l_act.detach()),
                   "param_loss": float(l_par.detach())}


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, allowed: torch.Tensor,
                           smoothing: float) -> torch.Tensor:
    """Per-row cross-entropy with label smoothing spread over the *allowed* classes only.

    The AR controller forbids some tokens at a step (an effect already chosen, the start
    token); spreading smoothing mass onto a forbidden class would ask for infinite loss.
    Target distribution: (1 - s) on the target class + s / |allowed| on every allowed one.
    """
    neg = torch.finfo(logits.dtype).min
    log_prob = torch.log_softmax(logits.masked_fill(~allowed, neg), dim=-1)
    n_allowed = allowed.sum(dim=-1, keepdim=True).clamp(min=1).to(logits.dtype)
    q = allowed.to(logits.dtype) * (smoothing / n_allowed)
    q = q + (1.0 - smoothing) * F.one_hot(target, logits.shape[-1]).to(logits.dtype)
    return -(q * log_prob.masked_fill(~allowed, 0.0)).sum(dim=-1)
