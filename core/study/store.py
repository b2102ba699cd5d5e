"""Raters and answers in SQLite.

WAL mode with synchronous=FULL and autocommit: each answer is one INSERT, on disk when the
request returns, so a server restart loses nothing and concurrent raters (one connection per
request) never block each other for long. Each rater's case order and Q2 image sides are drawn
when the rater is created and stored with the rater, so the randomisation is recorded and a
returning rater resumes where they stopped.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from ..artifact import Format, read_json
from ..errors import DeltaV2AError
from . import DATABASE, MANIFEST

#: study.json; folders built before it had a `format` field (only "version": 1) still load
FORMAT = Format("deltav2a-study", 1, "study manifest", missing_format_ok=True,
                remedy="build one with `deltav2a study build`")

RATER_ID = re.compile(r"^r[0-9a-f]{16}$")
SIDES = ("left", "right")

SCHEMA = """
CREATE TABLE IF NOT EXISTS raters (
    rater_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    seed INTEGER NOT NULL,
    plan TEXT NOT NULL            -- JSON [{"case": id, "edited_side": "left"|"right"}] in order
);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rater_id TEXT NOT NULL REFERENCES raters(rater_id),
    case_id TEXT NOT NULL,
    position INTEGER NOT NULL,     -- 0-based place of the case in this rater's order
    q1 INTEGER NOT NULL CHECK (q1 BETWEEN 1 AND 5),
    q2_edited_side TEXT NOT NULL CHECK (q2_edited_side IN ('left', 'right')),
    q2_side TEXT NOT NULL CHECK (q2_side IN ('left', 'right')),
    q2_choice TEXT NOT NULL CHECK (q2_choice IN ('original', 'edited')),
    answered REAL NOT NULL,
    UNIQUE (rater_id, case_id)
);
"""


def load_manifest(study: Path) -> dict:
    path = Path(study) / MANIFEST
    if not path.is_file():
        raise DeltaV2AError(f"{study} is not a study folder (no {MANIFEST}; make one with `deltav2a study build`)")
    _, man = read_json(path, FORMAT)
    cases = man.get("cases")
    if not isinstance(cases, list) or not cases:
        raise DeltaV2AError(f"study manifest {path} lists no cases")
    for c in cases:
        if not (isinstance(c, dict) and isinstance(c.get("id"), str) and re.fullmatch(r"c\d{2,4}", c["id"])):
            raise DeltaV2AError(f"study manifest {path}: bad case entry {str(c)[:80]}")
    return man


class Store:
    """The answers database of one study folder."""

    def __init__(self, study: Path, seed: int | None = None) -> None:
        self.study = Path(study)
        self.manifest = load_manifest(self.study)
        self.cases = {c["id"]: c for c in self.manifest["cases"]}
        self.path = self.study / DATABASE
        self.seed = seed  # fixed seed: rater n's randomisation is reproducible (tests, pilots)
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.row_factory = sqlite3.Row
        return db

    # ------------------------------------------------------------------ raters

    def new_rater(self) -> str:
        rater = "r" + secrets.token_hex(8)
        with closing(self._connect()) as db:
            if self.seed is None:
                seed = secrets.randbits(63)
            else:
                n = db.execute("SELECT COUNT(*) FROM raters").fetchone()[0]
                seed = (self.seed * 1_000_003 + n) % (2**63)
            rng = random.Random(seed)
            ids = list(self.cases)
            rng.shuffle(ids)
            plan = [{"case": c, "edited_side": rng.choice(SIDES)} for c in ids]
            db.execute("INSERT INTO raters VALUES (?, ?, ?, ?)", (rater, time.time(), seed, json.dumps(plan)))
        return rater

    def plan(self, rater: str) -> list[dict]:
        if not RATER_ID.fullmatch(rater or ""):
            raise DeltaV2AError("unknown rater")
        with closing(self._connect()) as db:
            row = db.execute("SELECT plan FROM raters WHERE rater_id = ?", (rater,)).fetchone()
        if row is None:
            raise DeltaV2AError("unknown rater")
        return json.loads(row["plan"])

    def progress(self, rater: str) -> tuple[list[dict], set[str]]:
        plan = self.plan(rater)
        with closing(self._connect()) as db:
            done = {r["case_id"] for r in db.execute("SELECT case_id FROM answers WHERE rater_id = ?", (rater,))}
        return plan, done

    # ------------------------------------------------------------------ answers

    def answer(self, rater: str, case_id: str, q1: int, q2_side: str) -> dict:
        plan = self.plan(rater)
        pos = next((i for i, p in enumerate(plan) if p["case"] == case_id), None)
        if pos is None:
            raise DeltaV2AError(f"case '{case_id[:20]}' is not in this study")
        if not isinstance(q1, int) or isinstance(q1, bool) or not 1 <= q1 <= 5:
            raise DeltaV2AError("Q1 must be a whole number from 1 to 5")
        if q2_side not in SIDES:
            raise DeltaV2AError("Q2 must be 'left' or 'right'")
        edited_side = plan[pos]["edited_side"]
        choice = "edited" if q2_side == edited_side else "original"
        try:
            with closing(self._connect()) as db:
                db.execute("INSERT INTO answers (rater_id, case_id, position, q1, q2_edited_side, q2_side, "
                           "q2_choice, answered) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (rater, case_id, pos, q1, edited_side, q2_side, choice, time.time()))
        except sqlite3.IntegrityError:
            raise DeltaV2AError("this case was already answered") from None
        return {"case": case_id, "position": pos, "q2_choice": choice}

    def rows(self) -> list[dict]:
        """Every answer joined with its case's facts, in answer order."""
        with closing(self._connect()) as db:
            answers = [dict(r) for r in db.execute("SELECT * FROM answers ORDER BY id")]
        out = []
        for a in answers:
            c = self.cases.get(a["case_id"], {})
            out.append({**a, "group": c.get("group"), "delta_norm": c.get("delta_norm"),
                        "strength": c.get("strength"), "confidence": c.get("confidence"),
                        "n_effects": c.get("n_effects"), "image_effect": c.get("image_effect"),
                        "intensity": c.get("intensity"),
                        "effects": " + ".join(e["effect"] for e in c.get("effects", [])),
                        "chose_edited": int(a["q2_choice"] == "edited")})
        return out


def export_csv(study: Path, output: Path) -> int:
    import csv
    import io

    from ..atomic import write_text

    rows = Store(study).rows()
    cols = ["id", "rater_id", "case_id", "position", "group", "q1", "q2_edited_side", "q2_side", "q2_choice",
            "chose_edited", "delta_norm", "strength", "confidence", "n_effects", "effects", "image_effect",
            "intensity", "answered"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(output, buf.getvalue())
    return len(rows)
