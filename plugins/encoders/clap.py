"""`clap`: audio embeddings from LAION-CLAP (default HTSAT-base, music checkpoint, 512-d).

The model is laion_clap's own: `create_model(amodel, "roberta")` builds the same CLAP
network `laion_clap.CLAP_Module` wraps, and each 10 s window goes through the model's
`get_audio_embedding`, as `CLAP_Module.get_audio_embedding_from_data` does. What this
module replaces is only what cannot run offline or is not repeatable:

* `import laion_clap` downloads three tokenizers at import (laion_clap/training/data.py)
  and `CLAP_Module()` downloads roberta-base, so neither works without internet. We
  import laion's `clap_module` package the way laion_clap's own hook does, and build the
  text branch from a local RoBERTa config; its weights come from the CLAP checkpoint,
  which carries the fine-tuned text encoder.
* `load_ckpt` unpickles with `weights_only=False` and deletes
  `text_branch.embeddings.position_ids` unconditionally (a KeyError for checkpoints that
  lack it). We read with `weights_only=True` (or safetensors), allow pickles only for a
  file the user named and allowed, and drop that key only when the model has no such
  buffer (transformers >= 4.31).
* For clips over 10 s laion picks a random 10 s crop, so two calls disagree. We embed
  consecutive 10 s windows instead (see `encode_audio`).

Checkpoint: `checkpoint` option or `DELTAV2A_CLAP_CHECKPOINT`; otherwise
`music_audioset_epoch_15_esc_90.14.pt` from laion_clap's own download folder or the
Hugging Face cache of lukewys/laion_clap, downloaded there only when online. Text model:
`text_model_dir` or `DELTAV2A_CLAP_TEXT_MODEL` (the roberta-base tokenizer files, and
optionally its config.json; weights there are not needed); audio embedding works without it.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from deltav2a.api.encoders import AudioEncoder
from deltav2a.api.optionsref import OptionsRef
from deltav2a.errors import DeltaV2AError

from .clip import (
    check_device,
    checkpoint_read_errors,
    file_digest,
    first_line,
    is_weights_only_refusal,
    offline,
    positive_int,
    read_error,
    resolve_device,
    truthy,
    unsafe_hint,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

ENV_CHECKPOINT = "DELTAV2A_CLAP_CHECKPOINT"
ENV_TEXT_MODEL = "DELTAV2A_CLAP_TEXT_MODEL"
DEFAULT_CHECKPOINT = "music_audioset_epoch_15_esc_90.14.pt"
HF_REPO = "lukewys/laion_clap"
#: bumped whenever this module changes how a clip becomes a vector with the same weights
WINDOWING_REVISION = 1
#: laion's text tokenizer settings (CLAP_Module.tokenizer)
TEXT_MAX_LENGTH = 77
#: roberta-base's published architecture, the only text model laion's 'roberta' tmodel builds
#: (model.py hard-codes 'roberta-base'). Used to build the text branch when no text model
#: folder is configured; its weights always come from the CLAP checkpoint.
ROBERTA_BASE = {
    "vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 514, "type_vocab_size": 1,
    "initializer_range": 0.02, "layer_norm_eps": 1e-05, "pad_token_id": 1, "bos_token_id": 0,
    "eos_token_id": 2,
}
#: HTS-AT sizes as laion's create_htsat_model builds them: patch-embedding width -> model_name
HTSAT_WIDTHS = {96: "tiny", 128: "base", 256: "large"}
_PATCH_KEY = "audio_branch.patch_embed.proj.weight"

_BUILD_LOCK = threading.RLock()


# ------------------------------------------------------------------ laion_clap plumbing


def import_clap_module() -> Any:
    """laion_clap's model package, without running laion_clap/__init__ (network at import).

    laion_clap itself puts its folder on sys.path and imports `clap_module` as a top-level
    package; we register the same package under the same name, so a later
    `import laion_clap` reuses it.
    """
    with _BUILD_LOCK:
        mod = sys.modules.get("clap_module")
        if mod is not None and hasattr(mod, "create_model"):
            return mod
        spec = importlib.util.find_spec("laion_clap")  # locates; does not execute __init__
        if spec is None or not spec.submodule_search_locations:
            raise DeltaV2AError("clap: laion_clap is not installed (pip install laion_clap)")
        pkg = Path(list(spec.submodule_search_locations)[0]) / "clap_module"
        sub = importlib.util.spec_from_file_location(
            "clap_module", pkg / "__init__.py", submodule_search_locations=[str(pkg)])
        if sub is None or sub.loader is None:  # pragma: no cover - broken installation
            raise DeltaV2AError(f"clap: laion_clap installation is incomplete ({pkg})")
        mod = importlib.util.module_from_spec(sub)
        sys.modules["clap_module"] = mod
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # timm.models.layers notice
                sub.loader.exec_module(mod)
        except BaseException:
            sys.modules.pop("clap_module", None)
            raise
        return mod


def laion_package_dir() -> Path | None:
    spec = importlib.util.find_spec("laion_clap")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


class _ConfiguredRoberta:
    """Stands in for `transformers.RobertaModel` inside laion's CLAP constructor only.

    laion's model.py calls `RobertaModel.from_pretrained('roberta-base')`, a download; we
    answer with a RoBERTa of the configured architecture. The weights it starts with are
    replaced by the checkpoint's (the load is strict, so none can be left behind).
    """

    def __init__(self, config: Any) -> None:
        self.config = config

    def from_pretrained(self, name: str, *args: Any, **kwargs: Any) -> Any:
        from transformers import RobertaModel

        return RobertaModel(self.config)


def repeat_pad(x: "np.ndarray", length: int) -> "np.ndarray":
    """laion's 'repeatpad' fill (training/data.py get_audio_features), in numpy.

    The clip is tiled a whole number of times and the rest is zeros, exactly as laion
    prepares clips shorter than 10 s, so short clips embed as CLAP_Module would embed them.
    """
    import numpy as np

    n = x.shape[0]
    if n >= length:
        return x[:length]
    tiled = np.tile(x, int(length / n))
    return np.pad(tiled, (0, length - tiled.shape[0]), mode="constant")


def quantise_int16(x: "np.ndarray") -> "np.ndarray":
    """laion's int16 round trip (float32_to_int16 then int16_to_float32), which also clips to ±1.

    CLAP_Module.get_audio_embedding_from_data applies it to every clip, and the
    checkpoints were trained on 16-bit audio; keeping it makes our vectors match laion's.
    """
    import numpy as np

    q = (np.clip(x, a_min=-1.0, a_max=1.0) * 32767.0).astype(np.int16)
    return (q / 32767.0).astype(np.float32)


def describe_checkpoint(sd: dict) -> tuple[str | None, bool]:
    """(laion amodel the weights look like, e.g. 'HTSAT-tiny'; whether it is a fusion model)."""
    fusion = any(".fusion_model." in k or ".mel_conv2d." in k or ".mel_conv1d." in k for k in sd)
    w = sd.get(_PATCH_KEY)
    if w is not None and hasattr(w, "shape"):
        size = HTSAT_WIDTHS.get(int(w.shape[0]))
        return (f"HTSAT-{size}" if size else f"HTSAT (patch width {int(w.shape[0])})"), fusion
    if any(k.startswith("audio_branch.conv_block1.") for k in sd):
        return "PANN", fusion
    return None, fusion


# ------------------------------------------------------------------ the encoder


class ClapAudioEncoder(AudioEncoder):
    """LAION-CLAP audio encoder; default HTSAT-base music checkpoint, 48 kHz mono, 512-d unit vectors.

    Options: `ClapOptions` (plugins/encoders/options.py; `deltav2a plugin-info clap`).
    """

    name: ClassVar[str] = "clap"
    Options = OptionsRef("deltav2a_plugins.encoders.options:ClapOptions")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)  # validates against ClapOptions
        options = self.options
        self.amodel = str(options.get("amodel") or "HTSAT-base").strip()
        self.tmodel = str(options.get("tmodel") or "roberta").strip()
        if self.tmodel != "roberta":
            raise DeltaV2AError(f"clap: tmodel '{self.tmodel}' is not supported (only roberta, "
                                "the text model of the released LAION-CLAP checkpoints)")
        ckpt = options.get("checkpoint") or os.environ.get(ENV_CHECKPOINT) or None
        self.checkpoint = Path(ckpt).expanduser() if ckpt else None
        tdir = options.get("text_model_dir") or os.environ.get(ENV_TEXT_MODEL) or None
        self.text_model_dir = Path(tdir).expanduser() if tdir else None
        self.max_duration = self._seconds(options.get("max_duration", 20.0), "max_duration",
                                          allow_zero=True)
        self.window_seconds = self._seconds(options.get("window_seconds", 10.0), "window_seconds")
        self.sample_rate = positive_int(options.get("sample_rate", 48000), "clap: sample_rate")
        self.allow_unsafe = truthy(options.get("allow_unsafe_checkpoint", False),
                                   "clap: allow_unsafe_checkpoint")
        self.device_spec = check_device(options.get("device"), "clap")
        self.batch_size = positive_int(options.get("batch_size", 8), "clap: batch_size")
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._clip_samples = 0
        self.device: str | None = None
        self.checkpoint_path: Path | None = None

    @staticmethod
    def _seconds(value: Any, what: str, allow_zero: bool = False) -> float:
        if value is None and allow_zero:
            return 0.0
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise DeltaV2AError(f"clap: {what} must be a number of seconds, got {value!r}") from None
        if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
            raise DeltaV2AError(f"clap: {what} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
        return v

    # -------------------------------------------------------------- description

    @property
    def dim(self) -> int:
        if self._model is not None:
            return int(self._model.joint_embed_shape)
        return 512  # laion's CLAP joint embedding size (CLAP(joint_embed_shape=512))

    def fingerprint(self) -> str:
        """`clap/<amodel>/sha256:<16 hex>/w<window>-max<max>-sr<rate>-q16/r<revision>`.

        Hashing the checkpoint (memoised per file state) rather than naming it means a
        retrained or corrupted file is never mistaken for the one a model was trained with.
        """
        path = self._checkpoint_path()
        return (f"clap/{self.amodel}/sha256:{file_digest(path)[:16]}/"
                f"w{self.window_seconds:g}-max{self.max_duration:g}-sr{self.sample_rate}-q16"
                f"/r{WINDOWING_REVISION}")

    # -------------------------------------------------------------- resolution

    def _user_named(self) -> bool:
        return self.checkpoint is not None

    def _checkpoint_path(self) -> Path:
        if self.checkpoint_path is not None:
            return self.checkpoint_path
        if self.checkpoint is not None:
            path = self.checkpoint
            if not path.exists():
                raise DeltaV2AError(f"clap: checkpoint not found: {path}")
            if path.is_dir():
                hits = sorted(p for p in path.iterdir()
                              if p.is_file() and p.suffix in (".pt", ".pth", ".ckpt", ".safetensors"))
                if len(hits) != 1:
                    raise DeltaV2AError(f"clap: checkpoint folder {path} must hold exactly one "
                                        ".pt/.pth/.ckpt/.safetensors file; name the file instead")
                path = hits[0]
            if path.stat().st_size == 0:
                raise DeltaV2AError(f"clap: checkpoint is empty: {path}")
            return path
        return self._default_checkpoint()

    def _default_checkpoint(self) -> Path:
        candidates = []
        pkg = laion_package_dir()
        if pkg is not None:
            candidates.append(pkg / DEFAULT_CHECKPOINT)  # where CLAP_Module.load_ckpt saves
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(HF_REPO, DEFAULT_CHECKPOINT)
            if isinstance(hit, str):
                candidates.append(Path(hit))
        except ImportError:  # pragma: no cover - a transformers dependency
            pass
        for c in candidates:
            if c.is_file() and c.stat().st_size > 0:
                return c
        if offline():
            raise DeltaV2AError(
                f"clap: no checkpoint configured and {DEFAULT_CHECKPOINT} is not in laion_clap's "
                f"folder or the Hugging Face cache; set the checkpoint option or {ENV_CHECKPOINT} "
                f"(download: https://huggingface.co/{HF_REPO}/blob/main/{DEFAULT_CHECKPOINT})")
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(HF_REPO, DEFAULT_CHECKPOINT))
        except Exception as exc:  # network or hub errors: one line for the user
            raise DeltaV2AError(f"clap: could not download {HF_REPO}/{DEFAULT_CHECKPOINT} "
                                f"({first_line(exc)}); set {ENV_CHECKPOINT} to a local file") from None

    def _text_source(self) -> tuple[str, bool] | None:
        """(name or folder for from_pretrained, local_files_only), or None when unavailable."""
        if self.text_model_dir is not None:
            if not self.text_model_dir.is_dir():
                raise DeltaV2AError(f"clap: text model folder not found: {self.text_model_dir}")
            return str(self.text_model_dir), True
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = isinstance(try_to_load_from_cache("roberta-base", "vocab.json"), str)
        except ImportError:  # pragma: no cover
            cached = False
        if cached:
            return "roberta-base", True
        if offline():
            return None
        return "roberta-base", False

    # -------------------------------------------------------------- loading

    def load(self) -> None:
        """Build the model and load the checkpoint (done on first encode; safe to call again)."""
        with self._lock:
            if self._model is None:
                self._load()

    def _read_state_dict(self, path: Path) -> dict:
        import torch

        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                ck: Any = load_file(str(path), device="cpu")
            else:
                try:
                    ck = torch.load(str(path), map_location="cpu", weights_only=True)
                except Exception as exc:
                    if not is_weights_only_refusal(exc):
                        raise
                    if not (self._user_named() and self.allow_unsafe):
                        raise unsafe_hint(path, "clap", self._user_named()) from None
                    ck = torch.load(str(path), map_location="cpu", weights_only=False)
        except DeltaV2AError:
            raise
        except checkpoint_read_errors() as exc:
            raise read_error(path, exc, "clap") from None
        sd = ck.get("state_dict", ck) if isinstance(ck, dict) else None
        if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
            raise DeltaV2AError(f"clap: {path} holds no CLAP state dict")
        if all(k.startswith("module.") for k in sd):  # saved from DistributedDataParallel
            sd = {k[len("module."):]: v for k, v in sd.items()}
        return sd

    def _check_architecture(self, sd: dict, clap_module: Any, path: Path) -> None:
        looks, fusion = describe_checkpoint(sd)
        if fusion:
            raise DeltaV2AError(f"clap: {path.name} is a fusion checkpoint (enable_fusion=True); "
                                "this encoder runs non-fusion checkpoints such as "
                                f"{DEFAULT_CHECKPOINT}")
        configs = getattr(getattr(clap_module, "factory", None), "_MODEL_CONFIGS", None) or {}
        if self.amodel not in configs:
            htsat = [m for m in clap_module.list_models() if m.startswith(("HTSAT", "PANN"))]
            raise DeltaV2AError(f"clap: unknown amodel '{self.amodel}' (laion_clap has: "
                                f"{', '.join(htsat)})")
        acfg = configs[self.amodel]["audio_cfg"]
        wanted = f"{acfg.get('model_type')}-{acfg.get('model_name')}"
        if looks is not None and looks.startswith(("HTSAT", "PANN")) and not (
                looks == wanted or (looks == "PANN" and acfg.get("model_type") == "PANN")):
            raise DeltaV2AError(f"clap: checkpoint {path.name} looks like a {looks} model but amodel "
                                f"is {self.amodel} ({wanted}); set amodel: {looks}")

    def _text_config(self) -> Any:
        from transformers import RobertaConfig

        src = self._text_source()
        if self.text_model_dir is not None and not (self.text_model_dir / "config.json").is_file():
            src = None  # a tokenizer-only folder: laion's text model is roberta-base anyway
        if src is not None:
            try:
                cfg = RobertaConfig.from_pretrained(src[0], local_files_only=src[1])
            except (OSError, ValueError) as exc:
                if self.text_model_dir is not None:
                    raise DeltaV2AError(f"clap: unreadable RoBERTa config.json in "
                                        f"{self.text_model_dir} ({first_line(exc)})") from None
                cfg = RobertaConfig(**ROBERTA_BASE)
        else:
            cfg = RobertaConfig(**ROBERTA_BASE)
        if cfg.hidden_size != 768:
            raise DeltaV2AError(f"clap: text model hidden size is {cfg.hidden_size}; laion's CLAP "
                                "projects a 768-wide RoBERTa (roberta-base)")
        return cfg

    def _load(self) -> None:
        import torch

        device = resolve_device(self.device_spec, "clap")
        path = self._checkpoint_path()
        clap_module = import_clap_module()
        sd = self._read_state_dict(path)
        self._check_architecture(sd, clap_module, path)
        text_cfg = self._text_config()
        laion_model = sys.modules["clap_module.model"]
        with _BUILD_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch.meshgrid indexing notice
            original = laion_model.RobertaModel
            laion_model.RobertaModel = _ConfiguredRoberta(text_cfg)
            try:
                model, model_cfg = clap_module.create_model(
                    self.amodel, self.tmodel, precision="fp32", device=torch.device("cpu"),
                    enable_fusion=False)
            finally:
                laion_model.RobertaModel = original
        own = model.state_dict()
        # transformers >= 4.31 no longer stores this buffer; released checkpoints still carry it
        for key in [k for k in sd if k.endswith("embeddings.position_ids") and k not in own]:
            del sd[key]
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            missing = [k for k in own if k not in sd]
            extra = [k for k in sd if k not in own]
            detail = "; ".join(filter(None, [
                f"missing {len(missing)} key(s) e.g. {', '.join(missing[:3])}" if missing else "",
                f"unexpected {len(extra)} key(s) e.g. {', '.join(extra[:3])}" if extra else "",
            ])) or first_line(exc)
            if all(k.startswith("text_branch.") for k in missing + extra) and (missing or extra):
                where = self.text_model_dir or "roberta-base defaults"
                detail = f"its text branch differs from the RoBERTa config ({where}): {detail}"
            raise DeltaV2AError(f"clap: checkpoint {path.name} does not fit {self.amodel}: "
                                f"{detail}") from None
        audio_cfg = model_cfg["audio_cfg"]
        if int(audio_cfg["sample_rate"]) != self.sample_rate:
            raise DeltaV2AError(f"clap: sample_rate {self.sample_rate} differs from the model's "
                                f"{audio_cfg['sample_rate']} Hz")
        self._clip_samples = int(audio_cfg["clip_samples"])
        if round(self.window_seconds * self.sample_rate) > self._clip_samples:
            raise DeltaV2AError(f"clap: window_seconds {self.window_seconds:g} exceeds the model's "
                                f"{self._clip_samples / self.sample_rate:g} s input")
        model.to(device).eval()
        self._model, self.device, self.checkpoint_path = model, device, path

    # -------------------------------------------------------------- encoding

    def windows(self, clip: "np.ndarray", sample_rate: int, what: str = "clip"
                ) -> tuple[list["np.ndarray"], list[float]]:
        """One clip -> model-ready windows and their weights (seconds of real audio in each).

        Mono (channel mean), resampled to the model rate, cut to the first `max_duration`
        seconds, int16-quantised as laion does, then split into consecutive windows of
        `window_seconds` from the start. A window shorter than the model input (the last
        one, or a short clip) is filled with laion's repeat-pad.
        """
        import numpy as np

        from deltav2a.media.io import check_audio, resample

        if not self._clip_samples:
            self.load()
        audio = check_audio(clip, f"clap: {what}")
        mono = audio.mean(axis=0, keepdims=True, dtype=np.float32) if audio.shape[0] > 1 else audio
        if sample_rate != self.sample_rate:
            mono = resample(mono, sample_rate, self.sample_rate)
        x = np.ascontiguousarray(mono[0], dtype=np.float32)
        if self.max_duration > 0:
            x = x[: int(round(self.max_duration * self.sample_rate))]
        if x.shape[0] == 0:
            raise DeltaV2AError(f"clap: {what} is too short to embed at {self.sample_rate} Hz")
        x = quantise_int16(x)
        win = int(round(self.window_seconds * self.sample_rate))
        out, weights = [], []
        for start in range(0, x.shape[0], win):
            seg = x[start:start + win]
            out.append(repeat_pad(seg, self._clip_samples))
            weights.append(seg.shape[0] / self.sample_rate)
        return out, weights

    def encode_audio(self, clips: Sequence["np.ndarray"], sample_rate: int) -> "np.ndarray":
        """(N, 512) float32 unit vectors of (channels, samples) clips, deterministic.

        Each clip's windows are embedded by CLAP (each a unit vector), averaged with
        weights equal to the seconds of real audio they hold, and the mean is
        L2-normalised again. Clips up to one window embed exactly as
        `CLAP_Module.get_audio_embedding_from_data` would embed them.
        """
        import numpy as np
        import torch

        try:
            sr = float(sample_rate)
        except (TypeError, ValueError):
            sr = float("nan")
        if not math.isfinite(sr) or sr <= 0:
            raise DeltaV2AError(f"clap: sample_rate must be a positive number, got {sample_rate!r}")
        sample_rate = int(sr) if sr == int(sr) else sr
        self.load()
        clips = list(clips)
        if not clips:
            return np.zeros((0, self.dim), dtype=np.float32)
        all_windows: list[np.ndarray] = []
        owners: list[int] = []
        weights: list[float] = []
        for i, clip in enumerate(clips):
            w, wt = self.windows(clip, sample_rate, f"clip {i}")
            all_windows.extend(w)
            weights.extend(wt)
            owners.extend([i] * len(w))
        embs = np.zeros((len(all_windows), self.dim), dtype=np.float32)
        false = torch.tensor([False])
        with torch.inference_mode():
            for start in range(0, len(all_windows), self.batch_size):
                chunk = all_windows[start:start + self.batch_size]
                batch = [{"waveform": torch.from_numpy(w), "longer": false} for w in chunk]
                e = self._model.get_audio_embedding(batch)
                embs[start:start + len(chunk)] = e.float().cpu().numpy()
        out = np.zeros((len(clips), self.dim), dtype=np.float64)
        own = np.asarray(owners)
        wts = np.asarray(weights, dtype=np.float64)
        for i in range(len(clips)):
            sel = own == i
            if sel.sum() == 1:  # one window: laion's vector, untouched (already unit length)
                out[i] = embs[sel][0]
                continue
            mean = (embs[sel].astype(np.float64) * wts[sel, None]).sum(axis=0) / wts[sel].sum()
            norm = np.linalg.norm(mean)
            if not np.isfinite(norm) or norm == 0:
                raise DeltaV2AError(f"clap: clip {i} produced a degenerate embedding")
            out[i] = mean / norm
        return out.astype(np.float32)

    def encode_text(self, texts: Sequence[str]) -> "np.ndarray":
        """(N, 512) float32 unit vectors from CLAP's RoBERTa branch (laion's tokenizer settings)."""
        import numpy as np
        import torch

        if isinstance(texts, str):
            texts = [texts]
        texts = [str(t) for t in texts]
        self.load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tok = self._get_tokenizer()
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                enc = tok(texts[start:start + self.batch_size], padding="max_length",
                          truncation=True, max_length=TEXT_MAX_LENGTH, return_tensors="pt")
                data = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
                out.append(self._model.get_text_embedding(data).float().cpu().numpy())
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    def _get_tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import RobertaTokenizer

            src = self._text_source()
            if src is None:
                raise DeltaV2AError(
                    "clap: text embedding needs the roberta-base tokenizer; set text_model_dir "
                    f"or {ENV_TEXT_MODEL} to a folder with vocab.json and merges.txt")
            try:
                self._tokenizer = RobertaTokenizer.from_pretrained(src[0], local_files_only=src[1])
            except (OSError, ValueError, TypeError) as exc:
                raise DeltaV2AError(f"clap: cannot load the RoBERTa tokenizer from {src[0]} "
                                    f"({first_line(exc)})") from None
        return self._tokenizer
