"""`hh.train(...)`: the training entry point for Python callers, in hh-train's words."""

from __future__ import annotations

from pathlib import Path

from .config import TrainConfig


def train(data_dir: str | Path, out: str | Path, *, verbose: bool = True, **options):
    """Train on DATA_DIR into the run folder OUT; options are TrainConfig's fields
    (val_dir, val_split, image_size, batch_size, epochs, learning_rate, arch, seed, ...).

    Paths may be relative: they are made absolute, so the run folder works from anywhere.
    Returns a TrainResult; prints one line per epoch to stderr unless verbose=False.
    """
    from .train import print_progress, silent
    from .train import train as run_training

    for name in ("val_dir", "cache"):
        if options.get(name) is not None:
            options[name] = str(options[name])
    config = TrainConfig(data_dir=str(data_dir), out=str(out), **options)
    return run_training(config, progress=print_progress if verbose else silent)
