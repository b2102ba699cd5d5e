"""`clip`: image embeddings from an open_clip model (default ViT-L-14, OpenAI weights, 768-d).

Where the weights come from, in order:

1. `checkpoint` (option) or `DELTAV2A_CLIP_CHECKPOINT`: a local file (.safetensors, a
   torch state dict, or OpenAI's original TorchScript archive) or a local directory. A
   directory holding `open_clip_config.json` is an open_clip model folder (the layout of the
   Hugging Face repos open_clip publishes): its config defines the architecture and its
   weights file is loaded. Any other directory must hold exactly one weights file.
2. Otherwise the `pretrained` tag (default `openai`) is looked up in open_clip's own caches
   (the Hugging Face hub cache, then `~/.cache/clip`), so a machine that ran open_clip once
   with internet needs no network again. Only when the file is in neither cache, and
   neither `HF_HUB_OFFLINE` nor `TRANSFORMERS_OFFLINE` nor `DELTAV2A_OFFLINE` is set, does
   open_clip download it.

Whatever the source, the tag still describes the weights: it decides the activation
(OpenAI's weights were trained with QuickGELU, and open_clip's plain `ViT-L-14` config
uses nn.GELU, which only warns and silently shifts every vector) and the image
normalisation. Nothing here opens a connection when a local checkpoint is given.

Vectors are L2-normalised, because the pipeline compares directions
(normalize(E(I') - E(I))) and CLIP's own similarity is cosine. The model runs in eval mode
and fp32 on CPU or CUDA. Bit-for-bit repeatability holds for identical calls; an image's
vector agrees to float rounding (about 1e-7) whether it is encoded alone or in a batch,
and exactly when `batch_size` is 1 (see docs/clip_clap.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Sequence

from deltav2a.api.encoders import ImageEncoder
from deltav2a.api.optionsref import OptionsRef
from deltav2a.errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL.Image import Image as PILImage

ENV_CHECKPOINT = "DELTAV2A_CLIP_CHECKPOINT"
OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DELTAV2A_OFFLINE")
#: bumped whenever this module changes how an image becomes a vector with the same weights
PREPROCESS_REVISION = 1
OPEN_CLIP_CONFIG = "open_clip_config.json"
#: weights file names, most preferred first (open_clip's own naming, then generic ones)
WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                "open_clip_pytorch_model.bin", "model.safetensors", "pytorch_model.bin")
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
#: OpenAI TorchScript archives carry these as attributes; they are not weights
_JIT_NON_WEIGHTS = ("input_resolution", "context_length", "vocab_size")


# ------------------------------------------------------------------ helpers shared with clap


def truthy(value: Any, what: str) -> bool:
    """A boolean option as YAML, JSON or a command line may spell it."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise DeltaV2AError(f"{what} must be true or false, got {value!r}")


def positive_int(value: Any, what: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise DeltaV2AError(f"{what} must be a positive integer, got {value!r}") from None
    if n < 1 or n != float(value):
        raise DeltaV2AError(f"{what} must be a positive integer, got {value!r}")
    return n


def offline() -> bool:
    """True when the user asked every library to stay off the network."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on") for k in OFFLINE_ENV)


def check_device(spec: Any, who: str) -> str:
    """Validate the spelling now; whether CUDA exists is checked when the model loads."""
    text = "auto" if spec in (None, "") else str(spec).strip().lower()
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise DeltaV2AError(f"{who}: device must be auto, cpu, cuda or cuda:N, got {spec!r}")


def resolve_device(spec: str, who: str) -> str:
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeltaV2AError(f"{who}: device '{spec}' requested but CUDA is not available "
                                "(use device: cpu or auto)")
        index = int(spec[5:]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise DeltaV2AError(f"{who}: device '{spec}' does not exist "
                                f"({torch.cuda.device_count()} CUDA device(s))")
    return spec


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file, memoised per (path, size, mtime) because checkpoints are GBs."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        with open(path, "rb") as f:
            _DIGESTS[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _DIGESTS[key]


def is_weights_only_refusal(exc: BaseException) -> bool:
    """torch.load(weights_only=True) met a Python object it will not unpickle.

    A corrupt file can raise the same exception type, so the message decides.
    """
    import pickle

    text = str(exc).lower()
    return (isinstance(exc, pickle.UnpicklingError) and "weights only load failed" in text
            and "unsupported global" in text)


def read_error(path: Path, exc: BaseException, who: str) -> DeltaV2AError:
    """One line for a checkpoint torch or safetensors cannot parse at all."""
    import pickle

    if isinstance(exc, pickle.UnpicklingError) or "invalid load key" in str(exc).lower():
        return DeltaV2AError(f"{who}: {path} is not a readable PyTorch checkpoint (damaged, or "
                             "another format)")
    return DeltaV2AError(f"{who}: not a readable checkpoint {path}: {first_line(exc)}")


def checkpoint_read_errors() -> tuple[type[BaseException], ...]:
    """What reading a damaged or foreign checkpoint raises (for one-line errors)."""
    import pickle

    errors: list[type[BaseException]] = [RuntimeError, KeyError, ValueError, OSError, EOFError,
                                         pickle.UnpicklingError, AttributeError, TypeError,
                                         AssertionError]  # open_clip asserts on shape mismatches
    try:
        from safetensors import SafetensorError

        errors.append(SafetensorError)
    except ImportError:  # pragma: no cover - safetensors is a dependency
        pass
    return tuple(errors)


def unsafe_hint(path: Path, who: str, user_named: bool) -> DeltaV2AError:
    if user_named:
        return DeltaV2AError(
            f"{who}: checkpoint {path} holds Python objects besides tensors, so it cannot be "
            "loaded safely (torch.load weights_only=True refused it); if you trust where it came "
            "from, set the encoder option allow_unsafe_checkpoint: true")
    return DeltaV2AError(
        f"{who}: checkpoint {path} holds Python objects besides tensors and was found in a cache, "
        "not named by you; name it explicitly with the checkpoint option (or its environment "
        "variable) and set allow_unsafe_checkpoint: true if you trust it")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: open_clip logs 'initialized randomly' while we build before loading our weights
_DROPPED_MESSAGES = ("No pretrained weights loaded",)


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    import logging  # here, not at import: registering the encoder stays cheap

    root = logging.getLogger()
    flt = logging.Filter()
    flt.filter = lambda record: not str(record.getMessage()).startswith(_DROPPED_MESSAGES)  # type: ignore[method-assign]
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _unreadable(exc: BaseException) -> bool:
    """torch's RuntimeErrors for files that are not checkpoints (as opposed to shape mismatches)."""
    text = str(exc)
    return any(s in text for s in ("PytorchStreamReader", "failed finding central directory",
                                   "invalid header", "HeaderTooLarge", "Cannot use ``weights_only"))


def _is_torchscript(path: Path) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())


def _weights_in_dir(folder: Path, who: str) -> Path:
    for name in WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if len(found) == 1:
        return found[0]
    if not found:
        raise DeltaV2AError(f"{who}: no weights file ({', '.join(WEIGHT_SUFFIXES)}) in {folder}")
    raise DeltaV2AError(f"{who}: several weights files in {folder} "
                        f"({', '.join(p.name for p in found)}); name one as the checkpoint")


# ------------------------------------------------------------------ the encoder


@dataclass(frozen=True)
class _Source:
    build_name: str            # what open_clip builds: a built-in name or 'local-dir:<folder>'
    weights: Path | None       # None: download through open_clip (online, tag not cached)
    user_named: bool           # the user pointed at these weights (unsafe loading allowed)
    ident: str                 # the weights part of the fingerprint


class ClipImageEncoder(ImageEncoder):
    """CLIP image encoder (open_clip); default ViT-L-14 with OpenAI weights, 768-d unit vectors.

    Options: `ClipOptions` (plugins/encoders/options.py; `deltav2a plugin-info clip`).
    """

    name: ClassVar[str] = "clip"
    Options = OptionsRef("deltav2a_plugins.encoders.options:ClipOptions")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)  # validates against ClipOptions
        options = self.options
        self.model_name = str(options.get("model") or "ViT-L-14").strip()
        tag = options.get("pretrained", "openai")
        self.pretrained = "" if tag is None else str(tag).strip()
        ckpt = options.get("checkpoint")
        if ckpt in (None, ""):
            ckpt = os.environ.get(ENV_CHECKPOINT) or None
        self.checkpoint = Path(ckpt).expanduser() if ckpt else None
        qg = options.get("quick_gelu")
        self.quick_gelu = None if qg in (None, "", "auto") else truthy(qg, "clip: quick_gelu")
        self.device_spec = check_device(options.get("device"), "clip")
        self.batch_size = positive_int(options.get("batch_size", 16), "clip: batch_size")
        self.allow_unsafe = truthy(options.get("allow_unsafe_checkpoint", False),
                                   "clip: allow_unsafe_checkpoint")
        if not self.pretrained and self.checkpoint is None:
            raise DeltaV2AError("clip: set a pretrained tag (e.g. openai) or a checkpoint")
        self._lock = threading.Lock()
        self._model: Any = None
        self._preprocess: Any = None
        self._tokenizer: Any = None
        self.device: str | None = None
        self.source: _Source | None = None

    # -------------------------------------------------------------- description

    @property
    def dim(self) -> int:
        if self._model is not None:
            return int(self._model.visual.output_dim)
        return int(self._config()["embed_dim"])

    def fingerprint(self) -> str:
        """`clip/<model>/<tag>/<weights id>/qg<0|1>/p<revision>`.

        The weights id is `tag` when the weights are the tag's published file (from
        open_clip's cache or download); for a local checkpoint it is
        `sha256:<first 16 hex digits>` of the file (and of the config of an open_clip
        folder), since a local file's name says nothing about what it holds.
        """
        src = self._resolve_local()
        if src.build_name.startswith("local-dir:"):
            # the folder's own config names the architecture; model and tag do not apply
            return f"clip/open_clip-folder/{src.ident}/p{PREPROCESS_REVISION}"
        act = f"qg{int(bool(self._resolved_quick_gelu()))}"
        return (f"clip/{self.model_name}/{self.pretrained or 'none'}/{src.ident}/{act}"
                f"/p{PREPROCESS_REVISION}")

    # -------------------------------------------------------------- resolution

    def _config(self) -> dict:
        import json

        if self.checkpoint is not None and (self.checkpoint / OPEN_CLIP_CONFIG).is_file():
            cfg_path = self.checkpoint / OPEN_CLIP_CONFIG
            try:
                cfg = json.loads(cfg_path.read_text())["model_cfg"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DeltaV2AError(f"clip: {cfg_path} is not an open_clip config "
                                    f"(needs a 'model_cfg' object): {first_line(exc)}") from None
            if not isinstance(cfg, dict) or "embed_dim" not in cfg:
                raise DeltaV2AError(f"clip: {cfg_path}: 'model_cfg' lacks embed_dim")
            return cfg
        import open_clip

        cfg = open_clip.get_model_config(self.model_name)
        if cfg is None:
            known = [m for m in open_clip.list_models() if m.startswith("ViT-")][:12]
            raise DeltaV2AError(f"clip: unknown open_clip model '{self.model_name}' "
                                f"(e.g. {', '.join(known)}; see open_clip.list_models())")
        return cfg

    def _tag_cfg(self) -> dict:
        if not self.pretrained:
            return {}
        import open_clip

        return dict(open_clip.get_pretrained_cfg(self.model_name, self.pretrained) or {})

    def _resolved_quick_gelu(self) -> bool | None:
        """The activation the weights were trained with; None: an open_clip folder's config decides."""
        if self.quick_gelu is not None:
            return self.quick_gelu
        if self.checkpoint is not None and (self.checkpoint / OPEN_CLIP_CONFIG).is_file():
            return None
        tag_qg = bool(self._tag_cfg().get("quick_gelu", False)) if self.pretrained else False
        return tag_qg or bool(self._config().get("quick_gelu", False))

    def _resolve_local(self) -> _Source:
        """Where the weights are, without touching the network."""
        if self.checkpoint is not None:
            path = self.checkpoint
            if not path.exists():
                raise DeltaV2AError(f"clip: checkpoint not found: {path}")
            if path.is_dir():
                if (path / OPEN_CLIP_CONFIG).is_file():
                    weights = _weights_in_dir(path, "clip")
                    ident = ("sha256:" + file_digest(weights)[:16]
                             + "+cfg:" + file_digest(path / OPEN_CLIP_CONFIG)[:8])
                    return _Source(f"local-dir:{path}", weights, True, ident)
                path = _weights_in_dir(path, "clip")
            if path.stat().st_size == 0:
                raise DeltaV2AError(f"clip: checkpoint is empty: {path}")
            return _Source(self.model_name, path, True, "sha256:" + file_digest(path)[:16])
        cached = self._cached_tag_file()
        return _Source(self.model_name, cached, False, "tag")

    def _cached_tag_file(self) -> Path | None:
        cfg = self._tag_cfg()
        if not cfg:
            import open_clip

            self._config()  # unknown model names get their own message
            tags = open_clip.list_pretrained_tags_by_model(self.model_name)
            raise DeltaV2AError(f"clip: '{self.pretrained}' is not an open_clip weights tag for "
                                f"{self.model_name} (known: {', '.join(tags) or 'none'}); "
                                "or give a checkpoint")
        hub = cfg.get("hf_hub") or ""
        if hub:
            from huggingface_hub import try_to_load_from_cache

            # open_clip's convention: 'org/repo/' (default file names) or 'org/repo/file'
            repo, filename = (hub.rstrip("/"), "") if hub.endswith("/") else os.path.split(hub)
            names = [filename] if filename else ["open_clip_model.safetensors",
                                                 "open_clip_pytorch_model.bin"]
            if filename.endswith((".bin", ".pth")):
                names.insert(0, filename[:-4] + ".safetensors")
            for name in names:
                hit = try_to_load_from_cache(repo, name)
                if isinstance(hit, str) and os.path.isfile(hit):
                    return Path(hit)
        url = cfg.get("url") or ""
        if url:
            legacy = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
            if legacy.is_file() and legacy.stat().st_size > 0:
                return legacy
        if cfg.get("file") and os.path.isfile(cfg["file"]):
            return Path(cfg["file"])
        return None

    def _download(self) -> Path:
        if offline():
            raise DeltaV2AError(
                f"clip: weights {self.model_name}/{self.pretrained} are not in open_clip's cache "
                "and the machine is offline; run once with internet, or set the checkpoint option "
                f"(or {ENV_CHECKPOINT}) to a local weights file or open_clip folder")
        import open_clip

        try:
            return Path(open_clip.download_pretrained(self._tag_cfg()))
        except Exception as exc:  # network or hub errors: one line for the user
            raise DeltaV2AError(f"clip: could not download {self.model_name}/{self.pretrained} "
                                f"({first_line(exc)}); set a local checkpoint instead") from None

    # -------------------------------------------------------------- loading

    def load(self) -> None:
        """Build the model and load its weights (done on first encode; safe to call again)."""
        with self._lock:
            if self._model is None:
                self._load()

    def build_kwargs(self, src: _Source | None = None) -> dict[str, Any]:
        """What the weights' tag changes in open_clip's build: activation and image normalisation."""
        src = src or self._resolve_local()
        kwargs: dict[str, Any] = {}
        qg = self._resolved_quick_gelu()
        if qg is not None:
            kwargs["quick_gelu"] = qg
        if not src.build_name.startswith("local-dir:"):
            self._config()
            tag = self._tag_cfg()
            for key, arg in (("mean", "image_mean"), ("std", "image_std"),
                             ("interpolation", "image_interpolation"),
                             ("resize_mode", "image_resize_mode")):
                if key in tag:
                    kwargs[arg] = tuple(tag[key]) if isinstance(tag[key], list) else tag[key]
        return kwargs

    def _load(self) -> None:
        import open_clip

        device = resolve_device(self.device_spec, "clip")
        src = self._resolve_local()
        weights = src.weights if src.weights is not None else self._download()
        kwargs = self.build_kwargs(src)
        try:
            with _quiet_open_clip():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    src.build_name, pretrained=None, load_weights=False, precision="fp32",
                    device="cpu", pretrained_image=False, pretrained_text=False, **kwargs)
        except (RuntimeError, ValueError, FileNotFoundError, KeyError) as exc:
            raise DeltaV2AError(f"clip: cannot build open_clip model '{src.build_name}': "
                                f"{first_line(exc)}") from None
        self._load_weights(model, weights, src.user_named)
        model.to(device).eval()
        self._model, self._preprocess, self.device, self.source = model, preprocess, device, src
        self._tokenizer = None

    def _load_weights(self, model: Any, path: Path, user_named: bool) -> None:
        import open_clip
        import torch

        try:
            if _is_torchscript(path):
                # OpenAI's original archives (~/.cache/clip/ViT-L-14.pt); TorchScript, not pickle
                sd = torch.jit.load(str(path), map_location="cpu").state_dict()
                # a scripted module also lists non-persistent buffers (e.g. attn_mask)
                transient = {n for n, _ in model.named_buffers()} - set(model.state_dict())
                for key in (*_JIT_NON_WEIGHTS, *transient):
                    sd.pop(key, None)
                model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
                return
            try:
                open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
            except Exception as exc:
                if not is_weights_only_refusal(exc):
                    raise
                if not (user_named and self.allow_unsafe):
                    raise unsafe_hint(path, "clip", user_named) from None
                open_clip.load_checkpoint(model, str(path), strict=True, weights_only=False)
        except DeltaV2AError:
            raise
        except checkpoint_read_errors() as exc:
            if isinstance(exc, (RuntimeError, KeyError, AssertionError)) and not _unreadable(exc):
                raise DeltaV2AError(f"clip: checkpoint {path} does not fit open_clip model "
                                    f"'{self.model_name}': {first_line(exc)}") from None
            raise read_error(path, exc, "clip") from None

    # -------------------------------------------------------------- encoding

    def encode_images(self, images: Sequence["PILImage"]) -> "np.ndarray":
        """(N, dim) float32 unit vectors of RGB Pillow images, in input order."""
        import numpy as np
        import torch
        from PIL import Image

        from deltav2a.media.io import ensure_rgb

        imgs = list(images)
        for i, im in enumerate(imgs):
            if not isinstance(im, Image.Image):
                raise DeltaV2AError(f"clip: item {i} is not a Pillow image ({type(im).__name__})")
            if im.width < 1 or im.height < 1:
                raise DeltaV2AError(f"clip: image {i} has no pixels")
        self.load()
        if not imgs:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        with torch.inference_mode():
            for start in range(0, len(imgs), self.batch_size):
                chunk = imgs[start:start + self.batch_size]
                x = torch.stack([self._preprocess(ensure_rgb(im)) for im in chunk]).to(self.device)
                out.append(self._model.encode_image(x, normalize=True).float().cpu().numpy())
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    def encode_text(self, texts: Sequence[str]) -> "np.ndarray":
        """(N, dim) float32 unit vectors from CLIP's text tower, same space as the images."""
        import numpy as np
        import open_clip
        import torch

        if isinstance(texts, str):
            texts = [texts]
        texts = [str(t) for t in texts]
        self.load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._tokenizer is None:
            self._tokenizer = open_clip.get_tokenizer(self.source.build_name)
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                tokens = self._tokenizer(texts[start:start + self.batch_size]).to(self.device)
                out.append(self._model.encode_text(tokens, normalize=True).float().cpu().numpy())
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)
