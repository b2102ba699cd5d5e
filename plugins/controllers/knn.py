"""k-nearest-neighbour controller: the baseline every learned controller has to beat.

"Training" stores the training database's records as buffers; a query looks up its k
nearest records and answers with

* activity  = the fraction of the k neighbours in which each effect is active (a vote);
* params    = per effect, the mean of its parameters over the k nearest records in which
              that effect is active (bypass only when no stored record has it).

Distance (squared), each term on a comparable 0..1-ish scale:

    d^2 = style_weight    * H(s, s_i)^2            Hellinger distance of the two labels
        + audio_weight    * |z(a) - z(a_i)|^2 / D  E(A) standardised per dimension (train stats)
        + strength_weight * (q - q_i)^2            only when both the query and the records
                                                   carry a strength in [0, 1]

A clip unlike every training clip (its E(A) farther from the nearest stored clip than 99 % of
the stored clips are from their own nearest other clip) gets no audio term: the distances to the
stored clips then say nothing about which records fit it, and letting them choose would pick
the records of whichever few clips happen to be least far, whatever the label says
(decision 9.38). Clips inside that range are answered exactly as before.

Labels are probability vectors, so the Hellinger distance (Euclidean on sqrt(p), / sqrt 2)
is the natural metric: it is bounded by 1 and does not let one large term dominate the way
a plain Euclidean distance of probabilities does near a peaked label.

The stored record count is only known after fitting, so loading resizes the buffers to the
saved tensors' shapes (`_load_from_state_dict`) instead of requiring them up front: the
saved file goes through the same safetensors path as every other controller.

This module imports torch at the top; `KNNController` (the package's __init__) only imports
it from `build()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from deltav2a.errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .options import KNNOptions as KNNConfig
    from deltav2a.model.layout import ParamLayout
    from deltav2a.model.data import ControllerData

QUERY_CHUNK = 512  # queries per distance block: 512 x 100k records x 4 B = 200 MB at the cap

_BUFFERS = ("style", "audio", "active", "params", "strength", "audio_mean", "audio_std")


class KNNNet(nn.Module):
    #: sized by the stored records, not the architecture (the loader checks presence and size)
    data_buffers = _BUFFERS

    def __init__(self, style_dim: int, audio_dim: int, layout: "ParamLayout", cfg: "KNNConfig"):
        super().__init__()
        self.layout = layout
        self.style_dim = int(style_dim)
        self.audio_dim = int(audio_dim)
        self.k = int(cfg.k)
        self.style_weight = float(cfg.style_weight)
        self.audio_weight = float(cfg.audio_weight)
        self.strength_weight = float(cfg.strength_weight)
        self.max_records = int(cfg.max_records)
        E, P = layout.n_effects, layout.n_params
        self.register_buffer("style", torch.zeros(0, self.style_dim))
        self.register_buffer("audio", torch.zeros(0, self.audio_dim))
        self.register_buffer("active", torch.zeros(0, E))
        self.register_buffer("params", torch.zeros(0, P))
        # per-record strength; an empty tensor when the database has none
        self.register_buffer("strength", torch.zeros(0))
        self.register_buffer("audio_mean", torch.zeros(self.audio_dim))
        self.register_buffer("audio_std", torch.ones(self.audio_dim))
        self.register_buffer("param_effect", torch.as_tensor(layout.param_effect, dtype=torch.long),
                             persistent=False)
        self.register_buffer("bypass", torch.as_tensor(layout.bypass, dtype=torch.float32),
                             persistent=False)
        # the learned parameter head (knn_head.py, decision 9.60): architecture-sized buffers,
        # present only in that mode, so a model without it loads exactly as before
        self.cfg = cfg
        if self.params_from == "head":
            from .knn_head import head_shapes

            for name, shape in head_shapes(self.style_dim, int(cfg.head_hidden), P).items():
                self.register_buffer(name, torch.zeros(shape))

    @property
    def params_from(self) -> str:
        """Where the parameters come from: "neighbours" (9.34) or "head" (knn_head.py, 9.60)."""
        return str(self.cfg.params_from)

    @property
    def n_records(self) -> int:
        return int(self.style.shape[0])

    # -- "training" ----------------------------------------------------------------------------

    def fit(self, data: "ControllerData", seed: int = 0) -> dict[str, Any]:
        """Store the records (a seeded sample of `max_records` when there are more)."""
        import numpy as np

        data.check_layout(self.layout)
        if (data.style_dim, data.audio_dim) != (self.style_dim, self.audio_dim):
            raise DeltaV2AError(f"knn: records are ({data.style_dim}, {data.audio_dim})-dimensional, "
                                f"the controller was built for ({self.style_dim}, {self.audio_dim})")
        n = len(data)
        if n == 0:
            raise DeltaV2AError("knn: no training records to store")
        idx = np.arange(n)
        if n > self.max_records:
            idx = np.sort(np.random.default_rng(seed).choice(n, self.max_records, replace=False))
        strength = getattr(data, "strength", None)
        audio = torch.tensor(data.audio[idx])
        self.style = torch.tensor(data.style[idx])
        self.audio = audio
        self.active = torch.tensor(data.active[idx], dtype=torch.float32)
        self.params = torch.tensor(data.params[idx])
        self.strength = (torch.tensor(np.asarray(strength, dtype=np.float32)[idx])
                         if strength is not None else torch.zeros(0))
        self.audio_mean = audio.mean(dim=0)
        # a constant dimension carries no distance information: scale 1 keeps it at 0, not NaN
        std = audio.std(dim=0, unbiased=False)
        self.audio_std = torch.where(std > 1e-8, std, torch.ones_like(std))
        self._range = None  # the stored clips changed: recompute their range on the next query
        info = {"records": int(len(idx)), "records_available": n, "strength": bool(self.strength.numel())}
        if self.params_from == "head":
            from .knn_head import fit_head

            c = self.cfg
            tensors, head_info = fit_head(
                data.style[idx], None if strength is None else np.asarray(strength, np.float32)[idx],
                self.layout.expand(np.asarray(data.active[idx], dtype=bool)), data.params[idx],
                hidden=int(c.head_hidden), epochs=int(c.head_epochs), lr=float(c.head_lr),
                weight_decay=float(c.head_weight_decay), dropout=float(c.head_dropout), seed=seed)
            for name, t in tensors.items():
                setattr(self, name, t)
            info.update(head_info)
        return info

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        # the record count is data, not architecture: take the stored shapes
        for name in _BUFFERS:
            key = prefix + name
            if key in state_dict:
                self._buffers[name] = torch.empty_like(state_dict[key], dtype=torch.float32)
        self._range = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- inference -----------------------------------------------------------------------------

    def _features(self, style: torch.Tensor, audio: torch.Tensor,
                  strength: torch.Tensor | None, with_audio: bool = True) -> torch.Tensor:
        """Concatenated, weighted features whose Euclidean distance is d above."""
        parts = [style.clamp(min=0).sqrt() * (self.style_weight / 2.0) ** 0.5]
        if self.audio_weight > 0 and with_audio:
            z = (audio - self.audio_mean) / self.audio_std
            parts.append(z * (self.audio_weight / self.audio_dim) ** 0.5)
        if strength is not None:
            parts.append(strength.reshape(-1, 1) * self.strength_weight ** 0.5)
        return torch.cat(parts, dim=1)

    def unlike_training(self, audio: torch.Tensor) -> torch.Tensor:
        """(N,) bool: clips farther from every stored clip than any stored clip is from its
        nearest other one (mean squared standardised E(A) distance); see the module doc."""
        import numpy as np

        from .knn_arrays import unlike_training

        return torch.as_tensor(unlike_training(
            audio.detach().cpu().numpy(), self.audio_mean.cpu().numpy(), self.audio_std.cpu().numpy(),
            self._audio_range()), dtype=torch.bool)

    def _audio_range(self) -> tuple:
        if getattr(self, "_range", None) is None:
            from .knn_arrays import stored_clip_range

            self._range = stored_clip_range(self.audio.cpu().numpy(), self.audio_mean.cpu().numpy(),
                                            self.audio_std.cpu().numpy())
        return self._range

    def neighbours(self, style: torch.Tensor, audio: torch.Tensor,
                   strength: torch.Tensor | None = None, among: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, k) indices of the nearest stored records and their distances; `among` (R,) bool
        restricts the search to those records (k shrinks to their number)."""
        if self.n_records == 0:
            raise DeltaV2AError("knn controller holds no records: fit it on a database first")
        use_strength = (strength is not None and self.strength.numel() == self.n_records
                        and self.strength_weight > 0)
        bank = self._features(self.style, self.audio, self.strength if use_strength else None)
        unlike = (self.unlike_training(audio) if self.audio_weight > 0
                  else torch.zeros(style.shape[0], dtype=torch.bool))
        if bool(unlike.any()):
            bank_na = self._features(self.style, self.audio, self.strength if use_strength else None,
                                     with_audio=False)
        pool = self.n_records if among is None else int(among.sum())
        if pool == 0:
            raise DeltaV2AError("knn: no stored record to search among")
        k = min(self.k, pool)
        idx, dist = [], []
        for i in range(0, style.shape[0], QUERY_CHUNK):
            sl = slice(i, i + QUERY_CHUNK)
            q = self._features(style[sl], audio[sl], strength[sl] if use_strength else None)
            d = torch.cdist(q, bank)
            u = unlike[sl]
            if bool(u.any()):  # clips unlike every stored one: no audio term (module doc)
                qa = self._features(style[sl][u], audio[sl][u], strength[sl][u] if use_strength else None,
                                    with_audio=False)
                d[u] = torch.cdist(qa, bank_na)
            if among is not None:
                d = d.masked_fill(~among[None, :], float("inf"))
            # ties broken by record order, so results do not depend on the chunking
            vals, ids = torch.topk(d, k, dim=1, largest=False, sorted=True)
            idx.append(ids)
            dist.append(vals)
        return torch.cat(idx), torch.cat(dist)

    def predict_batch(self, style: torch.Tensor, audio: torch.Tensor,
                      strength: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if strength is None and self.n_records and style.shape[1] == self.style.shape[1] + 1:
            # a strength-input model gets label + strength as one input (controller.with_strength)
            style, strength = style[:, :-1], style[:, -1]
        if style.shape[0] == 0:
            return (style.new_zeros((0, self.layout.n_effects)),
                    style.new_zeros((0, self.layout.n_params)))
        idx, _ = self.neighbours(style, audio, strength)
        activity = self.active[idx].mean(dim=1)      # (N, E): the k neighbours' vote
        if self.params_from == "head":
            return activity, self._head_params(style, strength)
        # each effect's parameters: the mean over the k nearest records that HAVE that effect
        # (decision 9.34), not over the few of the k overall neighbours that happen to have it
        params = self.bypass[None, :].repeat(style.shape[0], 1)
        has = self.active > 0.5
        for e in range(self.layout.n_effects):
            cols = (self.param_effect == e).nonzero(as_tuple=True)[0]
            if cols.numel() == 0 or not bool(has[:, e].any()):
                continue
            ids, _ = self.neighbours(style, audio, strength, among=has[:, e])
            params[:, cols] = self.params[ids][:, :, cols].mean(dim=1)
        return activity, params

    def _head_params(self, style: torch.Tensor, strength: torch.Tensor | None) -> torch.Tensor:
        """(N, P) parameters from the learned head (`params_from: head`); an effect no stored
        record has stays at bypass, as with the neighbours' mean."""
        from .knn_head import HEAD_TENSORS, head_forward_torch

        if strength is None or self.strength.numel() != self.n_records:
            raise DeltaV2AError("knn: params_from 'head' needs a strength with each query and stored records "
                                "with a strength")
        out = head_forward_torch({n: getattr(self, n) for n in HEAD_TENSORS}, style, strength.to(style.dtype))
        seen = (self.active > 0.5).any(dim=0)[self.param_effect]
        return torch.where(seen[None, :], out.to(style.dtype), self.bypass[None, :].to(style.dtype))
