"""Strength diagnosis on the tuning protocol (decisions 9.70-9.72), NOT the held-out one: the sample
of strength_tuning.py (3 calibration-half photos x 2 val clips x 7 effects x 0.1 ... 0.9), and per
transfer the image strength, confidence, direction's top term, the rendered set and parameters
and the log-mel distance, written to OUT_JSON (read per series by strength_series.py).

usage: python benchmarks/strength_diagnosis.py OUT_JSON SPLITS_JSON MODEL_DIR [MODEL_DIR ...]
(data: $DELTAV2A_SHARED_DATA, default ../shared/data)"""
import os, json, random, sys, time
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

DATA = Path(os.environ.get("DELTAV2A_SHARED_DATA", "../shared/data"))
out = Path(sys.argv[1]); ints = (0.1, 0.3, 0.5, 0.7, 0.9)
files = list_media(DATA / "images", IMAGE_EXTENSIONS, None, 0)
sh = list(files); random.Random(0).shuffle(sh)
photos = seeded_sample(sh[: len(sh) // 2], 3, 7)
sp = load_splits(Path(sys.argv[2]), DATA / "music")
clips = [sp.path_of(c) for c in one_clip_per_track(sp.clips_in("val"), 2, 0)]
models = []
for d in sys.argv[3:]:
    cfg = model_config(Path(d)); cfg.effects.tail = "cut"
    models.append((Path(d).name, TransferModel(Path(d), config=cfg)))
ref = models[0][1]
V = term_embeddings(ref.audio_encoder, ref.vocab, "audio")
terms = list(ref.vocab.terms)
cd = []
for f in clips:
    x, sr = load_audio(f, sample_rate=ref.cfg.audio.sample_rate)
    x = x[:, : int(ref.cfg.audio.max_duration * sr)]
    cd.append((x, sr, ref.audio_embedding(x, sr), log_mel(x, sr)))
rows = []
t0 = time.time()
for p, path in enumerate(photos):
    before = load_image(path)
    for fx_name in ref.cfg.effects.image:
        fx = get("image_effect", fx_name)()
        for t in ints:
            after = fx.apply(before, t, seed=p)
            lab = ref.read_edit([before], [after])[0]
            img = lab.label
            for k, (x, sr, emb, mel) in enumerate(cd):
                key = {"photo": p, "effect": fx_name, "intensity": t, "clip": k}
                for name, tm in models:
                    res = tm.transfer(before, after, x, sr, audio_emb=emb)
                    aud = style_labels(emb, ref.audio_embedding(res.audio, sr), V, ref.cfg.database.temperature)[0][0]
                    r = _row(key, name, img, aud, logmel_distance(x, res.audio, sr, mel), len(res.plan.steps))
                    ml = tm.read_edit([before], [after])[0]
                    r.update(strength=float(ml.strength), conf=float(ml.confidence),
                             dir_top=terms[int(np.argmax(ml.direction_label))], img_top=terms[int(np.argmax(img))],
                             aud_top=terms[int(aud.argmax())],
                             plan=[[st.effect, {k2: float(v) for k2, v in st.params.items()}] for st in res.plan.steps])
                    rows.append(r)
print(f"{time.time() - t0:.0f} s", flush=True)
json.dump(rows, open(out, "w"), default=str)
print(f"{'variant':24s} agree  top1  fx    rho   share  d0.1/d0.3/d0.9")
for name, _ in models:
    s = score(rows, name, terms, ints)
    d = [np.mean([r["dist"] for r in rows if r["method"] == name and r["intensity"] == t]) for t in (0.1, 0.3, 0.9)]
    print(f"{name:24s} {s['label_agreement']:.3f} {s['top1_agreement']:.3f} {s['mean_effects']:.2f} "
          f"{s['strength_rho']:.3f} {s['stronger_share']:.3f} " + "/".join(f"{v:.1f}" for v in d))
    print("   per effect rho:", {e: round(b["strength_rho"], 2) for e, b in s["per_image_effect"].items()})
