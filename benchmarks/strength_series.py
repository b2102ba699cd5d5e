"""Per-series reading of strength_tuning.py --rows output for one variant: image strength, confidence,
log-mel change and the direction's top term per image effect and intensity, then each failing
series (rho < 0.8 or the 0.9 edit not above the 0.3 one) with its set per intensity.

usage: python benchmarks/strength_series.py ROWS_JSON VARIANT [v]   (v: list the failing series)"""
import json, sys, numpy as np, collections
rows = json.load(open(sys.argv[1])); meth = sys.argv[2]
R = [r for r in rows if r["method"] == meth]
ints = sorted({r["intensity"] for r in R})
print("== image side (per image effect): strength / conf by intensity; direction top term")
for fx in dict.fromkeys(r["effect"] for r in R):
    s = [np.mean([r["strength"] for r in R if r["effect"] == fx and r["intensity"] == t]) for t in ints]
    c = [np.mean([r["conf"] for r in R if r["effect"] == fx and r["intensity"] == t]) for t in ints]
    d = [np.mean([r["dist"] for r in R if r["effect"] == fx and r["intensity"] == t]) for t in ints]
    tops = [collections.Counter(r["dir_top"] for r in R if r["effect"] == fx and r["intensity"] == t).most_common(1)[0][0] for t in ints]
    print(f"{fx:17s} s " + " ".join(f"{v:.2f}" for v in s) + " | c " + " ".join(f"{v:.2f}" for v in c) + " | dB " + " ".join(f"{v:4.1f}" for v in d) + " | " + ",".join(tops))
print("== series: set per intensity (switch?) and dist")
ser = collections.defaultdict(dict)
for r in R: ser[(r["photo"], r["effect"], r["clip"])][r["intensity"]] = r
nsw = 0; fails = collections.Counter(); cause = collections.Counter()
for k, s in ser.items():
    sets = [tuple(sorted(e for e, _ in s[t]["plan"])) for t in ints]
    dist = [s[t]["dist"] for t in ints]
    same = len(set(sets)) == 1
    from scipy.stats import spearmanr
    rho = spearmanr(ints, dist).statistic
    ok = dist[-1] > dist[1]
    if not ok or rho < 0.8:
        fails[k[1]] += 1
        cause["set switch" if sets[1] != sets[-1] else "same set 0.3/0.9"] += 1
        if len(sys.argv) > 3:
            print(k, f"rho {rho:.2f}", " | ".join(f"{t}:{'+'.join(x)} {d:.1f}" for t, x, d in zip(ints, sets, dist)))
print("failing series (rho<0.8 or 0.9<=0.3) per effect", dict(fails), dict(cause))
