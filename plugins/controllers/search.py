"""The `search` controller: no network, no training; it searches the chain per transfer.

Registered beside mlp/ar so it is listed, chosen and described the same way, but it has no
module to build: `propose()` runs `deltav2a.model.search.search_plan` (CMA-ES over the effect
choice and the normalised parameters, scored by the audio-side label of (A, A') against the
image label). Given a trained controller's plan as `init`, it refines that plan instead.

numpy, cma and the encoders are imported only inside `propose()`, so listing plugins stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deltav2a.api.controllers import Controller
from deltav2a.errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from deltav2a.config import Config
    from deltav2a.model.layout import ParamLayout
    from deltav2a.model.plan import EffectPlan
    from deltav2a.style.label import StyleLabel


class SearchController(Controller):
    """Zero-shot search: CMA-ES renders candidate chains and keeps the one whose sound reads like the image edit.

    Score = centred cosine between the audio encoder's label of (A, A') and the image label,
    minus `inference.search.strength_weight` x |audio strength - image strength|. At most
    `max_active` effects; candidates are rendered on a short excerpt (the loudest
    `inference.search.excerpt_seconds`), the full clip once at the end. Budget:
    `inference.search.budget_evals` and/or `budget_seconds`. With `init` (a trained
    controller's plan) it refines that plan. Nothing to train.
    """

    name = "search"
    trainable = False

    @classmethod
    def build(cls, style_dim: int, audio_dim: int, layout: "ParamLayout", cfg: Any) -> Any:
        raise DeltaV2AError("the 'search' controller has nothing to train: it searches at transfer "
                            "time (use `transfer --controller search`, or `--refine` with a trained model)")

    @classmethod
    def propose(cls, target: "StyleLabel", audio: "np.ndarray", sample_rate: int, *,
                cfg: "Config", audio_encoder: Any, vocab: Any, layout: "ParamLayout",
                max_active: int | None = None, init: "EffectPlan | None" = None,
                audio_strength: Any = None, budget_evals: Any = "config",
                budget_seconds: Any = "config", seed: int | None = None) -> "EffectPlan":
        """One transfer's plan. Budgets default to `cfg.inference.search`; pass None to drop one.

        `audio_strength` is the audio-side StrengthMap of the model (from the database); without
        one the search fits a map for this clip from its first pass.
        """
        from deltav2a.style.encoding import term_embeddings
        from deltav2a.model.search import AudioScorer, search_plan

        sc = cfg.inference.search
        scorer = AudioScorer(audio_encoder, term_embeddings(audio_encoder, vocab, "audio"),
                             cfg.database.temperature, audio_strength, sc.strength_weight)
        if max_active is None:
            max_active = int(getattr(cfg.inference, "max_active", None) or cfg.database.max_active)
        return search_plan(
            audio, sample_rate, target, scorer=scorer, layout=layout, max_active=max_active,
            init=init,
            budget_evals=sc.budget_evals if budget_evals == "config" else budget_evals,
            budget_seconds=sc.budget_seconds if budget_seconds == "config" else budget_seconds,
            seed=cfg.seed if seed is None else seed, excerpt_seconds=sc.excerpt_seconds,
            chain_order=cfg.effects.chain_order,
            strength_floor=cfg.database.param_min_intensity if sc.match_strength else None)

    @classmethod
    def propose_for(cls, model: Any, target: "StyleLabel", audio: "np.ndarray", sample_rate: int,
                    **kwargs: Any) -> "EffectPlan":
        """`propose` with the pieces of a loaded `TransferModel` (config, audio encoder,
        vocabulary, layout and, when it has one, its audio StrengthMap `audio_strength`)."""
        kwargs.setdefault("audio_strength", getattr(model, "audio_strength", None))
        return cls.propose(target, audio, sample_rate, cfg=model.cfg, audio_encoder=model.audio_encoder,
                           vocab=model.vocab, layout=model.layout, **kwargs)
