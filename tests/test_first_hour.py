"""A newcomer's first hour: a model that has not learned is never presented as ready."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hh.converters.cli import app as convert_app
from hh.edge.evaluate import CHANCE_MARGIN, not_learned
from hh.trainer.cli_train import app as train_app


def labels_without_signal(root: Path, classes: int = 2, n: int = 16) -> Path:
    """Class folders whose images are the same grey picture (a level of noise apart): no label
    can be learned from them, so any model of them is at chance."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(n):
            pixels = np.clip(128 + rng.integers(-1, 2, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_chance_is_judged_against_the_number_of_classes():
    assert not_learned(0.5, 2) and not_learned(0.25 + CHANCE_MARGIN - 0.01, 4)
    assert not_learned(0.61, 2) is None and not_learned(0.9, 4) is None
    assert "0.250 on 4 classes is no better than chance (0.250)" in not_learned(0.25, 4)


@pytest.mark.slow
def test_a_model_at_chance_is_said_so_by_hh_train_its_record_and_hh_convert(tmp_path, cli):
    data, run = labels_without_signal(tmp_path / "data"), tmp_path / "run"
    trained = cli(train_app, data, "--val-split", 0.5, "--arch", "edge", "--image-size", 32, "--epochs", 2,
                  "--batch-size", 8, "--out", run)  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert (
        "warning: this model has not learned: its balanced accuracy 0.500 on 2 classes is no better than chance" in trained.stderr
    )
    assert trained.stdout.splitlines()[-1].startswith("next: train longer (more --epochs")
    assert "hh-convert" not in trained.stdout.splitlines()[-1]
    record = json.loads((run / "run.json").read_text())
    assert record["warnings"] and "has not learned" in record["warnings"][0]

    converted = cli(convert_app, run, "--int8")
    assert converted.exit_code == 0, converted.output  # the conversion is sound; the model is not
    assert "warning: this model has not learned" in converted.stderr
    assert "not worth deploying" in converted.stdout.splitlines()[-1]
    report = json.loads((run / "model_int8.report.json").read_text())
    assert "has not learned" in report["not_learned"]


def test_the_batch_size_gives_a_small_set_enough_steps_and_a_large_one_no_more_than_64():
    from hh.trainer.config import auto_batch_size

    assert auto_batch_size(240) == 8  # the newcomer's 240 images: 30 steps an epoch, not the course's 2
    assert auto_batch_size(800) == 32  # the demo's
    assert auto_batch_size(21_000) == 64  # the cassava set's
    assert auto_batch_size(40) == 8  # below 16 steps at the smallest: the smallest
    assert auto_batch_size(240, replicas=3) == 9  # splits evenly over the replicas


def test_one_uncertain_threshold_everywhere():
    from hh.edge.camera import UNCERTAIN_BELOW
    from hh.edge.session import CameraOptions

    root = Path(__file__).resolve().parent.parent
    page = (root / "web" / "public" / "index.html").read_text()
    slider = float(re.search(r'id="threshold"[^>]*value="([\d.]+)"', page).group(1))
    assert slider == UNCERTAIN_BELOW == CameraOptions().threshold
    assert "--threshold" not in (root / "deploy" / "hh-camera.service").read_text()  # the default, not a second copy
