"""The encoder interface every image and audio encoder plugin implements.

An encoder is constructed from its config options without loading anything heavy; weights
and heavy imports happen on the first `encode_*` call. The `fingerprint` names everything
that changes the vectors (weights, preprocessing, descriptor normalisation version), and
trained models record it so they refuse to run against a different encoder.

Options are declared as `Options`, a `PluginOptions` model (api/options.py): the config's
`encoders.image.options` are validated against it before the encoder exists, so a typo is a
one-line error naming the encoder and the key, and `plugin-info` shows every option.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, Sequence

from .optionsref import OptionsPlugin

if TYPE_CHECKING:  # pragma: no cover
    from .options import PluginOptions

    import numpy as np
    from PIL.Image import Image as PILImage

Modality = Literal["image", "audio"]


class Encoder(OptionsPlugin):
    name: ClassVar[str] = ""
    modality: ClassVar[Modality] = "image"
    kind: ClassVar[str] = "encoder"

    def __init__(self, **options: Any) -> None:
        #: the validated options (defaults filled in)
        self.opts = self.parse_options(options)
        #: the options the user set, validated and coerced (what fingerprints and sidecars record)
        self.options: dict[str, Any] = self.opts.model_dump(exclude_unset=True)

    @classmethod
    def describe(cls) -> dict:
        from .options import describe_options

        return {"name": cls.name, "kind": cls.kind, "modality": cls.modality,
                "summary": cls.summary(), "doc": (cls.__doc__ or "").strip(), "params": [],
                "options": describe_options(cls.Options)}

    @property
    def dim(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def fingerprint(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode_text(self, texts: Sequence[str]) -> "np.ndarray":  # pragma: no cover
        """(N, dim) float32 text embeddings, in the same space as the media embeddings."""
        raise NotImplementedError


class ImageEncoder(Encoder):
    modality: ClassVar[Modality] = "image"

    def encode_images(self, images: Sequence["PILImage"]) -> "np.ndarray":  # pragma: no cover
        """(N, dim) float32 embeddings of RGB Pillow images."""
        raise NotImplementedError


class AudioEncoder(Encoder):
    modality: ClassVar[Modality] = "audio"

    def encode_audio(
        self, clips: Sequence["np.ndarray"], sample_rate: int
    ) -> "np.ndarray":  # pragma: no cover
        """(N, dim) float32 embeddings of float32 (channels, samples) clips."""
        raise NotImplementedError
