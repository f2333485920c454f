"""hh.trainer: data loading from class folders, model builders, the training loop, plots.

Needs TensorFlow, except the run-folder modules (config, run_folder, run_record, split), which a
converter or a Python caller reads without it. Public names load lazily.
"""

from __future__ import annotations

from ..edge.lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "hh.trainer.config",
    "RunFolder": "hh.trainer.run_folder",
    "RecordedSplit": "hh.trainer.split",
    "RunRecord": "hh.trainer.run_record",
    "TrainResult": "hh.trainer.train",
    "TrainingRun": "hh.trainer.train",
    "resume": "hh.trainer.api",
}
__getattr__, __dir__, __all__ = lazy_exports("hh.trainer", _EXPORTS)
