"""run.json: what a run is, how far it got and how it ended. stdlib only.

One typed record, written first when a run starts (from then on the folder is a run that
--resume accepts) and rewritten at each step: data counts once the data is scanned, the best
epoch after every commit, the outcome and evaluation at the end. Fields that are not known
yet are absent from the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from .config import TrainConfig

STATUSES = ("scanning", "training", "complete", "interrupted")


@dataclass
class RunRecord:
    config: TrainConfig
    status: str = "scanning"  # one of STATUSES
    versions: dict[str, str] = field(default_factory=dict)  # tensorflow, keras, python
    class_names: list[str] | None = None
    class_mode: str | None = None
    train_images: dict[str, int] | None = None  # per class
    val_images: dict[str, int] | None = None
    skipped_files: int | None = None  # unusable or ignored files (bad_files.txt)
    epochs_done: int | None = None
    best_epoch: int | None = None
    best_val_loss: float | None = None
    best_val_accuracy: float | None = None
    stopped_early: bool | None = None
    train_seconds: float | None = None
    evaluation: dict | None = None  # the best epoch on the validation images (hh.edge.evaluate)
    warnings: list[str] | None = None  # what a user must know before using the model (it has not learned)

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """Raises ValueError (or TypeError) for a record this hh cannot read."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            raise ValueError("no configuration")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
        record = cls(**{**data, "config": TrainConfig.from_dict(data["config"])})
        if record.status not in STATUSES:
            raise ValueError(f"status {record.status!r}")
        return record
