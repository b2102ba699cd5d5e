"""Copy a k-NN model directory and refit only its controller with changed options (decision 9.60).

Everything else stays the model's own: calibration, strength maps, thresholds, encoders,
inference settings. Used to compare `params_from: neighbours` (the shipped model) with
`params_from: head` on the tuning and held-out transfer protocols without retraining or
recalibrating anything else: the activity (the neighbours' vote) is unchanged by the head,
so the tuned thresholds still apply.

usage: python benchmarks/knn_refit.py MODEL_DIR TRAIN_DB OUT_DIR KEY=VALUE [KEY=VALUE ...]
  e.g. python benchmarks/knn_refit.py runs/run/models/knn runs/db_train runs/m_head params_from=head
(KEY: a `controller.options` field of the k-NN; VALUE parsed as YAML)
"""
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import yaml

from deltav2a.api.controllers import get_controller
from deltav2a.config import ControllerConfig
from deltav2a.experiment.stages import load_db, load_model
from deltav2a.model.weights import save_controller

src, train_db, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
changes = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in sys.argv[4:])}
cfg, loaded = load_model(src)
meta = loaded.metadata
if meta.controller != "knn":
    sys.exit(f"{src}: controller is {meta.controller!r}, not knn")
options = {**dict(meta.config.get("options") or {}), **changes}
ccfg = ControllerConfig.model_validate({**meta.config, "options": options})
if out.exists():
    shutil.rmtree(out)
shutil.copytree(src, out)
data = load_db(cfg, train_db).data
module = get_controller("knn").build(data.style_dim, data.audio_dim, loaded.layout, ccfg)
seed = int((meta.training or {}).get("seed", cfg.seed))
info = module.fit(data, seed=seed)
module.eval()
training = {**(meta.training or {}), "refit": {"options": changes, **info}}
save_controller(out / "controller", module, replace(meta, config=ccfg.model_dump(mode="json"), training=training))
snap = yaml.safe_load((out / "config.yaml").read_text())
# where `Config.controller_config("knn")` reads them back (a run's snapshot names its first
# controller under `controller`, the k-NN's options live under `experiment.options.knn`), so a
# later stage that re-saves the model (thresholds) keeps them
if (snap.get("controller") or {}).get("name") == "knn":
    snap["controller"]["options"] = options
else:
    snap.setdefault("experiment", {}).setdefault("options", {})["knn"] = options
(out / "config.yaml").write_text(yaml.safe_dump(snap, sort_keys=False))
print(f"{out}: knn refit with {changes} on {len(data)} records (seed {seed}): {info}")
