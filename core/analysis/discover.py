"""`discover` (Phase 1 of the pipeline note): which image effect corresponds to which audio effect?

Three pieces of evidence, each a cosine, multiplied ("AND" logic, as in the note):

* sim1 = cos(p_img(t), A_img(t)): the image effect's prototype agrees with what its words
  mean to the image encoder's text side;
* sim2 = cos(p_aud(s), A_aud(s)): the same for the audio effect;
* sim3 = cos(A(t), A(s)): the two effects' words mean the same thing.

Prototypes are p(t, s) = E[delta / ||delta||] over the extract (per intensity, and pooled
over intensities for the matrix). Text anchors are deltas between prompts: for every
synonym of the effect, every template and every category of the extract,
E_text("A {synonym} photo of {category}") - E_text("A photo of {category}") (the base
prompt is the template with the synonym slot removed), each scaled to unit length and
averaged, so that no single phrasing dominates (the same reason prototypes average unit
deltas). Audio uses "A {synonym} {category} song".

sim3 compares an image anchor with an audio anchor, which live in different text spaces
(CLIP's 768-d and CLAP's 512-d in the note: a cosine between them is undefined). Text can
be read by either encoder, though, so both anchors are built in both text spaces and sim3
is the mean of the two cosines (each is kept in the results). With a shared text encoder
the two coincide.

Text the encoder cannot place: the perceptual encoders read text through a lexicon; a
prompt whose words carry no direction ("A photo of landscape") is the zero vector of that
space (no change), and a synonym the lexicon does not know contributes nothing. Both are
reported (per modality: unknown words, synonyms without a direction), never fatal, unless
an effect ends up with no usable synonym at all.

The score is the note's plain product. Two negative cosines make a positive product, so
the components are saved next to the matrix; the heatmap shows the product.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import DeltaV2AError
from .linearity import unit_rows

if TYPE_CHECKING:  # pragma: no cover
    from ..api.encoders import Encoder
    from .extract import DeltaSet
    from .settings import AnalysisConfig
    from .synonyms import SynonymTable

#: pairs the note names as expected correspondences; reported when both effects are present
NOTE_PAIRS = (("blur", "lpf"), ("brightness", "highshelf"))


# ------------------------------------------------------------------ prototypes


def prototype(ds: "DeltaSet", effect: str, label: str | None = None) -> np.ndarray:
    """p(t, s) = E[delta / ||delta||] (label None: pooled over all intensities)."""
    units, _ = unit_rows(ds.delta[ds.select(effect, label)])
    if units.shape[0] == 0:
        return np.zeros(ds.delta.shape[1], dtype=np.float64)
    return units.mean(axis=0)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na <= 1e-12 or nb <= 1e-12:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


# ------------------------------------------------------------------ text side


def base_template(template: str) -> str:
    """The template without its synonym slot: "A {synonym} photo of {category}" -> "A photo of {category}"."""
    return re.sub(r"\s+", " ", template.replace("{synonym}", "")).strip()


def category_word(category: str, mapping: dict[str, str]) -> str:
    return mapping.get(category) or re.sub(r"[_\-]+", " ", category).strip()


class TextReader:
    """Encodes text with one encoder, tolerating text it cannot place, and remembers what it saw.

    Each distinct text is encoded once. A text the encoder refuses is read again alone: if
    the encoder can explain it (the perceptual lexicon) and no word of it carries a
    direction, it is the zero vector; otherwise it is recorded as failed.
    """

    def __init__(self, encoder: "Encoder") -> None:
        self.encoder = encoder
        self.vectors: dict[str, np.ndarray | None] = {}
        self.unknown: dict[str, list[str]] = {}
        self.errors: dict[str, str] = {}
        self.zero: set[str] = set()

    def encode(self, texts: Sequence[str]) -> None:
        todo = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if not todo:
            return
        try:
            emb = np.asarray(self.encoder.encode_text(todo), dtype=np.float64)
            unknown = getattr(self.encoder, "last_unknown_words", None) or [[] for _ in todo]
            for t, v, u in zip(todo, emb, unknown):
                self.vectors[t] = v
                if u:
                    self.unknown[t] = list(u)
            return
        except DeltaV2AError:
            pass
        explain = getattr(self.encoder, "explain_text", None)
        for t in todo:
            try:
                self.vectors[t] = np.asarray(self.encoder.encode_text([t]), dtype=np.float64)[0]
                u = (getattr(self.encoder, "last_unknown_words", None) or [[]])[0]
                if u:
                    self.unknown[t] = list(u)
            except DeltaV2AError as exc:
                exp = explain(t) if callable(explain) else None
                if exp is not None and not exp.known:
                    self.vectors[t] = np.zeros(self.encoder.dim, dtype=np.float64)
                    self.zero.add(t)
                    if exp.unknown:
                        self.unknown[t] = list(exp.unknown)
                else:
                    self.vectors[t] = None
                    self.errors[t] = str(exc)

    def __getitem__(self, text: str) -> np.ndarray | None:
        return self.vectors[text]


def text_anchor(reader: TextReader, synonyms: Sequence[str], templates: Sequence[str],
                categories: Sequence[str]) -> tuple[np.ndarray, dict]:
    """Mean unit text delta over synonyms x templates x categories, and what went into it."""
    pairs = [(s, t.format(synonym=s, category=c), base_template(t).format(category=c))
             for s in synonyms for t in templates for c in categories]
    reader.encode([p for _, p, _ in pairs] + [b for _, _, b in pairs])
    deltas, used, no_direction = [], {}, set()
    for syn, prompt, base in pairs:
        a, b = reader[prompt], reader[base]
        if a is None or b is None:
            continue
        d = a - b
        n = float(np.linalg.norm(d))
        if n <= 1e-9:
            no_direction.add(syn)
            continue
        deltas.append(d / n)
        used[syn] = used.get(syn, 0) + 1
    report = {"synonyms": list(synonyms), "used": used,
              "without_direction": sorted(no_direction - set(used)),
              "prompts": len(pairs), "deltas": len(deltas)}
    if not deltas:
        return np.zeros(reader.encoder.dim, dtype=np.float64), report
    return np.mean(deltas, axis=0), report


# ------------------------------------------------------------------ the matrix


def _categories(ds: "DeltaSet") -> list[str]:
    return sorted(set(ds.category.tolist()))


def discovery(deltas: dict[str, "DeltaSet"], cfg: "AnalysisConfig", synonyms: "SynonymTable",
              image_encoder: "Encoder", audio_encoder: "Encoder") -> dict:
    """All numbers of Phase 1 (no files written): see `run_discover`."""
    discovery_inputs_check(deltas)
    img, aud = deltas["image"], deltas["audio"]
    img_effects, aud_effects = img.effects, aud.effects
    words = cfg.discover.category_words
    img_cats = [category_word(c, words.get("image", {})) for c in _categories(img)]
    aud_cats = [category_word(c, words.get("audio", {})) for c in _categories(aud)]
    readers = {"image": TextReader(image_encoder), "audio": TextReader(audio_encoder)}
    # anchors[space][(modality, effect)]: the effect's words read by `space`'s text encoder
    anchors: dict[str, dict[tuple[str, str], np.ndarray]] = {"image": {}, "audio": {}}
    reports: dict[str, dict[str, dict]] = {"image": {}, "audio": {}}
    for space, reader in readers.items():
        for modality, effects, templates, cats in (
                ("image", img_effects, cfg.discover.image_templates, img_cats),
                ("audio", aud_effects, cfg.discover.audio_templates, aud_cats)):
            for e in effects:
                vec, rep = text_anchor(reader, synonyms.get(modality, e), templates, cats)
                anchors[space][(modality, e)] = vec
                if space == modality:
                    reports[modality][e] = rep
    for modality, effects in (("image", img_effects), ("audio", aud_effects)):
        dead = [e for e in effects if not np.any(anchors[modality][(modality, e)])]
        if dead:
            raise DeltaV2AError(
                f"no synonym of {modality} effect(s) {', '.join(dead)} means anything to the "
                f"{readers[modality].encoder.name} text encoder; add synonyms it knows "
                "(see docs/analysis.md, 'Synonyms')")

    p_img = {e: prototype(img, e) for e in img_effects}
    p_aud = {e: prototype(aud, e) for e in aud_effects}
    sim1 = np.array([cosine(p_img[e], anchors["image"][("image", e)]) for e in img_effects])
    sim2 = np.array([cosine(p_aud[s], anchors["audio"][("audio", s)]) for s in aud_effects])
    sim3_spaces = {space: np.array([[cosine(anchors[space][("image", t)], anchors[space][("audio", s)])
                                     for s in aud_effects] for t in img_effects])
                   for space in ("image", "audio")}
    sim3 = 0.5 * (sim3_spaces["image"] + sim3_spaces["audio"])
    matrix = sim1[:, None] * sim2[None, :] * sim3

    by_intensity = {}
    shared = [l for l in img.labels if l in aud.labels]
    for label in shared:
        s1 = np.array([cosine(prototype(img, e, label), anchors["image"][("image", e)]) for e in img_effects])
        s2 = np.array([cosine(prototype(aud, s, label), anchors["audio"][("audio", s)]) for s in aud_effects])
        by_intensity[label] = {"sim1": s1.tolist(), "sim2": s2.tolist(),
                               "matrix": (s1[:, None] * s2[None, :] * sim3).tolist()}

    def text_report(modality: str) -> dict:
        r = readers[modality]
        unknown = sorted({w for ws in r.unknown.values() for w in ws})
        return {"encoder": r.encoder.name, "texts": len(r.vectors), "unknown_words": unknown,
                "zero_vector_texts": len(r.zero), "failed_texts": dict(sorted(r.errors.items())[:20]),
                "n_failed": len(r.errors)}

    return {
        "image_effects": img_effects, "audio_effects": aud_effects,
        "image_categories": img_cats, "audio_categories": aud_cats,
        "encoders": {"image": {"name": image_encoder.name, "fingerprint": image_encoder.fingerprint()},
                     "audio": {"name": audio_encoder.name, "fingerprint": audio_encoder.fingerprint()}},
        "templates": {"image": cfg.discover.image_templates, "audio": cfg.discover.audio_templates},
        "sim1": sim1, "sim2": sim2, "sim3": sim3, "sim3_spaces": sim3_spaces, "matrix": matrix,
        "by_intensity": by_intensity, "anchors": reports,
        "text": {"image": text_report("image"), "audio": text_report("audio")},
        "synonym_sources": synonyms.sources,
    }


def cell_report(matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], r: str, c: str) -> dict:
    """How one cell compares with chance, in the three senses docs/analysis.md defines."""
    i, j = list(rows).index(r), list(cols).index(c)
    v = float(matrix[i, j])
    mean, std = float(matrix.mean()), float(matrix.std())
    row, col = matrix[i], matrix[:, j]
    row_others = np.delete(row, j)
    return {
        "image_effect": r, "audio_effect": c, "score": v,
        "matrix_mean": mean, "matrix_std": std, "z": (v - mean) / std if std > 0 else 0.0,
        "row_rank": int((row > v).sum()) + 1, "row_size": int(row.size),
        "row_others_max": float(row_others.max()) if row_others.size else None,
        "row_others_mean": float(row_others.mean()) if row_others.size else None,
        "col_rank": int((col > v).sum()) + 1,
        "above_matrix_mean": bool(v > mean),
        "above_row_others": bool(row_others.size == 0 or v > row_others.max()),
        "above_chance": bool(v > mean and (row_others.size == 0 or v > row_others.max())),
    }


def _jsonable(res: dict) -> dict:
    out = {}
    for k, v in res.items():
        if isinstance(v, np.ndarray):
            out[k] = v.tolist()
        elif isinstance(v, dict):
            out[k] = _jsonable(v)
        else:
            out[k] = v
    return out


def run_discover(deltas: dict[str, "DeltaSet"], cfg: "AnalysisConfig", out: Path) -> dict:
    """Write discovery_matrix.npy, discovery_labels.json, discovery_heatmap.png, discovery_results.json."""
    from ..atomic import atomic_path, write_json
    from ..style.encoding import load_encoder
    from .synonyms import load_synonyms

    discovery_inputs_check(deltas)
    img_enc = load_encoder(cfg.encoders.image, "image")
    aud_enc = load_encoder(cfg.encoders.audio, "audio")
    _check_encoders(deltas, img_enc, aud_enc)
    table = load_synonyms({"image": deltas["image"].effects, "audio": deltas["audio"].effects},
                          cfg.discover.synonym_paths)
    res = discovery(deltas, cfg, table, img_enc, aud_enc)
    M = res["matrix"]
    rows, cols = res["image_effects"], res["audio_effects"]
    best = {r: cols[int(np.argmax(M[i]))] for i, r in enumerate(rows)}
    checks = [cell_report(M, rows, cols, r, c) for r, c in NOTE_PAIRS if r in rows and c in cols]
    res.update({"best_audio_for_image": best, "note_pairs": checks,
                "score": "sim1 * sim2 * sim3 (sim3 = mean of the cosines in both text spaces)"})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "discovery_matrix.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, M.astype(np.float64), allow_pickle=False)
    write_json(out / "discovery_labels.json", {
        "rows": "image_effects", "cols": "audio_effects", "image_effects": rows, "audio_effects": cols,
        "score": res["score"], "encoders": res["encoders"]})
    write_json(out / "discovery_results.json", _clean(_jsonable(res)))
    plot_discovery(M, rows, cols, res["encoders"], out / "discovery_heatmap.png")
    return res


def discovery_inputs_check(deltas: dict[str, "DeltaSet"]) -> None:
    if "image" not in deltas or "audio" not in deltas:
        raise DeltaV2AError("discover needs both image_deltas.parquet and audio_deltas.parquet "
                            "(run extract with --images and --audio)")


def _check_encoders(deltas: dict[str, "DeltaSet"], img_enc: "Encoder", aud_enc: "Encoder") -> None:
    """The text side must belong to the encoder that made the deltas, or the cosines mean nothing."""
    for modality, enc in (("image", img_enc), ("audio", aud_enc)):
        plan = deltas[modality].plan.get("encoder") or {}
        if plan and plan.get("fingerprint") != enc.fingerprint():
            raise DeltaV2AError(
                f"the {modality} deltas were extracted with encoder '{plan.get('name')}' "
                f"(fingerprint {plan.get('fingerprint')}), but the configured {modality} encoder is "
                f"'{enc.name}' (fingerprint {enc.fingerprint()}); use the same config as for extract")


def _clean(obj):
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.floating):
        return _clean(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def plot_discovery(M: np.ndarray, rows: Sequence[str], cols: Sequence[str], encoders: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    lim = float(np.abs(M).max()) or 1.0
    fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 3, 0.8 * len(rows) + 2))
    im = ax.imshow(M, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows)
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, f"{M[i, j]:.3f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(M[i, j]) > 0.6 * lim else "black")
    ax.set_xlabel(f"audio effect ({encoders['audio']['name']})")
    ax.set_ylabel(f"image effect ({encoders['image']['name']})")
    ax.set_title("discovery: sim1 x sim2 x sim3")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
