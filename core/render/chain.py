"""Audio effect chains: ordered settings -> one Pedalboard render (+ steps outside it).

The research database was rendered in one fixed order (lowpass -> bitcrush -> reverb ->
highpass -> distortion -> delay -> playback_rate), and a controller trained on it has only
ever heard that order; `DEFAULT_ORDER` keeps it, and `order` makes it an explicit,
recorded choice instead of an accident of how settings were listed.

Tails are never cut silently. `tail="keep"` pads the input with enough silence for the
reverb and echo tails to ring out, then trims what is below -60 dB of the output peak;
`tail="cut"` keeps the input's length (so A and A' line up sample for sample, which the
database needs) and reports how much tail it estimates was dropped.

What a chain renders is a `ChainSettings` (render/settings.py), the one type every producer
answers with. numpy and pedalboard are imported inside functions, so importing the renderer
stays cheap.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping, Sequence

from ..errors import DeltaV2AError
from .settings import ChainSettings, EffectSetting, effect_class

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import numpy as np

    from ..api.effects import AudioEffect, BlockStream

DEFAULT_ORDER: tuple[str, ...] = (
    "lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "stutter", "playback_rate",
)
DEFAULT_MAX_TAIL_SECONDS = 5.0
TAIL_TRIM_DB = 60.0
TAIL_PAD_FACTOR = 1.25   # pad this much more than the effects' own tail estimate ...
TAIL_PAD_SECONDS = 0.1   # ... plus this, before trimming back to -60 dB
MIN_SAMPLE_RATE = 1000.0
#: Clips longer than this (frames, after tail padding) are rendered block by block through
#: one Pedalboard whose state is carried across blocks (reset once before the first), so
#: memory stays at one output buffer; the result equals a whole render (tests/test_chain.py).
STREAM_MIN_FRAMES = 1 << 21
RENDER_BLOCK_FRAMES = 1 << 16

TailMode = Literal["keep", "cut"]


class TailTruncatedWarning(UserWarning):
    """tail="keep" ran out of padding while the tail was still audible (max_tail_seconds)."""


@dataclass(frozen=True)
class ChainStep:
    """One effect in render order: its resolved `EffectSetting` (every parameter's raw value)
    and the effect instance that renders it. Internal to the renderer; producers and stored
    forms use `ChainSettings`."""

    setting: EffectSetting
    effect: "AudioEffect"

    @property
    def name(self) -> str:
        return self.setting.effect

    @property
    def raw(self) -> Mapping[str, float]:
        return self.setting.params

    @property
    def outside_pedalboard(self) -> bool:
        return bool(getattr(self.effect, "outside_pedalboard", False))

    def normalised(self) -> dict[str, float]:
        return self.setting.normalised()

    def describe(self) -> dict:
        return {
            "effect": self.name,
            "outside_pedalboard": self.outside_pedalboard,
            "params": {k: float(v) for k, v in self.raw.items()},
            "normalised": self.normalised(),
            "tail_seconds": float(self.effect.tail_seconds(**self.raw)),
        }


@dataclass
class RenderResult:
    """Rendered audio plus what happened to the tail, so no truncation goes unrecorded."""

    audio: "np.ndarray"
    sample_rate: int
    tail: TailMode
    input_seconds: float
    tail_estimate_seconds: float   # sum of the effects' tail_seconds, in output time
    tail_kept_seconds: float       # audio kept beyond the (rate-scaled) input length
    tail_dropped_seconds: float    # estimated tail that was not rendered (cut or capped)
    tail_truncated: bool           # True when any tail was (probably) cut off
    chain: "AudioChain | None" = field(default=None, repr=False)

    def describe(self) -> dict:
        """JSON-able record of the render: the chain (render order, values) + `info`."""
        out = describe_chain(self.chain) if self.chain is not None else {}
        out["render"] = self.info
        return out

    @property
    def output_seconds(self) -> float:
        return self.audio.shape[1] / self.sample_rate

    @property
    def info(self) -> dict:
        return {
            "sample_rate": int(self.sample_rate),
            "channels": int(self.audio.shape[0]),
            "tail": self.tail,
            "input_seconds": self.input_seconds,
            "output_seconds": self.output_seconds,
            "tail_estimate_seconds": self.tail_estimate_seconds,
            "tail_kept_seconds": self.tail_kept_seconds,
            "tail_dropped_seconds": self.tail_dropped_seconds,
            "tail_truncated": self.tail_truncated,
        }


class AudioChain:
    """`ChainSettings` rendered as one Pedalboard plus outside steps.

    `settings` is the one chain-settings type (`ChainSettings.parse` turns `--effect` spec
    strings into it, `ChainSettings.from_dict` a {effect: {param: raw}} mapping). Steps are
    sorted by `order` (names not in it keep their given relative position after
    the ordered ones); effects that render outside Pedalboard (playback_rate) always come
    after the Pedalboard part. The Pedalboard is built once per sample rate and reused
    with `reset=True`, so repeated renders cost what Pedalboard costs. Like a Pedalboard,
    one chain must not render from two threads at once.
    """

    def __init__(
        self,
        settings: ChainSettings = ChainSettings(),
        order: Sequence[str] | None = None,
        tail: TailMode = "keep",
        max_tail_seconds: float = DEFAULT_MAX_TAIL_SECONDS,
    ) -> None:
        if not isinstance(settings, ChainSettings):
            raise DeltaV2AError(
                f"AudioChain takes ChainSettings (ChainSettings.parse for spec strings, "
                f"ChainSettings.from_dict for a mapping), got {type(settings).__name__}")
        if tail not in ("keep", "cut"):
            raise DeltaV2AError(f"tail must be 'keep' or 'cut', got {tail!r}")
        try:
            max_tail = float(max_tail_seconds)
        except (TypeError, ValueError):
            raise DeltaV2AError(
                f"max_tail_seconds must be a number, got {max_tail_seconds!r}") from None
        if not (math.isfinite(max_tail) and max_tail >= 0.0):
            raise DeltaV2AError(
                f"max_tail_seconds must be finite and >= 0, got {max_tail_seconds!r}")
        self.tail: TailMode = tail
        self.max_tail_seconds = max_tail
        self.order: tuple[str, ...] = self._check_order(order)

        steps = [ChainStep(s.resolved(), effect_class(s.effect)()) for s in settings]
        rank = {n: i for i, n in enumerate(self.order)}
        keyed = sorted(
            enumerate(steps),
            key=lambda it: (it[1].outside_pedalboard,
                            rank.get(it[1].name, len(rank)), it[0]),
        )
        self.steps: tuple[ChainStep, ...] = tuple(s for _, s in keyed)
        self._inside = tuple(s for s in self.steps if not s.outside_pedalboard)
        self._outside = tuple(s for s in self.steps if s.outside_pedalboard)
        self._boards: dict[float, Any] = {}
        # The input is always checked. Effects that declare `finite_output` (the built-ins:
        # cutoffs are held below Nyquist; see the tests) cannot turn finite input into
        # NaN/Inf, so only chains with an effect that does not pay for a second full scan.
        self._check_output = any(not s.effect.finite_output for s in self.steps)
        self._tail_estimate = float(sum(s.effect.tail_seconds(**s.raw) for s in self.steps))

    @staticmethod
    def _check_order(order: Sequence[str] | None) -> tuple[str, ...]:
        if order is None:
            return DEFAULT_ORDER
        if isinstance(order, str):
            order = [p.strip() for p in order.split(",") if p.strip()]
        names = tuple(order)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DeltaV2AError(f"effect order names {', '.join(dupes)} more than once")
        for n in names:
            effect_class(n)  # a typo in an explicit order would otherwise pass silently
        return names

    # ------------------------------------------------------------------ inspection

    @property
    def names(self) -> list[str]:
        """Effect names in render order."""
        return [s.name for s in self.steps]

    @property
    def settings(self) -> ChainSettings:
        """What this chain renders, in render order, every parameter's value filled in:
        `AudioChain(chain.settings, order=chain.order)` renders the same."""
        return ChainSettings(tuple(s.setting for s in self.steps))

    def tail_seconds(self) -> float:
        """Estimated ring-out after the input stops, in input time (effects in series add)."""
        return self._tail_estimate

    def describe(self) -> dict:
        """JSON-able description: render order with raw and normalised values."""
        return describe_chain(self)

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        body = " -> ".join(
            f"{s.name}(" + ", ".join(f"{k}={v:g}" for k, v in s.raw.items()) + ")"
            for s in self.steps)
        return f"AudioChain({body or 'empty'}, tail={self.tail!r})"

    # ------------------------------------------------------------------ rendering

    def _board(self, sample_rate: float) -> Any:
        board = self._boards.get(sample_rate)
        if board is None:
            import pedalboard

            plugins = []
            for s in self._inside:
                plugins.append(s.effect.plugin(**s.effect.at_sample_rate(sample_rate, s.raw)))
            board = pedalboard.Pedalboard(plugins)
            self._boards[sample_rate] = board
        return board

    @property
    def streamable(self) -> bool:
        """Every Pedalboard step can render in blocks (no latency, state carried over)."""
        return all(getattr(s.effect, "streamable", False) for s in self._inside)

    def _streams(self, sr: float, channels: int) -> "list[BlockStream] | None":
        """Block processors for the outside steps, or None if the chain cannot stream."""
        if not (self._inside or self._outside) or not self.streamable:
            return None
        streams = []
        for s in self._outside:
            st = s.effect.stream(sr, channels, **s.raw)
            if st is None:
                return None
            streams.append(st)
        return streams

    def _blocks(self, x: "np.ndarray", total: int, sr: float,
                streams: "list[BlockStream]") -> "Iterator[np.ndarray]":
        """The whole chain over x followed by zeros up to `total` frames, block by block.

        The board is reset before the first block and carries its state (filter memory,
        reverb and delay lines) from block to block, exactly as in one call; outside steps
        (playback_rate) run as streams on each block's output, so no intermediate clip is
        ever held whole. The board is reset again afterwards so the next render starts clean.
        """
        import numpy as np

        board = self._board(sr) if self._inside else None
        if board is not None:
            board.reset()
        channels, n = x.shape
        start = 0
        while start < total:
            # a short remainder is shared by the last two blocks: Pedalboard guesses the channel
            # axis from the shape, so a block must stay much longer than it is wide; and no
            # block may be longer than the first, or a fresh board re-prepares its plugins and
            # drops their state (a delay's echoes) in the middle of the clip
            left = total - start
            stop = start + (left if left <= RENDER_BLOCK_FRAMES else
                            (left + 1) // 2 if left < 2 * RENDER_BLOCK_FRAMES else RENDER_BLOCK_FRAMES)
            block = np.zeros((channels, stop - start), dtype=np.float32)
            if start < n:
                block[:, :min(stop, n) - start] = x[:, start:min(stop, n)]
            if board is not None:
                block = board(block, sr, reset=False)
            for st in streams:
                block = st.process(block, stop >= total)
            yield np.asarray(block, dtype=np.float32)
            start = stop
        if board is not None:
            board.reset()

    def _render_blocks(self, x: "np.ndarray", total: int, sr: float,
                       streams: "list[BlockStream]") -> "np.ndarray":
        """`_blocks` gathered into one preallocated output buffer."""
        import numpy as np

        channels = x.shape[0]
        ratio = math.prod(st.ratio for st in streams)
        y = np.empty((channels, int(math.ceil(total * ratio)) + 4096), dtype=np.float32)
        pos = 0
        for block in self._blocks(x, total, sr, streams):
            if pos + block.shape[1] > y.shape[1]:  # a stream produced more than its ratio said
                grown = np.empty((channels, 2 * (pos + block.shape[1])), dtype=np.float32)
                grown[:, :pos] = y[:, :pos]
                y = grown
            y[:, pos:pos + block.shape[1]] = block
            pos += block.shape[1]
        return y[:, :pos]

    def __call__(self, audio: "np.ndarray", sample_rate: float) -> "np.ndarray":
        return self.render(audio, sample_rate).audio

    def _prepare(self, audio: "np.ndarray", sample_rate: float,
                 checked: bool = False) -> tuple[float, "np.ndarray", int, int]:
        """Checked rate and input, the tail padding the policy asks for, and the frames to render.

        `checked`: the input is a float32 (channels, samples) array that passed
        `media.check_audio` already, so its samples are not scanned again."""
        from ..media.io import check_audio

        sr = _check_sample_rate(sample_rate)
        x = check_audio(audio, "audio to render", finite=not checked)
        channels, n = x.shape
        if channels > 64:
            raise DeltaV2AError(
                f"audio to render has {channels} channels: expected (channels, samples), "
                f"got shape {x.shape} (transposed?)")
        estimate = self._tail_estimate
        pad = 0
        if self.tail == "keep" and estimate > 0.0:
            # tail_seconds is a model; the margin covers overlapping echoes and the like,
            # and anything still audible at the end of the padding is reported below.
            padded = min(estimate * TAIL_PAD_FACTOR + TAIL_PAD_SECONDS, self.max_tail_seconds)
            pad = int(math.ceil(padded * sr))
        # Pedalboard guesses the channel axis from the shape and refuses square arrays,
        # so very short clips get silent padding that is removed again below.
        return sr, x, pad, n + max(pad, channels + 1 - n)

    def _lengths(self, rendered: int, n: int, tail_pad: int, total: int) -> tuple[float, int, int]:
        """(ratio, body, full): the input's length in output frames, and how far the tail
        padding reaches (what `tail="keep"` may keep)."""
        ratio = rendered / total  # playback_rate and friends change the length
        body = max(1, min(rendered, int(round(n * ratio))))
        full = max(body, min(rendered, int(round((n + tail_pad) * ratio))))
        return ratio, body, full

    def _result(self, audio: Any, frames: int, sr: float, n: int, body: int, full: int, tail_pad: int,
                ratio: float) -> RenderResult:
        """The render's record: what was kept of the tail, with a warning when it was cut."""
        estimate = self._tail_estimate
        if self.tail == "cut":
            dropped, truncated = estimate * ratio, estimate > 0.0
        else:
            truncated = tail_pad > 0 and frames == full and full > body
            kept = (frames - body) / sr
            dropped = max(0.0, estimate * ratio - kept) if truncated else 0.0
            if truncated:
                warnings.warn(
                    f"{self!r}: the tail is still above -{TAIL_TRIM_DB:g} dB after "
                    f"{kept:.2f} s of padding (max_tail_seconds={self.max_tail_seconds:g}, "
                    f"estimated tail {estimate * ratio:.2f} s); the rest was cut",
                    TailTruncatedWarning, stacklevel=3)
        return RenderResult(
            audio=audio,
            sample_rate=int(sr) if float(sr).is_integer() else sr,
            tail=self.tail,
            input_seconds=n / sr,
            tail_estimate_seconds=estimate * ratio,
            tail_kept_seconds=(frames - body) / sr,
            tail_dropped_seconds=dropped,
            tail_truncated=truncated,
            chain=self,
        )

    def render(self, audio: "np.ndarray", sample_rate: float, *, checked: bool = False) -> RenderResult:
        """float32 (channels, samples) in, float32 (channels, samples) out, same sample rate.

        `checked=True`: `audio` passed `media.check_audio` already (the database build
        renders one loaded clip 40-60 times), so its NaN/Inf scan is skipped."""
        import numpy as np

        sr, x, tail_pad, total = self._prepare(audio, sample_rate, checked)
        channels, n = x.shape
        streams = self._streams(sr, channels) if total >= STREAM_MIN_FRAMES else None
        if streams is not None:
            y = self._render_blocks(x, total, sr, streams)
        else:
            if total > n:
                x_in = np.zeros((channels, total), dtype=np.float32)
                x_in[:, :n] = x
            else:
                x_in = x
            y = self._board(sr)(x_in, sr) if self._inside else x_in
            del x_in
            for s in self._outside:
                y = s.effect.process(y, sr, **s.raw)
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 2 or y.shape[0] != channels or y.shape[1] == 0:
            raise DeltaV2AError(f"audio chain {self!r} returned shape {y.shape} "
                                f"for {channels}-channel input")
        if self._check_output and not np.isfinite(y).all():
            raise DeltaV2AError(f"audio chain {self!r} produced NaN or Inf samples")
        ratio, body, full = self._lengths(y.shape[1], n, tail_pad, total)
        if self.tail == "cut":
            y = y[:, :body]
        else:
            y = y[:, :_trim_silent_tail(y[:, :full], body)]
        if np.may_share_memory(y, x):
            y = y.copy()  # never hand back (a view of) the caller's array
        y = _compact(y)
        return self._result(y, y.shape[1], sr, n, body, full, tail_pad, ratio)

    def render_to_file(self, audio: "np.ndarray", sample_rate: float, path: "str | Path") -> RenderResult:
        """`render` + `media.save_audio(path)`, the same samples and the same tail policy, but
        a long streamable render goes block by block straight into the file, so A' is never
        held whole (a 30-minute stereo clip: 635 MB less). Only the part that the tail policy
        may still trim (the padding, plus a margin for a stream's rounding) waits in memory
        until the output peak is known. The result's `audio` is then the written file, read
        back on demand (`media.WavFrames`); short or non-streamable chains render in memory."""
        import numpy as np

        from ..media.io import WavFrames, save_audio

        sr, x, tail_pad, total = self._prepare(audio, sample_rate)
        channels, n = x.shape
        streams = self._streams(sr, channels) if total >= STREAM_MIN_FRAMES else None
        if streams is None:
            result = self.render(x, sr)
            save_audio(result.audio, result.sample_rate, path)
            return result
        from pathlib import Path as _Path

        from ..atomic import atomic_path
        from ..media.io import check_sample_rate, wav_writer

        target = _Path(path)
        if target.suffix.lower() != ".wav":
            raise DeltaV2AError(f"audio output must be .wav, got '{target.suffix or target.name}'")
        out_sr = check_sample_rate(sr, "output sample rate")
        if self._inside:
            self._board(sr)  # built (pedalboard imported, plugins made) before the file exists
        with atomic_path(target) as tmp, wav_writer(tmp, target, out_sr, channels) as write:
            out = _HeldTail(write, channels)
            # frames surely inside the body (at the streams' nominal ratio) are written at once
            safe = max(0, int(n * math.prod(st.ratio for st in streams)) - RENDER_BLOCK_FRAMES)
            for block in self._blocks(x, total, sr, streams):
                if block.ndim != 2 or block.shape[0] != channels:
                    raise DeltaV2AError(f"audio chain {self!r} returned shape {block.shape} "
                                        f"for {channels}-channel input")
                if self._check_output and not np.isfinite(block).all():
                    raise DeltaV2AError(f"audio chain {self!r} produced NaN or Inf samples")
                out.add(block, safe)
            ratio, body, full = self._lengths(out.frames, n, tail_pad, total)
            frames = body if self.tail == "cut" else out.trim(body, full)
            out.finish(frames)
        return self._result(WavFrames(target), frames, sr, n, body, full, tail_pad, ratio)


class _HeldTail:
    """Rendered blocks on their way to a file, holding back what the tail policy may trim.

    Frames before `safe` are written at once; later ones wait until the end, when the policy
    (which needs the whole output's peak) says how many to keep. The peak of the written part
    is tracked as it goes, so `trim` equals `_trim_silent_tail` on the whole array."""

    def __init__(self, write: Any, channels: int) -> None:
        self.write = write
        self.channels = channels
        self.written = 0      # frames in the file
        self.frames = 0       # frames rendered
        self.peak = 0.0       # of the written frames
        self.held: list = []

    def add(self, block: "np.ndarray", safe: int) -> None:
        self.frames += block.shape[1]
        if self.held or self.written + block.shape[1] > safe:
            self.held.append(block)
        else:
            self._write(block)

    def _write(self, block: "np.ndarray") -> None:
        if block.shape[1]:
            self.peak = max(self.peak, float(block.max()), -float(block.min()))
            self.write(block)
            self.written += block.shape[1]

    def _rest(self) -> "np.ndarray":
        import numpy as np

        rest = np.concatenate(self.held, axis=1) if self.held else np.zeros((self.channels, 0), np.float32)
        self.held = [rest]
        return rest

    def trim(self, body: int, full: int) -> int:
        """Frames kept under `tail="keep"`: `_trim_silent_tail(y[:, :full], body)` (the held
        part starts before `body`, see `safe` in `render_to_file`)."""
        import numpy as np

        rest = self._rest()
        if full <= body:
            return full
        head = rest[:, :full - self.written]
        peak = max(self.peak, float(np.abs(head).max()) if head.size else 0.0)
        if peak == 0.0:
            return body
        floor = peak * 10.0 ** (-TAIL_TRIM_DB / 20.0)
        loud = np.flatnonzero((np.abs(head[:, body - self.written:]) >= floor).any(axis=0))
        return body + (int(loud[-1]) + 1 if loud.size else 0)

    def finish(self, frames: int) -> None:
        if frames < self.written:  # cannot happen: the margin keeps the whole tail region held
            raise DeltaV2AError("internal error: a streamed render wrote past the clip's body")
        rest = self._rest()
        self.held = []
        self._write(rest[:, :max(0, frames - self.written)])


def _compact(y: "np.ndarray") -> "np.ndarray":
    """A C-contiguous float32 copy of y's content, made in place when y is a column slice
    of a buffer it owns (the usual case after trimming), so a long render is not copied."""
    import numpy as np

    if y.dtype == np.float32 and y.flags.c_contiguous:
        return y
    base = y.base
    if (y.dtype != np.float32 or base is None or not isinstance(base, np.ndarray)
            or base.dtype != np.float32 or not base.flags.c_contiguous or base.ndim != 2
            or base.shape[0] != y.shape[0] or y.strides != base.strides
            or y.__array_interface__["data"][0] != base.__array_interface__["data"][0]):
        return np.ascontiguousarray(y, dtype=np.float32)
    channels, k = y.shape
    flat = base.reshape(-1)
    width = base.shape[1]
    step = 1 << 20
    for c in range(1, channels):  # row c moves left from c*width to c*k; blocks go forward
        for s0 in range(0, k, step):
            s1 = min(k, s0 + step)
            flat[c * k + s0:c * k + s1] = flat[c * width + s0:c * width + s1]
    return flat[:channels * k].reshape(channels, k)


def _check_sample_rate(sample_rate: Any) -> float:
    try:
        sr = float(sample_rate)
    except (TypeError, ValueError):
        raise DeltaV2AError(f"sample rate must be a number, got {sample_rate!r}") from None
    if not math.isfinite(sr) or sr < MIN_SAMPLE_RATE:
        raise DeltaV2AError(f"sample rate {sample_rate!r} Hz is not usable "
                            f"(needs a finite value >= {MIN_SAMPLE_RATE:g} Hz)")
    return sr


def _trim_silent_tail(y: "np.ndarray", keep_at_least: int) -> int:
    """Length after dropping trailing samples below -60 dB of the output peak."""
    import numpy as np

    if y.shape[1] <= keep_at_least:
        return y.shape[1]
    peak = max(float(y.max()), -float(y.min()))
    if peak == 0.0:
        return keep_at_least
    floor = peak * 10.0 ** (-TAIL_TRIM_DB / 20.0)
    loud = np.flatnonzero((np.abs(y[:, keep_at_least:]) >= floor).any(axis=0))
    return keep_at_least + (int(loud[-1]) + 1 if loud.size else 0)


def describe_chain(chain: AudioChain) -> dict:
    """A JSON-able record of a chain, enough to re-create and to audit it."""
    return {
        "order": list(chain.order),
        "tail": chain.tail,
        "max_tail_seconds": chain.max_tail_seconds,
        "tail_seconds_estimate": chain.tail_seconds(),
        "effects": [s.describe() for s in chain.steps],
        "specs": list(chain.settings.specs()),
    }


__all__ = [
    "DEFAULT_MAX_TAIL_SECONDS", "DEFAULT_ORDER", "AudioChain", "ChainSettings", "ChainStep",
    "EffectSetting", "RenderResult", "TailTruncatedWarning", "describe_chain",
]
