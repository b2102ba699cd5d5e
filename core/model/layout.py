"""The controller's flat view of an effect chain: which effects, which parameters, in what order.

A controller predicts one activity per effect (E) and one normalised position per parameter
(P, all effects' parameters concatenated in chain order). Everything that has to agree on
that flat layout (the database columns, the losses, the gating metric, saved weights and
inference) goes through one `ParamLayout`, so the mapping from column j to
"reverb.wet_level" is never re-derived by hand.

"Gating" is the rule that ties activity to parameters: an effect that is (predicted)
inactive contributes its bypass values, whatever the parameter head said. Training targets,
the primary metric and rendering all use it.

numpy is imported inside the functions that need it: the CLI imports this module to
describe layouts and must start fast.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..errors import DeltaV2AError
from ..api.params import Param
from ..render.settings import ChainSettings, EffectSetting

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


@dataclass(frozen=True)
class ParamLayout:
    """Effects in chain order and their parameters flattened into one vector."""

    effects: tuple[str, ...]
    #: per parameter: the Param object (range, scale, bypass)
    params: tuple[Param, ...]
    #: per parameter: "effect.param"
    param_names: tuple[str, ...]
    #: per parameter: index into `effects`
    param_effect: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(set(self.effects)) != len(self.effects):
            raise DeltaV2AError(f"effect layout lists an effect twice: {', '.join(self.effects)}")
        if not (len(self.params) == len(self.param_names) == len(self.param_effect)):
            raise ValueError("params, param_names and param_effect must have the same length")
        if any(not 0 <= e < len(self.effects) for e in self.param_effect):
            raise ValueError("param_effect holds an index outside the effect list")

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_effects(cls, effect_classes: Iterable[Any]) -> "ParamLayout":
        """Build from effect classes (anything with `.name` and `.params`), in chain order."""
        effects: list[str] = []
        params: list[Param] = []
        names: list[str] = []
        owner: list[int] = []
        for i, eff in enumerate(effect_classes):
            effects.append(str(eff.name))
            if not eff.params:
                raise DeltaV2AError(f"audio effect '{eff.name}' has no parameters to predict")
            for p in eff.params:
                params.append(p)
                names.append(f"{eff.name}.{p.name}")
                owner.append(i)
        if not effects:
            raise DeltaV2AError("a controller needs at least one audio effect")
        return cls(tuple(effects), tuple(params), tuple(names), tuple(owner))

    @classmethod
    def from_names(cls, names: Sequence[str]) -> "ParamLayout":
        """Build from registered audio effect names (the config's `effects.audio`)."""
        from ..api import registry as plugins

        return cls.from_effects(plugins.get("audio_effect", n) for n in names)

    # -- sizes and lookups --------------------------------------------------------------

    @property
    def n_effects(self) -> int:
        return len(self.effects)

    @property
    def n_params(self) -> int:
        return len(self.params)

    @property
    def bypass(self) -> tuple[float, ...]:
        """Normalised bypass position of every parameter."""
        return tuple(p.bypass_normalised for p in self.params)

    def effect_index(self, name: str) -> int:
        try:
            return self.effects.index(name)
        except ValueError:
            raise DeltaV2AError(
                f"effect '{name}' is not in this layout ({', '.join(self.effects)})") from None

    def param_index(self, full_name: str) -> int:
        try:
            return self.param_names.index(full_name)
        except ValueError:
            raise DeltaV2AError(
                f"parameter '{full_name}' is not in this layout "
                f"({', '.join(self.param_names)})") from None

    def effect_params(self, effect: str | int) -> list[int]:
        """Column indices of one effect's parameters."""
        e = self.effect_index(effect) if isinstance(effect, str) else int(effect)
        return [j for j, owner in enumerate(self.param_effect) if owner == e]

    # -- array helpers ------------------------------------------------------------------

    def bypass_array(self) -> "np.ndarray":
        import numpy as np

        return np.asarray(self.bypass, dtype=np.float32)

    def param_effect_array(self) -> "np.ndarray":
        import numpy as np

        return np.asarray(self.param_effect, dtype=np.int64)

    def expand(self, per_effect: "np.ndarray") -> "np.ndarray":
        """(N, E) per-effect values -> (N, P): each parameter takes its effect's value."""
        import numpy as np

        arr = np.asarray(per_effect)
        if arr.shape[-1] != self.n_effects:
            raise DeltaV2AError(
                f"expected {self.n_effects} per-effect columns ({', '.join(self.effects)}), "
                f"got {arr.shape[-1]}")
        return arr[..., self.param_effect_array()]

    def gate(self, params: "np.ndarray", active: "np.ndarray") -> "np.ndarray":
        """Replace the parameters of inactive effects by their bypass position.

        `params` is (N, P) or (P,), `active` the matching (N, E) or (E,) booleans.
        """
        import numpy as np

        params = np.asarray(params, dtype=np.float32)
        if params.shape[-1] != self.n_params:
            raise DeltaV2AError(
                f"expected {self.n_params} parameter columns, got {params.shape[-1]}")
        mask = self.expand(np.asarray(active, dtype=bool))
        return np.where(mask, params, self.bypass_array()).astype(np.float32)

    # -- raw values -------------------------------------------------------------------

    def to_raw(self, params: Sequence[float], active: Sequence[bool] | None = None) -> ChainSettings:
        """One normalised vector -> `ChainSettings` (raw values), active effects only.

        This is where normalised positions become physical values (each `Param`'s scale).
        `active=None` keeps every effect. Effects come in chain order, every parameter of
        an active effect given, so the result renders with `AudioChain` directly.
        """
        values = [float(v) for v in params]
        if len(values) != self.n_params:
            raise DeltaV2AError(f"expected {self.n_params} parameter values, got {len(values)}")
        keep = [True] * self.n_effects if active is None else [bool(a) for a in active]
        if len(keep) != self.n_effects:
            raise DeltaV2AError(f"expected {self.n_effects} activity values, got {len(keep)}")
        out: dict[str, dict[str, float]] = {}
        for j, (p, e) in enumerate(zip(self.params, self.param_effect)):
            if keep[e]:
                out.setdefault(self.effects[e], {})[p.name] = p.denormalise(values[j])
        return ChainSettings(tuple(EffectSetting(name, out[name]) for name in self.effects if name in out))

    def from_raw(self, chain: ChainSettings) -> tuple[list[float], list[bool]]:
        """`ChainSettings` -> (normalised vector, activity); missing = bypass/inactive."""
        if not isinstance(chain, ChainSettings):
            raise DeltaV2AError(f"from_raw takes ChainSettings, got {type(chain).__name__}")
        settings = chain.to_dict()
        for name in settings:
            self.effect_index(name)
        params: list[float] = []
        for p, e in zip(self.params, self.param_effect):
            given = settings.get(self.effects[e], {})
            params.append(p.normalise(given[p.name]) if p.name in given else p.bypass_normalised)
        return params, [name in settings for name in self.effects]

    # -- identity -----------------------------------------------------------------------

    def describe(self) -> dict:
        """What a saved controller records to recognise the space it was trained in."""
        return {
            "effects": list(self.effects),
            "param_names": list(self.param_names),
            "params": [
                {"name": n, "minimum": p.minimum, "maximum": p.maximum,
                 "scale": p.scale, "bypass": p.bypass}
                for n, p in zip(self.param_names, self.params)
            ],
        }

    def fingerprint(self) -> str:
        """Changes when an effect, a parameter, its range, scale or bypass changes."""
        blob = json.dumps(self.describe(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def difference(self, described: Mapping[str, Any]) -> str | None:
        """One line saying how a recorded `describe()` differs from this layout, or None."""
        effects = list(described.get("effects", []))
        if effects != list(self.effects):
            return (f"effects differ: trained on [{', '.join(effects)}], "
                    f"now [{', '.join(self.effects)}]")
        names = list(described.get("param_names", []))
        if names != list(self.param_names):
            return (f"parameters differ: trained on [{', '.join(names)}], "
                    f"now [{', '.join(self.param_names)}]")
        mine = self.describe()["params"]
        for old, new in zip(described.get("params", []), mine):
            for key in ("minimum", "maximum", "scale", "bypass"):
                if old.get(key) != new[key]:
                    return (f"parameter {new['name']} changed its {key} from {old.get(key)!r} "
                            f"to {new[key]!r}, so normalised positions mean something else")
        return None
