"""hh-predict: the edge classifier on image files, to check a model on photos before the field."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .cli_util import OverwriteOption, VerboseOption, make_app, reports_errors, run_app, setup_output
from .errors import UserError

app = make_app("Classify image files with a .tflite model.")


@app.command()
@reports_errors({"num_threads": "--threads"})
def predict(
    model: Annotated[Path, typer.Argument(help="A .tflite from hh-convert.")],
    images: Annotated[Path | None, typer.Argument(help="An image, a folder of images, or a folder of class folders.")] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Class folders only: also write evaluation.json, confusion.png, mistakes.png and reliability.png here."
        ),
    ] = None,
    selftest: Annotated[
        bool, typer.Option("--selftest", help="Run the self-test packed in MODEL on this device instead (exit 1 on failure).")
    ] = False,
    plant: Annotated[
        bool,
        typer.Option(
            "--plant",
            help="IMAGES is a folder of one plant's leaves: print each leaf's answer and one verdict for the plant "
            "(retake and unknown leaves left out, said so).",
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per image, then a summary object.")] = False,
    threads: Annotated[int | None, typer.Option(help="Interpreter threads (default: CPU cores, at most 4).")] = None,
    overwrite: OverwriteOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Classify image files with the same preprocessing and runtime as hh-camera. A folder of
    class folders (named like the model's labels) also prints accuracy and a confusion matrix.

    With --selftest, run the images hh-convert packed into MODEL through this device's own
    decode, resize, colour order and interpreter, and compare with the workstation's answers.

    Example: hh-predict models/run1/model_int8.tflite data/validation
    """
    setup_output(verbose)
    from .evaluate import check_report_folder, evaluate
    from .machine import default_threads
    from .runtime import Classifier

    if selftest and (plant or report is not None):
        raise UserError("--selftest checks the model on this device; it takes no --plant or --report")
    classifier = Classifier(model, num_threads=threads if threads is not None else default_threads())
    name_model = ModelLine(classifier, json_out)
    if selftest:
        run_packed_selftest(classifier, json_out, name_model)
        return
    if images is None:
        raise UserError("give IMAGES to classify (or --selftest)")
    if plant:
        if report is not None:
            raise UserError("--report scores class folders; --plant gives one plant's verdict: choose one")
        print_plant_verdict(classifier, images, json_out, name_model)
        return
    if report is not None:
        check_report_folder(report, images, overwrite)

    def show(result) -> None:
        name_model()
        if json_out:
            shown = result.classification.as_dict(classifier.class_names)
            print(json.dumps({"type": "image", "path": result.path, **shown, "model": classifier.identity}))
        else:
            print(f"{result.classification.label:<16} {result.classification.probability:.3f}  {result.path}")

    def skipped(why: str) -> None:
        print(f"skipped: {why}", file=sys.stderr)

    evaluation = evaluate(classifier, images, on_result=show, on_skip=skipped, scored=report is not None)
    if evaluation.scored:
        print_scores(evaluation, json_out)
    if report is not None:
        evaluation.write_report(report)
        print(f"wrote {report}/evaluation.json, confusion.png, mistakes.png, reliability.png", file=sys.stderr)


def print_scores(evaluation, json_out: bool) -> None:
    from .evaluate import format_confusion, format_metrics

    if json_out:
        print(json.dumps(evaluation.summary()))
    else:
        print()
        print(format_metrics(evaluation.metrics()))
        print(format_confusion(evaluation.confusion(), evaluation.class_names))


class ModelLine:
    """Text output names the model once, on stderr before its first answer (--json names it in
    every object); not before: a refusal stays one line."""

    def __init__(self, classifier, json_out: bool) -> None:
        self.classifier, self.pending = classifier, not json_out

    def __call__(self) -> None:
        if self.pending:
            print(self.classifier.identity_line(), file=sys.stderr)
            self.pending = False


def print_plant_verdict(classifier, folder: Path, json_out: bool, name_model: ModelLine) -> None:
    """Each leaf's answer behind the model's quality gate, then the plant's verdict."""
    import numpy as np

    from .folders import is_image_file
    from .plant import Leaf, plant_verdict
    from .preprocess import UnreadableImage, read_image_bgr

    if not folder.is_dir():
        raise UserError(f"{folder}: --plant needs a folder of one plant's leaf photos")
    try:
        paths = sorted(str(p) for p in folder.iterdir() if is_image_file(p))
    except OSError as exc:
        raise UserError(f"{folder}: cannot be read ({exc.strerror or exc})") from None
    if not paths:  # sub-folders are other plants, or class folders: not this plant's leaves
        raise UserError(
            f"{folder}: no leaf photos in this folder (its sub-folders are not read); --plant takes one plant's photos"
        )
    leaves = []
    for path in paths:
        try:
            frame = read_image_bgr(path, classifier.spec)
        except UnreadableImage as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            leaves.append(Leaf(path, "", np.zeros(len(classifier.class_names)), unreadable=str(exc).split(": ")[-1]))
            continue
        answer = classifier.classify_frame(frame, quality=classifier.spec.quality)
        top = answer.classification
        name_model()
        leaves.append(Leaf(path, top.label, top.probabilities, answer.retake))
        if json_out:
            answered = {**top.as_dict(classifier.class_names), "retake": answer.retake, "model": classifier.identity}
            print(json.dumps({"type": "image", "path": path, **answered}))
        else:
            shown = f"retake ({answer.retake})" if answer.retake else top.label
            print(f"{shown:<16} {top.probability:.3f}  {path}")
    if all(leaf.unreadable for leaf in leaves):
        raise UserError(f"{folder}: no readable leaf photos")
    verdict = plant_verdict(leaves, classifier.class_names)
    print(json.dumps({**verdict.as_dict(), "model": classifier.model_id}) if json_out else verdict.line())


def run_packed_selftest(classifier, json_out: bool, name_model: ModelLine) -> None:
    from .selftest import model_selftest, run_selftest

    packed = model_selftest(classifier)
    if packed is None:
        raise UserError(f"{classifier.model_path} carries no self-test (convert it again with hh-convert to add one)")
    result = run_selftest(classifier, packed)
    name_model()
    print(json.dumps({"type": "selftest", **result.as_dict(), "model": classifier.model_id}) if json_out else result.line())
    if not result.passed:
        raise typer.Exit(1)


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
