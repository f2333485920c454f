"""`hh.train(...)`, `hh.resume(...)` and `hh.convert(...)`: the workstation's commands for
Python callers, in their words (hh's lines on stderr, the libraries' chatter kept out)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..edge.log import lines_on_stderr
from .config import TrainConfig

log = logging.getLogger("hh.train")


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
        result = run_training(config)
        for line in result.lines():  # what hh-train prints at the end, as hh's own lines
            log.info(line)
    return result


def resume(run_dir: str | Path, *, verbose: bool = True, **changes):
    """Continue an interrupted run from its last committed epoch, as hh-train --resume does;
    `epochs` (or `fine_tune_epochs`) may be raised to train longer."""
    from .train import resume as resume_training

    with lines_on_stderr(verbose):
        result = resume_training(run_dir, **changes)
        for line in result.lines():
            log.info(line)
    return result


def convert(source: str | Path, mode: str = "float32", *, verbose: bool = True, **options):
    """Convert a run folder (or .keras file) as hh-convert does; options are
    hh.converters.pipeline.convert's (calib_dir, eval_dir, min_agreement, out, overwrite, ...).
    Returns its ConversionReport; raises VerificationFailed when the converted model is refused.
    The report's lines go to stderr with hh's others unless verbose=False."""
    from ..converters.pipeline import convert as run_conversion

    with lines_on_stderr(verbose):
        report = run_conversion(source, mode, **options)
        for line in report.lines():
            log.info(line)
    return report
