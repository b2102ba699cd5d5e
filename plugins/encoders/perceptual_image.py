"""`perceptual-image`: an image as 19 interpretable, normalised low-level descriptors.

No weights and no downloads: the vector is computed with numpy from the pixels, so it is
the default image encoder whenever nothing else is configured, and it runs at hundreds of
images per second on one CPU core.

Every descriptor is an absolute property of the one image (not of a pair), so the delta
E(I') - E(I) says what an edit changed: blur lowers the detail energies and raises pixel
coherence, noise raises the noise residual and lowers detail sparsity, motion blur raises
gradient anisotropy, sepia drains colourfulness and raises warmth, solarize lowers the
highlight level, breaks up the highlight areas and raises the luma/saturation
correlation, spread destroys pixel coherence, and so on. The descriptors,
their units and transforms are documented in docs/perceptual_encoders.md and glossed in
data/perceptual_normalisation.yaml.

Analysis size: an image whose longer side exceeds 512 px is reduced (box filter) so that
it is 512 px, which fixes the pixel scale every "fine / mid / coarse" band refers to and
bounds the cost; smaller images are analysed as they are. Images with a side under 16 px
are enlarged (nearest neighbour, so no detail is invented) until that side is 16 px, which
makes every statistic defined: a 1x1 image gives a finite vector that describes its colour
and a flat texture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Sequence

from deltav2a.api.encoders import ImageEncoder
from deltav2a.errors import DeltaV2AError

from .lexicon import PerceptualBase

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL.Image import Image as PILImage

MAX_SIDE = 512
MIN_SIDE = 16
EDGE_THRESHOLD = 0.05      # gradient magnitude (fraction of full scale) that counts as an edge
GREY_CHROMA = 0.02         # chroma below which a pixel's hue hardly counts (hue diversity)
NOISE_QUANTILE = 0.2       # noise_residual: the quietest fifth of blocks
HIGHLIGHT_SHARE = 0.05     # highlight_fragmentation: the brightest 5 % of pixels

DESCRIPTORS: tuple[str, ...] = (
    "detail_fine", "detail_mid", "detail_coarse", "noise_residual", "detail_sparsity",
    "edge_density", "gradient_anisotropy", "coarse_anisotropy", "pixel_coherence",
    "colourfulness", "saturation", "hue_diversity", "warmth", "luminance", "contrast",
    "shadow_level", "highlight_level", "luma_saturation_correlation", "highlight_fragmentation",
)


def _prepare(image: "PILImage") -> "np.ndarray":
    """Pillow image -> (3, H, W) float32 RGB in [0, 1] at the analysis size."""
    import numpy as np
    from PIL import Image

    from deltav2a.media.io import ensure_rgb

    if not isinstance(image, Image.Image):
        raise DeltaV2AError(f"perceptual-image: expected a Pillow image, got {type(image).__name__}")
    img = ensure_rgb(image)
    w, h = img.size
    if w < 1 or h < 1:
        raise DeltaV2AError("perceptual-image: image has no pixels")
    if max(w, h) > MAX_SIDE:
        s = MAX_SIDE / max(w, h)
        w, h = max(1, round(w * s)), max(1, round(h * s))
        img = img.resize((w, h), Image.Resampling.BOX)
    if min(w, h) < MIN_SIDE:
        k = -(-MIN_SIDE // min(w, h))  # ceil: whole-pixel nearest-neighbour enlargement
        img = img.resize((w * k, h * k), Image.Resampling.NEAREST)
    a = np.asarray(img, dtype=np.uint8)
    return np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32) * np.float32(1.0 / 255.0)


def _haar(x: "np.ndarray") -> tuple["np.ndarray", "np.ndarray", "np.ndarray", "np.ndarray"]:
    """One level of the (averaging) 2-D Haar transform: LL and the three detail bands."""
    h, w = x.shape
    x = x[: h // 2 * 2, : w // 2 * 2]
    a, b = x[0::2, 0::2], x[0::2, 1::2]
    c, d = x[1::2, 0::2], x[1::2, 1::2]
    s1, s2, d1, d2 = a + c, b + d, a - c, b - d
    q = 0.25
    return (s1 + s2) * q, (s1 - s2) * q, (d1 + d2) * q, (d1 - d2) * q


def _half(x: "np.ndarray") -> "np.ndarray":
    h, w = x.shape
    return (x[0: h // 2 * 2: 2, 0: w // 2 * 2: 2] + x[1: h // 2 * 2: 2, 0: w // 2 * 2: 2]
            + x[0: h // 2 * 2: 2, 1: w // 2 * 2: 2] + x[1: h // 2 * 2: 2, 1: w // 2 * 2: 2]) * 0.25


def _corr(a: "np.ndarray", b: "np.ndarray") -> float:
    import numpy as np

    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b) / den) if den > 1e-12 else float("nan")


def _coherence(x: "np.ndarray") -> float:
    """Global structure-tensor coherence of the forward-difference gradients, in [0, 1]."""
    import numpy as np

    gx = x[:-1, 1:] - x[:-1, :-1]
    gy = x[1:, :-1] - x[:-1, :-1]
    j11, j22, j12 = float(np.mean(gx * gx)), float(np.mean(gy * gy)), float(np.mean(gx * gy))
    tr = j11 + j22
    if tr <= 1e-12:
        return float("nan")
    return float(np.sqrt((j11 - j22) ** 2 + 4.0 * j12 * j12) / tr)


def describe_image(rgb: "np.ndarray") -> "np.ndarray":
    """(3, H, W) float32 in [0, 1] -> the raw descriptors in DESCRIPTORS order (NaN = undefined)."""
    import numpy as np

    r, g, b = rgb[0], rgb[1], rgb[2]
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b  # Rec. 709 luma of the encoded values
    nan = float("nan")
    out: dict[str, float] = {}

    # multi-scale detail: RMS of the Haar detail bands at 1-2, 2-4 and 4-8 px
    ll = lum
    detail_rms = []
    ll2 = lum
    for level in range(3):
        ll, lh, hl, hh = _haar(ll)
        e = float(np.mean(lh * lh)) + float(np.mean(hl * hl)) + float(np.mean(hh * hh))
        detail_rms.append(float(np.sqrt(e)))
        if level == 0:
            # noise where the picture is flattest: the diagonal-band energy of the quietest
            # fifth of 8x8 px blocks (an 8-bit photo's median |HH| is often exactly 0, so
            # Donoho's MAD estimate would be quantised; block energies are not)
            hb, wb = hh.shape[0] // 4, hh.shape[1] // 4
            if hb * wb >= 1:
                be = (hh[: hb * 4, : wb * 4] ** 2).reshape(hb, 4, wb, 4).mean(axis=(1, 3)).ravel()
                k = int(NOISE_QUANTILE * (be.size - 1))
                out["noise_residual"] = 2.0 * float(np.sqrt(np.partition(be, k)[k]))
            else:
                out["noise_residual"] = nan
            m2 = float(np.mean(lh * lh) + np.mean(hl * hl)) * 0.5
            m4 = float(np.mean((lh * lh) ** 2) + np.mean((hl * hl) ** 2)) * 0.5
            out["detail_sparsity"] = m4 / (m2 * m2) if m2 > 1e-14 else nan
            ll1 = ll
        elif level == 1:
            ll2 = ll
    out["detail_fine"], out["detail_mid"], out["detail_coarse"] = detail_rms

    # edge density at half resolution (so single-pixel grain is not an "edge")
    gx = (ll1[:-1, 1:] - ll1[:-1, :-1])
    gy = (ll1[1:, :-1] - ll1[:-1, :-1])
    m2 = gx * gx + gy * gy
    t2 = np.float32(EDGE_THRESHOLD ** 2)
    out["edge_density"] = float(np.mean(m2 / (m2 + t2)))

    out["gradient_anisotropy"] = _coherence(lum)
    out["coarse_anisotropy"] = _coherence(ll2)

    # pixel coherence: how much more two pixels 2 apart differ than neighbours do
    dx1 = lum[:, 1:] - lum[:, :-1]
    dy1 = lum[1:, :] - lum[:-1, :]
    dx2 = lum[:, 2:] - lum[:, :-2]
    dy2 = lum[2:, :] - lum[:-2, :]
    d1 = float(np.mean(dx1 * dx1)) + float(np.mean(dy1 * dy1))
    d2 = float(np.mean(dx2 * dx2)) + float(np.mean(dy2 * dy2))
    out["pixel_coherence"] = float(np.log(d2 / d1)) if d1 > 1e-14 and d2 > 1e-14 else nan

    # colour
    rg = r - g
    yb = 0.5 * (r + g) - b
    mu_rg, mu_yb = float(np.mean(rg)), float(np.mean(yb))
    var_rg = float(np.mean(rg * rg)) - mu_rg * mu_rg
    var_yb = float(np.mean(yb * yb)) - mu_yb * mu_yb
    out["colourfulness"] = (np.sqrt(max(var_rg, 0.0) + max(var_yb, 0.0))
                            + 0.3 * np.sqrt(mu_rg * mu_rg + mu_yb * mu_yb))
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    out["saturation"] = float(np.mean((mx - mn) / np.maximum(mx, np.float32(1e-3))))
    chroma = np.sqrt(rg * rg + yb * yb)
    total_chroma = float(np.sum(chroma, dtype=np.float64))
    resultant = float(np.hypot(np.sum(rg, dtype=np.float64), np.sum(yb, dtype=np.float64)))
    out["hue_diversity"] = (total_chroma - resultant) / (total_chroma + GREY_CHROMA * lum.size)
    out["warmth"] = float(np.mean(r - b))

    # tone
    out["luminance"] = float(np.mean(lum))
    out["contrast"] = float(np.std(lum))
    hist = np.bincount((lum * 255.0 + 0.5).astype(np.uint8).ravel(), minlength=256)
    cdf = np.cumsum(hist) / lum.size
    out["shadow_level"] = float(np.searchsorted(cdf, 0.05)) / 255.0
    out["highlight_level"] = float(np.searchsorted(cdf, 0.95)) / 255.0

    # tone/colour coupling on the half-resolution image: photographs desaturate toward their
    # highlights (white sky, snow, lamps), so luma and saturation anti-correlate; folding
    # the tone scale (solarisation) turns those highlights into dark neutrals and raises it
    half = [_half(ch) for ch in (r, g, b)]
    hmx = np.maximum(np.maximum(half[0], half[1]), half[2])
    hmn = np.minimum(np.minimum(half[0], half[1]), half[2])
    hsat = (hmx - hmn) / np.maximum(hmx, np.float32(1e-3))
    out["luma_saturation_correlation"] = _corr(ll1, hsat)

    # highlight fragmentation: the brightest 5 % of (half-resolution) pixels form solid areas
    # in a photograph; after a tone fold they are thin contours along the fold line
    hist1 = np.bincount((ll1 * 255.0 + 0.5).astype(np.uint8).ravel(), minlength=256)
    level = int(np.searchsorted(np.cumsum(hist1) / ll1.size, 1.0 - HIGHLIGHT_SHARE))
    bright = (ll1 * 255.0 + 0.5).astype(np.uint8) >= level
    pairs = int(np.count_nonzero(bright[:, 1:] & bright[:, :-1])) + int(np.count_nonzero(bright[1:, :] & bright[:-1, :]))
    ends = int(np.count_nonzero(bright[:, 1:])) + int(np.count_nonzero(bright[1:, :]))
    out["highlight_fragmentation"] = 1.0 - pairs / ends if ends else nan
    return np.array([out[n] for n in DESCRIPTORS], dtype=np.float64)


class PerceptualImageEncoder(PerceptualBase, ImageEncoder):
    """Weight-free image encoder: 19 normalised low-level descriptors (detail, noise, colour, tone).

    The default image encoder when none is configured. Each image becomes a vector of
    interpretable descriptors (multi-scale detail energy, edge density, noise residual,
    directional-blur anisotropy, colourfulness, saturation, hue diversity, warmth,
    luminance, contrast, shadow/highlight levels, tonal-inversion cues, pixel coherence), each
    through a fixed, versioned normalisation. Text is embedded through a shipped lexicon
    that grounds every vocabulary term in signed descriptor directions. numpy only; about
    7 ms per 512 px image on one core. See docs/perceptual_encoders.md.
    """

    name: ClassVar[str] = "perceptual-image"
    DESCRIPTORS: ClassVar[tuple[str, ...]] = DESCRIPTORS
    ALGORITHM_REVISION: ClassVar[int] = 1

    def __init__(self, **options) -> None:
        super().__init__(**options)  # validates against PerceptualOptions
        self._init_options(self.options)

    def raw_descriptors(self, images: Sequence["PILImage"]) -> "np.ndarray":
        """(N, dim) raw (untransformed) descriptors; what the normalisation fit consumes."""
        import numpy as np

        if not isinstance(images, (list, tuple)):
            images = list(images)
        out = np.empty((len(images), self.dim), dtype=np.float64)
        for i, im in enumerate(images):
            out[i] = describe_image(_prepare(im))
        return out

    def encode_images(self, images: Sequence["PILImage"]) -> "np.ndarray":
        """(N, 19) float32: normalised descriptors of each RGB image, independently."""
        table = self.table  # validate the data file before any work
        return table.normalise(self.raw_descriptors(images))
