"""Fusion of p_rule and p_text, and the note's five guards (fusion/fuse.py, fusion/guards.py).

p_fused = alpha * p_rule + (1 - alpha) * p_text, plus an optional per-role bias (added, then
clipped at 0 and renormalised). The guards then rescale single roles, each when its
condition holds, and the vector is renormalised; confidence is the margin between the two
best roles of the final vector. Every guard is switchable in the config and names itself
in `guards_fired` when it changes something.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .types import ROLE_ORDER, ScoreVector

if TYPE_CHECKING:  # pragma: no cover
    from .config import RoleAssignerConfig


def _normalised(p: dict[str, float]) -> ScoreVector:
    p = {k: max(0.0, v) for k, v in p.items()}
    s = sum(p.values())
    if s <= 0:
        return ScoreVector.uniform()
    return ScoreVector({r.value: p[r.value] / s for r in ROLE_ORDER})


def fuse(p_rule: ScoreVector, p_text: ScoreVector, cfg: "RoleAssignerConfig") -> ScoreVector:
    a = cfg.fusion.alpha
    p = {r.value: a * p_rule[r] + (1 - a) * p_text[r] + cfg.fusion.role_bias.get(r.value, 0.0)
         for r in ROLE_ORDER}
    return _normalised(p)


def apply_guards(p: ScoreVector, terms: dict[str, float], cfg: "RoleAssignerConfig"
                 ) -> tuple[ScoreVector, list[str]]:
    g = cfg.guards
    fired: list[str] = []
    if not g.enabled:
        return p, fired
    q = dict(p.values)

    ts = g.texture_suppress
    if ts.enabled and terms["S"] > ts.transient_S_threshold and terms["D"] < ts.decay_max:
        q["TEXTURE"] *= ts.multiply
        fired.append("texture_suppress")

    sn = g.sustained_noise_suppress
    if sn.enabled and terms["D"] > sn.decay_min and terms["F"] > sn.flatness_min:
        for r in sn.roles:
            q[r] *= sn.multiply
        fired.append("sustained_noise_suppress")

    mm = g.motion_min_condition
    if mm.enabled and not (terms["H"] >= mm.high_min and terms["D_short"] >= mm.decay_short_min):
        q["MOTION"] *= mm.multiply
        fired.append("motion_min_condition")

    cur = _normalised(q)
    fc = g.fill_conservative
    if fc.enabled and cur.argmax().value == "FILL":
        (_, p1), (second, p2) = cur.sorted()[:2]
        if not (p1 > fc.p_min and p1 - p2 > fc.margin_min):
            # FILL only when sure: otherwise the runner-up takes the hit
            q = dict(cur.values)
            q["FILL"] = p2 * (1 - 1e-6)
            fired.append("fill_conservative")
            cur = _normalised(q)

    lc = g.low_confidence_texture_extra
    if lc.enabled and (not lc.struck_only or terms["A_fast"] > 0):
        (top, p1), (second, p2) = cur.sorted()[:2]
        if top == "TEXTURE" and second in lc.percussive_roles and p1 - p2 < cfg.fusion.confidence_margin_threshold:
            q = dict(cur.values)
            q["TEXTURE"] *= lc.multiply
            fired.append("low_confidence_texture_extra")
            cur = _normalised(q)
    return cur, fired
