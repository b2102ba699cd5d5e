"""Rule scoring (the note's dsp/rule_scoring.py): weighted feature sums, texture penalty, softmax."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .types import ROLE_ORDER, ScoreVector

if TYPE_CHECKING:  # pragma: no cover
    from .config import RoleAssignerConfig


def softmax(values: list[float], temperature: float) -> list[float]:
    top = max(values)
    e = [math.exp((v - top) / temperature) for v in values]
    s = sum(e)
    return [x / s for x in e]


def rule_scores(terms: dict[str, float], cfg: "RoleAssignerConfig") -> tuple[dict[str, float], ScoreVector]:
    """(raw score per role after the texture penalty, p_rule)."""
    rs = cfg.rule_scoring
    raw = {r.value: sum(w * terms[t] for t, w in rs.weights[r.value].items()) for r in ROLE_ORDER}
    tp = rs.texture_penalty
    if tp.enabled:
        # a clearly percussive hit (sharp, short) is not background texture
        if terms["S"] > tp.transient_S_threshold and terms["D"] < tp.decay_short_threshold:
            raw["TEXTURE"] -= tp.penalty
        # nor is a tonal one (the note: low noisiness also lowers TEXTURE)
        if tp.low_noise_enabled and terms["F"] < tp.low_noise_flatness_threshold:
            raw["TEXTURE"] -= tp.low_noise_penalty
    p = softmax([raw[r.value] for r in ROLE_ORDER], rs.temperature)
    return raw, ScoreVector.of(p)
