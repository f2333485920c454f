"""Shared fixtures: every test makes its own data (no downloads), small images, few epochs."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# Small enough to keep the suite fast on 2 cores, big enough for the seed net to learn spots.
IMAGE_SIZE = 64


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """2 classes x 100 images: 80 train + 20 validation each."""
    from hh.trainer.synth import write_dataset

    root = tmp_path_factory.mktemp("synth2")
    write_dataset(root, classes=2, per_class=100, seed=1)
    return root


@pytest.fixture(scope="session")
def trained_run(synth_data, tmp_path_factory) -> Path:
    """A seed model trained on synth_data at 64 px: the run folder the converter and edge use."""
    from hh.trainer.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "seed64"
    config = TrainConfig(
        data_dir=str(synth_data / "train"),
        val_dir=str(synth_data / "validation"),
        out=str(out),
        image_size=IMAGE_SIZE,
        batch_size=32,
        epochs=12,
        seed=0,
    )
    train(config, verbose=0)
    return out


# int8 vs Keras top-1 agreement on the 40 held-out images. Measured 1.000 on seeds 0-3 with 300
# calibration images; 0.95 allows two disagreements on near-0.5 images.
MIN_INT8_AGREEMENT = 0.95


@pytest.fixture(scope="session")
def converted_run(trained_run, tmp_path_factory):
    """The trained run copied and converted by hh-convert in all four modes, once per session.

    Returns (run folder, {mode: CliRunner result}).
    """
    import shutil

    from typer.testing import CliRunner

    from hh.converters.cli import app

    run = tmp_path_factory.mktemp("convert") / "run"
    shutil.copytree(trained_run, run)
    results = {}
    for mode in ("float32", "float16", "dynamic", "int8"):
        flags = [] if mode == "float32" else [f"--{mode}"]
        results[mode] = CliRunner().invoke(app, [str(run), *flags, "--min-agreement", str(MIN_INT8_AGREEMENT)])
    return run, results
