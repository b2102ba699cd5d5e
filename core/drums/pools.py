"""Role pools of a batch (the note's pool/build_pools.py): required roles, caps, promotion, rebalancing.

* Each hit starts in the pool of its role.
* Promotion (a required pool is empty): the hit with the highest final score for that role
  moves in, unless moving it would empty another required pool or it violates the role's
  guard condition (MOTION needs the motion condition; CORE/ACCENT must not be sustained
  noise). With no eligible hit the role is reported missing.
* Rebalancing (a pool above its max size): its hits whose confidence (final margin) is
  below `min_margin_keep` move to their runner-up role, least confident first, while that
  pool has room; confident hits are never moved, so a pool can stay above its cap (reported).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from .types import ROLE_ORDER, Role, RolePools, SampleResult

if TYPE_CHECKING:  # pragma: no cover
    from .config import RoleAssignerConfig


def _eligible(s: SampleResult, role: str, cfg: "RoleAssignerConfig") -> bool:
    from .features import rule_terms

    t = rule_terms(s.features, cfg)
    g = cfg.guards
    if role == "MOTION":
        return t["H"] >= g.motion_min_condition.high_min and t["D_short"] >= g.motion_min_condition.decay_short_min
    if role in g.sustained_noise_suppress.roles:
        return not (t["D"] > g.sustained_noise_suppress.decay_min and t["F"] > g.sustained_noise_suppress.flatness_min)
    return True


def build_pools(results: Sequence[SampleResult], cfg: "RoleAssignerConfig | None" = None) -> RolePools:
    from .config import RoleAssignerConfig

    cfg = cfg or RoleAssignerConfig()
    pc = cfg.pool
    where: dict[str, str] = {s.sample_id: s.role.value for s in results}
    by_id = {s.sample_id: s for s in results}
    moves: list[dict] = []

    def members(role: str) -> list[str]:
        return [i for i, r in where.items() if r == role]

    missing: list[str] = []
    if pc.promote_when_missing.enabled:
        for role in pc.required_roles:
            if members(role):
                continue
            ranked = sorted(results, key=lambda s: -s.scores.final[role])
            for s in ranked:
                src = where[s.sample_id]
                if src in pc.required_roles and len(members(src)) <= 1:
                    continue
                if not _eligible(s, role, cfg):
                    continue
                where[s.sample_id] = role
                moves.append({"sample_id": s.sample_id, "from": src, "to": role, "why": "promoted: required role empty",
                              "score": round(s.scores.final[role], 6)})
                break
    missing = [r for r in pc.required_roles if not members(r)]

    if pc.rebalance_when_excess.enabled:
        keep = pc.rebalance_when_excess.min_margin_keep
        for role, cap in pc.max_sizes.items():
            ids = sorted(members(role), key=lambda i: by_id[i].scores.confidence)
            for i in ids:
                if len(members(role)) <= cap:
                    break
                s = by_id[i]
                if s.scores.confidence >= keep:
                    break
                runner = next(r for r, _ in s.scores.final.sorted() if r != role)
                if runner in pc.max_sizes and len(members(runner)) >= pc.max_sizes[runner]:
                    continue
                where[i] = runner
                moves.append({"sample_id": i, "from": role, "to": runner,
                              "why": f"rebalanced: {role} above {cap}", "confidence": round(s.scores.confidence, 6)})

    pools = RolePools(moves=moves, missing=missing)
    for s in results:
        pools.pool(Role(where[s.sample_id])).append(s)
    return pools


def excess(pools: RolePools, cfg: "RoleAssignerConfig") -> dict[str, int]:
    """Pools still above their cap after rebalancing (confident members are never moved)."""
    return {r: len(pools.pool(r)) - n for r, n in cfg.pool.max_sizes.items() if len(pools.pool(r)) > n}


__all__ = ["build_pools", "excess", "ROLE_ORDER"]
