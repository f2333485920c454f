"""hh-train: a folder of class folders in, a trained Keras model and its run folder out."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from ..edge.cli_util import VerboseOption, make_app, reports_errors, require_train_extra, setup_output
from ..edge.errors import ParameterError, UserError
from ..edge.signals import sigterm_as_interrupt
from ..edge.spec import ASPECTS, INTERPOLATIONS
from .config import ARCH_NAMES, AUGMENTS, OPTIMIZERS, STRATEGIES, TrainConfig

app = make_app("Train an image classifier from a folder of class folders.")
DEFAULT = TrainConfig(data_dir="", out="")  # the one place the defaults live
FLAGS = {"learning_rate": "--lr", "data_dir": "DATA_DIR"}


def default_run_dir(arch: str) -> Path:
    return Path("models") / f"{time.strftime('%Y%m%d-%H%M%S')}-{arch}"


@app.command()
@reports_errors(FLAGS)
def train(
    data_dir: Annotated[
        Path | None,
        typer.Argument(help="Training folder: one sub-folder per class (its name is the label), images inside."),
    ] = None,
    val_dir: Annotated[Path | None, typer.Option(help="Validation folder with the same class sub-folders.")] = None,
    val_split: Annotated[
        float | None,
        typer.Option(help="Hold out this fraction of DATA_DIR per class instead (default 0.2 without --val-dir)."),
    ] = None,
    image_size: Annotated[
        int | None, typer.Option(help=f"Images are resized to SIZE x SIZE pixels (default {DEFAULT.image_size}).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help=f"Images per training step (over all replicas) (default {DEFAULT.batch_size}).")
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(help=f"Passes over the training data; with --resume, the new total (default {DEFAULT.epochs})."),
    ] = None,
    lr: Annotated[float | None, typer.Option(help=f"RMSprop learning rate (default {DEFAULT.learning_rate}).")] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            help=f"{', '.join(ARCH_NAMES)}: 'seed' is the classic Keras course's 3-block convnet, "
            "'edge' a 17k-weight net for devices, the others pretrained backbones (transfer learning) "
            f"(default {DEFAULT.arch})."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder to write: new or empty (default models/<time>-<arch>).")] = None,
    seed: Annotated[
        int | None, typer.Option(help=f"Random seed for weights, shuffling and --val-split (default {DEFAULT.seed}).")
    ] = None,
    class_mode: Annotated[
        str | None, typer.Option(help="auto: binary (1 sigmoid) for 2 classes, else categorical (softmax) (default auto).")
    ] = None,
    aspect: Annotated[
        str | None,
        typer.Option(help=f"How to fit images to a square: {' or '.join(ASPECTS)} (centre-crop) (default {DEFAULT.aspect})."),
    ] = None,
    interpolation: Annotated[
        str | None, typer.Option(help=f"Resize interpolation: {', '.join(INTERPOLATIONS)} (default {DEFAULT.interpolation}).")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            help=f"{', '.join(STRATEGIES)}: mirrored uses this machine's GPUs, "
            "multiworker the machines in TF_CONFIG (default auto)."
        ),
    ] = None,
    cache: Annotated[
        Path | None, typer.Option(help="Cache decoded images in this folder instead of RAM (data sets larger than memory).")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse to train when any image is unusable, instead of skipping it.")
    ] = False,
    augment: Annotated[
        str | None,
        typer.Option(
            help=f"{', '.join(AUGMENTS)}: random flips, rotations, zoom, shifts and light changes of training images "
            f"(never of validation images; none in the exported model). (default {DEFAULT.augment})"
        ),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(help="Backbones: imagenet (default; fetched once, then cached), none (from scratch) or a .h5 file."),
    ] = None,
    fine_tune_epochs: Annotated[
        int | None,
        typer.Option(
            help="Backbones: after --epochs of training the head, this many with the backbone's top unfrozen (default 0)."
        ),
    ] = None,
    fine_tune_layers: Annotated[
        int | None,
        typer.Option(help=f"Backbones: how many of its last layers fine-tuning trains (default {DEFAULT.fine_tune_layers})."),
    ] = None,
    class_weight: Annotated[
        str | None, typer.Option(help="none or balanced: weigh each class by 1 / its share of the images (default none).")
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(help="Stop after this many epochs without a better validation loss (a backbone: in fine-tuning)."),
    ] = None,
    optimizer: Annotated[str | None, typer.Option(help=f"{' or '.join(OPTIMIZERS)} (default {DEFAULT.optimizer}).")] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue the interrupted run in this folder from its last completed epoch (only --epochs may change)."
        ),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Train a convnet on DATA_DIR and write model.keras, labels.txt, preprocessing.json,
    split.json, history.csv and curves.png into the run folder. The run folder must be new or
    empty and outside the data folders; an existing run is only continued with --resume.

    Ctrl-C or SIGTERM stops after saving; at most the running epoch is lost.

    Example: hh-train data/train --val-dir data/validation --out models/run1
    """
    setup_output(verbose)
    options = dict(
        val_dir=val_dir,
        val_split=val_split,
        image_size=image_size,
        batch_size=batch_size,
        epochs=epochs,
        learning_rate=lr,
        arch=arch,
        out=out,
        seed=seed,
        class_mode=class_mode,
        aspect=aspect,
        interpolation=interpolation,
        strategy=strategy,
        cache=cache,
        strict=strict or None,
        augment=augment,
        weights=weights,
        fine_tune_epochs=fine_tune_epochs,
        fine_tune_layers=fine_tune_layers,
        class_weight=class_weight,
        patience=patience,
        optimizer=optimizer,
    )
    if resume is not None and data_dir is not None:
        raise ParameterError("data_dir", "cannot be given with --resume: a resumed run uses the images it recorded")
    if resume is None and data_dir is None:
        raise UserError("give a training folder DATA_DIR (or --resume RUN_DIR)")
    require_train_extra("hh-train")
    from . import train as training
    from .run_folder import RunFolder

    if resume is not None:
        recorded = RunFolder(resume)
        recorded.check_resumable()
        config = recorded.read_config()
        config.out = str(recorded.path)  # the folder may have moved since
        changes = {k: (str(v.absolute()) if isinstance(v, Path) else v) for k, v in options.items()}
        if changes["out"] == config.out:
            changes["out"] = None
        config = config.with_resume_changes(changes)
    else:
        given = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items() if v is not None and k != "out"}
        config = TrainConfig(data_dir=str(data_dir), out=str(out or default_run_dir(arch or DEFAULT.arch)), **given)
    with sigterm_as_interrupt():
        try:
            result = training.train(config, resume=resume is not None)
        except KeyboardInterrupt:
            print(f"\ninterrupted; what was committed is saved. Resume with: hh-train --resume {config.out}", file=sys.stderr)
            raise typer.Exit(130) from None
    run = result.run_dir
    print(
        f"best epoch {result.best_epoch}/{result.epochs_run}: val accuracy {result.best_val_accuracy:.3f}, "
        f"val loss {result.best_val_loss:.4f} ({result.seconds:.0f}s)"
    )
    if result.evaluation:
        from ..edge.evaluate import format_metrics

        print(format_metrics(result.evaluation))
    print(f"wrote {run}/model.keras, labels.txt, preprocessing.json, split.json, history.csv, curves.png,")
    print("      evaluation.json, confusion.png, mistakes.png")
    print(f"next: hh-convert {run} --int8")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
