"""The listening study without a browser: case selection, the answers database, the analysis
on known answers, CSV export, and the CLI's one-line errors."""

from __future__ import annotations

import csv
import json
import math
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from conftest import run_cli


def _manifest(folder, groups):
    """A study manifest with synthetic cases (no media: the store and analysis need none)."""
    cases = []
    for i, (group, norm, strength) in enumerate(groups):
        cases.append({"id": f"c{i + 1:02d}", "group": group, "delta_norm": norm, "strength": strength,
                      "confidence": strength, "n_effects": 1, "effects": [{"effect": "lowpass", "params": {}}],
                      "image_effect": "motion_blur", "intensity": 0.5})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "study.json").write_text(json.dumps({"version": 1, "cases": cases}))
    return cases


CASES = [("high_delta", 2.0, 0.99), ("high_delta", 1.8, 0.97), ("low_delta", 0.2, 0.3),
         ("one_effect", 0.9, 0.7), ("two_effects", 1.0, 0.8), ("low_delta", 0.25, 0.35)]


def _answer_all(store, rater, q1_of, edited_of):
    plan = store.plan(rater)
    for p in plan:
        want_edited = edited_of(p["case"])
        side = p["edited_side"] if want_edited else ("left" if p["edited_side"] == "right" else "right")
        store.answer(rater, p["case"], q1_of(p["case"]), side)
    return plan


def test_select_fills_the_notes_groups_disjointly():
    from deltav2a.study.build import Selection, select

    cands = [{"delta_norm": n, "effects": [{}] * k} for n, k in
             [(0.1, 3), (0.2, 1), (0.5, 1), (0.6, 2), (0.55, 1), (0.7, 2), (0.65, 1), (0.8, 2), (1.5, 1), (1.6, 2),
              (1.7, 3), (1.9, 1)]]
    chosen, thr = select(cands, Selection(high_norm=1.0, low_norm=0.3))
    groups = {}
    for c in chosen:
        groups.setdefault(c["group"], []).append(c["candidate"])
    assert {g: len(v) for g, v in groups.items()} == {"high_delta": 4, "low_delta": 2, "one_effect": 3, "two_effects": 3}
    assert len({c["candidate"] for c in chosen}) == 12  # disjoint
    assert sorted(cands[i]["delta_norm"] for i in groups["high_delta"]) == [1.5, 1.6, 1.7, 1.9]
    assert sorted(cands[i]["delta_norm"] for i in groups["low_delta"]) == [0.1, 0.2]
    assert all(len(cands[i]["effects"]) == 1 for i in groups["one_effect"])
    assert all(len(cands[i]["effects"]) == 2 for i in groups["two_effects"])
    # quantile thresholds (the default) come from the candidates' norms
    import numpy as np

    _, thr = select(cands, Selection(counts={"high_delta": 2, "low_delta": 2, "one_effect": 0, "two_effects": 0}))
    norms = [c["delta_norm"] for c in cands]
    assert thr["high_norm"] == pytest.approx(np.quantile(norms, 0.75))
    assert thr["low_norm"] == pytest.approx(np.quantile(norms, 0.25))
    # a group that cannot be filled
    from deltav2a.errors import DeltaV2AError

    with pytest.raises(DeltaV2AError, match="group two_effects"):
        select(cands, Selection(counts={"high_delta": 1, "low_delta": 1, "one_effect": 1, "two_effects": 5}))
    chosen, thr = select(cands, Selection(counts={"two_effects": 5, "high_delta": 0, "low_delta": 0, "one_effect": 0},
                                          high_norm=1.0, low_norm=0.3, allow_short=True))
    assert thr["got"]["two_effects"] == 3 and len(chosen) == 3  # the middle holds three 2-effect candidates
    with pytest.raises(DeltaV2AError, match="must be below"):
        select(cands, Selection(high_norm=0.5, low_norm=0.6))


def test_store_records_answers_at_once_and_keeps_them(tmp_path):
    from deltav2a.errors import DeltaV2AError
    from deltav2a.study.store import Store

    _manifest(tmp_path, CASES)
    store = Store(tmp_path, seed=7)
    r1, r2 = store.new_rater(), store.new_rater()
    assert r1 != r2
    p1, p2 = store.plan(r1), store.plan(r2)
    ids = [c[0] for c in CASES]
    assert sorted(p["case"] for p in p1) == sorted(f"c{i + 1:02d}" for i in range(len(ids)))
    assert [p["case"] for p in p1] != [p["case"] for p in p2]  # per-rater order (seed 7: known to differ)
    # the same seed gives the same orders in a fresh study: the randomisation is reproducible
    other = tmp_path / "again"
    _manifest(other, CASES)
    again = Store(other, seed=7)
    assert again.plan(again.new_rater()) == p1
    first = p1[0]
    out = store.answer(r1, first["case"], 4, first["edited_side"])
    assert out == {"case": first["case"], "position": 0, "q2_choice": "edited"}
    # on disk at once, seen by an independent connection; WAL mode
    db = sqlite3.connect(tmp_path / "answers.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = db.execute("SELECT rater_id, case_id, position, q1, q2_edited_side, q2_side, q2_choice FROM answers").fetchall()
    assert row == [(r1, first["case"], 0, 4, first["edited_side"], first["edited_side"], "edited")]
    db.close()
    with pytest.raises(DeltaV2AError, match="already answered"):
        store.answer(r1, first["case"], 3, "left")
    for bad, msg in [((r1, "c99", 3, "left"), "not in this study"), ((r1, p1[1]["case"], 6, "left"), "1 to 5"),
                     ((r1, p1[1]["case"], True, "left"), "1 to 5"), ((r1, p1[1]["case"], 3, "up"), "left"),
                     (("r" + "0" * 16, "c01", 3, "left"), "unknown rater"), (("../etc", "c01", 3, "left"), "unknown rater")]:
        with pytest.raises(DeltaV2AError, match=msg):
            store.answer(*bad)
    # a "restart": a new Store on the same folder sees everything and resumes the same plan
    reopened = Store(tmp_path, seed=7)
    plan, done = reopened.progress(r1)
    assert plan == p1 and done == {first["case"]}


def test_two_raters_at_once_do_not_interfere(tmp_path):
    from deltav2a.study.store import Store

    _manifest(tmp_path, CASES * 5)  # 30 cases
    store = Store(tmp_path)
    raters = [store.new_rater() for _ in range(2)]
    errors = []

    def run(r):
        try:
            _answer_all(Store(tmp_path), r, lambda c: 3, lambda c: True)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in raters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = store.rows()
    assert len(rows) == 60
    for r in raters:
        mine = [x for x in rows if x["rater_id"] == r]
        assert [x["position"] for x in mine] == list(range(30))
        assert [x["case_id"] for x in mine] == [p["case"] for p in store.plan(r)]


def _known_answers(tmp_path):
    """Two raters who agree: 5 and 'edited' on high-delta cases, 2 and 'original' elsewhere."""
    from deltav2a.study.store import Store

    cases = _manifest(tmp_path, CASES)
    group = {c["id"]: c["group"] for c in cases}
    store = Store(tmp_path, seed=3)
    for _ in range(2):
        _answer_all(store, store.new_rater(), lambda c: 5 if group[c] == "high_delta" else 2,
                    lambda c: group[c] == "high_delta")
    return cases


def _ranks(xs):
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def _pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


def test_analyze_on_known_answers(tmp_path):
    from scipy import stats

    from deltav2a.study.analyze import analyze

    cases = _known_answers(tmp_path)
    res = analyze(tmp_path)
    n, h = 12, 4  # 2 raters x 6 cases; 2 high-delta cases x 2 raters
    q1 = [5] * h + [2] * (n - h)
    mean = sum(q1) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in q1) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    assert res["answers"] == 12 and res["raters"] == 2 and res["cases"] == 6
    assert res["q1"]["mean"] == pytest.approx(3.0)
    assert res["q1"]["ci95"] == pytest.approx([mean - half, mean + half])
    assert res["q2"]["edited"] == 4 and res["q2"]["rate"] == pytest.approx(4 / 12)
    p_greater = sum(math.comb(n, i) for i in range(4, n + 1)) / 2**n
    assert res["q2"]["p_greater"] == pytest.approx(p_greater)
    assert res["groups"]["high_delta"]["q2"]["rate"] == 1.0 and res["groups"]["high_delta"]["q1"]["mean"] == 5.0
    assert res["groups"]["high_delta"]["q2"]["p_greater"] == pytest.approx(0.5**4)
    assert res["groups"]["low_delta"]["q2"]["rate"] == 0.0 and res["groups"]["low_delta"]["q2"]["n"] == 4
    # Spearman per case, against a hand-written rank correlation
    norms = [c["delta_norm"] for c in cases]
    q1_case = [5.0 if c["group"] == "high_delta" else 2.0 for c in cases]
    assert res["spearman"]["q1_mean~delta_norm"]["rho"] == pytest.approx(_pearson(_ranks(norms), _ranks(q1_case)))
    strengths = [c["strength"] for c in cases]
    assert res["spearman"]["q2_rate~strength"]["rho"] == pytest.approx(
        _pearson(_ranks(strengths), _ranks([1.0 if c["group"] == "high_delta" else 0.0 for c in cases])))
    # the raters agree perfectly
    assert res["agreement"]["q1_krippendorff_ordinal"]["alpha"] == pytest.approx(1.0)
    assert res["agreement"]["q2_krippendorff_nominal"]["alpha"] == pytest.approx(1.0)


def test_export_and_analyze_commands(tmp_path):
    _known_answers(tmp_path)
    res = run_cli("study", "export", str(tmp_path))
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader((tmp_path / "answers.csv").open()))
    assert len(rows) == 12 and {r["q2_choice"] for r in rows} == {"edited", "original"}
    assert all(r["chose_edited"] == ("1" if r["group"] == "high_delta" else "0") for r in rows)
    res = run_cli("study", "analyze", str(tmp_path), "-o", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert "| all | 12 | 3.00 |" in res.stdout and "0.333 (4/12)" in res.stdout
    saved = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert saved["q2"]["edited"] == 4
    from PIL import Image

    with Image.open(tmp_path / "out" / "analysis.png") as im:
        assert im.width > 800


def test_study_commands_fail_in_one_line(tmp_path):
    res = run_cli("study", "analyze", str(tmp_path))
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "study.json" in res.stderr
    _manifest(tmp_path, CASES)
    res = run_cli("study", "analyze", str(tmp_path))
    assert res.returncode == 2 and "no answers yet" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "study.json").write_text("{not json")
    res = run_cli("study", "export", str(tmp_path))
    assert res.returncode == 2 and "not valid JSON" in res.stderr
    res = run_cli("study", "build", "--images", str(tmp_path / "none"), "--audio", str(tmp_path), "-o", str(tmp_path / "s"))
    assert res.returncode == 2 and "--images must be a folder" in res.stderr
    res = run_cli("serve", "--model", str(tmp_path))
    assert res.returncode == 2 and "no trained model" in res.stderr


def test_help_imports_nothing_heavy_for_the_new_commands():
    code = textwrap.dedent("""
        import sys, io, contextlib
        from deltav2a.cli.main import main
        for args in (["--help"], ["serve", "--help"], ["study", "build", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    main(args)
                except SystemExit as e:
                    assert e.code == 0, e.code
        heavy = sorted(m for m in ("torch", "numpy", "fastapi", "uvicorn", "starlette", "scipy", "PIL",
                                   "krippendorff", "sqlite3") if m in sys.modules)
        print(",".join(heavy))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"heavy modules imported: {res.stdout}"
