"""`decoder` (Phase 3 of the pipeline note): from an image-effect description to DSP parameters.

Training data. For each clip of the audio extract, `samples_per_clip` random draws: an
(image effect, audio effect) pair from the discovery matrix (by default each image
effect's best audio effect), a description of the image effect (a random synonym in a
random condition template, e.g. "a blurry photo"), a strength x ~ U(min_strength, 1) and
random DSP parameters P for the audio effect: each parameter moves from bypass toward the
far end of its normalised range by x (the `params_at_intensity` curve) plus Gaussian
jitter; parameters that have no "stronger" direction (`intensity_fixed`) are drawn
uniformly. The other effects of the layout stay at bypass, so the decoder predicts a whole
chain setting. A_aug = DSP(A_raw, P) is rendered only where it is used: in validation.

Why a strength input. The note's decoder sees E(A_raw) and the text condition only, but P
is random, so without a signal of "how much" the best possible answer is the mean setting
of the effect, and the perceptual text encoder treats intensifiers ("very", "slightly") as
neutral by design. The condition is therefore [E_text(description), x]: the text says which
effect, x how strongly (at inference, the image edit's intensity). This is stated wherever
the decoder is saved; `use_strength: false` trains the note's text-only decoder, for
comparison (docs/analysis.md has both results).

Model: the audio embedding becomes `audio_tokens` tokens, the condition `condition_tokens`
tokens (linear maps); the audio tokens attend to the condition tokens (cross-attention,
residual, LayerNorm) and an MLP regresses all normalised parameters (sigmoid). Loss MSE,
AdamW; the epoch with the lowest validation MSE is kept. Clips are split by group
(`track_id` when the manifest has one), so clips of one track never sit on both sides.

Validation by re-rendering: for up to `val_render_limit` validation samples, A_raw is
rendered with the predicted parameters, with the true ones (the target) and with the
training mean (baseline), all through the full chain with tails cut; the distance is the
mean absolute difference of the log-mel spectrograms (dB, 64 mel bands, 2048/512 STFT,
floored 80 dB below the target's peak). Lower is better; the decoder is useful when it
beats the mean-parameter baseline.

Files (in the output folder): decoder.safetensors + decoder.json (what the weights mean),
training_log.json, parameter_predictions/predictions.json, decoder_curves.png. The weights
pair is written and read by `artifact.py`, like a controller's: header, checksum, sizes and
shapes checked before allocation, NaN/Inf refused.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..artifact import Format
from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..api.encoders import Encoder
    from ..model.layout import ParamLayout
    from ..render.settings import ChainSettings
    from .extract import DeltaSet
    from .settings import AnalysisConfig, DecoderSettings

FORMAT = Format("deltav2a-note-decoder", 1, "note decoder", version_key="format_version",
                checksum_key="weights", fingerprint_keys=("encoder.fingerprint",),
                remedy="retrain it with `deltav2a analysis decoder`")
WEIGHTS = "decoder.safetensors"
META = "decoder.json"
LOG = "training_log.json"


# ------------------------------------------------------------------ spectrogram distance


def mel_filterbank(sr: float, n_fft: int, n_mels: int, fmin: float = 20.0, fmax: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, equally spaced on the HTK mel scale."""
    fmax = min(float(fmax or sr / 2), sr / 2)
    mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    fb = np.zeros((n_mels, freqs.size))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / max(c - lo, 1e-9)
        down = (hi - freqs) / max(hi - c, 1e-9)
        fb[m] = np.clip(np.minimum(up, down), 0.0, None)
    return fb


def log_mel(audio: np.ndarray, sr: float, n_fft: int = 2048, hop: int = 512, n_mels: int = 64) -> np.ndarray:
    """(frames, n_mels) power in dB of the mono downmix (Hann window, no centring)."""
    x = np.asarray(audio, dtype=np.float64)
    x = x.mean(axis=0) if x.ndim == 2 else x
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    n_frames = 1 + (x.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft)[None, :], axis=1)) ** 2
    mel = spec @ mel_filterbank(sr, n_fft, n_mels).T
    return 10.0 * np.log10(np.maximum(mel, 1e-12))


def mel_distance(target: np.ndarray, other: np.ndarray, floor_db: float = 80.0) -> float:
    """Mean |log-mel(target) - log-mel(other)| in dB, both floored `floor_db` below the target's peak."""
    n = min(target.shape[0], other.shape[0])
    t, o = target[:n], other[:n]
    floor = float(t.max()) - floor_db
    return float(np.mean(np.abs(np.maximum(t, floor) - np.maximum(o, floor))))


# ------------------------------------------------------------------ training data


@dataclass
class DecoderData:
    """Samples as arrays, plus what each one means."""

    audio: np.ndarray          # (N, Da) E(A_raw)
    condition: np.ndarray      # (N, Dt + 1) [E_text(description), strength] (Dt without strength)
    target: np.ndarray         # (N, P) normalised parameters, layout order
    clip: np.ndarray           # (N,) index into `items`
    strength: np.ndarray       # (N,)
    pair: list[tuple[str, str]]
    sentence: list[str]
    val: np.ndarray            # (N,) bool
    items: list[str]
    groups: list[str]
    conditions: dict[str, list[str]] = field(default_factory=dict)


def choose_pairs(matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], pairing: str
                 ) -> list[tuple[str, str, float]]:
    """(image effect, audio effect, score) pairs the decoder is trained on."""
    pairs = []
    for i, r in enumerate(rows):
        if pairing == "all_positive":
            js = [j for j in range(len(cols)) if matrix[i, j] > 0] or [int(np.argmax(matrix[i]))]
        else:
            js = [int(np.argmax(matrix[i]))]
        pairs += [(r, cols[j], float(matrix[i, j])) for j in js]
    return pairs


def condition_bank(reader: Any, synonyms: dict[str, list[str]], templates: Sequence[str]
                   ) -> tuple[dict[str, list[tuple[str, np.ndarray]]], list[str]]:
    """image effect -> [(sentence, unit text vector)]; sentences without a direction are dropped."""
    texts = {e: [t.format(synonym=s) for s in syns for t in templates] for e, syns in synonyms.items()}
    reader.encode([x for v in texts.values() for x in v])
    bank, dropped = {}, []
    for e, sentences in texts.items():
        keep = []
        for s in dict.fromkeys(sentences):
            v = reader[s]
            n = float(np.linalg.norm(v)) if v is not None else 0.0
            if n > 1e-9:
                keep.append((s, (v / n).astype(np.float32)))
            else:
                dropped.append(s)
        bank[e] = keep
    return bank, dropped


def target_params(layout: "ParamLayout", effect: str, strength: float, rng: np.random.Generator,
                  jitter: float) -> np.ndarray:
    """Normalised parameters: `effect` at `strength` along its intensity curve (+ jitter), rest at bypass."""
    from ..api.registry import get

    out = layout.bypass_array().astype(np.float64)
    fixed = set(getattr(get("audio_effect", effect), "intensity_fixed", ()))
    for j in layout.effect_params(effect):
        p = layout.params[j]
        if p.name in fixed:
            out[j] = rng.uniform(0.0, 1.0)
            continue
        ub = p.bypass_normalised
        end = 1.0 if ub <= 0.5 else 0.0
        out[j] = float(np.clip(ub + strength * (end - ub) + rng.normal(0.0, jitter), 0.0, 1.0))
    return out.astype(np.float32)


def split_groups(groups: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The validation groups: a seeded `fraction` of the distinct groups (at least one each side)."""
    uniq = sorted(set(groups))
    if len(uniq) < 2:
        raise DeltaV2AError(f"the decoder needs clips from at least 2 groups to validate, got {len(uniq)}")
    rng = np.random.default_rng([seed, 7])
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    n_val = min(len(uniq) - 1, max(1, int(round(fraction * len(uniq)))))
    return set(order[:n_val])


def build_data(aud: "DeltaSet", layout: "ParamLayout", pairs: Sequence[tuple[str, str, float]],
               bank: dict[str, list[tuple[str, np.ndarray]]], s: "DecoderSettings", seed: int) -> DecoderData:
    """Random DSP draws per clip of the audio extract (see the module docstring)."""
    first = aud.select(aud.effects[0], aud.labels[0])
    items = aud.item[first].tolist()
    groups = aud.group[first].tolist()
    originals = aud.original[first].astype(np.float32)
    usable = [(i, a) for i, a, _ in pairs if bank.get(i)]
    if not usable:
        raise DeltaV2AError("no (image effect, audio effect) pair has a usable text condition")
    val_groups = split_groups(groups, s.val_fraction, seed)
    rng = np.random.default_rng([seed, 11])
    A, C, T, clip, strength, pair, sentence, val = [], [], [], [], [], [], [], []
    for k in range(len(items)):
        for _ in range(s.samples_per_clip):
            img_e, aud_e = usable[int(rng.integers(len(usable)))]
            text, vec = bank[img_e][int(rng.integers(len(bank[img_e])))]
            x = float(rng.uniform(s.min_strength, 1.0))
            A.append(originals[k])
            C.append(np.concatenate([vec, np.float32([x])]) if s.use_strength else vec)
            T.append(target_params(layout, aud_e, x, rng, s.param_jitter))
            clip.append(k)
            strength.append(x)
            pair.append((img_e, aud_e))
            sentence.append(text)
            val.append(groups[k] in val_groups)
    return DecoderData(np.stack(A), np.stack(C).astype(np.float32), np.stack(T), np.asarray(clip),
                       np.asarray(strength), pair, sentence, np.asarray(val), items, groups,
                       {e: [t for t, _ in v] for e, v in bank.items()})


# ------------------------------------------------------------------ model


def build_model(audio_dim: int, cond_dim: int, n_params: int, s: "DecoderSettings") -> "torch.nn.Module":
    import torch
    from torch import nn

    class NoteDecoder(nn.Module):
        """Audio tokens attend to condition tokens; an MLP maps the result to parameters in [0, 1]."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("audio_mean", torch.zeros(audio_dim))
            self.register_buffer("audio_std", torch.ones(audio_dim))
            self.audio_tokens = nn.Linear(audio_dim, s.audio_tokens * s.d_model)
            self.cond_tokens = nn.Linear(cond_dim, s.condition_tokens * s.d_model)
            self.attn = nn.MultiheadAttention(s.d_model, s.heads, dropout=s.dropout, batch_first=True)
            self.norm = nn.LayerNorm(s.d_model)
            layers: list[nn.Module] = []
            d = s.audio_tokens * s.d_model
            for h in s.hidden:
                layers += [nn.Linear(d, h), nn.GELU(), nn.Dropout(s.dropout)]
                d = h
            layers.append(nn.Linear(d, n_params))
            self.head = nn.Sequential(*layers)

        def forward(self, audio: "torch.Tensor", cond: "torch.Tensor") -> "torch.Tensor":
            b = audio.shape[0]
            a = (audio - self.audio_mean) / self.audio_std
            q = self.audio_tokens(a).view(b, s.audio_tokens, s.d_model)
            kv = self.cond_tokens(cond).view(b, s.condition_tokens, s.d_model)
            att, _ = self.attn(q, kv, kv, need_weights=False)
            h = self.norm(q + att)
            return torch.sigmoid(self.head(h.flatten(1)))

    return NoteDecoder()


def _predict(model: "torch.nn.Module", audio: np.ndarray, cond: np.ndarray, batch: int = 4096) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(audio), batch):
            a = torch.from_numpy(np.array(audio[i: i + batch], dtype=np.float32))  # copies: inputs may be read-only
            c = torch.from_numpy(np.array(cond[i: i + batch], dtype=np.float32))
            out.append(model(a, c).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def train(data: DecoderData, n_params: int, s: "DecoderSettings", seed: int,
          progress: Callable[[dict], None] | None = None) -> tuple["torch.nn.Module", list[dict], int]:
    """AdamW on MSE; returns the best-validation-epoch model, the per-epoch log and that epoch."""
    import torch

    tr, va = ~data.val, data.val
    if not tr.any() or not va.any():
        raise DeltaV2AError("the decoder needs both training and validation samples")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(data.audio.shape[1], data.condition.shape[1], n_params, s)
        mu = data.audio[tr].mean(axis=0)
        sd = data.audio[tr].std(axis=0)
        model.audio_mean.copy_(torch.from_numpy(mu))
        model.audio_std.copy_(torch.from_numpy(np.where(sd > 1e-6, sd, 1.0).astype(np.float32)))
        opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        A, C, T = (torch.from_numpy(x[tr]) for x in (data.audio, data.condition, data.target))
        gen = torch.Generator().manual_seed(seed)
        loss_fn = torch.nn.MSELoss()
        log, best, best_state, best_epoch = [], math.inf, None, 0
        for epoch in range(1, s.epochs + 1):
            model.train()
            perm = torch.randperm(A.shape[0], generator=gen)
            total, seen = 0.0, 0
            for i in range(0, len(perm), s.batch_size):
                idx = perm[i: i + s.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(A[idx], C[idx]), T[idx])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
            pred = _predict(model, data.audio[va], data.condition[va])
            val_mse = float(np.mean((pred - data.target[va]) ** 2))
            row = {"epoch": epoch, "train_mse": total / seen, "val_mse": val_mse}
            log.append(row)
            if val_mse < best:
                best, best_epoch = val_mse, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if progress:
                progress(row)
        model.load_state_dict(best_state)
        model.eval()
    return model, log, best_epoch


# ------------------------------------------------------------------ validation by re-rendering


def render_setting(layout: "ParamLayout", params: np.ndarray, clip: np.ndarray, sr: int) -> np.ndarray:
    from ..render.chain import AudioChain

    chain = AudioChain(layout.to_raw(np.clip(params, 0.0, 1.0)), order=list(layout.effects), tail="cut")
    return chain.render(clip, sr).audio


def spectral_validation(data: DecoderData, pred: np.ndarray, baseline: np.ndarray, layout: "ParamLayout",
                        clips: dict[int, np.ndarray], sr: int, s: "DecoderSettings", limit: int,
                        seed: int) -> tuple[dict, list[dict]]:
    """Log-mel distances to the target render: predicted, mean-parameter baseline, unprocessed."""
    val_idx = np.flatnonzero(data.val)
    rng = np.random.default_rng([seed, 13])
    chosen = np.sort(rng.permutation(val_idx)[:limit])
    rows = []
    for n in chosen:
        k = int(data.clip[n])
        clip = clips[k]
        spec = lambda y: log_mel(y, sr, s.n_fft, s.hop, s.n_mels)  # noqa: E731
        target = spec(render_setting(layout, data.target[n], clip, sr))
        p = pred[np.flatnonzero(val_idx == n)[0]]
        d_pred = mel_distance(target, spec(render_setting(layout, p, clip, sr)), s.floor_db)
        d_base = mel_distance(target, spec(render_setting(layout, baseline, clip, sr)), s.floor_db)
        d_raw = mel_distance(target, spec(clip), s.floor_db)
        rows.append({"item": data.items[k], "image_effect": data.pair[n][0], "audio_effect": data.pair[n][1],
                     "condition": data.sentence[n], "strength": float(data.strength[n]),
                     "target": layout.to_raw(data.target[n]).to_dict(),
                     "predicted": layout.to_raw(np.clip(p, 0, 1)).to_dict(),
                     "distance_db": {"predicted": d_pred, "mean_baseline": d_base, "unprocessed": d_raw}})
    agg = {}
    for key in ("predicted", "mean_baseline", "unprocessed"):
        v = np.array([r["distance_db"][key] for r in rows])
        agg[key] = {"mean": float(v.mean()), "median": float(np.median(v))} if v.size else None
    wins = sum(r["distance_db"]["predicted"] < r["distance_db"]["mean_baseline"] for r in rows)
    summary = {"metric": (f"mean |log-mel(target) - log-mel(render)| in dB ({s.n_mels} mel bands, "
                          f"STFT {s.n_fft}/{s.hop}, floored {s.floor_db:g} dB below the target peak)"),
               "n": len(rows), "distances": agg, "predicted_beats_baseline": int(wins),
               "beats_baseline": bool(rows) and agg["predicted"]["mean"] < agg["mean_baseline"]["mean"]}
    return summary, rows


# ------------------------------------------------------------------ save / load


def save_decoder(folder: Path, model: "torch.nn.Module", meta: dict) -> Path:
    from ..artifact import module_tensors, save_weights

    folder = Path(folder)
    return save_weights(folder / WEIGHTS, folder / META, FORMAT, module_tensors(model), meta)


@dataclass
class LoadedDecoder:
    model: "torch.nn.Module"
    meta: dict
    layout: "ParamLayout"

    def predict(self, audio_embedding: np.ndarray, text_embedding: np.ndarray, strength: float | None = None
                ) -> "ChainSettings":
        """Every effect's raw values for one clip embedding, one condition text embedding and a strength in [0, 1]."""
        uses = bool(self.meta["settings"].get("use_strength", True))
        if uses and strength is None:
            raise DeltaV2AError("this decoder was trained with a strength input: give one in [0, 1]")
        a = np.asarray(audio_embedding, dtype=np.float32).reshape(1, -1)
        t = np.asarray(text_embedding, dtype=np.float64).reshape(-1)
        n = float(np.linalg.norm(t))
        if n <= 1e-9:
            raise DeltaV2AError("the condition text has no direction in the audio encoder's text space")
        c = np.concatenate([t / n, [float(strength)]] if uses else [t / n]).astype(np.float32).reshape(1, -1)
        if a.shape[1] != self.meta["audio_dim"] or c.shape[1] != self.meta["condition_dim"]:
            raise DeltaV2AError(f"decoder expects an audio embedding of {self.meta['audio_dim']} and a condition "
                                f"of {self.meta['condition_dim']} values, got {a.shape[1]} and {c.shape[1]}")
        return self.layout.to_raw(_predict(self.model, a, c)[0])


def load_decoder(folder: str | Path, audio_encoder: "Encoder | None" = None) -> LoadedDecoder:
    """Rebuild a saved decoder; refuses another audio encoder or changed effect parameters."""
    from pydantic import ValidationError

    from ..artifact import load_tensors, meta_shapes, read_json, verify_checksum
    from ..fileio import first_error
    from ..model.layout import ParamLayout
    from ..model.weights import MAX_INPUT_DIM, MAX_PARAMETERS
    from .settings import DecoderSettings

    folder = Path(folder)
    meta_path, weights = folder / META, folder / WEIGHTS
    where = f"decoder {folder}"
    if not meta_path.is_file() or not weights.is_file():
        raise DeltaV2AError(f"no decoder in {folder} (expected {META} and {WEIGHTS})")
    header, meta = read_json(meta_path, FORMAT)
    verify_checksum(header, weights, where, meta_path.name)
    for key in ("audio_dim", "condition_dim"):
        v = meta.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_INPUT_DIM:
            raise DeltaV2AError(f"{where}: {key} must be an integer in 1..{MAX_INPUT_DIM}, got {v!r}")
    if not (isinstance(meta.get("encoder"), dict) and isinstance(meta.get("layout"), dict)):
        raise DeltaV2AError(f"{where}: {META} needs the mappings encoder and layout")
    if audio_encoder is not None and audio_encoder.fingerprint() != meta["encoder"]["fingerprint"]:
        raise DeltaV2AError(f"decoder in {folder} was trained with audio encoder '{meta['encoder']['name']}' "
                            f"(fingerprint {meta['encoder']['fingerprint']}), not '{audio_encoder.name}'")
    layout = ParamLayout.from_names(meta["layout"]["effects"])
    diff = layout.difference(meta["layout"])
    if diff:
        raise DeltaV2AError(f"decoder in {folder} does not match the registered effects: {diff}")
    try:
        s = DecoderSettings.model_validate(meta.get("settings"))
    except ValidationError as exc:
        raise DeltaV2AError(f"{where}: stored settings are invalid: {first_error(exc)}") from None

    def build():
        return build_model(int(meta["audio_dim"]), int(meta["condition_dim"]), layout.n_params, s)

    state = load_tensors(weights, where, max_elements=MAX_PARAMETERS, expected=meta_shapes(build),
                         owner="the decoder")
    model = build()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DeltaV2AError(f"{where}: weights do not fit the decoder ({str(exc).splitlines()[0]})") from None
    model.eval()
    return LoadedDecoder(model, meta, layout)


# ------------------------------------------------------------------ the step


def run_decoder(folder: Path, cfg: "AnalysisConfig", out: Path | None = None,
                log: Callable[[str], None] | None = None) -> dict:
    """Train and validate the decoder from an extract + discover folder."""
    from ..atomic import write_json
    from ..style.encoding import load_encoder
    from ..model.layout import ParamLayout
    from ..style.pairs import load_clip
    from .discover import TextReader
    from .extract import read_deltas, read_manifest
    from .synonyms import load_synonyms

    log = log or (lambda s: None)
    folder = Path(folder)
    out = Path(out) if out is not None else folder / "decoder"
    s = cfg.decoder
    t0 = time.perf_counter()
    aud = read_deltas(folder / "audio_deltas.parquet")
    labels_path, matrix_path = folder / "discovery_labels.json", folder / "discovery_matrix.npy"
    if not labels_path.is_file() or not matrix_path.is_file():
        raise DeltaV2AError(f"no discovery matrix in {folder} (run `deltav2a analysis discover` first)")
    labels = json.loads(labels_path.read_text(encoding="utf-8"))
    matrix = np.load(matrix_path, allow_pickle=False)
    rows, cols = labels["image_effects"], labels["audio_effects"]
    if matrix.shape != (len(rows), len(cols)):
        raise DeltaV2AError(f"{matrix_path} has shape {matrix.shape}, its labels say {len(rows)}x{len(cols)}")
    layout = ParamLayout.from_names(cols)
    encoder = load_encoder(cfg.encoders.audio, "audio")
    plan_fp = (aud.plan.get("encoder") or {}).get("fingerprint")
    if plan_fp and plan_fp != encoder.fingerprint():
        raise DeltaV2AError(f"audio deltas were extracted with another audio encoder "
                            f"('{aud.plan['encoder']['name']}'); use the config of the extract")
    pairs = choose_pairs(matrix, rows, cols, s.pairing)
    table = load_synonyms({"image": rows}, cfg.discover.synonym_paths)
    reader = TextReader(encoder)
    bank, dropped = condition_bank(reader, {r: table.get("image", r) for r in rows}, s.condition_templates)
    data = build_data(aud, layout, pairs, bank, s, cfg.seed)
    log(f"decoder: {int((~data.val).sum())} training / {int(data.val.sum())} validation samples from "
        f"{len(data.items)} clips; pairs {', '.join(f'{a}->{b}' for a, b, _ in pairs)}")
    model, history, best_epoch = train(data, layout.n_params, s, cfg.seed)
    va = data.val
    pred = _predict(model, data.audio[va], data.condition[va])
    baseline = data.target[~va].mean(axis=0)
    val_mse = float(np.mean((pred - data.target[va]) ** 2))
    base_mse = float(np.mean((baseline[None, :] - data.target[va]) ** 2))

    manifest = read_manifest(folder)
    root = Path(((manifest.get("sources") or {}).get("audio") or {}).get("folder", ""))
    needed = sorted({int(data.clip[n]) for n in np.flatnonzero(va)})
    core_cfg = cfg.core_config()
    clips = {}
    for k in needed:
        p = root / data.items[k]
        if not p.is_file():
            raise DeltaV2AError(f"audio clip {data.items[k]} of the extract is not at {p} any more")
        clips[k] = load_clip(p, core_cfg)
    spectral, predictions = spectral_validation(data, pred, baseline, layout, clips, cfg.audio.sample_rate, s,
                                                s.val_render_limit, cfg.seed)
    summary = {"best_epoch": best_epoch, "val_mse": val_mse, "mean_baseline_val_mse": base_mse,
               "n_train": int((~va).sum()), "n_val": int(va.sum()), "spectral": spectral,
               "seconds": round(time.perf_counter() - t0, 2)}
    meta = {
        "settings": s.model_dump(), "seed": cfg.seed, "layout": layout.describe(),
        "audio_dim": int(data.audio.shape[1]), "condition_dim": int(data.condition.shape[1]),
        "condition": ("[unit E_text(description) of the audio encoder, strength in [0, 1]]" if s.use_strength
                      else "unit E_text(description) of the audio encoder"),
        "encoder": {"name": encoder.name, "fingerprint": encoder.fingerprint()},
        "pairs": [{"image_effect": a, "audio_effect": b, "score": sc} for a, b, sc in pairs],
        "conditions": data.conditions, "dropped_conditions": dropped, "summary": summary,
    }
    save_decoder(out, model, meta)
    write_json(out / LOG, {"epochs": history, **summary})
    write_json(out / "parameter_predictions" / "predictions.json", predictions)
    _plot_curves(history, best_epoch, out / "decoder_curves.png")
    return summary


def _plot_curves(history: list[dict], best: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h["train_mse"] for h in history], label="train MSE")
    ax.plot(ep, [h["val_mse"] for h in history], label="validation MSE")
    ax.axvline(best, color="k", ls=":", lw=1, label=f"best epoch {best}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (normalised parameters)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
