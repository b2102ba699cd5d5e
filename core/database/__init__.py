"""The inverse-mapping database: (style label, E(A)) -> (active effects, parameters) records.

`build_database` renders random effect chains on the train clips of a split file and
stores one record per augmentation in Parquet shards; `load_database` reads them back as
the trainer's `ControllerData`, refusing a database made with another encoder,
vocabulary or effect layout. See docs/database.md.
"""

from .generate import BuildSummary, DatabaseWarning, build_database, plan_database
from .sampling import Augmentation, AugmentationSampler, allowed_intervals, record_rng
from .store import Database, check_compatible, load_database, load_database_for, read_meta

__all__ = [
    "Augmentation", "AugmentationSampler", "BuildSummary", "Database", "DatabaseWarning",
    "allowed_intervals", "build_database", "check_compatible", "load_database",
    "load_database_for", "plan_database", "read_meta", "record_rng",
]
