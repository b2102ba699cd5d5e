"""Per listening-grid folder (`deltav2a transfer ... --image-effect all:0.3,0.9 -o DIR`): cells (photo, image effect,
clip) whose rendered set is the same at 0.3 and 0.9 (decision 9.133). usage: python benchmarks/listening_grid_sets.py DIR [DIR ...]"""
import json, sys, collections
from pathlib import Path
for d in sys.argv[1:]:
    cells = collections.defaultdict(dict); nfx = []
    for t in json.load(open(Path(d) / "index.json"))["transfers"]:
        side = json.load(open((Path(d) / Path(t["output"]).name).with_suffix(".json")))
        fx, inten = t["edit"].rsplit("-", 1)
        s = tuple(sorted(r["effect"] for r in side["effects"])); nfx.append(len(s))
        cells[(Path(t["image"]).stem, fx, Path(t["audio"]).stem)][inten] = s
    same = [k for k, v in cells.items() if v.get("0.3") == v.get("0.9")]
    print(f"{d}: same set at 0.3 and 0.9 in {len(same)} of {len(cells)} cells; {sum(nfx)/len(nfx):.2f} effects per transfer")
    for k in sorted(cells, key=lambda k: (k[1], k[0], k[2])):
        v = cells[k]; print(f"   {k[1]:17s} {k[0][:14]:14s} {k[2][:14]:14s} 0.3 {'+'.join(v.get('0.3', ())):30s} 0.9 {'+'.join(v.get('0.9', ())):30s} {'same' if v.get('0.3') == v.get('0.9') else ''}")
