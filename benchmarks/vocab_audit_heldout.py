"""Issue 16 acceptance: lexicons v1 to v4 on held-out media (docs/vocab_audit.md).

Protocol, fixed before any lexicon work:
  * photos of DATA/images sorted by name: even positions = dev half, odd = held-out half;
    16 photos drawn from the chosen half with numpy default_rng(0);
  * music: `deltav2a splits --seed 0` with DATA/music/manifest.csv; dev = 16 train clips,
    held-out = the test clips (all 18), drawn with default_rng(1);
  * intensities 0.35/0.6/0.9, T = database.temperature (0.1), v3, default perceptual encoders;
    all two-effect chains for reach; oracle on 30 pairs (seed 0) and 1000 pairs (seed 1).

The media are embedded once, with the configured encoders (default: lexicon v3, normalisation
2, 48 kHz; `--set` overrides, e.g. normalisation 3 at 44.1 kHz for lexicon v4), and read
against every lexicon's term embeddings. Lexicon v3 uses normalisation version 2, whose audio vector is
version 1's 23 coordinates (bit-identical: same descriptors, same constants) plus
`gap_depth`; v1 and v2 read the first 23 coordinates. The image vectors are the same in all
three. The audio effects are the default config's (eight since issue 16's `stutter`); the
criterion "top-2 of more than 2 of the 7 audio effects" is reported over the notes' seven and
over all eight.

    .venv/bin/python benchmarks/vocab_audit_heldout.py --data ../shared/data --half heldout \
        -o benchmarks/results/vocab_audit

Lexicon v4 (normalisation 3), on the media of the default the model moves to (analysis 2,
44.1 kHz):

    .venv/bin/python benchmarks/vocab_audit_heldout.py --data ../shared/data --half heldout \
        -o benchmarks/results/vocab_audit_n3 --versions 3,4 \
        --set audio.sample_rate=44100 --set encoders.audio.options.normalisation_version=3

`--cache FILE` keeps the embeddings (npz) between runs, for lexicon work on the dev half.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from deltav2a.experiment import vocab_audit as va
from deltav2a.config import load_config, load_config_with
from deltav2a.style.encoding import load_encoder, term_embeddings
from deltav2a.media.io import load_image
from deltav2a.style.pairs import load_clip
from deltav2a.database.splits import load_splits, make_splits, write_splits
from deltav2a.style.vocab import load_vocabulary


def media(data: Path, half: str, n_images: int, n_clips: int) -> tuple[list[Path], list[Path]]:
    photos = sorted((data / "images").glob("*.jpg"))
    photos = photos[0::2] if half == "dev" else photos[1::2]
    photos = [photos[i] for i in sorted(np.random.default_rng(0).choice(len(photos), n_images, replace=False))]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None)
        s = make_splits(data / "music", data / "music" / "manifest.csv", 0, cfg.splits.model_dump())
        write_splits(s, Path(tmp) / "splits.json")
        sp = load_splits(Path(tmp) / "splits.json")
        clips = [sp.path_of(c) for c in sp.clips_in("train" if half == "dev" else "test")]
    pick = np.random.default_rng(1).choice(len(clips), min(n_clips, len(clips)), replace=False)
    return photos, [clips[i] for i in sorted(pick)]


def dev_prototype(doc: str) -> tuple:
    """The command line (`--data`, `-o`) and media of the descriptor prototypes
    (`inband_floor.py`, `splice_probe.py`): the dev half's 16 train clips, loaded at 44.1 kHz.
    Returns (args, config, clip paths, clips)."""
    from deltav2a.config import load_config_with
    from deltav2a.style.pairs import load_clip

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    cfg = load_config_with(None, ["audio.sample_rate=44100"])
    _, clips = media(args.data, "dev", 16, 16)
    return args, cfg, clips, [load_clip(p, cfg) for p in clips]


def render_row(row: str, intensity: float, audio: list, sr: int, order) -> list:
    """Each clip through one audit row (an effect, or its `:down` direction) at `intensity`,
    tails cut, as `vocab_audit.embed_audio_effects` renders it."""
    from deltav2a.render.chain import AudioChain, ChainSettings

    chain = AudioChain(ChainSettings([va._setting(row, intensity)]), order=order, tail="cut")
    return [chain.render(a, sr).audio for a in audio]


def embed(args, cfg) -> tuple[list[Path], list[Path], "va.EffectEmbeddings", "va.EffectEmbeddings",
                                 "va.EffectEmbeddings"]:
    photos, clips = media(args.data, args.half, 16, 16 if args.half == "dev" else 18)
    if args.cache and args.cache.is_file():
        z = np.load(args.cache, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        made = [va.EffectEmbeddings(m["modality"], m["encoder"], m["effects"], m["intensities"],
                                    z[f"{k}_before"], z[f"{k}_after"]) for k, m in zip(("img", "aud", "pairs"), meta)]
        return (photos, clips, *made)
    ienc = load_encoder(cfg.encoders.image, "image")
    aenc = load_encoder(cfg.encoders.audio, "audio")
    rows = va.audio_effect_rows(cfg.effects.audio)
    xs = va.DEFAULT_INTENSITIES
    img = va.embed_image_effects(ienc, [load_image(p) for p in photos], cfg.effects.image, xs, seed=0)
    audio = [load_clip(p, cfg) for p in clips]
    aud = va.embed_audio_effects(aenc, audio, cfg.audio.sample_rate, rows, xs, chain_order=cfg.effects.chain_order)
    pairs = va.embed_audio_effects(aenc, audio, cfg.audio.sample_rate, va.pair_rows(rows), xs,
                                   chain_order=cfg.effects.chain_order)
    if args.cache:
        meta = [{"modality": e.modality, "encoder": e.encoder, "effects": e.effects, "intensities": e.intensities}
                for e in (img, aud, pairs)]
        np.savez(args.cache, meta=json.dumps(meta), **{f"{k}_{w}": getattr(e, w) for k, e in
                                                      zip(("img", "aud", "pairs"), (img, aud, pairs))
                                                      for w in ("before", "after")})
    return photos, clips, img, aud, pairs


def lexicon_encoders(version: str, cfg) -> tuple:
    """The encoders whose text side is lexicon `version`, on the media's normalisation where
    the lexicon reads the same descriptors (v3 and v4 read normalisations 2 and 3 alike: same
    24 names), so the reported fingerprints name what actually made the media vectors; v1/v2
    (23 descriptors) read the media's first 23 coordinates on their own normalisation 1."""
    media = {m: dict(getattr(cfg.encoders, m).options or {}) for m in ("image", "audio")}
    out = []
    for m in ("image", "audio"):
        enc = load_encoder(f"perceptual-{m}", m, lexicon_version=version)
        norm = media[m].get("normalisation_version") or media["audio"].get("normalisation_version")
        if norm is not None:
            alt = load_encoder(f"perceptual-{m}", m, lexicon_version=version, normalisation_version=str(norm))
            if alt.descriptor_names == enc.descriptor_names:
                enc = alt
        out.append(enc)
    return tuple(out)


def sliced(emb: "va.EffectEmbeddings", dim: int) -> "va.EffectEmbeddings":
    """The first `dim` coordinates: what an encoder of an older normalisation computes."""
    return replace(emb, before=emb.before[..., :dim], after=emb.after[..., :dim])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--half", choices=("dev", "heldout"), default="heldout")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=None, help="npz file keeping the embeddings between runs")
    ap.add_argument("--versions", default="1,2,3", help="lexicon versions to read (default 1,2,3)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for the media side, as for `run --set` (e.g. audio.sample_rate=44100, "
                         "encoders.audio.options.normalisation_version=3); the audio effects and T come from it too")
    args = ap.parse_args()
    cfg = load_config_with(None, args.sets)
    photos, clips, img, aud_all, pairs_all = embed(args, cfg)
    voc = load_vocabulary("v3")
    T = cfg.database.temperature
    args.output.mkdir(parents=True, exist_ok=True)
    summary = {}
    for version in args.versions.split(","):
        lex_i, lex_a = lexicon_encoders(version, cfg)
        aud, pairs = sliced(aud_all, lex_a.dim), sliced(pairs_all, lex_a.dim)
        Vi, Va = term_embeddings(lex_i, voc, "image"), term_embeddings(lex_a, voc, "audio")
        r = va.audit_from_embeddings(img, aud, Vi, Va, voc.terms, T, n_pairs=30, seed=0, pairs=pairs)
        # same media vectors, this lexicon's text side: name the encoders that made V
        r["encoders"] = {m: {"name": e.name, "fingerprint": e.fingerprint()} for m, e in
                         (("image", lex_i), ("audio", lex_a))}
        big = va.oracle_agreement(img.labels(Vi, T), aud.labels(Va, T), img, aud, 1000, 1)
        every = {k: v for k, v in r["matrix"]["audio"].items() if not k.endswith(va.DOWN)}
        seven = {k: v for k, v in every.items() if k in NOTES_SEVEN}
        r["media"] = {"images": [p.name for p in photos], "audio": [p.name for p in clips], "half": args.half}
        r["oracle_1000"] = {k: big[k] for k in ("mean_cosine", "top1_agreement", "n_pairs")}
        r["oracle_limits"] = limits(img, aud, pairs, Vi, Va, T)
        r["oracle_30_without_stutter"] = oracle_without(r, img, aud, Vi, Va, T, "stutter", 30, 0)
        r["oracle_1000_without_stutter"] = oracle_without(r, img, aud, Vi, Va, T, "stutter", 1000, 1)
        for key, rows in (("7", seven), (str(len(every)), every)):
            r[f"most_of_{key}_effects_per_term"] = max(len(v) for v in va.readings(rows, 2, r["min_mass"]).values())
            r[f"most_of_{key}_effects_per_term_no_floor"] = max(len(v) for v in va.readings(rows, 2, 0.0).values())
        out = args.output / f"{args.half}_lexicon_v{version}"
        va.write_outputs(r, out)
        summary[version] = {"encoders": r["encoders"], "audio_effects": list(every),
                            "unreachable_on_audio": r["unreachable_on_audio"], "sinks": r["sinks"]["audio"],
                            **{k: v for k, v in r.items() if k.startswith("most_of_")},
                            "oracle_30": {k: r["oracle"][k] for k in ("mean_cosine", "top1_agreement")},
                            "oracle_1000": r["oracle_1000"],
                            "oracle_30_without_stutter": r["oracle_30_without_stutter"],
                            "oracle_1000_without_stutter": r["oracle_1000_without_stutter"],
                            "oracle_1000_per_image_effect": per_image_effect(big),
                            "oracle_limits": r["oracle_limits"]}
    print(json.dumps(summary, indent=2))
    (args.output / f"{args.half}_summary.json").write_text(json.dumps(summary, indent=2) + "\n")


NOTES_SEVEN = ("lowpass", "bitcrush", "reverb", "highpass", "distortion", "delay", "playback_rate")


def oracle_without(r: dict, img, aud, Vi, Va, T: float, effect: str, n: int, seed: int) -> dict:
    """The oracle over the audio effects without `effect` (what the notes' seven allow)."""
    keep = [i for i, e in enumerate(aud.effects) if e.split(":")[0] != effect]
    sub = replace(aud, effects=[aud.effects[i] for i in keep], after=aud.after[keep])
    res = va.oracle_agreement(img.labels(Vi, T), sub.labels(Va, T), img, sub, n, seed)
    return {k: res[k] for k in ("mean_cosine", "top1_agreement", "n_pairs")}


def limits(img, aud, pairs, Vi, Va, T: float, n: int = 1000, seed: int = 1) -> dict:
    """What bounds the single-effect oracle (docs/vocab_audit.md): the same 1000 pairs with
    another label temperature (both sides), with two-effect chains allowed as well, and the
    image side's own diffuseness (centred cosine of each image label with a pure reading of
    its top term: what an audio side that produces one word per edit could reach at most)."""
    out: dict = {}
    for t in (0.05, 0.2):
        res = va.oracle_agreement(img.labels(Vi, t), aud.labels(Va, t), img, aud, n, seed)
        out[f"temperature_{t:g}"] = {k: res[k] for k in ("mean_cosine", "top1_agreement")}
    both = replace(aud, effects=aud.effects + pairs.effects,
                   after=np.concatenate([aud.after, pairs.after], axis=0))
    res = va.oracle_agreement(img.labels(Vi, T), both.labels(Va, T), img, both, n, seed)
    out["with_two_effect_chains"] = {k: res[k] for k in ("mean_cosine", "top1_agreement")}
    out["with_two_effect_chains_per_image_effect"] = per_image_effect(res)
    L = img.labels(Vi, T)                                   # (E, I, N, K)
    K = L.shape[-1]
    c = L - 1.0 / K
    pure = np.eye(K)[L.argmax(axis=-1)] - 1.0 / K
    cos = (c * pure).sum(-1) / (np.linalg.norm(c, axis=-1) * np.linalg.norm(pure, axis=-1))
    out["one_word_ceiling"] = round(float(cos.mean()), 4)
    out["one_word_ceiling_per_image_effect"] = {e: round(float(cos[i].mean()), 4) for i, e in enumerate(img.effects)}
    return out


def per_image_effect(oracle: dict) -> dict:
    """Mean best centred cosine per image effect (where the oracle falls short)."""
    out: dict[str, list[float]] = {}
    for p in oracle["pairs"]:
        out.setdefault(p["image_effect"], []).append(p["centred_cosine"])
    return {k: round(float(np.mean(v)), 4) for k, v in out.items()}


if __name__ == "__main__":
    main()
