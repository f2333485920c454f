"""Classify image files and score them: what hh-predict prints, as a library. numpy + OpenCV.

A folder of class folders (named like the model's labels) is scored: accuracy and a
confusion matrix. A folder of images, or one image, is only classified.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hh.edge.errors import UserError
from hh.edge.folders import is_image_file, list_image_folder
from hh.edge.preprocess import UnreadableImage, read_image_bgr
from hh.edge.runtime import Classification, TFLiteClassifier


@dataclass
class ImageResult:
    path: str
    classification: Classification
    truth: int | None = None  # index into the model's labels, when the folder says


@dataclass
class Evaluation:
    class_names: tuple[str, ...]
    results: list[ImageResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: reason" for unreadable files

    @property
    def scored(self) -> bool:
        return bool(self.results) and all(r.truth is not None for r in self.results)

    def confusion(self) -> np.ndarray:
        """counts[true, predicted]."""
        n = len(self.class_names)
        matrix = np.zeros((n, n), np.int64)
        for r in self.results:
            matrix[r.truth, r.classification.index] += 1
        return matrix

    @property
    def accuracy(self) -> float:
        matrix = self.confusion()
        return float(np.trace(matrix) / max(1, matrix.sum()))

    def summary(self) -> dict:
        out = {"type": "summary", "images": len(self.results), "skipped": len(self.skipped)}
        if self.scored:
            out.update(accuracy=round(self.accuracy, 5), labels=list(self.class_names), confusion=self.confusion().tolist())
        return out


def format_confusion(matrix: np.ndarray, names) -> str:
    width = max(8, *(len(n) for n in names)) + 1
    rows = ["true \\ predicted".ljust(width + 8) + "".join(n.rjust(width) for n in names)]
    for name, row in zip(names, matrix):
        rows.append(name.ljust(width + 8) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(rows)


def images_to_classify(classifier: TFLiteClassifier, images: str | Path) -> tuple[list[str], list[int] | None]:
    """(paths, true label indexes or None) for an image, a folder, or a folder of class folders."""
    images = Path(images)
    names = classifier.class_names
    if images.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in images.iterdir()):
        folder = list_image_folder(images, "image folder")
        unknown = sorted(set(folder.class_names) - set(names))
        if unknown:
            raise UserError(f"{images}: class folders {', '.join(unknown)} are not labels of the model ({', '.join(names)})")
        return list(folder.paths), [names.index(folder.class_names[label]) for label in folder.labels]
    if images.is_dir():
        paths = sorted(str(p) for p in images.iterdir() if is_image_file(p))
        if not paths:
            raise UserError(f"{images}: no images in this folder")
        return paths, None
    if images.is_file():
        return [str(images)], None
    raise UserError(f"{images} does not exist")


def evaluate(
    classifier: TFLiteClassifier,
    images: str | Path,
    on_result: Callable[[ImageResult], None] | None = None,
    on_skip: Callable[[str], None] | None = None,
) -> Evaluation:
    """Classify every image with the device's own path (OpenCV decode, fit_to_spec, RGB)."""
    paths, truth = images_to_classify(classifier, images)
    evaluation = Evaluation(classifier.class_names)
    for i, path in enumerate(paths):
        try:
            frame = read_image_bgr(path)
        except UnreadableImage as exc:
            evaluation.skipped.append(str(exc))
            if on_skip:
                on_skip(str(exc))
            continue
        result = ImageResult(path, classifier.classify(frame), None if truth is None else truth[i])
        evaluation.results.append(result)
        if on_result:
            on_result(result)
    if not evaluation.results:
        raise UserError(f"{images}: none of the {len(paths)} image files could be read")
    return evaluation
