"""The notes' listening study ("User Evaluation"): case selection, answers, analysis.

    build   (build.py)   candidate transfers -> the notes' groups -> rendered cases + study.json
    store   (store.py)   raters, per-rater orders and Q2 sides, answers in SQLite (WAL)
    analyze (analyze.py) Q1 mean + CI, Q2 edited rate vs 50 %, per group, Spearman, agreement
"""

MANIFEST = "study.json"  # its header: `study.store.FORMAT` (deltav2a-study, version 1)
DATABASE = "answers.sqlite"
GROUPS = ("high_delta", "low_delta", "one_effect", "two_effects")
