"""Where a model's strength rank correlation is lost (decision 9.120): every ordered pair of
intensities (i < j) of each (photo, image effect, clip) series of `strength_tuning.py --rows`
output is concordant when the stronger edit changes the clip more (log-mel distance); a
discordant pair is charged to the image side when the image strength did not rise (s_j <= s_i),
else to a set switch when the rendered effect sets differ, else to the parameters / render
within one set. Per image effect and overall, with the mean image strength per intensity, and
how many neighbouring-size pairs (0.1-0.3, 0.3-0.5, ...) change the set, how many of those keep
an effect in common, and how many series keep one set (decision 9.124 / 9.131).

usage: python benchmarks/strength_decompose.py ROWS_JSON VARIANT [VARIANT ...]"""
import json, sys, collections, itertools, numpy as np
from scipy.stats import spearmanr
rows = json.load(open(sys.argv[1]))
for meth in sys.argv[2:]:
    R = [r for r in rows if r["method"] == meth]
    ser = collections.defaultdict(dict)
    for r in R: ser[(r["photo"], r["effect"], r["clip"])][r["intensity"]] = r
    ints = sorted({r["intensity"] for r in R})
    tot = collections.Counter(); per = collections.defaultdict(collections.Counter)
    smono = collections.defaultdict(list); nsets = collections.defaultdict(list); rhos = collections.defaultdict(list)
    for k, s in ser.items():
        fx = k[1]
        st = [s[t]["strength"] for t in ints]; d = [s[t]["dist"] for t in ints]
        sets = [tuple(sorted(e for e, _ in s[t]["plan"])) for t in ints]
        smono[fx].append(spearmanr(ints, st).statistic if np.ptp(st) > 0 else 0.0)
        nsets[fx].append(len(set(sets))); rhos[fx].append(spearmanr(ints, d).statistic)
        for i, j in itertools.combinations(range(len(ints)), 2):
            c = per[fx]; c["pairs"] += 1; tot["pairs"] += 1
            if d[j] > d[i]:
                cat = "ok"
            elif st[j] <= st[i]:
                cat = "bad:s_not_up"
            elif sets[i] != sets[j]:
                cat = "bad:set_switch"
            else:
                cat = "bad:same_set"
            c[cat] += 1; tot[cat] += 1
            # context: how many pairs at all have a set switch / s not up
            if sets[i] != sets[j]: c["pairs_switch"] += 1; tot["pairs_switch"] += 1
            if st[j] <= st[i]: c["pairs_s_down"] += 1; tot["pairs_s_down"] += 1
            if sets[i] == sets[j] and st[j] > st[i]:
                c["pairs_sameset_sup"] += 1; tot["pairs_sameset_sup"] += 1
    adj = [(s[a], s[b]) for s in ser.values() for a, b in zip(ints, ints[1:])]
    sw = [(set(e for e, _ in x["plan"]), set(e for e, _ in y["plan"])) for x, y in adj]
    sw = [(a, b) for a, b in sw if a != b]
    one = sum(len({tuple(sorted(e for e, _ in s[t]["plan"])) for t in ints}) == 1 for s in ser.values())
    print(f"== {meth}: {len(ser)} series, {tot['pairs']} ordered pairs; neighbouring sizes: {len(sw)} of "
          f"{len(adj)} pairs change the set ({sum(bool(a & b) for a, b in sw)} keep an effect in common); "
          f"one set over the sizes in {one} of {len(ser)} series")
    def line(name, c, extra=""):
        P = c["pairs"]
        print(f"{name:17s} discordant {1 - c['ok']/P:.3f} = s_not_up {c['bad:s_not_up']/P:.3f} + set_switch {c['bad:set_switch']/P:.3f} + same_set {c['bad:same_set']/P:.3f}"
              f" | pairs: s_down {c['pairs_s_down']/P:.2f}, switch {c['pairs_switch']/P:.2f}, same-set&s-up {c['pairs_sameset_sup']/P:.2f}"
              f" (bad there {c['bad:same_set']/max(c['pairs_sameset_sup'],1):.2f}) {extra}")
    for fx in per:
        line(fx, per[fx], f"| rho(s,int) {np.mean(smono[fx]):.2f} | sets/series {np.mean(nsets[fx]):.2f} | rho(dist) {np.mean(rhos[fx]):.2f}")
    line("ALL", tot, f"| rho(s,int) {np.mean(sum(smono.values(), [])):.2f} | sets/series {np.mean(sum(nsets.values(), [])):.2f} | rho(dist) {np.mean(sum(rhos.values(), [])):.2f}")
    for fx in per:
        print(f"   {fx:17s} mean s by intensity", " ".join(f"{np.mean([ser[k][t]['strength'] for k in ser if k[1]==fx]):.2f}" for t in ints))
