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
