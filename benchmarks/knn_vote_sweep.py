"""The k-NN's vote and parameters on a run's val or test database (decisions 9.150-9.153).

`sweep` (val only: the tuning set): refit the k-NN of MODEL_DIR on the run's train database
with each option set of a grid (`audio_weight` x `k` x `strength_weight`, the neighbours'
parameters, as decision 9.151 measured them), re-tune the
thresholds on val as `run` does (own vote, 9.141), and print the own-vote and locked macro
F1 with the gap between the rendered and the true mean count, and the ungated active-
parameter RMSE against the active-mean baseline.

`score` (val or test): the same numbers for finished model directories, as they are.

usage: python benchmarks/knn_vote_sweep.py sweep RUN_DIR MODEL_DIR
       python benchmarks/knn_vote_sweep.py score RUN_DIR {val,test} MODEL_DIR [MODEL_DIR ...]
(RUN_DIR: a `deltav2a run -o` folder whose cache holds db_train / db_val / db_test)
"""
import copy
import json
import sys
from pathlib import Path

import numpy as np

from deltav2a.api.controllers import get_controller
from deltav2a.config import ControllerConfig, effective_max_active
from deltav2a.evaluation import evaluate, mean_baseline_rmse, tune_thresholds
from deltav2a.experiment.stages import load_db, load_model
from deltav2a.model.strength import controller_prediction, own_vote_config


def db_dir(run: Path, stage: str) -> Path:
    return run / json.load(open(next((run / "cache" / stage).glob("*.json"))))["result"]["db"]


def scores(cfg, loaded, data, thresholds, train) -> str:
    """own vote and locked F1 (count gap), ungated RMSE reduction vs the active-mean baseline."""
    off = own_vote_config(cfg)
    cap, floor = effective_max_active(cfg), int(cfg.database.min_active)
    true_n = float(data.active.sum(axis=1).mean())
    strict = float(mean_baseline_rmse(train.active, train.params, data.active, data.params, loaded.layout,
                                      over="active"))
    out = []
    for name, c in (("own", off), ("locked", cfg)):
        p = controller_prediction(c, loaded, data.style, data.audio, data.strength)
        ev = evaluate(p.activity, p.params, data.active, data.params, loaded.layout, thresholds, cap, floor)
        out.append(f"{name} F1 {ev['macro_f1']:.4f} ({ev['mean_active_effects_predicted'] - true_n:+.3f})")
    out.append(f"RMSE {(ev['active_param_rmse'] / strict - 1) * 100:+.1f} %")
    return " | ".join(out)


def main(argv: list[str]) -> None:
    mode, run = argv[0], Path(argv[1])
    if mode == "sweep":
        cfg, loaded = load_model(Path(argv[2]))
        train, val = (load_db(cfg, db_dir(run, s)).data for s in ("db_train", "db_val"))
        meta = loaded.metadata
        cap, floor = effective_max_active(cfg), int(cfg.database.min_active)
        off = own_vote_config(cfg)
        for a in (0.0, 0.05, 0.1, 0.25):
            for k in (8, 16, 32):
                for s in (0.5, 1.0):
                    changes = {"audio_weight": a, "k": k, "strength_weight": s, "params_from": "neighbours"}
                    ccfg = ControllerConfig.model_validate(
                        {**meta.config, "options": {**dict(meta.config.get("options") or {}), **changes}})
                    module = get_controller("knn").build(train.style_dim, train.audio_dim, loaded.layout, ccfg)
                    module.fit(train, seed=int(cfg.seed))
                    module.eval()
                    variant = copy.copy(loaded)
                    variant.module = module
                    p = controller_prediction(off, variant, val.style, val.audio, val.strength)
                    r = tune_thresholds(p.activity, p.params, val.active, val.params, loaded.layout,
                                        cfg.thresholds, max_active=cap, min_active=floor)
                    print(changes, scores(cfg, variant, val, r.thresholds, train), flush=True)
    elif mode == "score":
        split = {"val": "db_val", "test": "db_test"}[argv[2]]
        for m in argv[3:]:
            cfg, loaded = load_model(Path(m))
            data, train = load_db(cfg, db_dir(run, split)).data, load_db(cfg, db_dir(run, "db_train")).data
            print(m, scores(cfg, loaded, data, loaded.thresholds, train), flush=True)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
