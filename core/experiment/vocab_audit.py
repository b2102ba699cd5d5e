"""What a vocabulary means to an encoder pair: the vocabulary audit (issue 16).

The transfer is only as good as the bridge: an image edit's label can be matched only if
some audio edit produces the same words. This module measures, before any training:

- per modality, an effect x term matrix: the mean style label of every effect at several
  intensities over a set of media (and pooled over the intensities), with its top terms
  and entropy;
- per term, the largest mass any (effect, intensity) gives it in each modality, so terms
  one side produces and the other can never reach show up;
- sink terms: terms in the top-k reading of more than a set share of a modality's effects
  (a sink cannot tell those effects apart);
- the oracle agreement: for sampled image edits (photo, effect, intensity) and clips, the
  best single audio effect x intensity by centred label cosine. No controller can do better
  with one effect, so this is the ceiling the vocabulary and encoders leave it.

Labels are the uncalibrated `style_labels` of (E(x), E(x')) at one temperature for both
sides (the database temperature by default): the audit asks what the words mean, not how
confident a calibration makes them. The encoders' media vectors do not depend on the
vocabulary, so `audit_from_embeddings` re-reads the same embeddings against other term
embeddings cheaply (that is how a lexicon is reviewed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import DeltaV2AError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL.Image import Image as PILImage

    from ..render.settings import EffectSetting

DEFAULT_INTENSITIES = (0.35, 0.6, 0.9)


@dataclass
class EffectEmbeddings:
    """One modality's embeddings: the originals and every effect x intensity edit of them."""

    modality: str
    encoder: dict                # {"name", "fingerprint"}
    effects: list[str]
    intensities: list[float]
    before: "np.ndarray"         # (N, D)
    after: "np.ndarray"          # (E, I, N, D)

    def labels(self, V: "np.ndarray", temperature: float) -> "np.ndarray":
        """(E, I, N, K) style labels of every edit."""
        import numpy as np

        from ..style.label import style_labels

        E, I, N, D = self.after.shape
        before = np.broadcast_to(self.before[None, None], self.after.shape).reshape(-1, D)
        lab, _ = style_labels(before, self.after.reshape(-1, D), V, temperature)
        return lab.reshape(E, I, N, V.shape[0]).astype(np.float64)


def embed_image_effects(encoder: Any, images: "Sequence[PILImage]", effects: Sequence[str],
                        intensities: Sequence[float], seed: int = 0,
                        progress: Callable[[], None] | None = None) -> EffectEmbeddings:
    import numpy as np

    from ..api.registry import get

    if not images:
        raise DeltaV2AError("vocabulary audit: no images")
    before = np.asarray(encoder.encode_images(list(images)), dtype=np.float32)
    after = np.empty((len(effects), len(intensities), *before.shape), dtype=np.float32)
    for e, name in enumerate(effects):
        fx = get("image_effect", name)()
        for i, x in enumerate(intensities):
            edited = [fx.apply(im, float(x), seed=seed + n) for n, im in enumerate(images)]
            after[e, i] = encoder.encode_images(edited)
            if progress:
                progress()
    return EffectEmbeddings("image", {"name": encoder.name, "fingerprint": encoder.fingerprint()},
                            list(effects), [float(x) for x in intensities], before, after)


DOWN = ":down"
PAIR = "+"


def params_down_at_intensity(cls: Any, intensity: float) -> dict[str, float] | None:
    """The other direction of an effect whose bypass lies inside its range (a speed change).

    `params_at_intensity` moves such a parameter up only (a speed-up); a slow-down means
    something else to a listener (deep, calm rather than thin, agitated), so the audit reads
    it as its own row `<effect>:down`. None when no parameter has a second direction.
    """
    moving = [p for p in cls.params if p.name not in cls.intensity_fixed]
    # two-way only when every moving parameter can go both ways from bypass (one axis, like a
    # rate); an effect with one-way parameters (reverb's wet level) has one meaningful direction
    if not moving or not all(0.0 < p.bypass_normalised < 1.0 for p in moving):
        return None
    out = {p.name: p.default for p in cls.params if p.name in cls.intensity_fixed}
    for p in moving:
        ub = p.bypass_normalised
        end = 0.0 if ub <= 0.5 else 1.0
        out[p.name] = p.denormalise(ub + float(intensity) * (end - ub))
    return out


def audio_effect_rows(effects: Sequence[str]) -> list[str]:
    """The audited audio rows: every effect, plus `<effect>:down` for two-way effects."""
    from ..api.registry import get

    rows = []
    for name in effects:
        rows.append(name)
        if params_down_at_intensity(get("audio_effect", name), 0.5) is not None:
            rows.append(name + DOWN)
    return rows


def _setting(row: str, intensity: float) -> "EffectSetting":
    from ..render.chain import EffectSetting
    from ..api.registry import get

    name = row[: -len(DOWN)] if row.endswith(DOWN) else row
    cls = get("audio_effect", name)
    params = params_down_at_intensity(cls, intensity) if row.endswith(DOWN) else cls.params_at_intensity(intensity)
    if params is None:
        raise DeltaV2AError(f"vocabulary audit: audio effect '{name}' has no second direction")
    return EffectSetting(name, params)


def pair_rows(rows: Sequence[str]) -> list[str]:
    """`a+b` for every two rows of different effects (a speed-up never meets a slow-down)."""
    base = [r.split(":")[0] for r in rows]
    return [f"{rows[i]}{PAIR}{rows[j]}" for i in range(len(rows)) for j in range(i + 1, len(rows))
            if base[i] != base[j]]


def embed_audio_effects(encoder: Any, clips: "Sequence[np.ndarray]", sample_rate: int,
                        effects: Sequence[str], intensities: Sequence[float],
                        progress: Callable[[], None] | None = None,
                        chain_order: Sequence[str] | None = None) -> EffectEmbeddings:
    """Tails are cut, so A and A' have the same length (as in the sensitivity sweep).

    `effects` may hold `<effect>:down` rows (see `audio_effect_rows`) and `a+b` pairs, both
    at the same intensity, rendered in `chain_order`.
    """
    import numpy as np

    from ..render.chain import AudioChain, ChainSettings

    if not clips:
        raise DeltaV2AError("vocabulary audit: no audio clips")
    before = np.asarray(encoder.encode_audio(list(clips), sample_rate), dtype=np.float32)
    after = np.empty((len(effects), len(intensities), *before.shape), dtype=np.float32)
    for e, row in enumerate(effects):
        for i, x in enumerate(intensities):
            chain = AudioChain(ChainSettings([_setting(part, float(x)) for part in row.split(PAIR)]), order=chain_order, tail="cut")
            after[e, i] = encoder.encode_audio([chain.render(c, sample_rate).audio for c in clips], sample_rate)
            if progress:
                progress()
    return EffectEmbeddings("audio", {"name": encoder.name, "fingerprint": encoder.fingerprint()},
                            list(effects), [float(x) for x in intensities], before, after)


def _top(label: "np.ndarray", terms: Sequence[str], k: int) -> list[list]:
    from ..style.label import top_terms

    return [[t, round(m, 4)] for t, m in top_terms(label, terms, k)]


def modality_matrix(labels: "np.ndarray", emb: EffectEmbeddings, terms: Sequence[str],
                    top_k: int = 3) -> dict:
    """Mean label per effect x intensity and pooled over intensities, top terms, entropy."""
    from ..style.label import entropy_bits

    out: dict[str, Any] = {}
    for e, name in enumerate(emb.effects):
        per = {}
        for i, x in enumerate(emb.intensities):
            m = labels[e, i].mean(axis=0)
            per[f"{x:g}"] = {"label": [round(float(v), 6) for v in m], "top": _top(m, terms, top_k),
                             "entropy_bits": float(entropy_bits(m))}
        pooled = labels[e].reshape(-1, labels.shape[-1]).mean(axis=0)
        out[name] = {"intensities": per, "label": [round(float(v), 6) for v in pooled],
                     "top": _top(pooled, terms, top_k), "entropy_bits": float(entropy_bits(pooled))}
    return out


def term_reach(labels: "np.ndarray", emb: EffectEmbeddings, terms: Sequence[str]) -> dict:
    """Per term: the largest mean mass any effect x intensity gives it, and where."""
    mean = labels.mean(axis=2)  # (E, I, K)
    out = {}
    for k, t in enumerate(terms):
        e, i = divmod(int(mean[:, :, k].argmax()), mean.shape[1])
        out[t] = {"max_mass": float(mean[e, i, k]), "effect": emb.effects[e], "intensity": emb.intensities[i]}
    return out


def readings(matrix: dict, top_k: int, min_mass: float = 0.0) -> dict[str, list[str]]:
    """term -> the effects whose pooled top-k reading holds it with at least `min_mass`.

    A term at 0.02 in second place is not what an effect "reads as" (a bit-crushed clip is
    granular at 0.97 and nothing else); `min_mass` leaves such tails out.
    """
    counts: dict[str, list[str]] = {}
    for name, row in matrix.items():
        for term, mass in row["top"][:top_k]:
            if mass >= min_mass:
                counts.setdefault(term, []).append(name)
    return counts


def sink_terms(matrix: dict, top_k: int, share: float, min_mass: float = 0.0) -> dict:
    """Terms in the top-k pooled reading (mass >= min_mass) of more than `share` of the effects."""
    counts = readings(matrix, top_k, min_mass)
    limit = share * len(matrix)
    return {t: effs for t, effs in sorted(counts.items(), key=lambda kv: -len(kv[1])) if len(effs) > limit}


def oracle_agreement(img_labels: "np.ndarray", aud_labels: "np.ndarray", img: EffectEmbeddings,
                     aud: EffectEmbeddings, n_pairs: int, seed: int) -> dict:
    """For sampled (photo, image effect, intensity, clip): the best single audio effect x intensity.

    The best is chosen per pair by centred cosine with the image label (labels minus 1/K:
    which terms each side pushes up or down), then scored with `diagnostics.agreement`.
    """
    import numpy as np

    from .diagnostics import agreement

    E, I, N, K = img_labels.shape
    Ea, Ia, M, _ = aud_labels.shape
    rng = np.random.default_rng(seed)
    cand = aud_labels.transpose(2, 0, 1, 3).reshape(M, Ea * Ia, K) - 1.0 / K
    cand /= np.maximum(np.linalg.norm(cand, axis=2, keepdims=True), 1e-12)
    chosen_img, chosen_aud, rows = [], [], []
    for _ in range(n_pairs):
        n, e, i, m = (int(rng.integers(N)), int(rng.integers(E)), int(rng.integers(I)), int(rng.integers(M)))
        lab = img_labels[e, i, n]
        c = lab - 1.0 / K
        c = c / max(float(np.linalg.norm(c)), 1e-12)
        scores = cand[m] @ c
        best = int(scores.argmax())
        be, bi = divmod(best, Ia)
        chosen_img.append(lab)
        chosen_aud.append(aud_labels[be, bi, m])
        rows.append({"image_effect": img.effects[e], "image_intensity": img.intensities[i], "image_item": n,
                     "clip": m, "audio_effect": aud.effects[be], "audio_intensity": aud.intensities[bi],
                     "centred_cosine": float(scores[best])})
    res = agreement(np.stack(chosen_img), np.stack(chosen_aud))
    best_for: dict[str, dict[str, int]] = {}
    for r in rows:
        d = best_for.setdefault(r["image_effect"], {})
        d[r["audio_effect"]] = d.get(r["audio_effect"], 0) + 1
    return {**res, "n_pairs": n_pairs, "seed": seed, "best_audio_effect_per_image_effect": best_for,
            "pairs": rows}


def audit_from_embeddings(img: EffectEmbeddings, aud: EffectEmbeddings, V_img: "np.ndarray",
                          V_aud: "np.ndarray", terms: Sequence[str], temperature: float, *,
                          top_k: int = 2, sink_share: float = 0.3, reach_mass: float = 0.3,
                          min_mass: float = 0.05, n_pairs: int = 30, seed: int = 0,
                          pairs: EffectEmbeddings | None = None) -> dict:
    """The whole audit from embeddings and term embeddings (see the module docstring).

    `encoders` in the result names the encoders that made the embeddings; a caller that reads
    them against another lexicon's term embeddings should name those encoders instead.
    """
    terms = list(terms)
    Li, La = img.labels(V_img, temperature), aud.labels(V_aud, temperature)
    mat = {"image": modality_matrix(Li, img, terms), "audio": modality_matrix(La, aud, terms)}
    reach = {"image": term_reach(Li, img, terms), "audio": term_reach(La, aud, terms)}
    sinks = {m: sink_terms(mat[m], top_k, sink_share, min_mass) for m in mat}
    image_words = sorted(readings(mat["image"], top_k, min_mass))
    reach_any = dict(reach["audio"])
    if pairs is not None:  # chains of two effects: reach only (the oracle stays single-effect)
        reach["audio_pairs"] = term_reach(pairs.labels(V_aud, temperature), pairs, terms)
        reach_any = {t: max(reach["audio"][t], reach["audio_pairs"][t], key=lambda r: r["max_mass"])
                     for t in terms}
    unreachable = [t for t in image_words if reach_any[t]["max_mass"] < reach_mass]
    oracle = oracle_agreement(Li, La, img, aud, n_pairs, seed)
    return {
        "format": "deltav2a-vocab-audit", "version": 1, "terms": terms, "temperature": temperature,
        "top_k": top_k, "sink_share": sink_share, "reach_mass": reach_mass, "min_mass": min_mass,
        "encoders": {"image": img.encoder, "audio": aud.encoder},
        "intensities": {"image": img.intensities, "audio": aud.intensities},
        "items": {"image": int(img.before.shape[0]), "audio": int(aud.before.shape[0])},
        "matrix": mat, "reach": reach, "sinks": sinks,
        "image_top_terms": image_words, "unreachable_on_audio": unreachable,
        "oracle": oracle,
        "checks": {
            "max_audio_effects_per_top_term": max((len(v) for v in readings(mat["audio"], top_k, min_mass).values()),
                                                  default=0),
            "no_audio_sink": not sinks["audio"],
            "image_terms_reachable_on_audio": not unreachable,
            "oracle_mean_cosine": oracle["mean_cosine"],
        },
    }


# ---------------------------------------------------------------- outputs


def markdown(result: dict) -> str:
    """The issue-16 style table (effect -> top terms, per modality) plus reach, sinks, oracle."""
    k = result["top_k"]
    img, aud = result["matrix"]["image"], result["matrix"]["audio"]
    enc = result["encoders"]
    lines = ["# Vocabulary audit", "",
             f"Encoders: image `{enc['image']['name']}` ({enc['image']['fingerprint']}), audio "
             f"`{enc['audio']['name']}` ({enc['audio']['fingerprint']}); {len(result['terms'])} terms; "
             f"temperature {result['temperature']:g}; {result['items']['image']} images, "
             f"{result['items']['audio']} clips; intensities image {result['intensities']['image']}, "
             f"audio {result['intensities']['audio']}.", "",
             f"## Top-{k} reading per effect (mean label over media and intensities)", "",
             "| audio effect | reads as | entropy (bits) | image effect | reads as | entropy (bits) |",
             "|---|---|---|---|---|---|"]

    def cell(row):
        return ", ".join(f"{t} {m:.2f}" for t, m in row["top"][:k])

    names_a, names_i = list(aud), list(img)
    for j in range(max(len(names_a), len(names_i))):
        a = names_a[j] if j < len(names_a) else None
        i = names_i[j] if j < len(names_i) else None
        lines.append("| " + " | ".join([
            a or "", cell(aud[a]) if a else "", f"{aud[a]['entropy_bits']:.2f}" if a else "",
            i or "", cell(img[i]) if i else "", f"{img[i]['entropy_bits']:.2f}" if i else ""]) + " |")
    lines += ["", "## Per intensity", ""]
    for modality, mat in (("audio", aud), ("image", img)):
        xs = result["intensities"][modality]
        lines += [f"| {modality} effect | " + " | ".join(f"{x:g}" for x in xs) + " |", "|---" * (len(xs) + 1) + "|"]
        for name, row in mat.items():
            lines.append(f"| {name} | " + " | ".join(
                ", ".join(f"{t} {m:.2f}" for t, m in row["intensities"][f"{x:g}"]["top"][:k]) for x in xs) + " |")
        lines.append("")
    pairs = "audio_pairs" in result["reach"]
    lines += ["## Reach: the largest mass any effect x intensity gives each term", "",
              "| term | image max | by | audio max | by |" + (" two-effect chain max | by |" if pairs else ""),
              "|---|---|---|---|---|" + ("---|---|" if pairs else "")]
    for t in result["terms"]:
        ri, ra = result["reach"]["image"][t], result["reach"]["audio"][t]
        mark = " **unreachable on audio**" if t in result["unreachable_on_audio"] else ""
        row = (f"| {t}{mark} | {ri['max_mass']:.2f} | {ri['effect']}@{ri['intensity']:g} | "
               f"{ra['max_mass']:.2f} | {ra['effect']}@{ra['intensity']:g} |")
        if pairs:
            rp = result["reach"]["audio_pairs"][t]
            row += f" {rp['max_mass']:.2f} | {rp['effect']}@{rp['intensity']:g} |"
        lines.append(row)
    lines += ["", f"Terms read by image effects (top-{k}, mass ≥ {result['min_mass']:g}) that no audio edit "
              f"gives ≥ {result['reach_mass']:g}: " + (", ".join(result["unreachable_on_audio"]) or "none") + ".",
              "", f"## Sink terms (top-{k} with mass ≥ {result['min_mass']:g} of more than "
              f"{result['sink_share']:.0%} of effects)", ""]
    for modality in ("audio", "image"):
        s = result["sinks"][modality]
        lines.append(f"- {modality}: " + ("; ".join(f"{t} ({', '.join(e)})" for t, e in s.items()) or "none"))
    o = result["oracle"]
    lines += ["", "## Oracle single-effect agreement", "",
              f"{o['n_pairs']} sampled (photo, image effect, intensity, clip) pairs, seed {o['seed']}: the best "
              "single audio effect x intensity per pair by centred label cosine.", "",
              "| mean centred cosine | top-1 agreement | raw cosine |", "|---|---|---|",
              f"| {o['mean_cosine']:.3f} | {o['top1_agreement']:.3f} | {o['mean_cosine_raw']:.3f} |", "",
              "| image effect | best audio effects (pairs) |", "|---|---|"]
    for e, d in o["best_audio_effect_per_image_effect"].items():
        lines.append(f"| {e} | " + ", ".join(f"{a} {n}" for a, n in sorted(d.items(), key=lambda kv: -kv[1])) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    """Heatmaps: pooled effect x term matrix per modality, same colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..atomic import atomic_path

    terms = result["terms"]
    mats = {m: np.array([row["label"] for row in result["matrix"][m].values()]) for m in ("image", "audio")}
    vmax = max(float(m.max()) for m in mats.values())
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, 0.45 * len(terms) + 2), 7.5), squeeze=False)
    for ax, (m, M) in zip(axes[:, 0], mats.items()):
        im = ax.imshow(M, aspect="auto", cmap="magma", vmin=0, vmax=vmax)
        ax.set_yticks(range(len(M)), list(result["matrix"][m]))
        ax.set_xticks(range(len(terms)), terms, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{m}: {result['encoders'][m]['name']} (mean label, pooled over intensities)")
        fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_outputs(result: dict, out: Path) -> list[Path]:
    from ..atomic import write_json, write_text

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "vocab_audit.json", out / "vocab_audit.md", out / "vocab_audit.png"]
    write_json(paths[0], result)
    write_text(paths[1], markdown(result))
    plot(result, paths[2])
    return paths


# ---------------------------------------------------------------- driver


def generated_media(n_images: int, n_clips: int, seconds: float, sample_rate: int, seed: int):
    """Small synthetic photos and grooves (core/examples) when no folders are given."""
    from ..media.examples import groove, landscape_image

    images = [landscape_image(192, 144, seed=seed + i) for i in range(n_images)]
    clips = [groove(seconds, sample_rate, seed=1000 + seed + 10 * i) for i in range(n_clips)]
    return images, clips


def run_audit(cfg: Any, *, vocabulary: str | None = None, image_files: Sequence[Path] | None = None,
              audio_files: Sequence[Path] | None = None, intensities: Sequence[float] = DEFAULT_INTENSITIES,
              temperature: float | None = None, top_k: int = 2, sink_share: float = 0.3,
              reach_mass: float = 0.3, min_mass: float = 0.05, n_pairs: int = 30, seed: int | None = None,
              chains: bool = False, generated: tuple[int, int, float] = (4, 3, 4.0),
              progress: bool = False) -> dict:
    """Encode the media with the config's encoders and audit `vocabulary` (default: the config's).

    Without files, `generated` = (images, clips, seconds) synthetic media are used. With
    `chains`, every two-effect chain (both at the same intensity) is also audited for reach.
    """
    from tqdm import tqdm

    from ..style.encoding import load_encoder, term_embeddings
    from ..media.io import load_image
    from ..style.pairs import load_clip
    from ..style.vocab import load_vocabulary

    seed = cfg.seed if seed is None else seed
    voc = load_vocabulary(vocabulary or cfg.vocabulary)
    ienc = load_encoder(cfg.encoders.image, "image")
    aenc = load_encoder(cfg.encoders.audio, "audio")
    sr = cfg.audio.sample_rate
    gen_images, gen_clips = (generated_media(generated[0], generated[1], generated[2], sr, seed)
                             if not image_files or not audio_files else ([], []))
    images = [load_image(p) for p in image_files] if image_files else gen_images
    clips = [load_clip(p, cfg) for p in audio_files] if audio_files else gen_clips
    rows = audio_effect_rows(cfg.effects.audio)
    two = pair_rows(rows) if chains else []
    total = len(intensities) * (len(cfg.effects.image) + len(rows) + len(two))
    order = cfg.effects.chain_order
    with tqdm(total=total, desc="vocab audit", unit="cell", disable=not progress) as bar:
        img = embed_image_effects(ienc, images, cfg.effects.image, intensities, seed, bar.update)
        aud = embed_audio_effects(aenc, clips, sr, rows, intensities, bar.update, order)
        pairs = embed_audio_effects(aenc, clips, sr, two, intensities, bar.update, order) if two else None
    V_img = term_embeddings(ienc, voc, "image")
    V_aud = term_embeddings(aenc, voc, "audio")
    T = cfg.database.temperature if temperature is None else temperature
    result = audit_from_embeddings(img, aud, V_img, V_aud, voc.terms, T, top_k=top_k, sink_share=sink_share,
                                   reach_mass=reach_mass, min_mass=min_mass, n_pairs=n_pairs, seed=seed,
                                   pairs=pairs)
    result["vocabulary"] = {"name": voc.name, "fingerprint": voc.fingerprint()}
    result["media"] = {"images": [str(p) for p in image_files] if image_files else f"{len(images)} generated",
                       "audio": [str(p) for p in audio_files] if audio_files else f"{len(clips)} generated"}
    return result


def run_stage(cfg: Any, image_files: Sequence[Path], clip_files: Sequence[Path], out: Path,
              items: int, seed: int) -> dict:
    """The audit as a `run` stage: at most `items` held-out photos and test clips (seeded);
    writes the full outputs to `out` and returns the summary the run report shows."""
    import random

    rng = random.Random(seed)
    imgs = sorted(rng.sample(list(image_files), min(items, len(image_files))))
    clips = sorted(rng.sample(list(clip_files), min(items, len(clip_files))))
    r = run_audit(cfg, image_files=imgs, audio_files=clips, seed=seed)
    write_outputs(r, out)
    k = r["top_k"]
    return {"dir": str(out), "items": r["items"], "temperature": r["temperature"],
            "readings": {m: {e: row["top"][:k] for e, row in r["matrix"][m].items()} for m in ("image", "audio")},
            "sinks": r["sinks"], "unreachable_on_audio": r["unreachable_on_audio"],
            "oracle": {key: r["oracle"][key] for key in ("mean_cosine", "top1_agreement", "n_pairs")}}
