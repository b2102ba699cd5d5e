"""Held-out `diagnose quality` quality.json files -> the 5 metrics (± sd) and per image effect rho / share / effects (decision 9.132).
usage: python benchmarks/heldout_summary.py QUALITY_JSON [...]"""
import json, sys
for f in sys.argv[1:]:
    d = json.load(open(f))
    print(f"# {f}: seed {d['seed']}, {d['sizes']['transfers_per_method']} transfers per method, photos",
          [p.split('/')[-1][:20] for p in d['photos']])
    for name, m in d["methods"].items():
        if name in ("random chain", "best fixed chain"):
            continue
        sd = m["spread"]
        print(f"{name:16s} agree {m['label_agreement']:.3f}±{sd['label_agreement']:.3f} top1 {m['top1_agreement']:.3f}±{sd['top1_agreement']:.3f} "
              f"fx {m['mean_effects']:.2f} rho {m['strength_rho']:.3f}±{sd['strength_rho']:.3f} share {100*m['stronger_share']:.1f}±{100*sd['stronger_share']:.1f} %")
        for fx, e in m["per_image_effect"].items():
            print(f"    {fx:17s} rho {e['strength_rho']:.3f} share {100*e['stronger_share']:5.1f} % fx {e['mean_effects']:.2f} agree {e['label_agreement']:.3f}")
