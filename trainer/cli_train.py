"""hh-train: a folder of class folders in, a trained Keras model and its run folder out."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from ..edge.cli_util import VerboseOption, make_app, options_command, reports_errors, require_train_extra, run_app, setup_output
from ..edge.errors import ParameterError, UserError
from ..edge.signals import sigterm_as_interrupt
from .config import TrainConfig

app = make_app("Train an image classifier from a folder of class folders.")
DEFAULTS = TrainConfig(data_dir="", out="")


def default_run_dir(arch: str) -> Path:
    return Path("models") / f"{time.strftime('%Y%m%d-%H%M%S')}-{arch}"


@app.command()
@reports_errors({"learning_rate": "--lr", "data_dir": "DATA_DIR"})
@options_command(TrainConfig, unset_defaults=True)
def train(
    data_dir: Annotated[
        Path | None,
        typer.Argument(help="Training folder: one sub-folder per class (its name is the label), images inside."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder to write: new or empty (default models/<time>-<arch>).")] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue the interrupted run in this folder from its last completed epoch "
            "(--epochs and --ram-budget may change)."
        ),
    ] = None,
    verbose: VerboseOption = False,
    **options,
) -> None:
    """Train a convnet on DATA_DIR and write model.keras, labels.txt, preprocessing.json,
    split.json, history.csv and curves.png into the run folder. The run folder must be new or
    empty and outside the data folders; an existing run is only continued with --resume.

    Ctrl-C or SIGTERM stops before the next batch, after saving; at most the running epoch is
    lost. A second Ctrl-C stops at once.

    Example: hh-train data/train --val-dir data/validation --out models/run1
    """
    setup_output(verbose)
    # What was given: flags left unset are None; a boolean flag at its default was not given.
    given = {k: v for k, v in options.items() if v is not None and not (isinstance(v, bool) and v == getattr(DEFAULTS, k))}
    if resume is not None and data_dir is not None:
        raise ParameterError("data_dir", "cannot be given with --resume: a resumed run uses the images it recorded")
    if resume is None and data_dir is None:
        raise UserError("give a training folder DATA_DIR (or --resume RUN_DIR)")
    require_train_extra("hh-train")
    from .train import resume as resume_run
    from .train import train as train_run

    run_dir = resume or out or default_run_dir(given.get("arch", DEFAULTS.arch))
    with sigterm_as_interrupt():
        try:
            if resume is not None:
                result = resume_run(resume, out=out, **given)
            else:
                result = train_run(TrainConfig(data_dir=str(data_dir), out=str(run_dir), **given))
        except KeyboardInterrupt:
            print(
                f"\ninterrupted; what was committed is saved. Resume with: hh-train --resume {shlex.quote(str(run_dir))}",
                file=sys.stderr,
            )
            raise typer.Exit(130) from None
    report(result)


def report(result) -> None:
    """The end of a run on stdout: the best epoch, its evaluation, the files, what to do next."""
    from ..edge.evaluate import NOT_LEARNED_ADVICE, report_below_field_grade, report_not_learned

    run = result.run_dir
    for line in result.lines():
        print(line)
    print(f"wrote {run}/model.keras, labels.txt, preprocessing.json, split.json, history.csv, curves.png,")
    print("      evaluation.json, confusion.png, mistakes.png, reliability.png")
    improve = report_below_field_grade(result.evaluation)
    if report_not_learned(result.evaluation):
        print(f"next: {NOT_LEARNED_ADVICE}; this model is not worth converting")
    elif improve:
        print(f"next: {improve}")
        print(f"      (or try it as it is: hh-convert {shlex.quote(str(run))} --int8)")
    else:
        print(f"next: hh-convert {shlex.quote(str(run))} --int8")


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
