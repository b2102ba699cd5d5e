"""Image edit -> audio edit: the main job (seed 000, "System Workflow").

    image pair -> calibrated style label (image side) -> identity mapping (the same label is
    read as an audio-side label) -> controller(label, E(A)) -> per-effect activity +
    parameters -> Pedalboard render -> A'

A model directory holds `controller.safetensors` + `controller.json` (weights, thresholds,
calibration, encoder and vocabulary fingerprints) and `config.yaml` (the run's config, which
says how to build the encoders). Loading refuses a controller trained for other encoders,
another vocabulary or other effects.

One addition to the notes: with `inference.scale_by_confidence` (default on) the predicted
parameters are moved toward bypass by the calibration confidence c in [0, 1], so a pair with
no visible change (c ~ 0, uniform label) leaves the clip almost untouched instead of
rendering whatever the controller makes of a uniform label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL.Image import Image as PILImage

    from .config import Config

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "default"


def encoder_identity(enc: Any) -> dict:
    return {"name": enc.name, "fingerprint": enc.fingerprint()}


@dataclass
class TransferResult:
    audio: "np.ndarray"
    sample_rate: int
    sidecar: dict = field(default_factory=dict)


class TransferModel:
    """A loaded model directory, ready to turn image edits into audio edits."""

    def __init__(self, model_dir: str | Path | None = None, config: "Config | None" = None) -> None:
        from .encoding import load_encoder, model_config, term_embeddings
        from .layout import ParamLayout
        from .plugins import get
        from .vocab import load_vocabulary
        from .weights import load_controller, read_metadata

        self.model_dir = Path(model_dir) if model_dir is not None else DEFAULT_MODEL
        if not (self.model_dir / "controller.json").is_file():
            raise DeltaV2AError(f"no trained model in {self.model_dir} (expected controller.json + "
                                "controller.safetensors + config.yaml)")
        from .stages import check_model_plugins

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
            layout=layout)
        self.layout = self.controller.layout
        cal = dict(self.controller.metadata.calibration or {})
        self.temperature = float(cal.get("temperature", self.cfg.inference.temperature))
        self.tau_c = float(cal.get("tau_c", self.cfg.inference.tau_c))
        self.s_c = float(cal.get("s_c", self.cfg.inference.s_c))
        self.V_img = term_embeddings(self.image_encoder, self.vocab, "image")

    # ------------------------------------------------------------------ pieces

    def thresholds(self) -> dict[str, float]:
        override = self.cfg.inference.activity_threshold_override
        if override is not None:
            return {e: float(override) for e in self.layout.effects}
        return self.controller.thresholds

    def image_labels(self, before: "list[PILImage]", after: "list[PILImage]"):
        """(N, K) calibrated labels, (N,) delta norms, (N,) confidences c."""
        import numpy as np

        from .style import Calibration, style_labels

        for a, b in zip(before, after):
            if a.size != b.size:
                raise DeltaV2AError(f"image pair sizes differ: {a.size[0]}x{a.size[1]} vs {b.size[0]}x{b.size[1]}")
        e0 = self.image_encoder.encode_images(before)
        e1 = self.image_encoder.encode_images(after)
        labels, norms = style_labels(e0, e1, self.V_img, self.temperature, Calibration(self.tau_c, self.s_c))
        conf = 1.0 / (1.0 + np.exp(-(norms.astype(np.float64) - self.tau_c) / self.s_c))
        return labels, norms, conf.astype(np.float32)

    def audio_embedding(self, audio: "np.ndarray", sample_rate: int) -> "np.ndarray":
        from .media import resample

        sr = self.cfg.audio.sample_rate
        # resample only what is used (+1 s so the filter sees the same context): bounded memory
        head = audio[:, : int((self.cfg.audio.max_duration + 1.0) * sample_rate)]
        x = resample(head, sample_rate, sr)[:, : int(self.cfg.audio.max_duration * sr)]
        return self.audio_encoder.encode_audio([x], sr)

    def plan(self, label: "np.ndarray", audio_emb: "np.ndarray", confidence: float) -> dict:
        """Controller output for one label -> activity, chosen effects and raw parameters."""
        import numpy as np

        pred = self.controller.predict(label[None, :], audio_emb.reshape(1, -1))
        thr = self.thresholds()
        active = pred.active(thr, self.layout)[0]
        params = pred.params[0].astype(np.float64)
        strength = float(confidence) if self.cfg.inference.scale_by_confidence else 1.0
        bypass = self.layout.bypass_array().astype(np.float64)
        params = bypass + strength * (params - bypass)
        settings = self.layout.to_raw(params, active)
        return {"activity": {e: float(p) for e, p in zip(self.layout.effects, pred.activity[0])},
                "thresholds": thr, "active": [e for e, a in zip(self.layout.effects, active) if a],
                "strength": strength, "settings": settings}

    def render(self, audio: "np.ndarray", sample_rate: int, settings: dict) -> tuple["np.ndarray", dict]:
        from .chain import AudioChain

        if not settings:
            return audio.copy(), {"effects": []}
        chain = AudioChain(settings, order=self.cfg.effects.chain_order, tail=self.cfg.effects.tail,
                           max_tail_seconds=self.cfg.effects.max_tail_seconds)
        result = chain.render(audio, sample_rate)
        return result.audio, result.describe()

    # ------------------------------------------------------------------ whole job

    def transfer(self, before: "PILImage", after: "PILImage", audio: "np.ndarray", sample_rate: int,
                 audio_emb: "np.ndarray | None" = None) -> TransferResult:
        from .style import entropy_bits, top_terms

        labels, norms, conf = self.image_labels([before], [after])
        emb = self.audio_embedding(audio, sample_rate) if audio_emb is None else audio_emb
        plan = self.plan(labels[0], emb, float(conf[0]))
        out, chain_info = self.render(audio, sample_rate, plan["settings"])
        k = self.cfg.inference.top_k
        sidecar = {
            "model": str(self.model_dir),
            "encoders": {"image": self.image_encoder.name, "audio": self.audio_encoder.name},
            "vocabulary": self.vocab.name,
            "style": {
                "top": [{"term": t, "p": p} for t, p in top_terms(labels[0], self.vocab.terms, k)],
                "delta_norm": float(norms[0]), "confidence": float(conf[0]),
                "entropy_bits": float(entropy_bits(labels[0])),
                "temperature": self.temperature, "tau_c": self.tau_c, "s_c": self.s_c,
                "label": {t: float(p) for t, p in zip(self.vocab.terms, labels[0])},
            },
            "controller": {"name": self.controller.metadata.controller, **{k2: plan[k2] for k2 in
                           ("activity", "thresholds", "active", "strength")}},
            "effects": [{"effect": e, "params": p} for e, p in plan["settings"].items()],
            "chain": chain_info,
            "sample_rate": sample_rate,
        }
        return TransferResult(out, sample_rate, sidecar)
