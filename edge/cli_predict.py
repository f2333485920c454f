"""hh-predict: the edge classifier on image files, to check a model on photos before the field."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from hh.edge.cli_util import VerboseOption, make_app, reports_errors, setup_output

app = make_app("Classify image files with a .tflite model.")


@app.command()
@reports_errors()
def predict(
    model: Annotated[Path, typer.Argument(help="A .tflite from hh-convert.")],
    images: Annotated[Path, typer.Argument(help="An image, a folder of images, or a folder of class folders.")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per image, then a summary object.")] = False,
    threads: Annotated[int | None, typer.Option(help="Interpreter threads (default: CPU cores, at most 4).")] = None,
    verbose: VerboseOption = False,
) -> None:
    """Classify image files with the same preprocessing and runtime as hh-camera. A folder of
    class folders (named like the model's labels) also prints accuracy and a confusion matrix.

    Example: hh-predict models/run1/model_int8.tflite data/validation
    """
    setup_output(verbose)
    from hh.edge.evaluate import evaluate, format_confusion
    from hh.edge.runtime import TFLiteClassifier, default_threads

    classifier = TFLiteClassifier(model, num_threads=threads if threads is not None else default_threads())
    names = classifier.class_names

    def show(result) -> None:
        if json_out:
            print(json.dumps({"type": "image", "path": result.path, **result.classification.as_dict(names)}))
        else:
            print(f"{result.classification.label:<16} {result.classification.probability:.3f}  {result.path}")

    evaluation = evaluate(classifier, images, on_result=show, on_skip=lambda why: print(f"skipped: {why}", file=sys.stderr))
    if not evaluation.scored:
        return
    if json_out:
        print(json.dumps(evaluation.summary()))
    else:
        print(f"\naccuracy {evaluation.accuracy:.3f} on {len(evaluation.results)} images")
        print(format_confusion(evaluation.confusion(), names))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
