"""`RoleAssigner`: the note's main API (role_assigner.py), one hit or a folder of hits.

    from deltav2a.drums import RoleAssigner, RoleAssignerConfig
    ra = RoleAssigner(RoleAssignerConfig.from_yaml("core/drums/presets/note.yaml"))
    r = ra.assign_file("kick.wav")            # SampleResult: r.role, r.scores, r.features
    r = ra.assign_audio(y, sr=16000)

The text encoder is loaded on first use; with `text.enabled: false` p_text is uniform and
the text side costs nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import DeltaV2AError
from .config import RoleAssignerConfig
from .features import extract, rule_terms
from .fusion import apply_guards, fuse
from .preprocess import Hit, load_hit, prepare
from .rules import rule_scores
from .types import ROLE_ORDER, ScoreBundle, ScoreVector, SampleResult

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .text import TextScorer


@dataclass
class BatchResult:
    results: list[SampleResult] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)   # {"file", "reason"}


class RoleAssigner:
    def __init__(self, config: RoleAssignerConfig | None = None) -> None:
        self.config = config or RoleAssignerConfig()
        self._text: "TextScorer | None" = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RoleAssigner":
        return cls(RoleAssignerConfig.from_dict(data))

    @property
    def text(self) -> "TextScorer | None":
        if self._text is None and self.config.text.enabled:
            from .text import TextScorer

            self._text = TextScorer(self.config)
        return self._text

    def _assign(self, hit: Hit, sample_id: str, filepath: str) -> SampleResult:
        cfg = self.config
        feats = extract(hit.y, hit.sr, cfg)
        terms = rule_terms(feats, cfg)
        raw, p_rule = rule_scores(terms, cfg)
        if self.text is not None:
            sims, p_text = self.text.score(hit.native, hit.native_sr)
        else:
            sims, p_text = {r.value: float("nan") for r in ROLE_ORDER}, ScoreVector.uniform()
        fused = fuse(p_rule, p_text, cfg)
        final, fired = apply_guards(fused, terms, cfg)
        scores = ScoreBundle(rule=p_rule, text=p_text, fused=fused, final=final, confidence=final.margin())
        return SampleResult(sample_id=sample_id, filepath=filepath, role=final.argmax(), scores=scores,
                            features=feats, rule_raw_scores=raw, text_similarities=sims,
                            guards_fired=tuple(fired))

    def assign_audio(self, y: "np.ndarray", sr: float, sample_id: str = "audio",
                     filepath: str = "") -> SampleResult:
        """A hit given as samples ((samples,) or (channels, samples)) at rate `sr`."""
        return self._assign(prepare(y, sr, self.config, what=sample_id), sample_id, filepath)

    def assign_file(self, filepath: str | os.PathLike, sample_id: str | None = None) -> SampleResult:
        p = Path(filepath)
        return self._assign(load_hit(p, self.config), sample_id or p.stem, str(p))

    def assign_many(self, paths: Sequence[Path], progress: Callable[[int], None] | None = None) -> BatchResult:
        """Every file, in order; a file that cannot be scored is skipped with its reason."""
        out = BatchResult()
        seen: dict[str, int] = {}
        for p in paths:
            sid = p.stem if p.stem not in seen else f"{p.stem}_{seen[p.stem]}"
            seen[p.stem] = seen.get(p.stem, 0) + 1
            try:
                out.results.append(self.assign_file(p, sid))
            except DeltaV2AError as exc:
                out.skipped.append({"file": str(p), "reason": str(exc)})
            if progress:
                progress(1)
        return out
