"""The strength-matching tuning protocol (decisions 9.31, 9.37, 9.40, 9.70), NOT the held-out one:
3 photos of the half `deltav2a run` calibrated on x 2 val-split clips (one per track) x 7 image
effects x intensities 0.1 ... 0.9, each model directory (e.g. copies of the shipped model
differing only in `inference.strength_match`) scored like `diagnose quality` (the first one's
encoders are the ruler), plus how many (photo, effect, clip) series keep one effect set.

`--rows OUT_JSON` also records, per transfer, the model's own image strength, confidence and
direction's top term, the rendered set with its parameters, and writes all rows to OUT_JSON
(the diagnosis of decision 9.70; read per series by strength_series.py).

usage: python benchmarks/strength_tuning.py SPLITS_JSON MODEL_DIR [MODEL_DIR ...] [--rows OUT_JSON]
       [--photos N] [--clips N]   (defaults 3 and 2: the protocol all earlier rows used)
(data: $DELTAV2A_SHARED_DATA, default ../shared/data)"""
import argparse, json, os, random, time
from pathlib import Path
import numpy as np
from deltav2a.transfer.pipeline import TransferModel
from deltav2a.style.encoding import model_config, term_embeddings
from deltav2a.experiment.quality import seeded_sample, one_clip_per_track, log_mel, logmel_distance, score, _row
from deltav2a.analysis.sensitivity import list_media
from deltav2a.media.io import load_image, load_audio, IMAGE_EXTENSIONS
from deltav2a.database.splits import load_splits
from deltav2a.api.registry import get
from deltav2a.style.label import style_labels

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("splits", type=Path)
ap.add_argument("models", type=Path, nargs="+")
ap.add_argument("--rows", type=Path, help="write every transfer's row, with the diagnosis fields, here")
ap.add_argument("--photos", type=int, default=3, help="calibration-half photos (3: the protocol of 9.31-9.93)")
ap.add_argument("--clips", type=int, default=2, help="val clips, one per track (2: the protocol of 9.31-9.93)")
args = ap.parse_args()

DATA = Path(os.environ.get("DELTAV2A_SHARED_DATA", "../shared/data"))
ints = (0.1, 0.3, 0.5, 0.7, 0.9)
files = list_media(DATA / "images", IMAGE_EXTENSIONS, None, 0)
sh = list(files); random.Random(0).shuffle(sh)
photos = seeded_sample(sh[: len(sh) // 2], args.photos, 7)
sp = load_splits(args.splits, DATA / "music")
clips = [sp.path_of(c) for c in one_clip_per_track(sp.clips_in("val"), args.clips, 0)]
print("photos", [p.stem for p in photos], "clips", [c.stem for c in clips], flush=True)
models = []
for d in args.models:
    cfg = model_config(d)
    cfg.effects.tail = "cut"
    models.append((d.name, TransferModel(d, config=cfg)))
ref = models[0][1]
V = term_embeddings(ref.audio_encoder, ref.vocab, "audio")
terms = list(ref.vocab.terms)
cd = []
for f in clips:
    x, sr = load_audio(f, sample_rate=ref.cfg.audio.sample_rate)
    x = x[:, : int(ref.cfg.audio.max_duration * sr)]
    cd.append((x, sr, ref.audio_embedding(x, sr), log_mel(x, sr)))
rows, sets = [], {}
t0 = time.time()
for p, path in enumerate(photos):
    before = load_image(path)
    for fx_name in ref.cfg.effects.image:
        fx = get("image_effect", fx_name)()
        for t in ints:
            after = fx.apply(before, t, seed=p)
            img = ref.read_edit([before], [after])[0].label
            for k, (x, sr, emb, mel) in enumerate(cd):
                key = {"photo": p, "effect": fx_name, "intensity": t, "clip": k}
                for name, tm in models:
                    res = tm.transfer(before, after, x, sr, audio_emb=emb)
                    y = res.audio
                    aud = style_labels(emb, ref.audio_embedding(y, sr), V, ref.cfg.database.temperature)[0][0]
                    sets.setdefault((name, p, fx_name, k), set()).add(tuple(res.plan.effects))
                    row = _row(key, name, img, aud, logmel_distance(x, y, sr, mel), len(res.plan.steps))
                    if args.rows:
                        own = tm.read_edit([before], [after])[0]
                        row.update(strength=float(own.strength), conf=float(own.confidence),
                                   dir_top=terms[int(np.argmax(own.direction_label))],
                                   img_top=terms[int(np.argmax(img))], aud_top=terms[int(aud.argmax())],
                                   plan=[[st.effect, {n: float(v) for n, v in st.params.items()}]
                                         for st in res.plan.steps])
                    rows.append(row)
print(f"{time.time() - t0:.0f} s", flush=True)
if args.rows:
    args.rows.write_text(json.dumps(rows, default=str))
print(f"{'variant':24s} agree  top1  fx    rho   share  d0.1/d0.3/d0.9")
for name, _ in models:
    s = score(rows, name, terms, ints)
    d = [np.mean([r["dist"] for r in rows if r["method"] == name and r["intensity"] == t]) for t in (0.1, 0.3, 0.9)]
    print(f"{name:24s} {s['label_agreement']:.3f} {s['top1_agreement']:.3f} {s['mean_effects']:.2f} "
          f"{s['strength_rho']:.3f} {s['stronger_share']:.3f} " + "/".join(f"{v:.1f}" for v in d))
    sp = s.get("spread", {})
    print("   ± sd over photos and clips (bootstrap): agree / top1 / rho / share",
          " / ".join(f"{sp[k]:.3f}" if k in sp else "–"
                     for k in ("label_agreement", "top1_agreement", "strength_rho", "stronger_share")))
    print("   per effect rho:", {e: round(b["strength_rho"], 2) for e, b in s["per_image_effect"].items()})
    one = sum(len(v) == 1 for (m, *_), v in sets.items() if m == name)
    print(f"   series with one effect set over the intensities: {one}/{sum(m == name for m, *_ in sets)}")
