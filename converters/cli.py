"""hh-convert: a trained Keras model -> a verified .tflite that carries its own labels and spec."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from hh.edge.cli_util import UserError, make_app, user_errors
from hh.edge.spec import SpecError

app = make_app("Convert a trained model to TFLite.")


@app.command()
@user_errors(SpecError)
def convert(
    source: Annotated[Path, typer.Argument(help="A run folder from hh-train, or a .keras file with preprocessing.json beside it.")],
    int8: Annotated[bool, typer.Option("--int8", help="Full integer: int8 ops, raw uint8 pixels in. Smallest, fastest on a Pi.")] = False,
    float16: Annotated[bool, typer.Option("--float16", help="float16 weights (half the size), float compute.")] = False,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Dynamic range: int8 weights, float activations.")] = False,
    calib_dir: Annotated[Optional[Path], typer.Option(help="Calibration images for --int8 (class folders); default: the run's training folder.")] = None,
    calib_count: Annotated[int, typer.Option(help="Calibration images to use, drawn evenly across classes.")] = 300,
    eval_dir: Annotated[Optional[Path], typer.Option(help="Images (class folders) to verify on; default: the run's validation data.")] = None,
    min_agreement: Annotated[float, typer.Option(help="Fail when the TFLite and Keras top-1 answers agree on less than this share.")] = 0.98,
    out: Annotated[Optional[Path], typer.Option(help="Output .tflite (default: RUN/model_<mode>.tflite).")] = None,
) -> None:
    """Convert SOURCE to TFLite (float32 unless a flag says otherwise), embed labels and
    preprocessing spec, then run it against the Keras model on held-out images and report size,
    accuracy and agreement. Exits 1, keeping the file as *.rejected.tflite, when agreement is
    below --min-agreement.

    Example: hh-convert models/run1 --int8
    """
    from hh.converters.run import VerificationFailed, convert_run

    chosen = [name for name, flag in (("int8", int8), ("float16", float16), ("dynamic", dynamic)) if flag]
    if len(chosen) > 1:
        raise UserError(f"choose one quantization, not {' and '.join('--' + c for c in chosen)}")
    mode = chosen[0] if chosen else "float32"
    try:
        report = convert_run(source, mode, calib_dir, calib_count, eval_dir, min_agreement, out)
    except VerificationFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    for line in report.lines():
        print(line)
    print(f"next: hh-camera {report.model} --source 0")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
