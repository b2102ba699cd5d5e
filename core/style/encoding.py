"""Encoder instances from config, and the vocabulary term embeddings V (cached on disk)."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from ..config import Config, EncoderChoice
    from ..api.encoders import Encoder
    from ..api.vocabulary import Vocabulary


@lru_cache(maxsize=8)
def _make(name: str, options_json: str, modality: str) -> "Encoder":
    from ..api.registry import get

    cls = get("encoder", name)
    if getattr(cls, "modality", None) != modality:
        raise DeltaV2AError(f"encoder '{name}' encodes {cls.modality}, but an {modality} encoder is needed here")
    try:
        return cls(**json.loads(options_json))
    except TypeError as exc:
        raise DeltaV2AError(f"encoder '{name}': bad options: {exc}") from None


def load_encoder(choice: "EncoderChoice | str", modality: str, **options: Any) -> "Encoder":
    """The (process-wide cached) encoder for a config choice such as `encoders.image`."""
    if isinstance(choice, str):
        name, opts = choice, dict(options)
    else:
        name, opts = choice.name, {**choice.options, **options}
    return _make(name, json.dumps(opts, sort_keys=True, default=str), modality)


#: encoder options that let a checkpoint run code on load; only the user may set them
UNSAFE_OPTION_PREFIXES = ("allow_unsafe", "trust_remote_code", "weights_only")


def model_config(model_dir: str | os.PathLike) -> "Config":
    """The config snapshot of a model directory, read as untrusted data.

    A model directory may come from anywhere (a download, a colleague). It may choose
    registered encoders and their plain options, but it can never switch on unsafe
    checkpoint loading: that is only honoured from the user's own config or command line
    (docs/security.md). A snapshot that tries is refused in one line, not silently cleaned,
    so the user learns the directory is not what it claims.
    """
    from ..config import load_config

    path = Path(model_dir) / "config.yaml"
    cfg = load_config(path if path.is_file() else None)
    for side in ("image", "audio"):
        choice = getattr(cfg.encoders, side)
        for key in choice.options:
            if str(key).lower().startswith(UNSAFE_OPTION_PREFIXES):
                raise DeltaV2AError(
                    f"model directory {model_dir}: its config.yaml sets encoders.{side}.options."
                    f"{key}; a model directory cannot enable unsafe checkpoint loading "
                    "(set it in your own config if you trust the checkpoint)")
    return cfg


def cache_dir() -> Path:
    """DELTAV2A_CACHE, else $DELTAV2A_HOME/cache when DELTAV2A_HOME is set (one folder holds a
    user's vocabularies and what is computed from them), else the XDG cache folder."""
    root = os.environ.get("DELTAV2A_CACHE")
    if root:
        return Path(root).expanduser()
    home = os.environ.get("DELTAV2A_HOME")
    if home:
        return Path(home).expanduser() / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deltav2a"


def _l2(x: "np.ndarray", axis: int = -1) -> "np.ndarray":
    import numpy as np

    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(n, 1e-12)


def term_embeddings(encoder: "Encoder", vocab: "Vocabulary", modality: str | None = None,
                    use_cache: bool = True) -> "np.ndarray":
    """V: (K, D) float32, one row per term, in the encoder's space.

    Each term is written into every template of the modality, encoded, each sentence
    embedding L2-normalised, averaged and normalised again (seed 000, "Point 1"), so no
    single phrasing dominates. Cached by encoder fingerprint + vocabulary fingerprint.
    """
    import hashlib

    import numpy as np

    modality = modality or encoder.modality
    key = hashlib.sha256(f"{encoder.name}|{encoder.fingerprint()}|{vocab.name}|{vocab.fingerprint()}|{modality}"
                         .encode()).hexdigest()[:20]
    # the file name is the hash only: names come from files and plugins (a vocabulary named
    # "../../x" must not steer the write outside the cache folder)
    path = cache_dir() / "term_embeddings" / f"{modality}-{key}.npy"
    if use_cache and path.is_file():
        try:
            V = np.load(path, allow_pickle=False)
            if V.shape[0] == vocab.size:
                return V
        except (OSError, ValueError):
            pass  # a damaged cache entry is rebuilt below
    rows, failed = [], []
    for term in vocab.terms:
        try:
            sentences = _l2(np.asarray(encoder.encode_text(vocab.prompts(modality, term)), dtype=np.float64))
        except DeltaV2AError:
            failed.append(term)  # collected: every unknown word is reported in one error
            continue
        rows.append(_l2(sentences.mean(axis=0)))
    if failed:
        raise DeltaV2AError(_unknown_terms_message(encoder, vocab, modality, failed))
    V = np.stack(rows).astype(np.float32)
    if use_cache:
        from ..atomic import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, V, allow_pickle=False)
    return V


def _unknown_terms_message(encoder: "Encoder", vocab: "Vocabulary", modality: str, failed: list[str]) -> str:
    """One line naming every term the encoder cannot embed, with the nearest known words."""
    import difflib

    words = getattr(getattr(encoder, "lexicon", None), "words", None) or []
    parts = []
    for term in failed:
        near = difflib.get_close_matches(term.lower(), words, n=3, cutoff=0.6) if words else []
        parts.append(f"'{term}'" + (f" (nearest known: {', '.join(near)})" if near else ""))
    return (f"vocabulary '{vocab.name}': encoder '{encoder.name}' cannot embed {len(failed)} of {vocab.size} "
            f"terms for {modality}: {'; '.join(parts)}. Replace them with known words (see "
            "docs/perceptual_encoders.md) or use an encoder that reads any text (clip, clap)")
