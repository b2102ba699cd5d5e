"""Pillow <-> Wand conversion and ImageMagick seeding.

Pixels cross as raw 8-bit RGB (no PNG round trip), which keeps the framework's overhead
around an ImageMagick call small.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image as PILImage
    from wand.image import Image as WandImage


_LIMITED = False


def limit_imagemagick() -> None:
    """Set ImageMagick's resource limits explicitly (once), instead of trusting policy.xml.

    Pillow already refuses images above `media.MAX_IMAGE_PIXELS`; these limits make
    ImageMagick refuse the same sizes itself and cap its pixel cache, so an effect that
    enlarges an image, or a caller that bypasses `load_image`, fails with an error instead
    of exhausting memory or disk.
    """
    global _LIMITED
    if _LIMITED:
        return
    from wand.resource import limits

    from .io import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE

    limits["width"] = MAX_IMAGE_SIDE
    limits["height"] = MAX_IMAGE_SIDE
    limits["area"] = MAX_IMAGE_PIXELS * 2        # effects may hold a working copy
    # (a system policy.xml may lower any of these further; ImageMagick keeps the lower value)
    limits["memory"] = 2 << 30
    limits["map"] = 4 << 30
    limits["disk"] = 8 << 30
    _LIMITED = True


@contextlib.contextmanager
def pil_to_wand(image: "PILImage") -> Iterator["WandImage"]:
    from wand.image import Image as WandImage

    limit_imagemagick()

    w, h = image.size
    with WandImage(blob=image.tobytes(), format="rgb", width=w, height=h, depth=8) as img:
        img.alpha_channel = "off"
        yield img


def wand_to_pil(img: "WandImage") -> "PILImage":
    from PIL import Image

    img.depth = 8
    blob = img.make_blob("rgb")
    return Image.frombytes("RGB", (img.width, img.height), blob)


def seed_imagemagick(seed: int) -> None:
    """Make ImageMagick's random operators (noise, spread) reproducible.

    ImageMagick 6 has no `MagickSetSeed`; `SetRandomSecretKey` reseeds the generator every
    later `AcquireRandomInfo` starts from. Random operators also draw per thread, so the
    thread limit is pinned to 1 or rows would be assigned to generators by the scheduler.
    """
    import wand.api
    from wand.resource import limits

    limits["thread"] = 1
    fn = getattr(wand.api.library, "MagickSetSeed", None)
    if fn is not None:
        fn.argtypes = [wand.api.ctypes.c_ulong]
        fn(int(seed) & 0xFFFFFFFF)
        return
    core = wand.api.libmagick
    core.SetRandomSecretKey.argtypes = [wand.api.ctypes.c_ulong]
    core.SetRandomSecretKey(int(seed) & 0xFFFFFFFF)
