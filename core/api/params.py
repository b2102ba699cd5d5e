"""Typed effect parameters and the normalised [0, 1] space the controllers work in.

A parameter knows its raw range, whether it is perceived on a linear or log scale, the raw
value at which it leaves the sound or picture untouched (bypass) and a sensible default.
The controller predicts positions in [0, 1] along that scale; `normalise`/`denormalise`
are the only bridge between the two spaces, so the database, the losses and rendering
agree by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ..errors import DeltaV2AError

Scale = Literal["linear", "log"]


@dataclass(frozen=True)
class Param:
    name: str
    minimum: float
    maximum: float
    default: float
    bypass: float
    scale: Scale = "linear"
    unit: str = ""
    doc: str = ""
    integer: bool = field(default=False)
    #: the value is held at or below this fraction of the Nyquist frequency when rendering
    #: at a sample rate (e.g. 0.98 for JUCE filters, whose bilinear pre-warp blows up at
    #: Nyquist: a 20 kHz low-pass renders NaN at 22.05 kHz); None: no sample-rate limit
    max_fraction_of_nyquist: float | None = None

    def __post_init__(self) -> None:
        if not self.minimum < self.maximum:
            raise ValueError(f"{self.name}: minimum must be below maximum")
        if self.scale == "log" and self.minimum <= 0:
            raise ValueError(f"{self.name}: a log-scale parameter needs a positive minimum")
        for label, value in (("default", self.default), ("bypass", self.bypass)):
            if not self.minimum <= value <= self.maximum:
                raise ValueError(f"{self.name}: {label} {value} is outside its range")
        frac = self.max_fraction_of_nyquist
        if frac is not None and not 0.0 < frac <= 1.0:
            raise ValueError(f"{self.name}: max_fraction_of_nyquist must be in (0, 1], got {frac}")

    def at_sample_rate(self, raw: float, sample_rate: float) -> float:
        """`raw`, held at or below `max_fraction_of_nyquist` x sample_rate / 2 when declared."""
        if self.max_fraction_of_nyquist is None:
            return raw
        return min(float(raw), self.max_fraction_of_nyquist * 0.5 * float(sample_rate))

    def normalise(self, raw: float) -> float:
        """Raw value -> position in [0, 1] along the parameter's scale."""
        raw = min(max(float(raw), self.minimum), self.maximum)
        if self.scale == "log":
            lo, hi = math.log(self.minimum), math.log(self.maximum)
            return (math.log(raw) - lo) / (hi - lo)
        return (raw - self.minimum) / (self.maximum - self.minimum)

    def denormalise(self, u: float) -> float:
        """Position in [0, 1] -> raw value; values outside [0, 1] are clamped."""
        u = min(max(float(u), 0.0), 1.0)
        if self.scale == "log":
            lo, hi = math.log(self.minimum), math.log(self.maximum)
            # exp(log(m)) can round below m (2500 -> 2499.9999999999995): keep the ends valid
            return min(max(math.exp(lo + u * (hi - lo)), self.minimum), self.maximum)
        return self.minimum + u * (self.maximum - self.minimum)

    @property
    def bypass_normalised(self) -> float:
        return self.normalise(self.bypass)

    def validate(self, value: float, owner: str = "") -> float:
        """Check a user-supplied raw value; raise a one-line error when it is unusable."""
        where = f"{owner}.{self.name}" if owner else self.name
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise DeltaV2AError(f"{where}: {value!r} is not a number") from None
        if math.isnan(value) or math.isinf(value):
            raise DeltaV2AError(f"{where}: {value} is not a finite number")
        if not self.minimum <= value <= self.maximum:
            raise DeltaV2AError(
                f"{where}={value:g} is out of range [{self.minimum:g}, {self.maximum:g}]"
                + (f" {self.unit}" if self.unit else "")
            )
        return value

    def describe(self) -> dict:
        return {
            "name": self.name,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "scale": self.scale,
            "bypass": self.bypass,
            "default": self.default,
            "unit": self.unit,
            "doc": self.doc,
            **({"max_fraction_of_nyquist": self.max_fraction_of_nyquist}
               if self.max_fraction_of_nyquist is not None else {}),
        }
