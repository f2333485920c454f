"""hh.trainer: data loading from class folders, model builders, the training loop, plots.

Needs TensorFlow, except the run-folder modules (config, run_folder, split), which a
converter or a Python caller reads without it. Public names load lazily.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "hh.trainer.config",
    "RunFolder": "hh.trainer.run_folder",
    "RecordedSplit": "hh.trainer.split",
    "TrainResult": "hh.trainer.train",
    "resume": "hh.trainer.train",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hh.trainer' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
