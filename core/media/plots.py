"""Figures shared by several commands (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL.Image import Image as PILImage


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    from ..atomic import atomic_path

    plt = _plt()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return Path(path)


#: at most this many spectrogram columns: a figure is ~1300 px wide, and a 30-minute clip
#: at hop 512 would otherwise be 170k frames (gigabytes of float64 FFT input)
MAX_SPECTROGRAM_FRAMES = 2000


def _spectrogram(ax, audio: "np.ndarray", sr: int, title: str) -> None:
    """Log-magnitude spectrogram; long clips are sampled at evenly spaced frames, so
    memory is bounded by MAX_SPECTROGRAM_FRAMES x n_fft whatever the clip length."""
    import numpy as np

    n = audio.shape[1]
    n_fft, hop = 2048, 512
    starts = np.arange(0, max(1, n - n_fft + 1), hop)
    if starts.size > MAX_SPECTROGRAM_FRAMES:
        starts = np.linspace(0, max(0, n - n_fft), MAX_SPECTROGRAM_FRAMES).astype(np.int64)
    frames = np.zeros((starts.size, n_fft), dtype=np.float64)
    for i, s0 in enumerate(starts):
        seg = audio[:, s0:s0 + n_fft].mean(axis=0)
        frames[i, :seg.size] = seg
    frames *= np.hanning(n_fft)
    spec = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-6)
    spec -= spec.max()
    ax.imshow(spec, origin="lower", aspect="auto", vmin=-90, vmax=0, cmap="magma",
              extent=(0, n / sr, 0, sr / 2000))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("s")
    ax.set_ylabel("kHz")


def transfer_summary(before: "PILImage", after: "PILImage", sidecar: dict, audio: "np.ndarray",
                     processed: "np.ndarray", sr: int, path: str | Path) -> Path:
    """Before/after images, the style label as bars, spectrograms of A and A'."""
    plt = _plt()
    fig = plt.figure(figsize=(12, 7))
    gs = fig.add_gridspec(2, 3, height_ratios=[1, 1])
    for i, (img, title) in enumerate(((before, "I"), (after, "I'"))):
        ax = fig.add_subplot(gs[0, i])
        if max(img.size) > 1024:  # a 64 MP photo would be a multi-GB float image in matplotlib
            img = img.copy()
            img.thumbnail((1024, 1024))
        ax.imshow(img)
        ax.set_title(title)
        ax.axis("off")
    ax = fig.add_subplot(gs[0, 2])
    label = sidecar["style"]["label"]
    terms = sorted(label, key=label.get, reverse=True)[:12][::-1]
    ax.barh(terms, [label[t] for t in terms], color="tab:blue")
    ax.axvline(1 / len(label), color="k", ls="--", lw=0.8)
    st = sidecar["style"]
    strength = f"  s={st['strength']:.2f}" if st.get("strength") is not None else ""
    ax.set_title(f"style label  ||d||={st['delta_norm']:.3f}{strength}  H={st['entropy_bits']:.2f} bits",
                 fontsize=9)
    ax.tick_params(labelsize=7)
    _spectrogram(fig.add_subplot(gs[1, 0]), audio, sr, "A")
    _spectrogram(fig.add_subplot(gs[1, 1]), processed, sr, "A'")
    ax = fig.add_subplot(gs[1, 2])
    act = sidecar["controller"]["activity"]
    thr = sidecar["controller"]["thresholds"]
    names = list(act)
    ax.bar(names, [act[n] for n in names],
           color=["tab:red" if n in sidecar["controller"]["active"] else "tab:gray" for n in names])
    ax.scatter(names, [thr[n] for n in names], marker="_", s=300, color="k", label="threshold")
    ax.set_ylim(0, 1)
    ax.set_title("controller activity (red = rendered)", fontsize=9)
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    chosen = ", ".join(f"{e['effect']}(" + ", ".join(f"{k}={v:.3g}" for k, v in e["params"].items()) + ")"
                       for e in sidecar["effects"]) or "no effect"
    import textwrap

    fig.suptitle("\n".join(textwrap.wrap(f"A' = {chosen}", 150)), fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def per_param_bars(per_param: dict[str, float], baseline: float, path: str | Path) -> Path:
    """Active RMSE per parameter (gated), with the mean baseline's overall value."""
    plt = _plt()
    names = list(per_param)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(names, [per_param[n] for n in names], color="tab:blue")
    ax.axhline(baseline, color="k", ls="--", lw=1, label=f"mean baseline {baseline:.3f}")
    ax.set_ylabel("active RMSE (gated)")
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def bars(values: dict[str, float], title: str, path: str | Path, reference: dict[str, float] | None = None) -> Path:
    """One bar per key; optional reference values (e.g. the notes' numbers) beside them."""
    import numpy as np

    plt = _plt()
    names = list(values)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    w = 0.4 if reference else 0.8
    ax.bar(x - (w / 2 if reference else 0), [values[n] for n in names], w, label="DeltaV2A")
    if reference:
        ax.bar(x + w / 2, [reference.get(n, np.nan) for n in names], w, label="notes", color="tab:gray")
        ax.legend(fontsize=8)
    ax.set_xticks(x, names, rotation=30, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
