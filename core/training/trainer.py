"""The controller training loop (notes, "Training" and Appendix C).

AdamW (lr 1e-4, weight decay 1e-3), a cosine decay of the learning rate to 1e-6 over the
epochs, batch 256, balanced sampling, the best epoch chosen by
`val_active_param_rmse_gated` at activity threshold 0.5. Works for any registered
controller through the common module protocol (see `deltav2a.model.controller`).

Reproducibility and resuming are one design: every epoch reseeds its randomness (sampler
order, audio-condition dropout, nn.Dropout) from `SeedSequence([seed, epoch])`, so epoch k
draws the same numbers whether the run got there in one go or after a restart. A
checkpoint after each epoch stores the model, the AdamW state (both safetensors), the
history and the best epoch so far (JSON); the learning rate is a pure function of the
epoch. Together that makes "4 epochs" and "2 epochs, stop, resume 2" bit-identical on CPU.
The caller's global torch RNG is left as it was (`torch.random.fork_rng`).

Files in `out_dir` (JSON written atomically, and last, so an interruption never leaves a
checkpoint that points at a half-written file):
    checkpoint.json, checkpoint-eNNNN.safetensors   resume state
    best-eNNNN.safetensors                          weights of the best epoch so far
    metrics.json                                    per-epoch metrics + best epoch
    curves.png                                      training curves
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..atomic import atomic_path, write_json
from ..config import ControllerConfig, TrainingConfig
from ..api.controllers import Controller, get_controller
from ..model.controller import count_parameters, predict
from ..errors import DeltaV2AError
from ..evaluation.metrics import active_param_rmse_gated, activity_f1
from ..model.layout import ParamLayout
from ..artifact import module_tensors, save_tensors
from ..model.data import ControllerData
from .sampler import balanced_indices

CHECKPOINT_JSON = "checkpoint.json"
METRICS_JSON = "metrics.json"
CURVES_PNG = "curves.png"
VAL_BATCH = 4096


@dataclass
class TrainResult:
    module: torch.nn.Module            # best epoch's weights, eval mode
    controller: str
    history: list[dict[str, Any]]
    best_epoch: int                    # 1-based
    best_value: float
    selection_metric: str
    seed: int
    out_dir: Path | None = None
    epochs_run: int = 0                # epochs trained by this call (0 when resuming a finished run)
    parameters: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What a saved controller records about its training."""
        best = next((r for r in self.history if r["epoch"] == self.best_epoch), {})
        return {
            "controller": self.controller,
            "epochs": len(self.history),
            "best_epoch": self.best_epoch,
            "selection_metric": self.selection_metric,
            "best_value": _finite_or_none(self.best_value),
            "best": _jsonable(best),
            "final": _jsonable(self.history[-1]) if self.history else {},
            "seed": self.seed,
            "parameters": self.parameters,
        }


def cosine_lr(epoch: int, epochs: int, lr: float, lr_min: float) -> float:
    """Learning rate of 0-based `epoch`: lr at the first epoch, lr_min at the last."""
    if epochs <= 1:
        return lr
    t = epoch / (epochs - 1)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * t))


def epoch_seeds(seed: int, epoch: int) -> tuple[int, int]:
    """(sampler/condition-dropout seed, torch global seed for nn.Dropout) of one epoch."""
    a, b = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, dtype=np.uint64)
    return int(a), int(b)


def higher_is_better(metric: str) -> bool:
    return "f1" in metric


def _finite_or_none(x: Any) -> Any:
    return x if not (isinstance(x, float) and (math.isnan(x) or math.isinf(x))) else None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    return _finite_or_none(obj)


def _data_digest(data: ControllerData) -> str:
    h = hashlib.blake2b(digest_size=12)
    for arr in (data.style_input, data.audio, data.active, data.params):
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _run_fingerprint(name: str, layout: ParamLayout, ccfg: ControllerConfig,
                     tcfg: TrainingConfig, seed: int, train: ControllerData,
                     val: ControllerData) -> str:
    blob = json.dumps({
        "controller": name, "controller_config": ccfg.model_dump(mode="json"),
        "training_config": tcfg.model_dump(mode="json"), "layout": layout.fingerprint(),
        "seed": int(seed), "train": _data_digest(train), "val": _data_digest(val),
    }, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# -- optimizer state <-> safetensors ------------------------------------------------------------

def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith("optim."):
            continue
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, extra in info.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(extra)
    opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})


# -- plotting -----------------------------------------------------------------------------------

def plot_curves(history: list[dict[str, Any]], path: Path, best_epoch: int | None,
                selection_metric: str) -> None:
    """Loss curves and the selection metric per epoch (Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    for key, label in (("train_loss", "train loss"), ("val_loss", "val loss")):
        ax1.plot(epochs, [r.get(key) for r in history], label=label)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.set_yscale("log")
    ax1.legend()
    ax2.plot(epochs, [r.get(selection_metric) for r in history], label=selection_metric)
    if "val_macro_f1" in history[0] and selection_metric != "val_macro_f1":
        ax2b = ax2.twinx()
        ax2b.plot(epochs, [r.get("val_macro_f1") for r in history], color="tab:orange",
                  alpha=0.6, label="val_macro_f1")
        ax2b.set_ylabel("macro F1")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(selection_metric)
    if best_epoch is not None:
        for ax in (ax1, ax2):
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1)
        ax2.set_title(f"best epoch {best_epoch}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


# -- the loop ---------------------------------------------------------------------------------------

def _evaluate(module: torch.nn.Module, data: ControllerData, tensors: tuple, layout: ParamLayout,
              tcfg: TrainingConfig) -> dict[str, float]:
    module.eval()
    sums: dict[str, float] = {}
    with torch.no_grad():
        for i in range(0, len(data), VAL_BATCH):
            sl = slice(i, i + VAL_BATCH)
            _, parts = module.compute_loss(*(t[sl] for t in tensors), tcfg.loss)
            n = min(VAL_BATCH, len(data) - i)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * n
    out = {f"val_{k}": v / max(len(data), 1) for k, v in sums.items()}
    out.update(_val_metrics(module, data, layout))
    return out


def _val_metrics(module: torch.nn.Module, data: ControllerData, layout: ParamLayout) -> dict[str, float]:
    out: dict[str, float] = {}
    pred = predict(module, data.style_input, data.audio)
    out["val_active_param_rmse_gated"] = active_param_rmse_gated(
        pred.activity, pred.params, data.active, data.params, layout, 0.5)
    out["val_active_param_rmse"] = active_param_rmse_gated(
        np.ones_like(pred.activity), pred.params, data.active, data.params, layout, 0.5)
    f1 = activity_f1(pred.activity, data.active, layout, 0.5)
    out["val_macro_f1"] = f1["macro_f1"]
    out["val_micro_f1"] = f1["micro_f1"]
    return out


def _as_tensors(data: ControllerData) -> tuple[torch.Tensor, ...]:
    # torch.tensor copies: arrays read from Parquet are read-only views
    return (torch.tensor(data.style_input), torch.tensor(data.audio),
            torch.tensor(data.active), torch.tensor(data.params))


def train_controller(controller: str | type[Controller], train: ControllerData,
                     val: ControllerData, layout: ParamLayout,
                     controller_cfg: ControllerConfig | None = None,
                     training_cfg: TrainingConfig | None = None, *, out_dir: str | Path | None = None,
                     seed: int = 0, resume: bool = False, overwrite: bool = False,
                     progress: bool = True, plot_every: int = 25,
                     callback: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train `controller` on `train`, select the best epoch on `val`, return it.

    `resume=True` continues the run in `out_dir` from its last finished epoch (or starts
    one when there is none); a run started with other data, config or seed is refused,
    unless `overwrite=True` too, which then replaces it (what `deltav2a run` wants).
    Without `resume` an existing run in `out_dir` is only replaced with `overwrite=True`.
    `out_dir=None` trains in memory (no checkpoints, no resume). `callback(record)` runs
    after each epoch's checkpoint is on disk, so raising (or Ctrl-C) there loses nothing.
    """
    ccfg = controller_cfg or ControllerConfig()
    tcfg = training_cfg or TrainingConfig()
    spec = get_controller(controller) if isinstance(controller, str) else controller
    name = spec.name
    for data in (train, val):
        data.check_layout(layout)
    if len(train) == 0 or len(val) == 0:
        raise DeltaV2AError("training needs at least one training and one validation record")
    if (train.style_dim, train.audio_dim) != (val.style_dim, val.audio_dim):
        raise DeltaV2AError("training and validation records have different input sizes")
    metric = tcfg.selection_metric
    p_drop = float(ccfg.audio_condition_dropout)

    out = Path(out_dir) if out_dir is not None else None
    run_id = _run_fingerprint(name, layout, ccfg, tcfg, seed, train, val)
    checkpoint = _read_checkpoint(out) if out is not None else None
    if checkpoint is not None and not resume and not overwrite:
        raise DeltaV2AError(f"{out} already holds a training run; resume it or pass overwrite")
    if checkpoint is not None and resume and overwrite and checkpoint.get("run") != run_id:
        resume = False  # a different run: start it afresh below
    if checkpoint is not None and resume and checkpoint.get("run") != run_id:
        raise DeltaV2AError(
            f"cannot resume {out}: it was started with other data, config or seed "
            f"(run {checkpoint.get('run')}, now {run_id})")
    if checkpoint is not None and not resume:  # overwrite: forget the old run's files first
        _remove_run_files(out)
        checkpoint = None

    if getattr(spec, "fits_data", False):
        return _fit_without_training(spec, train, val, layout, ccfg, metric, seed, out)
    train_t = _as_tensors(train)
    val_t = _as_tensors(val)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        module = spec.build(train.style_dim, train.audio_dim, layout, ccfg)
        opt = torch.optim.AdamW(module.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
        history: list[dict[str, Any]] = []
        best_epoch: int | None = None
        best_value = float("nan")
        best_state: dict[str, torch.Tensor] | None = None
        start = 0
        if checkpoint is not None:
            start, history, best_epoch, best_value, best_state = _restore(
                out, checkpoint, module, opt)
        bar = _progress(progress, name, start, tcfg.epochs)
        epochs_run = 0
        try:
            for epoch in range(start, tcfg.epochs):
                t0 = time.perf_counter()
                lr = cosine_lr(epoch, tcfg.epochs, tcfg.lr, tcfg.lr_min)
                for group in opt.param_groups:
                    group["lr"] = lr
                sampler_seed, global_seed = epoch_seeds(seed, epoch)
                gen = torch.Generator().manual_seed(sampler_seed)
                torch.manual_seed(global_seed)
                record = {"epoch": epoch + 1, "lr": lr}
                record.update(_train_epoch(module, opt, train, train_t, tcfg, gen, p_drop, epoch))
                record.update(_evaluate(module, val, val_t, layout, tcfg))
                record["seconds"] = time.perf_counter() - t0
                history.append(record)
                value = record.get(metric)
                if value is None:
                    raise DeltaV2AError(
                        f"selection metric '{metric}' is not computed (known: "
                        f"{', '.join(k for k in record if k.startswith('val_'))})")
                if _improves(value, best_value, metric):
                    best_epoch, best_value = epoch + 1, float(value)
                    best_state = module_tensors(module)
                if out is not None:
                    _write_checkpoint(out, run_id, module, opt, history, best_epoch, best_value,
                                      best_state, seed, epoch + 1)
                    _write_metrics(out, name, history, best_epoch, best_value, metric)
                    last = epoch + 1 == tcfg.epochs
                    if last or (plot_every > 0 and (epoch + 1) % plot_every == 0):
                        plot_curves(history, out / CURVES_PNG, best_epoch, metric)
                epochs_run += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['train_loss']:.4f}",
                                    val=f"{record['val_active_param_rmse_gated']:.4f}",
                                    best=best_epoch)
                if callback is not None:
                    callback(dict(record))
        finally:
            if bar is not None:
                bar.close()
    if best_state is None:  # the metric was NaN every epoch: keep the last weights
        best_epoch = len(history)
        best_state = module_tensors(module)
    module.load_state_dict(best_state)
    module.eval()
    if out is not None and history and not (out / CURVES_PNG).exists():
        plot_curves(history, out / CURVES_PNG, best_epoch, metric)
    return TrainResult(module, name, history, int(best_epoch or 0), float(best_value), metric,
                       int(seed), out, epochs_run, count_parameters(module))


def _fit_without_training(spec: type[Controller], train: ControllerData, val: ControllerData,
                          layout: ParamLayout, ccfg: ControllerConfig, metric: str, seed: int,
                          out: Path | None) -> TrainResult:
    """Controllers that store data instead of learning weights (knn): one "epoch" = fit.

    The result looks like a one-epoch training run (validation metrics, metrics.json), so
    `train`, `run`, thresholds and evaluation treat it like any other controller.
    """
    t0 = time.perf_counter()
    module = spec.build(train.style_dim, train.audio_dim, layout, ccfg)
    info = module.fit(train, seed=seed)
    record: dict[str, Any] = {"epoch": 1, "lr": 0.0, **{f"fit_{k}": v for k, v in info.items()}}
    record.update(_val_metrics(module, val, layout))
    record["seconds"] = time.perf_counter() - t0
    value = float(record.get(metric, float("nan")))
    module.eval()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        _write_metrics(out, spec.name, [record], 1, value, metric)
    return TrainResult(module, spec.name, [record], 1, value, metric, int(seed), out, 1,
                       count_parameters(module))


def _improves(value: float, best: float, metric: str) -> bool:
    if value is None or math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best if higher_is_better(metric) else value < best


def _progress(enabled: bool, name: str, start: int, total: int) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc=f"train {name}", unit="epoch", file=sys.stderr,
                dynamic_ncols=True, leave=True)


def _train_epoch(module: torch.nn.Module, opt: torch.optim.Optimizer, data: ControllerData,
                 tensors: tuple, tcfg: TrainingConfig, gen: torch.Generator, p_drop: float,
                 epoch: int) -> dict[str, float]:
    module.train()
    n = len(data)
    if tcfg.balanced_sampler:
        order = balanced_indices(data.active, gen)
    else:
        order = torch.randperm(n, generator=gen)
    style_all, audio_all, active_all, params_all = tensors
    sums: dict[str, float] = {}
    for i in range(0, n, tcfg.batch_size):
        idx = order[i:i + tcfg.batch_size]
        audio = audio_all[idx]
        if p_drop > 0.0:
            keep = (torch.rand(idx.shape[0], generator=gen) >= p_drop).to(audio.dtype)
            audio = audio * keep[:, None]
        loss, parts = module.compute_loss(style_all[idx], audio, active_all[idx], params_all[idx],
                                          tcfg.loss)
        if not torch.isfinite(loss):
            raise DeltaV2AError(
                f"training diverged in epoch {epoch + 1} (loss {float(loss)}); lower training.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v * idx.shape[0]
    return {f"train_{k}": v / n for k, v in sums.items()}


# -- checkpoint files ------------------------------------------------------------------------------

def _read_checkpoint(out: Path) -> dict | None:
    path = out / CHECKPOINT_JSON
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DeltaV2AError(f"cannot read training checkpoint {path}: {exc}") from None


def _restore(out: Path, ck: dict, module: torch.nn.Module, opt: torch.optim.Optimizer
             ) -> tuple[int, list, int | None, float, dict | None]:
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(out / ck["checkpoint_file"]))
        module.load_state_dict({k[len("model."):]: v for k, v in tensors.items()
                                if k.startswith("model.")})
        _load_optimizer(opt, tensors, ck["optimizer"])
        best_state = load_file(str(out / ck["best_file"])) if ck.get("best_file") else None
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise DeltaV2AError(f"cannot resume from {out}: {str(exc).splitlines()[0]}") from None
    history = [{k: (float("nan") if v is None else v) for k, v in r.items()} for r in ck["history"]]
    best_value = float("nan") if ck.get("best_value") is None else float(ck["best_value"])
    return int(ck["epoch"]), history, ck.get("best_epoch"), best_value, best_state


def _write_checkpoint(out: Path, run_id: str, module: torch.nn.Module, opt: torch.optim.Optimizer,
                      history: list, best_epoch: int | None, best_value: float,
                      best_state: dict | None, seed: int, epoch: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    previous = _read_checkpoint(out) or {}
    opt_tensors, opt_info = _optimizer_tensors(opt)
    tensors = {f"model.{k}": v for k, v in module_tensors(module).items()}
    tensors.update(opt_tensors)
    ck_file = f"checkpoint-e{epoch:04d}.safetensors"
    save_tensors(out / ck_file, tensors)
    best_file = previous.get("best_file")
    if best_state is not None and best_epoch == epoch:
        best_file = f"best-e{epoch:04d}.safetensors"
        save_tensors(out / best_file, best_state)
    write_json(out / CHECKPOINT_JSON, _jsonable({
        "run": run_id, "epoch": epoch, "seed": int(seed),
        "rng": "every epoch reseeds from numpy SeedSequence([seed, epoch])",
        "checkpoint_file": ck_file, "best_file": best_file, "best_epoch": best_epoch,
        "best_value": best_value, "optimizer": opt_info, "history": history,
    }))
    for old in (previous.get("checkpoint_file"), previous.get("best_file")):
        if old and old not in (ck_file, best_file):
            (out / old).unlink(missing_ok=True)


def _remove_run_files(out: Path) -> None:
    for pattern in (CHECKPOINT_JSON, "checkpoint-e*.safetensors", "best-e*.safetensors",
                    METRICS_JSON, CURVES_PNG):
        for path in out.glob(pattern):
            path.unlink(missing_ok=True)


def _write_metrics(out: Path, name: str, history: list, best_epoch: int | None, best_value: float,
                   metric: str) -> None:
    write_json(out / METRICS_JSON, _jsonable({
        "controller": name, "selection_metric": metric, "best_epoch": best_epoch,
        "best_value": best_value, "epochs": history,
    }))
