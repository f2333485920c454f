"""hh-train: a folder of class folders in, a trained Keras model and its run folder out."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from hh.edge.cli_util import UserError, make_app, user_errors
from hh.edge.spec import ASPECTS, INTERPOLATIONS, SpecError

app = make_app("Train an image classifier from a folder of class folders.")


def default_run_dir(arch: str) -> Path:
    return Path("models") / f"{time.strftime('%Y%m%d-%H%M%S')}-{arch}"


@app.command()
@user_errors(SpecError)
def train(
    data_dir: Annotated[
        Optional[Path],
        typer.Argument(help="Training folder: one sub-folder per class (its name is the label), images inside."),
    ] = None,
    val_dir: Annotated[Optional[Path], typer.Option(help="Validation folder with the same class sub-folders.")] = None,
    val_split: Annotated[
        Optional[float], typer.Option(help="Hold out this fraction of DATA_DIR per class instead (default 0.2 without --val-dir).")
    ] = None,
    image_size: Annotated[int, typer.Option(help="Images are resized to SIZE x SIZE pixels.")] = 300,
    batch_size: Annotated[int, typer.Option(help="Images per training step.")] = 128,
    epochs: Annotated[int, typer.Option(help="Passes over the training data.")] = 15,
    lr: Annotated[float, typer.Option(help="RMSprop learning rate.")] = 0.001,
    arch: Annotated[str, typer.Option(help="Architecture: 'seed' is the notes' 3-block convnet.")] = "seed",
    out: Annotated[Optional[Path], typer.Option(help="Run folder to write (default models/<time>-<arch>).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed for weights, shuffling and --val-split.")] = 0,
    class_mode: Annotated[str, typer.Option(help="auto: binary (1 sigmoid) for 2 classes, else categorical (softmax).")] = "auto",
    aspect: Annotated[str, typer.Option(help=f"How to fit images to a square: {' or '.join(ASPECTS)} (centre-crop).")] = "squash",
    interpolation: Annotated[str, typer.Option(help=f"Resize interpolation: {', '.join(INTERPOLATIONS)}.")] = "bilinear",
    strategy: Annotated[str, typer.Option(help="auto, none, mirrored (GPUs of this machine) or multiworker (machines in TF_CONFIG).")] = "auto",
    cache: Annotated[Optional[Path], typer.Option(help="Cache decoded images in this folder instead of RAM (data sets larger than memory).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Refuse to train when any image is unusable, instead of skipping it.")] = False,
    resume: Annotated[
        Optional[Path], typer.Option(help="Continue the interrupted run in this folder from its last completed epoch.")
    ] = None,
) -> None:
    """Train a convnet on DATA_DIR and write model.keras, labels.txt, preprocessing.json,
    history.csv and curves.png into the run folder.

    Example: hh-train data/train --val-dir data/validation --out models/run1
    """
    from hh.trainer.train import TrainConfig, read_run_config
    from hh.trainer.train import train as run_training

    if resume is not None:
        config = read_run_config(resume)
        config.out = str(resume)
    else:
        if data_dir is None:
            raise UserError("give a training folder DATA_DIR (or --resume RUN_DIR)")
        # Absolute data paths in run.json: hh-convert finds calibration and validation images
        # from any working directory.
        config = TrainConfig(
            data_dir=str(data_dir.absolute()),
            out=str(out or default_run_dir(arch)),
            val_dir=str(val_dir.absolute()) if val_dir else None,
            val_split=val_split,
            image_size=image_size,
            batch_size=batch_size,
            epochs=epochs,
            learning_rate=lr,
            arch=arch,
            seed=seed,
            class_mode=class_mode,
            aspect=aspect,
            interpolation=interpolation,
            strict=strict,
            strategy=strategy,
            cache=str(cache.absolute()) if cache else None,
        )
    try:
        result = run_training(config, resume=resume is not None, verbose="auto" if sys.stdout.isatty() else 2)
    except KeyboardInterrupt:
        print(f"\ninterrupted; the last completed epoch is saved. Resume with: hh-train --resume {config.out}", file=sys.stderr)
        raise typer.Exit(130) from None
    run = result.run_dir
    print(
        f"best epoch {result.best_epoch}/{result.epochs_run}: val accuracy {result.best_val_accuracy:.3f}, "
        f"val loss {result.best_val_loss:.4f} ({result.seconds:.0f}s)"
    )
    print(f"wrote {run}/model.keras, labels.txt, preprocessing.json, history.csv, curves.png")
    print(f"next: hh-convert {run} --int8")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

