"""The seven built-in image effects, on real ImageMagick.

Fixtures are drawn here with numpy (gradients, hard-edged colour patches, a band of
2-px stripes, seeded grain, and two flat grey tiles at 250 and 20 for solarize); one
test also runs on a real photo from the shared dev set when it is present.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from conftest import SHARED_DATA
from deltav2a.api.effects import ImageEffect
from deltav2a.errors import DeltaV2AError
from deltav2a.media.io import ensure_rgb
from deltav2a.api.registry import get_registry

EFFECTS = ("adaptive_blur", "motion_blur", "adaptive_sharpen", "add_noise", "spread",
           "sepia_tone", "solarize")
RANDOM_EFFECTS = ("add_noise", "spread")
LEVELS = (0.25, 0.5, 1.0)
SHARED_IMAGES = SHARED_DATA / "images"  # conftest: honours DELTAV2A_SHARED_DATA
TILE_250, TILE_20 = 250, 20


def synthetic(width: int = 192, height: int = 144, seed: int = 1234) -> Image.Image:
    """A small scene with every kind of content an effect can act on."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / (width - 1), y / (height - 1)
    img = np.empty((height, width, 3))
    img[..., 0] = 40 + 170 * u
    img[..., 1] = 60 + 140 * v
    img[..., 2] = 200 - 150 * u * v
    colours = [(220, 30, 30), (30, 200, 40), (30, 60, 220),
               (240, 200, 20), (200, 40, 200), (20, 200, 210)]
    pw, ph = width // 8, height // 6
    for i, c in enumerate(colours):
        x0 = (i % 3) * width // 3 + width // 24
        y0 = (i // 3) * height // 2 + height // 12
        img[y0:y0 + ph, x0:x0 + pw] = c
    band = (y > 0.55 * height) & (y < 0.75 * height)
    stripes = np.where((x // 2) % 2 == 0, 35.0, -35.0)
    img[band] += stripes[band][:, None]
    img += rng.normal(0, 6, img.shape)
    s = tile_size(width)
    img[-s - 2:-2, 2:2 + s] = TILE_250
    img[-s - 2:-2, 4 + s:4 + 2 * s] = TILE_20
    return Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), "RGB")


def tile_size(width: int) -> int:
    return max(width // 12, 4)


def tiles(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """The solarize probe tiles, 2 px inside their borders (away from blended edges)."""
    a = np.asarray(image)
    s = tile_size(image.width)
    h = image.height
    return (a[h - s:h - 4, 4:s, :], a[h - s:h - 4, 6 + s:2 + 2 * s, :])


def effect(name: str) -> ImageEffect:
    return get_registry().get("image_effect", name)()


def arr(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def laplacian_energy(image: Image.Image) -> float:
    """Mean |Laplacian| of luma: how much pixel-scale detail there is."""
    return float(np.abs(ndimage.laplace(arr(image).mean(axis=2))).mean())


def noise_residual(image: Image.Image) -> float:
    a = arr(image)
    return float(np.abs(a - ndimage.median_filter(a, size=(3, 3, 1))).mean())


def incoherence(image: Image.Image) -> float:
    """Mean |difference| between 4-neighbours: scattered pixels no longer agree."""
    a = arr(image)
    return float((np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean()) / 2)


def hsv(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("HSV"), dtype=np.float64) / 255.0


def mean_saturation(image: Image.Image) -> float:
    return float(hsv(image)[..., 1].mean())


def mean_hue_degrees(image: Image.Image) -> tuple[float, float]:
    """Saturation-weighted circular mean hue, and circular dispersion (0 = one hue)."""
    h = hsv(image)
    ang, s = h[..., 0] * 2 * np.pi, h[..., 1]
    c, sn = (s * np.cos(ang)).sum(), (s * np.sin(ang)).sum()
    return float(np.degrees(np.arctan2(sn, c)) % 360), float(1 - np.hypot(c, sn) / s.sum())


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(arr(a) - arr(b)).mean())


def digest(image: Image.Image) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


def strictly_increasing(values: list[float]) -> bool:
    return all(b > a for a, b in zip(values, values[1:]))


def strictly_decreasing(values: list[float]) -> bool:
    return all(b < a for a, b in zip(values, values[1:]))


@pytest.fixture(scope="module")
def scene() -> Image.Image:
    return synthetic()


@pytest.fixture(scope="module")
def sweeps(scene: Image.Image) -> dict[str, list[Image.Image]]:
    """Every effect at intensities 0, 0.25, 0.5, 1.0 (seed 3), rendered once."""
    return {n: [effect(n).apply(scene, t, seed=3) for t in (0.0,) + LEVELS] for n in EFFECTS}


# ------------------------------------------------------------------ registration


def test_all_seven_registered_through_entry_points():
    names = get_registry().names("image_effect")
    assert set(EFFECTS) <= set(names)
    for n in EFFECTS:
        rec = get_registry().record("image_effect", n)
        cls = rec.obj
        assert issubclass(cls, ImageEffect) and cls.name == n
        assert rec.plugin == "image_effects"
        summary = cls.summary()
        assert summary and "\n" not in summary and len(summary) < 100
        # the mapping formula is documented where users read it
        assert "intensity" in (cls.__doc__ or "").split(summary, 1)[1]
        assert cls.random == (n in RANDOM_EFFECTS)


def test_registering_does_not_import_wand():
    code = ("import sys; from deltav2a.api.registry import get_registry; "
            "names = get_registry().names('image_effect'); "
            "print(len(names), 'wand' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "DELTAV2A_PLUGINS": "image_effects"}, check=True)
    assert out.stdout.split() == ["7", "False"]


# ------------------------------------------------------------------ contract


@pytest.mark.parametrize("name", EFFECTS)
def test_intensity_zero_is_exact_identity(name, scene):
    out = effect(name).apply(scene, 0.0, seed=11)
    assert out.mode == "RGB" and out.size == scene.size
    assert out.tobytes() == scene.tobytes()


@pytest.mark.parametrize("name", EFFECTS)
def test_rgb_same_size_at_every_intensity(name):
    odd = synthetic(97, 61)  # odd, non-square: catches ops that pad or crop
    for t in (0.01, 0.3, 0.5, 0.77, 1.0):
        out = effect(name).apply(odd, t, seed=1)
        assert out.mode == "RGB" and out.size == odd.size
        if t >= 0.3:  # below that, a blur of a 61 px image is sub-pixel: rightly invisible
            assert out.tobytes() != odd.tobytes(), f"{name} did nothing at {t}"


def _modes(base: Image.Image) -> dict[str, Image.Image]:
    grey16 = (arr(base).mean(axis=2) * 257).astype(np.uint16)
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(base.size))
    return {
        "RGB": base,
        "RGBA": rgba,
        "L": base.convert("L"),
        "P": base.convert("P", palette=Image.Palette.ADAPTIVE, colors=64),
        "CMYK": base.convert("CMYK"),
        "I;16": Image.fromarray(grey16),  # uint16 -> mode I;16
    }


@pytest.mark.parametrize("name", EFFECTS)
def test_every_input_mode_is_accepted(name):
    base = synthetic(96, 72)
    for mode, image in _modes(base).items():
        assert image.mode == mode
        fx = effect(name)
        out = fx.apply(image, 1.0, seed=2)
        assert out.mode == "RGB" and out.size == image.size, mode
        expected_input = ensure_rgb(image)
        assert out.tobytes() != expected_input.tobytes(), f"{name} did nothing on {mode}"
        assert fx.apply(image, 0.0).tobytes() == expected_input.tobytes(), mode


@pytest.mark.parametrize("name", EFFECTS)
@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf"), "strong"])
def test_out_of_range_intensity_is_a_user_error(name, bad, scene):
    with pytest.raises(DeltaV2AError, match="intensity"):
        effect(name).apply(scene, bad)


# ------------------------------------------------------------------ direction


@pytest.mark.parametrize("name", ["motion_blur", "adaptive_blur"])
def test_blurs_remove_detail_more_with_intensity(name, sweeps):
    energy = [laplacian_energy(im) for im in sweeps[name]]
    assert strictly_decreasing(energy), energy
    assert energy[-1] < 0.5 * energy[0], energy


def test_adaptive_sharpen_adds_detail_more_with_intensity(sweeps):
    energy = [laplacian_energy(im) for im in sweeps["adaptive_sharpen"]]
    assert strictly_increasing(energy), energy
    assert energy[-1] > 1.5 * energy[0], energy


def test_adaptive_blur_keeps_strong_edges():
    """Edge-preserving: relative to texture, hard edges survive far better than under a
    plain Gaussian of the same sigma."""
    scene = synthetic(384, 288)
    luma0 = arr(scene).mean(axis=2)

    def gradient(g: np.ndarray) -> np.ndarray:
        return np.hypot(ndimage.sobel(g, 0), ndimage.sobel(g, 1))

    g0 = gradient(luma0)
    strong, weak = g0 >= np.quantile(g0, 0.97), g0 < np.quantile(g0, 0.7)

    def edge_over_texture(luma: np.ndarray) -> float:
        g = gradient(luma)
        return (g[strong].mean() / g0[strong].mean()) / (g[weak].mean() / g0[weak].mean())

    adaptive = arr(effect("adaptive_blur").apply(scene, 1.0)).mean(axis=2)
    sigma = max(0.01 * min(scene.size), 1.0)
    plain = ndimage.gaussian_filter(arr(scene), sigma=(sigma, sigma, 0)).mean(axis=2)
    assert edge_over_texture(adaptive) > 2.0 * edge_over_texture(plain)


def test_sepia_drains_colour_and_turns_warm(scene, sweeps):
    outs = sweeps["sepia_tone"]
    sat0 = mean_saturation(outs[0])
    assert all(mean_saturation(o) < 0.9 * sat0 for o in outs[1:]), \
        [mean_saturation(o) for o in outs]
    # warmth (mean red minus blue) grows at every step
    warmth = [float((arr(o)[..., 0] - arr(o)[..., 2]).mean()) for o in outs]
    assert strictly_increasing(warmth), warmth
    # at full intensity: one hue, and it is orange-brown
    hue, dispersion = mean_hue_degrees(outs[-1])
    assert 15.0 <= hue <= 50.0, hue
    assert dispersion < 0.05, dispersion
    assert mean_hue_degrees(outs[0])[1] > 0.3  # the scene really was multicoloured


def test_solarize_inverts_highlights_and_keeps_shadows(sweeps):
    outs = sweeps["solarize"]
    bright0, dark0 = tiles(outs[0])
    assert (bright0 == TILE_250).all() and (dark0 == TILE_20).all()
    for out in outs[1:]:
        bright, dark = tiles(out)
        assert (bright == 255 - TILE_250).all()  # 250 -> 5: inverted
        assert (dark == TILE_20).all()  # 20 untouched
    changed = [mean_abs_diff(o, outs[0]) for o in outs]
    assert strictly_increasing(changed), changed


def test_solarize_fades_in_instead_of_jumping():
    white = Image.new("RGB", (32, 32), (255, 255, 255))
    fx = effect("solarize")
    values = [arr(fx.apply(white, t)).mean() for t in (0.01, 0.05, 0.1, 0.2, 0.5)]
    assert values[0] > 240  # a hair of intensity is a hair of change
    assert strictly_decreasing(values[:4]) and values[3] == values[4] == 0.0, values


def test_add_noise_raises_noise_residual(sweeps):
    resid = [noise_residual(im) for im in sweeps["add_noise"]]
    assert strictly_increasing(resid), resid
    assert resid[2] > 1.5 * resid[0], resid


def test_spread_raises_incoherence(sweeps):
    inc = [incoherence(im) for im in sweeps["spread"]]
    assert strictly_increasing(inc), inc
    # it moves pixels, it does not invent values: the colour histogram is (nearly) kept
    a0, a1 = arr(sweeps["spread"][0]), arr(sweeps["spread"][-1])
    assert abs(a0.mean() - a1.mean()) < 1.5


@pytest.mark.parametrize("name", EFFECTS)
def test_change_grows_smoothly_with_intensity(name):
    """No jumps: a 0.01 step in intensity moves the picture a small part of the way."""
    image = synthetic(96, 72)
    fx = effect(name)
    full = mean_abs_diff(fx.apply(image, 1.0, seed=5), image)
    steps = [mean_abs_diff(fx.apply(image, t, seed=5), fx.apply(image, t + 0.01, seed=5))
             for t in (0.0, 0.15, 0.4, 0.62, 0.9)]
    assert max(steps) < 0.12 * full, (full, steps)


@pytest.mark.parametrize("name", ["motion_blur", "adaptive_blur"])
def test_radii_scale_with_image_size(name):
    """The same scene at 96 and 384 px is blurred by the same fraction of its size."""
    big = synthetic(384, 288)
    small = big.resize((96, 72), Image.Resampling.BOX)
    fx = effect(name)
    d_small = mean_abs_diff(fx.apply(small, 1.0), small)
    d_big = mean_abs_diff(fx.apply(big, 1.0).resize((96, 72), Image.Resampling.BOX), small)
    assert 0.6 < d_small / d_big < 1.6, (d_small, d_big)


def test_adaptive_blur_working_resolution_cap_is_a_close_stand_in(scene):
    """Large images blur a downscaled copy; that must look like the full-size blur.

    Checked on a small scene with the cap lowered, so the full-size reference stays cheap.
    """
    from deltav2a_plugins.image_effects.wand_effects import AdaptiveBlur

    class Capped(AdaptiveBlur):
        WORK_SHORT_SIDE = 96  # the scene is 192x144: blurred at 128x96, scale 2/3

    full = AdaptiveBlur().apply(scene, 1.0)
    capped = Capped().apply(scene, 1.0)
    assert capped.size == scene.size and capped.mode == "RGB"
    effect_size = mean_abs_diff(full, scene)
    assert mean_abs_diff(capped, full) < 0.2 * effect_size
    assert laplacian_energy(capped) < 0.5 * laplacian_energy(scene)


# ------------------------------------------------------------------ determinism


@pytest.mark.parametrize("name", RANDOM_EFFECTS)
def test_random_effects_follow_the_seed(name, scene):
    fx = effect(name)
    a = fx.apply(scene, 0.6, seed=1)
    b = fx.apply(scene, 0.6, seed=1)
    c = fx.apply(scene, 0.6, seed=2)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    assert mean_abs_diff(a, c) > 1.0
    # other effects, random or not, in between leave the stream where the seed puts it
    for other in EFFECTS:
        effect(other).apply(scene, 0.8, seed=99)
    assert digest(fx.apply(scene, 0.6, seed=1)) == digest(a)
    assert digest(fx.apply(scene, 0.6, seed=2)) == digest(c)


def test_random_effects_repeat_in_a_fresh_process(scene, tmp_path):
    """Same seed, new interpreter: the bytes depend on nothing but the seed."""
    src = tmp_path / "scene.png"
    scene.save(src)
    here = {n: digest(effect(n).apply(scene, 0.7, seed=42)) for n in RANDOM_EFFECTS}
    code = (
        "import hashlib, json, sys\n"
        "from PIL import Image\n"
        "from deltav2a.api.registry import get_registry\n"
        "im = Image.open(sys.argv[1]).convert('RGB')\n"
        "print(json.dumps({n: hashlib.sha256(get_registry().get('image_effect', n)()"
        ".apply(im, 0.7, seed=42).tobytes()).hexdigest() for n in sys.argv[2:]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(src), *RANDOM_EFFECTS],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here


def test_deterministic_effects_ignore_the_seed(scene):
    for n in EFFECTS:
        if n in RANDOM_EFFECTS:
            continue
        assert digest(effect(n).apply(scene, 0.5, seed=1)) == \
            digest(effect(n).apply(scene, 0.5, seed=2)), n


# ------------------------------------------------------------------ real photo


def _photo() -> Path | None:
    preferred = SHARED_IMAGES / "budgie__casa_mila.jpg"
    if preferred.is_file():
        return preferred
    found = sorted(SHARED_IMAGES.glob("*.jpg")) if SHARED_IMAGES.is_dir() else []
    return found[0] if found else None


@pytest.mark.shared_data
def test_every_effect_is_visible_on_a_real_photo():
    path = _photo()
    if path is None:
        pytest.skip(f"no dev photos under {SHARED_IMAGES}")
    from deltav2a.media.io import load_image

    photo = load_image(path)
    scale = 512 / max(photo.size)
    photo = photo.resize((round(photo.width * scale), round(photo.height * scale)),
                         Image.Resampling.LANCZOS)
    for n in EFFECTS:
        fx = effect(n)
        diffs = [mean_abs_diff(fx.apply(photo, t, seed=0), photo) for t in LEVELS]
        assert strictly_increasing(diffs), (n, diffs)
        # clearly visible from 0.5: a mean change of 3 levels in 255 on every pixel
        assert diffs[1] > 3.0, (n, path.name, diffs)
