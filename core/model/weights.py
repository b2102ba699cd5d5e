"""Trained controllers on disk: safetensors weights + a JSON file that says what they mean.

A controller is only meaningful together with the space it was trained in: the style
vocabulary (its terms define the style-label axes), the encoders (their fingerprints define
E(A) and the style labels) and the effect layout (parameter ranges and scales define the
normalised positions). The JSON records all of it, plus the tuned thresholds, an optional
calibration and a training summary; loading compares what the caller is about to use with
what was recorded and refuses a mismatch in one line, instead of producing confident
nonsense. Weights are safetensors (no pickle), and the JSON keeps the weights' SHA-256 so a
weights file from another run is caught too. Writing, the header check and the bounded,
checked tensor load are `artifact.py`'s (shared with the analysis decoder); what is
controller-specific (the metadata's fields, the architecture built on torch's meta device)
is here.

Files: `NAME.safetensors` and `NAME.json` side by side; either path (or the bare stem) is
accepted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..artifact import (Format, Header, load_tensors, meta_shapes, module_tensors, save_weights,
                        verify_checksum)
from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from .controller import Prediction
    from .layout import ParamLayout

FORMAT = Format("deltav2a-controller", 1, "DeltaV2A controller file", version_key="format_version",
                checksum_key="weights",
                fingerprint_keys=("vocabulary.fingerprint", "encoders.image.fingerprint",
                                  "encoders.audio.fingerprint"),
                remedy="train a model with this deltav2a")
#: a model directory is untrusted data: its numbers are checked before anything is built
MAX_INPUT_DIM = 65_536          # style_dim, audio_dim
MAX_PARAMETERS = 50_000_000     # the shipped controllers have ~0.1 M


@dataclass
class ControllerMetadata:
    controller: str                       # registered controller name ("mlp", "ar")
    config: dict                          # ControllerConfig.model_dump()
    layout: dict                          # ParamLayout.describe()
    style_dim: int
    audio_dim: int
    vocabulary: dict                      # {"name": ..., "fingerprint": ...}
    encoders: dict                        # {"image": {"name", "fingerprint"}, "audio": {...}}
    thresholds: dict[str, float]          # per effect, in layout order
    calibration: dict | None = None       # e.g. {"temperature": ..., "tau_c": ..., "s_c": ...}
    training: dict = field(default_factory=dict)  # summary: epochs, best epoch, metrics, seed
    plugins: list = field(default_factory=list)   # [{"kind", "name", "distribution", "version"}] it needs
    strength_input: bool = False          # style input = label + strength (style_dim = K + 1)

    def as_dict(self) -> dict:
        return {**FORMAT.header(), **asdict(self)}


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_controller(path: str | Path, module: "torch.nn.Module", metadata: ControllerMetadata
                    ) -> Path:
    """Write NAME.safetensors, then NAME.json (the JSON last: it is the commit point)."""
    weights, meta = _paths(path)
    missing = [e for e in metadata.layout.get("effects", []) if e not in metadata.thresholds]
    if missing:
        raise DeltaV2AError(f"controller metadata has no threshold for: {', '.join(missing)}")
    return save_weights(weights, meta, FORMAT, module_tensors(module), asdict(metadata))


def read_metadata(path: str | Path) -> ControllerMetadata:
    return _read_metadata(path)[1]


def _read_metadata(path: str | Path) -> tuple[Header, ControllerMetadata]:
    from ..artifact import read_json

    _, meta = _paths(path)
    if not meta.is_file():
        raise DeltaV2AError(f"no controller metadata at {meta}")
    header, raw = read_json(meta, FORMAT)
    fields = ControllerMetadata.__dataclass_fields__
    try:
        md = ControllerMetadata(**{k: raw[k] for k in fields if k in raw})
    except TypeError as exc:
        raise DeltaV2AError(f"controller metadata {meta} is incomplete: {exc}") from None
    _validate_metadata(md, meta)
    return header, md


def _validate_metadata(md: ControllerMetadata, where: Path) -> None:
    """Types and ranges of everything a loader will act on, before it acts (no allocation)."""
    import math

    def bad(msg: str) -> DeltaV2AError:
        return DeltaV2AError(f"controller metadata {where}: {msg}")

    for name in ("style_dim", "audio_dim"):
        v = getattr(md, name)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_INPUT_DIM:
            raise bad(f"{name} must be an integer in 1..{MAX_INPUT_DIM}, got {v!r}")
    for name in ("config", "layout", "vocabulary", "encoders", "thresholds", "training"):
        if not isinstance(getattr(md, name), dict):
            raise bad(f"{name} must be a mapping")
    if not isinstance(md.controller, str):
        raise bad("controller must be a name")
    effects = md.layout.get("effects", [])
    if not isinstance(effects, list) or not all(isinstance(e, str) for e in effects):
        raise bad("layout.effects must be a list of effect names")
    for eff, t in md.thresholds.items():
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (0.0 <= t <= 1.0):
            raise bad(f"threshold of {eff} must be a number in [0, 1], got {t!r}")
    for key, v in (md.calibration or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isfinite(v):
            raise bad(f"calibration.{key} is not finite ({v!r})")
    if md.calibration is not None and not isinstance(md.calibration, dict):
        raise bad("calibration must be a mapping")
    if md.calibration and "match_floors" in md.calibration:  # per-effect floors (decision 9.90)
        from .strength import check_match_floors

        check_match_floors(md.calibration["match_floors"], effects, f"controller metadata {where}")


def _describe_id(info: Mapping[str, Any] | None) -> str:
    if not info:
        return "(unknown)"
    return f"'{info.get('name', '?')}' (fingerprint {info.get('fingerprint', '?')})"


def check_expectations(meta: ControllerMetadata, *, vocabulary: Mapping[str, Any] | None = None,
                       encoders: Mapping[str, Mapping[str, Any]] | None = None,
                       layout: "ParamLayout | None" = None, where: str = "controller") -> None:
    """Raise a one-line DeltaV2AError naming the first thing that differs."""
    if vocabulary is not None:
        if vocabulary.get("fingerprint") != meta.vocabulary.get("fingerprint"):
            raise DeltaV2AError(
                f"{where} was trained with vocabulary {_describe_id(meta.vocabulary)}, but "
                f"vocabulary {_describe_id(vocabulary)} is in use; retrain or switch vocabulary")
    for side, info in (encoders or {}).items():
        trained = meta.encoders.get(side)
        if trained is None:
            raise DeltaV2AError(f"{where} records no {side} encoder")
        if info.get("fingerprint") != trained.get("fingerprint"):
            raise DeltaV2AError(
                f"{where} was trained with {side} encoder {_describe_id(trained)}, but the "
                f"configured {side} encoder is {_describe_id(info)}")
    if layout is not None:
        diff = layout.difference(meta.layout)
        if diff:
            raise DeltaV2AError(f"{where} does not match the configured audio effects: {diff}")


@dataclass
class LoadedController:
    module: "torch.nn.Module"
    metadata: ControllerMetadata
    layout: "ParamLayout"

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(self.metadata.thresholds)

    @property
    def strength_input(self) -> bool:
        return bool(self.metadata.strength_input)

    def predict(self, style: "np.ndarray", audio: "np.ndarray", strength: "np.ndarray | float | None" = None
                ) -> "Prediction":
        """Labels (N, K), E(A) (N, D) and, for a strength-input controller, strength (N,) or a scalar."""
        from .controller import predict, with_strength

        if self.strength_input:
            if strength is None:
                raise DeltaV2AError("this controller takes an edit strength beside the label; none was given")
            style = with_strength(style, strength)
        return predict(self.module, style, audio)

    def predict_data(self, data: Any) -> "Prediction":
        """Predict for `ControllerData` records (their strength is used when the controller takes it)."""
        if self.strength_input and data.strength is None:
            raise DeltaV2AError("this controller takes an edit strength, but the records carry none "
                                "(a database built before strength existed? it is computed on load)")
        return self.predict(data.style, data.audio, data.strength)


def load_controller(path: str | Path, *, vocabulary: Mapping[str, Any] | None = None,
                    encoders: Mapping[str, Mapping[str, Any]] | None = None,
                    layout: "ParamLayout | None" = None, inference_only: bool = False) -> LoadedController:
    """Rebuild a saved controller, refusing it if it does not fit what the caller uses.

    `vocabulary` = {"name", "fingerprint"}; `encoders` = {"image"|"audio": {"name",
    "fingerprint"}} for the sides the caller will feed; `layout` = the configured effects
    (default: the registered effects named in the file, which still catches a changed
    parameter range or scale). `inference_only`: the caller only predicts, so a controller
    with a torch-free predictor (`Controller.inference`, knn) is loaded without torch;
    `.module` is then that predictor, not a `torch.nn.Module` (nothing to save or train).
    """
    from ..config import ControllerConfig
    from ..api.controllers import get_controller
    from .layout import ParamLayout

    weights, meta_path = _paths(path)
    header, meta = _read_metadata(path)
    where = f"controller {meta_path.with_suffix('')}"
    if layout is None:
        layout = ParamLayout.from_names(meta.layout.get("effects", []))
    check_expectations(meta, vocabulary=vocabulary, encoders=encoders, layout=layout, where=where)
    if not weights.is_file():
        raise DeltaV2AError(f"{where}: weights file {weights} is missing")
    verify_checksum(header, weights, where, meta_path.name)
    try:
        # older models stored {kind, mlp, ar, knn}: this model's own section is its options
        cfg = ControllerConfig.model_validate(meta.config, context={"controller": meta.controller})
    except Exception as exc:  # pydantic ValidationError: report the first problem only
        raise DeltaV2AError(f"{where}: stored controller config is invalid: "
                            f"{str(exc).splitlines()[0]}") from None
    spec = get_controller(meta.controller)
    if inference_only:
        predictor = _load_inference(spec, weights, meta, layout, cfg, where)
        if predictor is not None:
            return LoadedController(predictor, meta, layout)

    def build():
        return spec.build(int(meta.style_dim), int(meta.audio_dim), layout, cfg)

    # Check the architecture against the file before allocating it: a metadata file
    # saying hidden_dims [100000, 100000, 100000] must not cost 40 GB to refuse.
    state = load_tensors(weights, where, max_elements=MAX_PARAMETERS, expected=meta_shapes(build),
                         owner=f"the '{meta.controller}' controller")
    module = build()
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise DeltaV2AError(f"{where}: weights do not fit the '{meta.controller}' controller "
                            f"({first})") from None
    module.eval()
    return LoadedController(module, meta, layout)


def _load_inference(spec: Any, weights: Path, meta: ControllerMetadata, layout: "ParamLayout",
                    cfg: Any, where: str) -> Any:
    """The controller's torch-free predictor (numpy tensors), or None if it has none.

    The same checks as the torch path (`artifact.load_tensors`): the size from the header
    before anything is read, then finite values."""
    if getattr(spec.inference, "__func__", None) is _base_inference():  # not overridden: torch
        return None
    state = load_tensors(weights, where, max_elements=MAX_PARAMETERS, backend="numpy")
    return spec.inference(int(meta.style_dim), int(meta.audio_dim), layout, cfg, state, where)


def _base_inference():
    from ..api.controllers import Controller

    return Controller.inference.__func__
def check_model_plugins(model_dir: str | Path) -> None:
    """One-line error naming the package of each plugin the model needs but nobody registers."""
    from ..api.registry import check_provenance
    from ..fileio import read_json

    meta = Path(model_dir) / "controller.json"
    if meta.is_file():
        check_provenance(read_json(meta, "controller metadata").get("plugins") or [], f"model {model_dir}")
