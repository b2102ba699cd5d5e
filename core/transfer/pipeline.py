"""Image edit -> audio edit: the main job (seed 000, "System Workflow").

    image pair -> calibrated style label (image side) -> identity mapping (the same label is
    read as an audio-side label) -> controller(label, E(A)) -> per-effect activity +
    parameters -> Pedalboard render -> A'

A model directory holds `controller.safetensors` + `controller.json` (weights, thresholds,
calibration, encoder and vocabulary fingerprints) and `config.yaml` (the run's config, which
says how to build the encoders). Loading refuses a controller trained for other encoders,
another vocabulary or other effects.

The typed path (issue 9), in the order a transfer runs:

    `StyleLabel`  (core/style/label.py)  read_edit: label + ||d|| + confidence + strength
    `EffectPlan`  (core/model/plan.py)   plan: the controller's answer, `ChainSettings` of at
                                         most max_active effects (core/render/settings.py)
    `TransferResult`               render + sidecar; `.save()` writes A', JSON and PNG

Additions to the notes: with `inference.scale_by_confidence` (default on) the predicted
parameters are moved toward bypass by the calibration confidence c in [0, 1], so a pair with
no visible change leaves the clip almost untouched; a pair with no change at all (identical
pixels or ||d|| = 0) renders nothing: the clip comes back bit-identical and the sidecar says
`unchanged: true`. A controller trained with `controller.strength_input` also receives the
image strength (the model's image StrengthMap of ||d||), so parameters scale with the edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL.Image import Image as PILImage

    from ..config import Config
    from ..model.plan import EffectPlan
    from ..render.settings import ChainSettings
    from ..style.label import StyleLabel

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "default"
MODEL_FILES = ("config.yaml", "controller.json", "controller.safetensors")


def model_files(model_dir: "str | Path | None") -> list[Path]:
    """The files a command reads from a model directory (inputs for the output guard)."""
    return [] if model_dir is None else [Path(model_dir) / n for n in MODEL_FILES]


def encoder_identity(enc: Any) -> dict:
    return {"name": enc.name, "fingerprint": enc.fingerprint()}


def images_identical(a: "PILImage", b: "PILImage") -> bool:
    import numpy as np

    return a.size == b.size and a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))


@dataclass
class TransferResult:
    """A' with what produced it: the image reading, the plan, the render report, the sidecar."""

    audio: "np.ndarray"
    sample_rate: int
    sidecar: dict = field(default_factory=dict)
    label: "StyleLabel | None" = None
    plan: "EffectPlan | None" = None
    written: "Path | None" = None  # `audio` is already this file (`transfer(write_to=...)`)

    @property
    def unchanged(self) -> bool:
        return bool(self.sidecar.get("unchanged"))

    def save(self, path: str | Path, *, before: "PILImage | None" = None, after: "PILImage | None" = None,
             original: "np.ndarray | None" = None, summary: bool = True, extra: dict | None = None) -> list[Path]:
        """Write A' (`path`, .wav), the JSON sidecar beside it and, when the images and the
        original clip are given and `summary` is on, a PNG summary. Every file atomically."""
        from ..atomic import write_json
        from ..media.io import save_audio

        path = Path(path)
        if extra:
            self.sidecar.update(extra)
        self.sidecar["output"] = str(path)
        written = [path if self.written == path else save_audio(self.audio, self.sample_rate, path)]
        write_json(path.with_suffix(".json"), self.sidecar)
        written.append(path.with_suffix(".json"))
        if summary and before is not None and after is not None and original is not None:
            from ..media.plots import transfer_summary

            transfer_summary(before, after, self.sidecar, original, self.audio, self.sample_rate,
                             path.with_suffix(".png"))
            written.append(path.with_suffix(".png"))
        return written


class TransferModel:
    """A loaded model directory, ready to turn image edits into audio edits."""

    def __init__(self, model_dir: str | Path | None = None, config: "Config | None" = None, *,
                 controller: str | None = None, refine: bool = False, budget_evals: Any = "config",
                 budget_seconds: Any = "config") -> None:
        """`controller` None = the model's trained controller; "search" = zero-shot CMA-ES search
        (the model then only supplies the calibration and the strength maps). `refine` starts the
        search from the trained controller's plan. Budgets default to `inference.search`."""
        from ..config import effective_max_active
        from ..style.encoding import load_encoder, model_config, term_embeddings
        from ..model.layout import ParamLayout
        from ..api.registry import get
        from ..model.strength import DirectionalStrength, StrengthMap
        from ..style.vocab import load_vocabulary
        from ..model.weights import load_controller, read_metadata

        self.model_dir = Path(model_dir) if model_dir is not None else DEFAULT_MODEL
        if not (self.model_dir / "controller.json").is_file():
            raise DeltaV2AError(f"no trained model in {self.model_dir} (expected controller.json + "
                                "controller.safetensors + config.yaml)")
        from ..model.weights import check_model_plugins

        check_model_plugins(self.model_dir)  # a missing plugin is named with its package
        self.cfg = config or model_config(self.model_dir)  # untrusted: no unsafe loading
        self.vocab = load_vocabulary(self.cfg.vocabulary)
        self.image_encoder = load_encoder(self.cfg.encoders.image, "image")
        self.audio_encoder = load_encoder(self.cfg.encoders.audio, "audio")
        meta = read_metadata(self.model_dir / "controller")
        layout = ParamLayout.from_effects([get("audio_effect", e) for e in meta.layout.get("effects", [])])
        self.controller = load_controller(
            self.model_dir / "controller",
            vocabulary={"name": self.vocab.name, "fingerprint": self.vocab.fingerprint()},
            encoders={"image": encoder_identity(self.image_encoder),
                      "audio": encoder_identity(self.audio_encoder)},
            layout=layout, inference_only=True)  # k-NN: no torch in a transfer
        self.layout = self.controller.layout
        cal = dict(self.controller.metadata.calibration or {})
        self.temperature = float(cal.get("temperature", self.cfg.inference.temperature))
        self.tau_c = float(cal.get("tau_c", self.cfg.inference.tau_c))
        self.s_c = float(cal.get("s_c", self.cfg.inference.s_c))
        maps = cal.get("strength") or {}
        # a model calibrated before strength existed: strength = confidence (documented in 9.3)
        self.image_strength = StrengthMap.from_dict(maps["image"]) if "image" in maps else None
        self.audio_strength = StrengthMap.from_dict(maps["audio"]) if "audio" in maps else None
        # per-effect recognisable floors (`inference.match_floor: auto`, decision 9.90), checked on load
        self.match_floors = dict(cal["match_floors"]) if "match_floors" in cal else None
        self.match_floor()  # auto without stored floors: one line now, not at the first transfer
        # without a fitted map (not calibrated yet, or older than strength) strength = confidence
        self.strength_source = "image strength map" if self.image_strength is not None else \
            "confidence (no image strength map: run `deltav2a calibrate` on the model)"
        self.image_strength_by_direction = None
        if self.cfg.inference.image_strength == "by_direction":
            # an explicit choice: no silent fallback to the pooled map (the numbers would then be the
            # pooled method's under the by_direction name; decision 9.100)
            if "image_by_effect" not in maps:
                raise DeltaV2AError(f"model {self.model_dir} has no per-effect image strength maps "
                                    "(inference.image_strength: by_direction): refit them with "
                                    "benchmarks/strength_refit.py or `deltav2a calibrate`, or use pooled")
            self.image_strength_by_direction = DirectionalStrength.from_dict(
                maps["image_by_effect"], tau=self.cfg.inference.image_strength_tau)
            self.strength_source = "per-effect image strength maps, blended by direction"
        self.max_active = effective_max_active(self.cfg)
        self.search_mode = self._search_mode(controller, refine, budget_evals, budget_seconds)
        self.min_active = int(self.cfg.database.min_active) if self.max_active else 0
        self.V_img = term_embeddings(self.image_encoder, self.vocab, "image")
        if self.image_strength_by_direction is not None and self.image_strength_by_direction.dim != self.V_img.shape[1]:
            raise DeltaV2AError(f"model {self.model_dir}: per-effect strength prototypes have "
                                f"{self.image_strength_by_direction.dim} dimensions, the image encoder "
                                f"{self.V_img.shape[1]}")

    def _search_mode(self, controller: str | None, refine: bool, budget_evals: Any, budget_seconds: Any
                     ) -> dict | None:
        """None (trained controller only) or the search settings, checked now: a bad budget or an
        unknown controller is a one-line error before any work is done."""
        from ..api.registry import get
        from ..model.search import check_budget

        trained = self.controller.metadata.controller
        if controller is not None and controller != trained:
            spec = get("controller", controller)
            if getattr(spec, "trainable", True):
                raise DeltaV2AError(f"model {self.model_dir} holds a trained '{trained}' controller, not "
                                    f"'{controller}': pass a model trained with it (--model), or --controller search")
        zero_shot = controller is not None and controller != trained
        if zero_shot and refine:
            raise DeltaV2AError(f"--refine starts from a trained controller's plan; '{controller}' has none")
        if not (zero_shot or refine):
            return None
        sc = self.cfg.inference.search
        evals = sc.budget_evals if budget_evals == "config" else budget_evals
        seconds = sc.budget_seconds if budget_seconds == "config" else budget_seconds
        evals, seconds = check_budget(evals, seconds)
        if self.max_active is None:
            raise DeltaV2AError("the search needs a cap on the effects (inference.max_active >= 1)")
        return {"controller": controller if zero_shot else "search", "init": not zero_shot,
                "budget_evals": evals, "budget_seconds": seconds}

    # ------------------------------------------------------------------ pieces

    def thresholds(self) -> dict[str, float]:
        override = self.cfg.inference.activity_threshold_override
        if override is not None:
            return {e: float(override) for e in self.layout.effects}
        return self.controller.thresholds

    def read_edit(self, before: "list[PILImage]", after: "list[PILImage]") -> "list[StyleLabel]":
        """The image side of each pair as a StyleLabel (calibrated label, norm, confidence, strength)."""
        from ..style.label import Calibration, read_edit

        for a, b in zip(before, after):
            if a.size != b.size:
                raise DeltaV2AError(f"image pair sizes differ: {a.size[0]}x{a.size[1]} vs {b.size[0]}x{b.size[1]}")
        e0 = self.image_encoder.encode_images(before)
        e1 = self.image_encoder.encode_images(after)
        return read_edit(e0, e1, self.V_img, self.vocab.terms, self.temperature,
                         Calibration(self.tau_c, self.s_c), self.image_strength, self.image_strength_by_direction)

    def audio_embedding(self, audio: "np.ndarray", sample_rate: int) -> "np.ndarray":
        from ..media.io import resample

        sr = self.cfg.audio.sample_rate
        # resample only what is used (+1 s so the filter sees the same context): bounded memory
        head = audio[:, : int((self.cfg.audio.max_duration + 1.0) * sample_rate)]
        x = resample(head, sample_rate, sr)[:, : int(self.cfg.audio.max_duration * sr)]
        return self.audio_encoder.encode_audio([x], sr)

    def plan(self, label: "StyleLabel", audio_emb: "np.ndarray", audio: "np.ndarray | None" = None,
             sample_rate: int | None = None) -> "EffectPlan":
        """Label -> parameters: the trained controller's answer for one image reading (at most
        `max_active` effects), or the search's (zero-shot, or refining the trained answer; the
        search needs the clip itself)."""
        from ..model.plan import EffectPlan

        if label.unchanged:
            return EffectPlan.identity()
        mode = self.search_mode
        if mode is None:
            return self.controller_plan(label, audio_emb)
        if audio is None or sample_rate is None:
            raise DeltaV2AError("the search renders candidates: it needs the clip, not only its embedding")
        from ..api.registry import get

        init = self.controller_plan(label, audio_emb) if mode["init"] else None
        spec = get("controller", "search")
        return spec.propose(label, audio, sample_rate, cfg=self.cfg, audio_encoder=self.audio_encoder,
                            vocab=self.vocab, layout=self.layout, max_active=self.max_active, init=init,
                            audio_strength=self.audio_strength, budget_evals=mode["budget_evals"],
                            budget_seconds=mode["budget_seconds"])

    def controller_plan(self, label: "StyleLabel", audio_emb: "np.ndarray") -> "EffectPlan":
        """The trained controller's plan (no search)."""
        from ..model.plan import plan_from_prediction

        from ..model.strength import controller_prediction

        # strength_match: directions (chain: also the set) from the edit's direction, the size from its strength
        pred = controller_prediction(self.cfg, self.controller, label.label[None, :], audio_emb.reshape(1, -1),
                                     label.strength if self.controller.strength_input else None,
                                     direction=label.direction_label[None, :],
                                     floor=self.match_floor())
        scale = float(label.confidence) if self.cfg.inference.scale_by_confidence else 1.0
        return plan_from_prediction(pred.activity[0], pred.params[0], self.layout, self.thresholds(),
                                    source=self.controller.metadata.controller, max_active=self.max_active,
                                    min_active=self.min_active, strength=label.strength, scale=scale,
                                    margin=self.lock_margin())

    def lock_margin(self) -> float:
        """`inference.lock_margin` where it applies (a locked set from a strength-input controller), else 0."""
        inf = self.cfg.inference
        if inf.strength_match != "locked" or not self.controller.strength_input:
            return 0.0
        return float(inf.lock_margin)

    def match_floor(self) -> "float | list[float] | None":
        """`inference.match_floor` as `controller_prediction` takes it: None, one floor, or with
        `auto` the model's stored per-effect floors in layout order (decision 9.90)."""
        floor = self.cfg.inference.match_floor
        if floor != "auto":
            return floor
        if self.match_floors is None:
            raise DeltaV2AError(f"inference.match_floor is auto but model {self.model_dir} stores no "
                                "per-effect floors (calibration.match_floors): fit them with "
                                "benchmarks/fit_match_floors.py, or set a number")
        return [self.match_floors[e] for e in self.layout.effects]

    def render(self, audio: "np.ndarray", sample_rate: int, plan: "EffectPlan | ChainSettings",
               write_to: "str | Path | None" = None) -> tuple["np.ndarray", dict]:
        """A' and the chain's record. With `write_to` A' is written there as it renders (a long
        clip is never held whole) and the returned audio reads that file back on demand."""
        from ..model.plan import EffectPlan
        from ..render.chain import AudioChain

        settings = plan.settings if isinstance(plan, EffectPlan) else plan
        if not settings:
            if write_to is None:
                return audio.copy(), {"effects": []}
            from ..media.io import WavFrames, save_audio

            return WavFrames(save_audio(audio, sample_rate, write_to)), {"effects": []}
        chain = AudioChain(settings, order=self.cfg.effects.chain_order, tail=self.cfg.effects.tail,
                           max_tail_seconds=self.cfg.effects.max_tail_seconds)
        result = chain.render(audio, sample_rate) if write_to is None else \
            chain.render_to_file(audio, sample_rate, write_to)
        return result.audio, result.describe()

    # ------------------------------------------------------------------ whole job

    def transfer(self, before: "PILImage", after: "PILImage", audio: "np.ndarray", sample_rate: int,
                 audio_emb: "np.ndarray | None" = None, write_to: "str | Path | None" = None) -> TransferResult:
        """`write_to`: render A' straight into this WAV (then `save(write_to)` writes only the
        sidecar and summary), so a long clip's A' is never held in memory whole."""
        from ..model.plan import EffectPlan
        from ..style.label import StyleLabel

        if images_identical(before, after):
            import numpy as np

            K = len(self.vocab.terms)
            label = StyleLabel(np.full(K, 1.0 / K, np.float32), tuple(self.vocab.terms), 0.0, 0.0, 0.0)
        else:
            label = self.read_edit([before], [after])[0]
        if label.unchanged:
            plan = EffectPlan.identity()
        else:
            emb = self.audio_embedding(audio, sample_rate) if audio_emb is None else audio_emb
            plan = self.plan(label, emb, audio, sample_rate)
        out, chain_info = self.render(audio, sample_rate, plan, write_to)
        return TransferResult(out, sample_rate, self.sidecar(label, plan, chain_info, sample_rate), label, plan,
                              written=None if write_to is None else Path(write_to))

    def sidecar(self, label: "StyleLabel", plan: "EffectPlan", chain_info: dict, sample_rate: int) -> dict:
        """What a transfer did, as strict JSON (the PNG summary and `transfer` read it)."""
        style = label.as_dict(self.cfg.inference.top_k)
        style.update({"temperature": self.temperature, "tau_c": self.tau_c, "s_c": self.s_c,
                      "strength_from": self.strength_source})
        training = self.controller.metadata.training or {}
        return {
            "model": str(self.model_dir),
            "encoders": {"image": self.image_encoder.name, "audio": self.audio_encoder.name},
            "vocabulary": self.vocab.name,
            "unchanged": label.unchanged,
            "note": ("the image pair is unchanged: nothing was rendered, the clip is returned as is"
                     if label.unchanged else None),
            "style": style,
            "controller": {"name": self.controller.metadata.controller, "source": plan.source,
                           "activity": plan.activity, "thresholds": plan.thresholds,
                           "active": plan.effects, "strength": plan.strength,
                           "max_active": self.max_active, "trajectory": list(plan.trajectory),
                           "strength_match": self.cfg.inference.strength_match,
                           "lock_margin": self.lock_margin(),
                           "match_floor": self.cfg.inference.match_floor,
                           "match_floors": (self.match_floors if self.cfg.inference.match_floor == "auto"
                                            else None)},
            "n_effects": len(plan.steps),
            "database_mean_active": training.get("database_mean_active"),
            "effects": plan.settings.to_records(),
            "chain": chain_info,
            "sample_rate": sample_rate,
        }
