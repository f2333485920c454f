"""hh-predict: the edge classifier on image files, to check a model on photos before the field."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from hh.edge.cli_util import UserError, make_app, user_errors
from hh.edge.spec import SpecError

app = make_app("Classify image files with a .tflite model.")


def confusion_matrix(true: list[int], predicted: list[int], n: int) -> np.ndarray:
    matrix = np.zeros((n, n), np.int64)
    for t, p in zip(true, predicted):
        matrix[t, p] += 1
    return matrix


def format_confusion(matrix: np.ndarray, names) -> str:
    width = max(8, *(len(n) for n in names)) + 1
    rows = ["true \\ predicted".ljust(width + 8) + "".join(n.rjust(width) for n in names)]
    for name, row in zip(names, matrix):
        rows.append(name.ljust(width + 8) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(rows)


@app.command()
@user_errors(SpecError)
def predict(
    model: Annotated[Path, typer.Argument(help="A .tflite from hh-convert.")],
    images: Annotated[Path, typer.Argument(help="An image, a folder of images, or a folder of class folders.")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per image, then a summary object.")] = False,
    threads: Annotated[Optional[int], typer.Option(help="Interpreter threads.")] = None,
) -> None:
    """Classify image files with the same preprocessing and runtime as hh-camera. A folder of
    class folders (named like the model's labels) also prints accuracy and a confusion matrix.

    Example: hh-predict models/run1/model_int8.tflite data/validation
    """
    from hh.edge.folders import is_image_file, list_image_folder
    from hh.edge.preprocess import read_image_bgr
    from hh.edge.runtime import TFLiteClassifier, default_threads

    classifier = TFLiteClassifier(model, num_threads=threads or default_threads())
    names = classifier.class_names
    truth: list[int] | None = None
    if images.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in images.iterdir()):
        folder = list_image_folder(images, "image folder")
        unknown = sorted(set(folder.class_names) - set(names))
        if unknown:
            raise UserError(f"{images}: class folders {', '.join(unknown)} are not labels of the model ({', '.join(names)})")
        paths = list(folder.paths)
        truth = [names.index(folder.class_names[label]) for label in folder.labels]
    elif images.is_dir():
        paths = sorted(str(p) for p in images.iterdir() if is_image_file(p))
        if not paths:
            raise UserError(f"{images}: no images in this folder")
    elif images.is_file():
        paths = [str(images)]
    else:
        raise UserError(f"{images} does not exist")

    predicted: list[int] = []
    scored: list[int] = []  # indexes into paths of the images that could be read
    for i, path in enumerate(paths):
        try:
            frame = read_image_bgr(path)
        except ValueError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        result = classifier.classify(frame)
        predicted.append(result.index)
        scored.append(i)
        if json_out:
            print(json.dumps({"type": "image", "path": path, **result.as_dict(names)}))
        else:
            print(f"{result.label:<16} {result.probability:.3f}  {path}")
    if not scored:
        raise UserError(f"{images}: none of the {len(paths)} image files could be read")
    if truth is None:
        return
    truth = [truth[i] for i in scored]
    accuracy = float(np.mean(np.array(truth) == np.array(predicted)))
    matrix = confusion_matrix(truth, predicted, len(names))
    if json_out:
        print(json.dumps({"type": "summary", "images": len(scored), "accuracy": round(accuracy, 5), "labels": list(names), "confusion": matrix.tolist()}))
    else:
        print(f"\naccuracy {accuracy:.3f} on {len(scored)} images")
        print(format_confusion(matrix, names))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
