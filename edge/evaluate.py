"""Classify image files and score them: what hh-predict prints, as a library. numpy + OpenCV.

A folder of class folders (named like the model's labels) is scored: per-class precision,
recall, F1 and support, accuracy, balanced accuracy (the mean of the per-class recalls, which
a model answering the majority class everywhere cannot fake on imbalanced data) and the
confusion matrix, and the expected calibration error; `write_report` also draws confusion.png,
mistakes.png (the most confident wrong answers), the pictures people look at first, and
reliability.png (are answers given at 0.9 right 90% of the time?). hh-train writes the same report
for its validation images. A folder of images, or one image, is only classified.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .calibration import calibration_summary, reliability_image
from .errors import UserError
from .files import atomic_write_bytes, atomic_write_text, check_not_inside, check_output_dir, check_output_file
from .folders import holds_images, is_image_file, list_image_folder
from .preprocess import UnreadableImage, fit_to_spec, read_image_bgr
from .runtime import Classification, Classifier


@dataclass
class ImageResult:
    path: str
    classification: Classification
    truth: int | None = None  # index into the model's labels, when the folder says
    thumbnail: np.ndarray | None = None  # model-sized BGR, kept for wrong answers (mistakes.png)


@dataclass
class Evaluation:
    class_names: tuple[str, ...]
    results: list[ImageResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: reason" for unreadable files
    model: dict | None = None  # the model that answered (hh.edge.runtime.Classifier.model_id)

    @property
    def scored(self) -> bool:
        return bool(self.results) and all(r.truth is not None for r in self.results)

    def confusion(self) -> np.ndarray:
        """counts[true, predicted]."""
        return confusion_matrix(len(self.class_names), [r.truth for r in self.results], self._predicted())

    @property
    def accuracy(self) -> float:
        return accuracy_of(self.confusion())

    def _predicted(self) -> list[int]:
        return [r.classification.index for r in self.results]

    def metrics(self) -> dict:
        return metrics(self.class_names, [r.truth for r in self.results], self._predicted())

    def __repr__(self) -> str:
        """One line, not hundreds of arrays: print(hh.evaluate(...)) in a notebook."""
        scored = (
            f", accuracy {self.accuracy:.3f}, balanced accuracy {self.metrics()['balanced_accuracy']:.3f}" if self.scored else ""
        )
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        return f"<Evaluation of {len(self.results)} images{scored}{skipped}; classes {', '.join(self.class_names)}>"

    def summary(self) -> dict:
        out = {"type": "summary", "images": len(self.results), "skipped": len(self.skipped), "model": self.model}
        if self.scored:
            report = self.metrics()
            out.update(
                accuracy=round(self.accuracy, 5),
                balanced_accuracy=report["balanced_accuracy"],
                per_class=report["per_class"],
                labels=list(self.class_names),
                confusion=self.confusion().tolist(),
            )
        return out

    def write_report(self, folder: str | Path) -> dict:
        """evaluation.json, confusion.png and mistakes.png into `folder`."""
        wrong = [r for r in self.results if r.thumbnail is not None]
        probabilities = np.stack([r.classification.probabilities for r in self.results])
        return write_report(
            folder,
            self.class_names,
            [r.truth for r in self.results],
            probabilities,
            [r.thumbnail for r in self.results] if wrong else [],
            [r.path for r in self.results],
            self.model,
        )


def confusion_matrix(n: int, truth, predicted) -> np.ndarray:
    """counts[true, predicted] over n classes."""
    matrix = np.zeros((n, n), np.int64)
    for t, p in zip(truth, predicted):
        matrix[t, p] += 1
    return matrix


def accuracy_of(matrix: np.ndarray) -> float:
    return float(np.trace(matrix) / max(1, matrix.sum()))


def metrics(class_names, truth, predicted) -> dict:
    """Per-class precision, recall, F1 and support; accuracy; balanced accuracy; confusion."""
    matrix = confusion_matrix(len(class_names), truth, predicted)
    per_class = {}
    recalls = []
    for i, name in enumerate(class_names):
        support = int(matrix[i].sum())
        predicted_i = int(matrix[:, i].sum())
        precision = matrix[i, i] / predicted_i if predicted_i else 0.0
        recall = matrix[i, i] / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support": support,
        }
        if support:
            recalls.append(recall)
    return {
        "images": int(matrix.sum()),
        "accuracy": round(accuracy_of(matrix), 4),
        "balanced_accuracy": round(float(np.mean(recalls)) if recalls else 0.0, 4),
        "per_class": per_class,
        "labels": list(class_names),
        "confusion": matrix.tolist(),
    }


# Balanced accuracy within this of chance (1 / classes): the model has not learned. A tenth is
# well beyond what luck gives on a few dozen validation images per class, and far below any
# model worth a field worker's trust.
CHANCE_MARGIN = 0.1
NOT_LEARNED_ADVICE = (
    "train longer (more --epochs, or --resume with more), with a smaller --batch-size, on more images per class, "
    "or from a pretrained backbone (--arch mobilenetv3small)"
)


def not_learned(balanced_accuracy: float, classes: int) -> str | None:
    """Why a model with this balanced accuracy on `classes` classes has not learned, or None."""
    chance = 1 / classes
    if balanced_accuracy < chance + CHANCE_MARGIN:
        return (
            f"this model has not learned: its balanced accuracy {balanced_accuracy:.3f} on {classes} classes "
            f"is no better than chance ({chance:.3f}); do not deploy it"
        )
    return None


# Balanced accuracy on the validation photos that makes a model field-grade: the field's own
# edge CNN reaches 0.90 on unseen photos of bean leaves (iBean), and a model below it is wrong
# on more than one farmer's photo in ten. A model between chance and this has learned, but its
# next step is to improve, not to deploy.
FIELD_GRADE = 0.90


def below_field_grade(balanced_accuracy: float, classes: int, weakest: str = "", weakest_recall: float = 1.0) -> str | None:
    """Why a model that has learned is not yet field-grade, with what to do; None when it is
    (or when it has not learned at all: not_learned says that)."""
    if balanced_accuracy >= FIELD_GRADE or not_learned(balanced_accuracy, classes):
        return None
    weakest_part = f", or add photos of {weakest!r} (its recall is the lowest, {weakest_recall:.3f})" if weakest else ""
    return (
        f"balanced accuracy {balanced_accuracy:.3f} on the validation photos is below {FIELD_GRADE:.2f}, field grade; "
        f"to improve it: train longer (--resume with more --epochs){weakest_part}"
    )


def weakest_class(report: dict) -> tuple[str, float]:
    """The class with the lowest recall in an evaluation report, and that recall."""
    name = min(report["per_class"], key=lambda n: report["per_class"][n]["recall"])
    return name, report["per_class"][name]["recall"]


def report_below_field_grade(report: dict | None) -> str | None:
    if not report:
        return None
    return below_field_grade(report["balanced_accuracy"], len(report["per_class"]), *weakest_class(report))


def report_not_learned(report: dict | None) -> str | None:
    """not_learned for an evaluation report (metrics()'s: evaluation.json, run.json's), or None."""
    return not_learned(report["balanced_accuracy"], len(report["per_class"])) if report else None


def format_metrics(report: dict) -> str:
    width = max(10, *(len(n) for n in report["per_class"])) + 2
    lines = [f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, m in report["per_class"].items():
        lines.append(f"{name:<{width}}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['support']:>10d}")
    lines.append(
        f"accuracy {report['accuracy']:.3f}, balanced accuracy {report['balanced_accuracy']:.3f} on {report['images']} images"
    )
    return "\n".join(lines)


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.45, colour=(0, 0, 0)) -> None:
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def confusion_image(matrix: np.ndarray, class_names) -> np.ndarray:
    """The confusion matrix as a picture: rows true, columns predicted, shaded by row share."""
    n, cell, margin = len(class_names), 70, 130
    image = np.full((margin + n * cell + 10, margin + n * cell + 10, 3), 255, np.uint8)
    _text(image, "rows: true class, columns: predicted", (10, 20), 0.5)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for i in range(n):
        _text(image, class_names[i][:14], (5, margin + i * cell + cell // 2 + 5))
        _text(image, class_names[i][:9], (margin + i * cell + 4, margin - 10))
        for j in range(n):
            shade = int(255 - 200 * rows[i, j])
            colour = (shade, shade, 255) if i != j else (shade, 255, shade)
            top_left = (margin + j * cell, margin + i * cell)
            cv2.rectangle(image, top_left, (top_left[0] + cell - 2, top_left[1] + cell - 2), colour, -1)
            _text(image, str(int(matrix[i, j])), (top_left[0] + 8, top_left[1] + cell // 2 + 5), 0.6)
    return image


def mistakes_image(class_names, truth, probabilities: np.ndarray, images_bgr, most: int = 16) -> np.ndarray:
    """A grid of the most confident wrong answers, each captioned true / predicted (p)."""
    predicted = probabilities.argmax(axis=1)
    wrong = [i for i in range(len(truth)) if predicted[i] != truth[i] and images_bgr is not None and len(images_bgr) > i]
    wrong.sort(key=lambda i: -probabilities[i, predicted[i]])
    wrong = wrong[:most]
    tile, caption, columns = 160, 36, 4
    if not wrong:
        image = np.full((80, 520, 3), 255, np.uint8)
        _text(image, f"no wrong answers on {len(truth)} images", (10, 45), 0.6)
        return image
    rows = -(-len(wrong) // columns)
    image = np.full((rows * (tile + caption), columns * tile, 3), 255, np.uint8)
    for k, i in enumerate(wrong):
        y, x = (k // columns) * (tile + caption), (k % columns) * tile
        thumb = cv2.resize(np.ascontiguousarray(images_bgr[i]), (tile - 4, tile - 4), interpolation=cv2.INTER_AREA)
        image[y : y + tile - 4, x : x + tile - 4] = thumb
        _text(image, f"true {class_names[truth[i]][:12]}", (x + 2, y + tile + 10), 0.4)
        _text(
            image,
            f"said {class_names[predicted[i]][:12]} {probabilities[i, predicted[i]]:.2f}",
            (x + 2, y + tile + 26),
            0.4,
            (0, 0, 200),
        )
    return image


REPORT_FILES = ("evaluation.json", "confusion.png", "mistakes.png", "reliability.png")


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [entry for entry in folder.iterdir() if entry.is_dir()][:1000]  # a data folder's classes, not a disk
    except OSError:
        return []


def check_report_folder(folder: str | Path, images: str | Path, overwrite: bool) -> Path:
    """Refuse, before any image is classified, a report that would land where it must not:
    among the images it scores (a class folder would gain two pictures), over files that
    exist (a training run's own report) unless overwrite, or where nothing can be written."""
    folder = check_output_dir(folder, "report")
    check_not_inside(folder, (("image folder", images),), "report")
    # Its PNGs in a class folder of another data set would be trained on as that class; a new
    # folder beside class folders would be read as a class of its own.
    if holds_images(folder):
        raise UserError(
            f"{{param:report}} {folder} holds images (a class folder?): the report's pictures would be trained on; "
            "give a folder of its own"
        )
    if folder.parent != folder and any(holds_images(sibling) for sibling in _subfolders(folder.parent) if sibling != folder):
        raise UserError(
            f"{{param:report}} {folder} would sit beside class folders of images in {folder.parent}, where training "
            "reads it as a class; give a folder of its own"
        )
    for name in REPORT_FILES:
        check_output_file(folder / name, "report", overwrite=overwrite)
    return folder


def write_report(
    folder: str | Path, class_names, truth, probabilities: np.ndarray, images_bgr, paths, model: dict | None = None
) -> dict:
    """evaluation.json (metrics, and the wrong answers by file, and which model answered when
    `model` is given), confusion.png, mistakes.png."""
    folder = Path(folder)
    truth = [int(t) for t in truth]
    predicted = probabilities.argmax(axis=1)
    report = metrics(class_names, truth, predicted)
    report["mistakes"] = [
        {"path": str(paths[i]), "true": class_names[truth[i]], "predicted": class_names[predicted[i]],
         "probability": round(float(probabilities[i, predicted[i]]), 4)}
        for i in np.argsort(-probabilities.max(axis=1))
        if predicted[i] != truth[i]
    ]  # fmt: skip
    # How far the probabilities are from meaning what they say, and how far after the
    # temperature hh-convert would fit on these images (hh.edge.calibration).
    report["calibration"] = calibration_summary(probabilities, truth)
    if model is not None:
        report["model"] = model
    evaluation_json, confusion_png, mistakes_png, reliability_png = REPORT_FILES
    atomic_write_text(folder / evaluation_json, json.dumps(report, indent=2) + "\n")
    for name, picture in (
        (confusion_png, confusion_image(np.array(report["confusion"]), class_names)),
        (mistakes_png, mistakes_image(class_names, truth, probabilities, images_bgr)),
        (reliability_png, reliability_image(probabilities, truth)),
    ):
        atomic_write_bytes(folder / name, cv2.imencode(".png", picture)[1].tobytes())
    return report


def format_confusion(matrix: np.ndarray, names) -> str:
    width = max(8, *(len(n) for n in names)) + 1
    rows = ["true \\ predicted".ljust(width + 8) + "".join(n.rjust(width) for n in names)]
    for name, row in zip(names, matrix):
        rows.append(name.ljust(width + 8) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(rows)


def images_to_classify(classifier: Classifier, images: str | Path) -> tuple[list[str], list[int] | None]:
    """(paths, true label indexes or None) for an image, a folder, or a folder of class folders."""
    images = Path(images)
    try:
        return _images_to_classify(classifier, images)
    except OSError as exc:  # a name too long for any file, a folder we may not list
        raise UserError(f"{str(images)[:200]}: cannot be read ({exc.strerror or exc})") from None


def _images_to_classify(classifier: Classifier, images: Path) -> tuple[list[str], list[int] | None]:
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
    classifier: Classifier,
    images: str | Path,
    on_result: Callable[[ImageResult], None] | None = None,
    on_skip: Callable[[str], None] | None = None,
    scored: bool = False,
) -> Evaluation:
    """Classify every image with the device's own path (OpenCV decode, fit_to_spec, RGB).
    scored: the images must be a folder of class folders (true labels to score against)."""
    paths, truth = images_to_classify(classifier, images)
    if scored and truth is None:
        raise UserError(f"{images}: {{param:report}} needs a folder of class folders (true labels to score against)")
    evaluation = Evaluation(classifier.class_names, model=classifier.model_id)
    for i, path in enumerate(paths):
        try:
            frame = read_image_bgr(path, classifier.spec)  # large JPEGs at reduced DCT scale
        except UnreadableImage as exc:
            evaluation.skipped.append(str(exc))
            if on_skip:
                on_skip(str(exc))
            continue
        result = ImageResult(path, classifier.classify(frame), None if truth is None else truth[i])
        if result.truth is not None and result.classification.index != result.truth:
            result.thumbnail = fit_to_spec(frame, classifier.spec)
        evaluation.results.append(result)
        if on_result:
            on_result(result)
    if not evaluation.results:
        raise UserError(f"{images}: none of the {len(paths)} image files could be read")
    return evaluation
