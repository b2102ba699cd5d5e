"""`ChainSettings`: the one representation of "which effects, with which raw values".

Every producer of a chain answers with it (the controller's `EffectPlan`, the search, the
database's augmentation sampler, the analysis decoder, `ParamLayout.to_raw`, the CLI's
`--effect` specs, the demo) and `AudioChain` renders it; the stored shapes are spelled by it
alone, so they cannot drift apart:

* spec strings, `"reverb:wet_level=0.5,room_size=0.8"`: `ChainSettings.parse` / `.specs()`
  (`EffectSetting.parse` / `.spec()` for one effect); a float is written as the shortest
  text that parses back to the same float, so parse(specs()) is exact;
* `{effect: {param: value}}`: `to_dict` / `from_dict` (reports, benchmarks);
* `[{"effect": e, "params": {param: value}}]`: `to_records` / `from_records` (the transfer
  sidecar's "effects", `EffectPlan.as_dict`, the web page and the study's cases).

Both types are immutable, and both are checked against the registry when they are made: an
unknown effect, an unknown parameter or a value outside its range is a one-line
`DeltaV2AError`, whichever form the settings came in. Only the values given are stored
(missing ones take their defaults when the chain is built; `resolved()` fills them in).

An effect may appear twice in a chain (two low-passes are a steeper one); the mapping form
cannot say so, and `to_dict` refuses such a chain rather than dropping one.

No numpy here: the CLI imports this module to parse `--effect` specs and must start fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    from ..api.effects import AudioEffect

SPEC_SYNTAX = "NAME or NAME:PARAM=VALUE[,PARAM=VALUE...]"


def effect_class(name: str) -> type["AudioEffect"]:
    """The registered audio effect `name` (a one-line error names an unknown one)."""
    from ..api import registry as plugins

    return plugins.get("audio_effect", name)


def _number(value: float) -> str:
    """Shortest text that parses back to the same float (800, not 800.0 or 800.000000001)."""
    v = float(value)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


@dataclass(frozen=True)
class EffectSetting:
    """One effect of a chain: a registered name + raw values of some of its parameters.

    Checked on construction (`Effect.resolve`): the values are stored as floats in a
    read-only mapping, in the order given."""

    effect: str
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.effect, str) or not self.effect.strip():
            raise DeltaV2AError(f"an effect setting needs an effect name, got {self.effect!r}")
        if not isinstance(self.params, Mapping):
            raise DeltaV2AError(
                f"{self.effect}: parameters must be a mapping {{param: value}}, got {self.params!r}")
        given = dict(self.params)
        bad = [k for k in given if not isinstance(k, str)]
        if bad:
            raise DeltaV2AError(f"{self.effect}: parameter names must be text, got {bad[0]!r}")
        resolved = effect_class(self.effect).resolve(given)
        object.__setattr__(self, "params", MappingProxyType({k: resolved[k] for k in given}))

    def __hash__(self) -> int:
        return hash((self.effect, tuple(self.params.items())))

    def __reduce__(self) -> tuple:  # a mappingproxy does not pickle; workers receive plans
        return (EffectSetting, (self.effect, dict(self.params)))

    def __repr__(self) -> str:
        return f"EffectSetting({self.spec()!r})"

    # ------------------------------------------------------------------ forms

    @classmethod
    def parse(cls, spec: str) -> "EffectSetting":
        """`"reverb:wet_level=0.5,room_size=0.8"` -> EffectSetting; a malformed spec, an
        unknown effect or parameter, or a value out of range is a one-line error."""
        if not isinstance(spec, str):
            raise DeltaV2AError(f"effect spec must be text like {SPEC_SYNTAX}, got {spec!r}")
        text = spec.strip()
        if not text:
            raise DeltaV2AError(f"empty effect spec (expected {SPEC_SYNTAX})")
        name, sep, rest = text.partition(":")
        name = name.strip()
        if not name:
            raise DeltaV2AError(f"effect spec {spec!r} has no effect name (expected {SPEC_SYNTAX})")
        effect_class(name)  # an unknown effect is named before its parameters are looked at
        values: dict[str, str] = {}
        if sep:
            if not rest.strip():
                raise DeltaV2AError(
                    f"effect spec {spec!r} has nothing after ':' (expected {SPEC_SYNTAX})")
            for item in rest.split(","):
                key, eq, value = item.partition("=")
                key, value = key.strip(), value.strip()
                if not eq or not key:
                    raise DeltaV2AError(
                        f"effect spec {spec!r}: {item.strip()!r} is not PARAM=VALUE "
                        f"(expected {SPEC_SYNTAX})")
                if not value:
                    raise DeltaV2AError(f"effect spec {spec!r}: {name}.{key} has no value")
                if key in values:
                    raise DeltaV2AError(f"effect spec {spec!r}: {name}.{key} is given twice")
                values[key] = value
        try:
            return cls(name, values)  # type: ignore[arg-type]  # text values: resolve parses them
        except DeltaV2AError as exc:
            raise DeltaV2AError(f"effect spec {spec!r}: {exc}") from None

    def spec(self) -> str:
        """The `--effect` spelling of this setting (`parse(spec())` gives it back exactly)."""
        if not self.params:
            return self.effect
        return self.effect + ":" + ",".join(f"{k}={_number(v)}" for k, v in self.params.items())

    @classmethod
    def from_normalised(cls, effect: str, positions: Mapping[str, float]) -> "EffectSetting":
        """Controller space -> raw values, via each parameter's own scale."""
        eff = effect_class(effect)
        return cls(effect, {k: eff.param(k).denormalise(u) for k, u in positions.items()})

    # ------------------------------------------------------------------ values

    def resolved(self) -> "EffectSetting":
        """The same setting with every parameter's value (defaults filled in)."""
        return EffectSetting(self.effect, effect_class(self.effect).resolve(self.params))

    def normalised(self) -> dict[str, float]:
        """The given values as positions in [0, 1] along each parameter's scale."""
        eff = effect_class(self.effect)
        return {k: eff.param(k).normalise(v) for k, v in self.params.items()}


@dataclass(frozen=True)
class ChainSettings:
    """An ordered, immutable tuple of `EffectSetting`s: what one chain renders.

    The order is the one given (a producer's chain order); `AudioChain` sorts it into its
    render order. `ChainSettings()` is the empty chain (the clip unchanged)."""

    steps: tuple[EffectSetting, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.steps, (str, Mapping)) or not isinstance(self.steps, Iterable):
            raise DeltaV2AError(
                f"ChainSettings takes EffectSettings (ChainSettings.parse for '{SPEC_SYNTAX}' "
                f"specs, ChainSettings.from_dict for {{effect: {{param: value}}}}), got {self.steps!r}")
        steps = tuple(self.steps)
        for s in steps:
            if not isinstance(s, EffectSetting):
                raise DeltaV2AError(f"not an effect setting: {s!r} (use EffectSetting, or "
                                    f"ChainSettings.parse for '{SPEC_SYNTAX}' specs)")
        object.__setattr__(self, "steps", steps)

    # ------------------------------------------------------------------ sequence

    def __iter__(self) -> Iterator[EffectSetting]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __repr__(self) -> str:
        return f"ChainSettings({list(self.specs())!r})"

    @property
    def effects(self) -> list[str]:
        """Effect names, in the given order."""
        return [s.effect for s in self.steps]

    # ------------------------------------------------------------------ spec strings

    @classmethod
    def parse(cls, specs: "str | Iterable[str]") -> "ChainSettings":
        """One `--effect` spec or several (each one effect) -> ChainSettings."""
        if isinstance(specs, str):
            specs = [specs]
        elif not isinstance(specs, Iterable) or isinstance(specs, Mapping):
            raise DeltaV2AError(f"effect specs must be text like {SPEC_SYNTAX}, got {specs!r}")
        return cls(tuple(EffectSetting.parse(s) for s in specs))

    def specs(self) -> tuple[str, ...]:
        """One `--effect` spec per effect; `ChainSettings.parse(specs())` gives it back exactly."""
        return tuple(s.spec() for s in self.steps)

    # ------------------------------------------------------------------ JSON / mapping forms

    def to_dict(self) -> dict[str, dict[str, float]]:
        """{effect: {param: value}}, in order; an effect given twice cannot be written so."""
        out: dict[str, dict[str, float]] = {}
        for s in self.steps:
            if s.effect in out:
                raise DeltaV2AError(
                    f"effect '{s.effect}' is in this chain twice: {{effect: {{param: value}}}} cannot hold it "
                    "(use to_records or specs)")
            out[s.effect] = dict(s.params)
        return out

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Mapping[str, Any] | None]) -> "ChainSettings":
        """{effect: {param: value}} (JSON, YAML, a report) -> ChainSettings, checked."""
        if not isinstance(mapping, Mapping):
            raise DeltaV2AError(f"chain settings must be a mapping {{effect: {{param: value}}}}, got {mapping!r}")
        return cls(tuple(EffectSetting(name, {} if values is None else values) for name, values in mapping.items()))

    def to_records(self) -> list[dict[str, Any]]:
        """[{"effect": name, "params": {param: value}}], in order (the transfer sidecar's "effects")."""
        return [{"effect": s.effect, "params": dict(s.params)} for s in self.steps]

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> "ChainSettings":
        """The inverse of `to_records` (a sidecar read back), checked."""
        if isinstance(records, (str, Mapping)) or not isinstance(records, Iterable):
            raise DeltaV2AError(f"chain records must be a list of {{effect, params}}, got {records!r}")
        steps = []
        for r in records:
            if not isinstance(r, Mapping) or "effect" not in r:
                raise DeltaV2AError(f"a chain record needs 'effect' (and 'params'), got {r!r}")
            params = r.get("params")
            steps.append(EffectSetting(r["effect"], {} if params is None else params))
        return cls(tuple(steps))

    # ------------------------------------------------------------------ values

    def resolved(self) -> "ChainSettings":
        """Every effect with every parameter's value (defaults filled in)."""
        return ChainSettings(tuple(s.resolved() for s in self.steps))


__all__ = ["SPEC_SYNTAX", "ChainSettings", "EffectSetting", "effect_class"]
