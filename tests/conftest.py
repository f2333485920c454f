"""Shared fixtures: every test makes its own data (no downloads), small images, few epochs.

Helpers are fixtures too (`cli`, `one_line_error`), so tests never import from conftest.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from makers import COURSE_RECIPE, TRAINED_RUN_EPOCHS  # noqa: E402

# Small enough to keep the suite fast on 2 cores, big enough for the seed net to learn spots.
IMAGE_SIZE = 64
# int8 vs Keras top-1 agreement on the 40 held-out images. Measured 1.000 on seeds 0-3 with 300
# calibration images; 0.95 allows two disagreements on near-0.5 images.
MIN_INT8_AGREEMENT = 0.95


@pytest.fixture
def cli():
    """cli(app, *args) -> typer's CliRunner result, arguments turned into strings."""
    from typer.testing import CliRunner

    runner = CliRunner()

    def invoke(app, *args, **kwargs):
        return runner.invoke(app, [str(a) for a in args], **kwargs)

    return invoke


def _one_line_error(result, *fragments, code: int = 2) -> str:
    """The command failed with `code` and said so in one line: the only line of its output
    (warnings and notes aside), with no traceback. Returns that line."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith(("warning:", "note:"))]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def interrupt_at_line():
    """with interrupt_at_line(predicate): hh's log line for which predicate(line) is true
    raises KeyboardInterrupt where it is logged, as a Ctrl-C at that moment would."""
    import contextlib
    import logging

    class Interrupt(logging.Handler):
        def __init__(self, predicate):
            super().__init__()
            self.predicate = predicate

        def emit(self, record):
            if self.predicate(record.getMessage()):
                raise KeyboardInterrupt

    @contextlib.contextmanager
    def interrupting(predicate):
        logger = logging.getLogger("hh")
        handler, level = Interrupt(predicate), logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)

    return interrupting


@pytest.fixture
def one_line_error():
    """one_line_error(result, *fragments, code=2): the error line, after checking it."""
    return _one_line_error


@pytest.fixture(scope="session")
def min_int8_agreement() -> float:
    return MIN_INT8_AGREEMENT


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """2 classes x 100 images: 80 train + 20 validation each."""
    from hh.trainer.synth import write_dataset

    root = tmp_path_factory.mktemp("synth2") / "data"
    write_dataset(root, classes=2, per_class=100, seed=1)
    return root


@pytest.fixture(scope="session")
def trained_run(synth_data, tmp_path_factory) -> Path:
    """A seed model trained on synth_data at 64 px: the run folder the converter and edge use.
    The course's recipe (RMSprop at 0.001, light augmentation, hard labels): the converter's and
    the edge's tests were measured on its model, whose probabilities are not smoothed."""
    from hh.trainer.config import TrainConfig
    from hh.trainer.train import train

    out = tmp_path_factory.mktemp("runs") / "seed64"
    config = TrainConfig(
        data_dir=str(synth_data / "train"),
        val_dir=str(synth_data / "validation"),
        out=str(out),
        image_size=IMAGE_SIZE,
        batch_size=32,
        epochs=TRAINED_RUN_EPOCHS,
        seed=2,
        arch="seed",
        **COURSE_RECIPE,
    )
    train(config)
    return out


# Display names for synth_data's classes (hh-convert --names): French names no 'unknown', and
# Hindi's script is one OpenCV's font cannot draw.
FIELD_NAMES_CSV = """label,language,name
healthy,sw,Mzima
brown_spot,sw,Madoa ya kahawia
unknown,sw,Si jani
healthy,fr,Saine
brown_spot,fr,Tache brûlée
healthy,hi,स्वस्थ
brown_spot,hi,भूरा धब्बा
unknown,hi,पत्ता नहीं
"""


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
    names = run.parent / "names.csv"
    names.write_text(FIELD_NAMES_CSV, encoding="utf-8")
    results = {}
    for mode in ("float32", "float16", "dynamic", "int8"):
        # The int8 model, the device's, carries display names; the others carry none.
        flags = [] if mode == "float32" else [f"--{mode}"] + (["--names", str(names)] if mode == "int8" else [])
        results[mode] = CliRunner().invoke(app, [str(run), *flags, "--min-agreement", str(MIN_INT8_AGREEMENT)])
    return run, results


@pytest.fixture(scope="session")
def backbone_weights(tmp_path_factory):
    """A MobileNetV3Small backbone's weights, written by the test (no download): seeded
    random values, so loading them is visible. (path, the weights as arrays)"""
    import keras

    keras.utils.set_random_seed(42)
    backbone = keras.applications.MobileNetV3Small(input_shape=(64, 64, 3), include_top=False, weights=None)
    path = tmp_path_factory.mktemp("weights") / "mine.weights.h5"
    backbone.save_weights(path)
    return path, [w.copy() for w in backbone.get_weights()]


@pytest.fixture(scope="session")
def int8_model(converted_run) -> Path:
    run, results = converted_run
    assert results["int8"].exit_code == 0, results["int8"].output
    return run / "model_int8.tflite"


# Tests that need a trained or converted model are slow whatever they check: the fixture trains.
TRAINING_FIXTURES = {"trained_run", "converted_run", "int8_model", "small_run", "split_run"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
