"""`hh.train(...)` and `hh.resume(...)`: training for Python callers, in hh-train's words."""

from __future__ import annotations

from pathlib import Path

from ..edge.log import lines_on_stderr
from .config import TrainConfig


def train(data_dir: str | Path, out: str | Path, *, verbose: bool = True, **options):
    """Train on DATA_DIR into the run folder OUT; options are TrainConfig's fields
    (val_dir, val_split, image_size, batch_size, epochs, learning_rate, arch, seed, ...).

    Paths may be relative: they are made absolute, so the run folder works from anywhere.
    Returns a TrainResult. hh's lines (one per epoch) go to stderr unless verbose=False or
    the "hh" logger is configured by the caller.
    """
    from .train import train as run_training

    for name in ("val_dir", "negatives", "cache"):
        if options.get(name) is not None:
            options[name] = str(options[name])
    config = TrainConfig(data_dir=str(data_dir), out=str(out), **options)
    with lines_on_stderr(verbose):
        return run_training(config)


def resume(run_dir: str | Path, *, verbose: bool = True, **changes):
    """Continue an interrupted run from its last committed epoch, as hh-train --resume does;
    `epochs` (or `fine_tune_epochs`) may be raised to train longer."""
    from .train import resume as resume_training

    with lines_on_stderr(verbose):
        return resume_training(run_dir, **changes)
