"""Example media the project generates itself, for the demo and for tests.

Nothing here is downloaded or copied from a data set: the image is a procedural landscape
(or matplotlib's bundled sample photo), the audio a short synthesised groove with chords,
bass, a lead line and drums, so every effect has something to act on (transients for
delay/reverb, highs for lowpass, lows for highpass, sustained tones for pitch).
"""

from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_path


def landscape_image(width: int = 512, height: int = 384, seed: int = 0):
    """A deterministic RGB landscape: sky gradient, sun, layered hills, textured field."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    t = y / height
    img[...] = (np.stack([0.35 + 0.4 * t, 0.55 + 0.3 * t, 0.95 - 0.2 * t], -1))
    sun = ((x - 0.72 * width) ** 2 + (y - 0.25 * height) ** 2) < (0.07 * width) ** 2
    img[sun] = (1.0, 0.9, 0.55)
    for i, (base, amp, col) in enumerate([(0.55, 0.08, (0.35, 0.45, 0.6)),
                                           (0.65, 0.06, (0.2, 0.4, 0.25)),
                                           (0.78, 0.04, (0.3, 0.55, 0.2))]):
        phase = rng.uniform(0, 2 * np.pi)
        ridge = height * (base + amp * np.sin(2 * np.pi * x[0] / width * (1.5 + i) + phase))
        mask = y > ridge[None, :]
        img[mask] = col
    field = y > 0.78 * height
    texture = rng.normal(0, 0.06, (height, width)).astype(np.float32)
    stripes = 0.05 * np.sin(x * 0.9 + y * 0.3)
    img[field] += (texture + stripes)[field][:, None]
    # a house with sharp edges and a window grid: crisp detail for blur/sharpen to act on
    x0, x1, y0, y1 = int(0.15 * width), int(0.32 * width), int(0.6 * height), int(0.8 * height)
    img[y0:y1, x0:x1] = (0.8, 0.25, 0.2)
    img[y0 + 8:y1 - 8:12, x0 + 6:x1 - 6] = (0.95, 0.95, 0.8)
    img = np.clip(img, 0, 1)
    return Image.fromarray((img * 255 + 0.5).astype(np.uint8), "RGB")


def sample_photo():
    """matplotlib's bundled sample photo (Grace Hopper), or None if the file is absent."""
    try:
        import matplotlib
        from PIL import Image

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        if path.is_file():
            with Image.open(path) as im:
                return im.convert("RGB")
    except Exception:  # pragma: no cover - optional nicety
        return None
    return None


def groove(seconds: float = 8.0, sample_rate: int = 44_100, seed: int = 0):
    """A stereo (2, n) float32 groove at 100 bpm in A minor."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    out = np.zeros((2, n), np.float64)
    beat = 60.0 / 100.0
    chords = [(220.0, 261.63, 329.63), (174.61, 220.0, 261.63), (196.0, 246.94, 293.66), (164.81, 207.65, 246.94)]
    bar = 4 * beat
    for i in range(int(np.ceil(seconds / bar))):
        start = int(i * bar * sample_rate)
        end = min(n, int((i + 1) * bar * sample_rate))
        seg = t[start:end] - t[start]
        env = np.minimum(1.0, seg / 0.05) * np.exp(-seg * 0.6)
        for j, f in enumerate(chords[i % 4]):
            tone = sum(np.sin(2 * np.pi * f * k * seg) / k ** 1.5 for k in range(1, 6))
            pan = 0.3 + 0.2 * j
            out[0, start:end] += 0.08 * env * tone * (1 - pan)
            out[1, start:end] += 0.08 * env * tone * pan
        bass = chords[i % 4][0] / 2
        out[:, start:end] += 0.15 * np.sin(2 * np.pi * bass * seg) * np.exp(-(seg % beat) * 3)
    melody = [440.0, 523.25, 587.33, 659.25, 587.33, 523.25, 493.88, 440.0]
    step = beat / 2
    for i in range(int(seconds / step)):
        s = int(i * step * sample_rate)
        e = min(n, s + int(step * 0.9 * sample_rate))
        seg = t[s:e] - t[s]
        f = melody[i % len(melody)]
        lead = np.sign(np.sin(2 * np.pi * f * seg)) * 0.5 + np.sin(2 * np.pi * 2 * f * seg) * 0.3
        out[:, s:e] += 0.04 * lead * np.exp(-seg * 4)
    for i in range(int(seconds / beat)):
        s = int(i * beat * sample_rate)
        e = min(n, s + int(0.25 * sample_rate))
        seg = t[s:e] - t[s]
        kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-seg * 30)) * seg) * np.exp(-seg * 12)
        out[:, s:e] += 0.5 * kick
        hs = s + int(beat / 2 * sample_rate)
        he = min(n, hs + int(0.05 * sample_rate))
        if hs < n:
            hat = rng.normal(0, 1, he - hs) * np.exp(-np.arange(he - hs) / sample_rate * 80)
            out[:, hs:he] += 0.08 * hat
    out /= max(1.0, float(np.abs(out).max()) / 0.8)
    return out.astype(np.float32)


def write_examples(folder: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write example_image.png, example_photo.png (if available) and example_audio.wav."""
    import soundfile as sf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    img_path = folder / "example_image.png"
    with atomic_path(img_path) as tmp:
        landscape_image(seed=seed).save(tmp, format="PNG")
    paths["image"] = img_path
    photo = sample_photo()
    if photo is not None:
        photo_path = folder / "example_photo.png"
        with atomic_path(photo_path) as tmp:
            photo.save(tmp, format="PNG")
        paths["photo"] = photo_path
    audio_path = folder / "example_audio.wav"
    with atomic_path(audio_path) as tmp:
        sf.write(str(tmp), groove(seed=seed).T, 44_100, subtype="PCM_16", format="WAV")
    paths["audio"] = audio_path
    return paths
