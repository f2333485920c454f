"""The best epoch scored on the validation images, as people look at it: per-class precision,
recall, F1 and support, balanced accuracy and the confusion matrix (evaluation.json,
confusion.png, mistakes.png and reliability.png in the run folder, by hh.edge.evaluate)."""

from __future__ import annotations

import numpy as np

from ..edge.evaluate import write_report
from .data import input_chunks
from .decode import read_model_input
from .models import keras_probabilities, load_model_file
from .run_data import RunData
from .run_folder import RunFolder


class ImagesByIndex:
    """The validation images as BGR, read one at a time when asked for (the mistakes picture
    shows a few): the whole set is never in memory at once."""

    def __init__(self, data: RunData):
        self.data = data
        decoded = data.decoded.get("validation")
        self.decoded = decoded
        self.rows = decoded.rows(data.val.paths) if decoded is not None else None

    def __len__(self) -> int:
        return len(self.data.val)

    def __getitem__(self, i: int) -> np.ndarray:
        if self.rows is not None and self.decoded is not None:
            rgb = self.decoded.pixels[self.rows[i : i + 1]][0]
        else:
            rgb = read_model_input(self.data.val.paths[i], self.data.spec)
        return rgb[..., ::-1]


def evaluate_best(run: RunFolder, data: RunData) -> dict:
    """Score model.keras (the best epoch) on the run's validation images; write the report."""
    model = load_model_file(run.model_path, "the best epoch's model cannot be loaded")
    chunks = [
        keras_probabilities(model, images, data.spec)
        for images in input_chunks(data.val, data.spec, data.decoded.get("validation"))
    ]
    labels = np.asarray(data.val.labels, np.int64)
    probabilities = np.concatenate(chunks)
    report = write_report(
        run.path, data.spec.class_names, labels, probabilities, ImagesByIndex(data), [str(p) for p in data.val.paths]
    )
    return {
        "accuracy": report["accuracy"],
        "balanced_accuracy": report["balanced_accuracy"],
        "per_class": report["per_class"],
        "images": int(np.size(labels)),
    }
