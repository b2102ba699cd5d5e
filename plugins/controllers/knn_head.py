"""The k-NN controller's learned parameter head (`params_from: head`, decision 9.60).

Why: the neighbours' mean (9.34) averages the parameters of records that share a label and a
clip, but it uses the strength only as one more distance term, so a query's parameters are
those of records of *about* its size, pulled toward the middle of the sampling range. The
database's strength is defined from the parameters themselves (`strength.chain_strength`: the
mean normalised distance of the active parameters from bypass), so the parameters of an effect
given (label, strength) are a smooth function that a small regression learns from all records
at once, instead of the 8 nearest. Measured on the val database (train records as memory):
see docs/decisions.md 9.60.

The head is a two-hidden-layer MLP (SiLU) from [sqrt(label), strength] to one sigmoid output
per normalised parameter, trained with a masked MSE: only the parameters of the effects that
are active in a record count, so each output estimates E[parameter | label, strength, its
effect is active], whatever the other effect of the chain is. E(A) is not an input: with a
few dozen training clips the head learned the clips instead of the labels (val RMSE worse
than without it). Activity stays the neighbours' vote; only the parameters change.

Its weights are six tensors stored beside the records in `controller.safetensors` (data, not
code: `artifact.load_tensors` checks their names, shapes and finiteness); `head_forward`
answers in numpy for the torch-free predictor (`knn_arrays.KNNArrays`), and `head_forward_torch`
in torch for the module, with the same operations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from deltav2a.errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

#: the head's tensors in the saved state, in layer order (weight (out, in), bias (out,))
HEAD_TENSORS = ("head_w0", "head_b0", "head_w1", "head_b1", "head_w2", "head_b2")
BATCH = 128


def head_shapes(style_dim: int, hidden: int, n_params: int) -> dict[str, tuple[int, ...]]:
    """The shape of each head tensor. `style_dim` is the controller's style input, label +
    strength (a strength-input model's K + 1), which is also the head's input."""
    d_in = int(style_dim)
    return {"head_w0": (hidden, d_in), "head_b0": (hidden,), "head_w1": (hidden, hidden),
            "head_b1": (hidden,), "head_w2": (n_params, hidden), "head_b2": (n_params,)}


def head_inputs(style: Any, strength: Any, xp: Any) -> Any:
    """[sqrt(label), strength] as float32 (numpy or torch: `xp` is the module)."""
    if xp.__name__ == "torch":
        return xp.cat([style.clamp(min=0).sqrt(), strength.reshape(-1, 1)], dim=1).float()
    s = xp.sqrt(xp.maximum(xp.asarray(style, dtype=xp.float32), 0))
    return xp.concatenate([s, xp.asarray(strength, dtype=xp.float32).reshape(-1, 1)], axis=1)


def head_forward_torch(w: Mapping[str, "torch.Tensor"], style: "torch.Tensor",
                       strength: "torch.Tensor") -> "torch.Tensor":
    """(N, P) parameters in (0, 1) from the head tensors `w` (torch)."""
    import torch
    from torch.nn import functional as F

    x = head_inputs(style, strength, torch)
    x = F.silu(F.linear(x, w["head_w0"], w["head_b0"]))
    x = F.silu(F.linear(x, w["head_w1"], w["head_b1"]))
    return torch.sigmoid(F.linear(x, w["head_w2"], w["head_b2"]))


def head_forward(w: Mapping[str, "np.ndarray"], style: "np.ndarray", strength: "np.ndarray") -> "np.ndarray":
    """`head_forward_torch` in numpy (float64 arithmetic; agrees with torch to ~1e-6)."""
    import numpy as np

    def silu(x):
        return x / (1.0 + np.exp(-x))

    x = head_inputs(style, strength, np).astype(np.float64)
    x = silu(x @ w["head_w0"].T.astype(np.float64) + w["head_b0"])
    x = silu(x @ w["head_w1"].T.astype(np.float64) + w["head_b1"])
    z = x @ w["head_w2"].T.astype(np.float64) + w["head_b2"]
    return 1.0 / (1.0 + np.exp(-z))


def fit_head(style: "np.ndarray", strength: "np.ndarray", active_params: "np.ndarray", params: "np.ndarray",
             hidden: int, epochs: int, lr: float, weight_decay: float, dropout: float,
             seed: int) -> tuple[dict[str, "torch.Tensor"], dict[str, Any]]:
    """Train the head on the records: AdamW, mini-batches of 128, masked MSE.

    `active_params` (N, P) bool: the parameter belongs to an effect active in that record.
    Seeded (torch's global generator is forked, not disturbed); returns the six tensors and
    the last epoch's training loss.
    """
    import numpy as np
    import torch
    from torch import nn

    if strength is None or len(strength) != len(style):
        raise DeltaV2AError("knn: params_from 'head' needs records with a strength "
                            "(a database built with strength, and a model with a strength input)")
    x = head_inputs(torch.as_tensor(np.asarray(style, np.float32)), torch.as_tensor(np.asarray(strength, np.float32)),
                    torch)
    y = torch.as_tensor(np.asarray(params, np.float32))
    mask = torch.as_tensor(np.asarray(active_params, np.float32))
    n = x.shape[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.SiLU(), nn.Dropout(dropout),
                            nn.Linear(hidden, hidden), nn.SiLU(), nn.Dropout(dropout),
                            nn.Linear(hidden, y.shape[1]))
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(int(seed))
        loss_sum = 0.0
        net.train()
        for _ in range(int(epochs)):
            perm = torch.randperm(n, generator=gen)
            loss_sum, weight = 0.0, 0.0
            for i in range(0, n, BATCH):
                b = perm[i:i + BATCH]
                m = mask[b]
                count = m.sum()
                if float(count) == 0:
                    continue
                loss = (((torch.sigmoid(net(x[b])) - y[b]) ** 2) * m).sum() / count
                opt.zero_grad()
                loss.backward()
                opt.step()
                loss_sum += loss.item() * float(count)
                weight += float(count)
            loss_sum = loss_sum / weight if weight else float("nan")
    layers = [net[0], net[3], net[6]]
    out = {}
    for i, layer in enumerate(layers):
        out[f"head_w{i}"] = layer.weight.detach().clone().contiguous()
        out[f"head_b{i}"] = layer.bias.detach().clone().contiguous()
    return out, {"head_train_mse": loss_sum, "head_epochs": int(epochs)}
