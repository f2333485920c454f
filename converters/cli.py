"""hh-convert: a trained Keras model -> a verified .tflite that carries its own labels and spec."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from ..edge.cli_util import OverwriteOption, VerboseOption, make_app, reports_errors, require_train_extra, run_app, setup_output
from ..edge.errors import UserError
from .gates import MAX_PROB_DIFF, MAX_RECALL_DROP, MIN_AGREEMENT, UNKNOWN_KEEP

app = make_app("Convert a trained model to TFLite.")


@app.command()
@reports_errors({"mode": "--int8/--float16/--dynamic", "selftest_per_class": "--selftest"})
def convert(
    source: Annotated[
        Path, typer.Argument(help="A run folder from hh-train, or a .keras file with preprocessing.json beside it.")
    ],
    int8: Annotated[
        bool, typer.Option("--int8", help="Full integer: int8 ops, raw uint8 pixels in. Smallest, fastest on a Pi.")
    ] = False,
    float16: Annotated[bool, typer.Option("--float16", help="float16 weights (half the size), float compute.")] = False,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Dynamic range: int8 weights, float activations.")] = False,
    calib_dir: Annotated[
        Path | None,
        typer.Option(help="Calibration images for --int8 (class folders); default: the run's recorded training images."),
    ] = None,
    calib_count: Annotated[int, typer.Option(help="Calibration images to use, drawn evenly across classes.")] = 300,
    eval_dir: Annotated[
        Path | None, typer.Option(help="Images (class folders) to verify on; default: the run's recorded validation images.")
    ] = None,
    min_agreement: Annotated[
        float, typer.Option(help="Fail when the TFLite and Keras top-1 answers agree on less than this share.")
    ] = MIN_AGREEMENT,
    max_prob_diff: Annotated[
        float, typer.Option(help="Fail when any probability differs from Keras's by more than this.")
    ] = MAX_PROB_DIFF,
    max_recall_drop: Annotated[
        float,
        typer.Option(help="Fail when any class's recall (share of its images found) is this much below Keras's."),
    ] = MAX_RECALL_DROP,
    out: Annotated[Path | None, typer.Option(help="Output .tflite (default: RUN/model_<mode>.tflite).")] = None,
    selftest: Annotated[
        int, typer.Option(help="Held-out images per class to pack into the model for the device's self-test (0: none).")
    ] = 2,
    unknown_keep: Annotated[
        float | None,
        typer.Option(
            help="The model answers 'unknown' for images unlike its training images (a hand, soil, the sky), "
            f"its threshold set to keep this share of the validation images (at least 0.5, below 1; default {UNKNOWN_KEEP})."
        ),
    ] = None,
    no_unknown: Annotated[bool, typer.Option("--no-unknown", help="Leave the 'unknown' answer out.")] = False,
    unknown_dir: Annotated[
        Path | None,
        typer.Option(help="Images that are none of the classes (any folders): report how many the model answers 'unknown'."),
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            help="Calibrate the probabilities on the validation images (one temperature, folded into the last layer; "
            "no answer changes), so that answers given at 0.9 are right about 90% of the time."
        ),
    ] = True,
    names: Annotated[
        Path | None,
        typer.Option(
            help="Display names to pack: a CSV UTF-8 file of label,language,name rows (comma-separated; a header row "
            "optional; languages such as sw, fr, hi, pt-BR). Devices and phones show a label by its name in the "
            "reader's language; records and --json keep the label."
        ),
    ] = None,
    sign: Annotated[
        Path | None,
        typer.Option(
            help="Sign the model with this private key (from hh-data keygen): devices given its public half "
            "(hh-camera --trust) run only models signed with it, unaltered."
        ),
    ] = None,
    overwrite: OverwriteOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Convert SOURCE to TFLite (float32 unless a flag says otherwise), embed labels and
    preprocessing spec, then run it against the Keras model on the run's held-out images (the
    validation split recorded at training time) and report size, accuracy and agreement.

    Exits 1, keeping the file as *.rejected.tflite, when agreement is below --min-agreement, a
    probability is further than --max-prob-diff from Keras's, or a class's recall is more than
    --max-recall-drop below Keras's. An existing output file (the
    model, its report) is never replaced without --overwrite.

    Example: hh-convert models/run1 --int8
    """
    setup_output(verbose)
    chosen = [name for name, flag in (("int8", int8), ("float16", float16), ("dynamic", dynamic)) if flag]
    if len(chosen) > 1:
        raise UserError(f"choose one quantization, not {' and '.join('--' + c for c in chosen)}")
    if no_unknown and (unknown_keep is not None or unknown_dir is not None):
        raise UserError("--no-unknown leaves the 'unknown' answer out: --unknown-keep and --unknown-dir need it")
    keep = UNKNOWN_KEEP if unknown_keep is None else unknown_keep
    require_train_extra("hh-convert")
    from .pipeline import convert as convert_model

    report = convert_model(
        source, chosen[0] if chosen else "float32", calib_dir=calib_dir, calib_count=calib_count, eval_dir=eval_dir,
        min_agreement=min_agreement, max_prob_diff=max_prob_diff, out=out, overwrite=overwrite, selftest_per_class=selftest,
        unknown_keep=None if no_unknown else keep, unknown_dir=unknown_dir, calibrate=calibrate,
        max_recall_drop=max_recall_drop, names=names, sign=sign,
    )  # fmt: skip
    for line in report.lines():
        print(line)
    if report.not_learned:
        from ..edge.evaluate import NOT_LEARNED_ADVICE

        print(f"next: {NOT_LEARNED_ADVICE}, then convert again; this model is not worth deploying")
    elif report.below_field_grade:
        print(f"next: {report.below_field_grade}; then convert again")
        print(f"      (or try it as it is: hh-camera {shlex.quote(report.model)} --source 0)")
    else:
        print(f"next: hh-camera {shlex.quote(report.model)} --source 0")


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
