"""The split is recorded once, at training time: resume and verification use exactly it."""

import json
import os
import shutil

import pytest
from PIL import Image

from hh.converters.cli import app as convert_app
from hh.trainer.cli_train import app as train_app
from hh.trainer.run_folder import RunFolder


@pytest.fixture
def split_run(synth_data, tmp_path):
    """A 2-epoch edge run on a private copy of the training images, split 80/20 by hh-train."""
    data = tmp_path / "data"
    shutil.copytree(synth_data / "train", data)
    from hh.trainer.config import TrainConfig
    from hh.trainer.train import train

    config = TrainConfig(data_dir=str(data), out=str(tmp_path / "run"), arch="edge", image_size=32, batch_size=32, epochs=2)
    train(config)
    return data, RunFolder(tmp_path / "run")


def add_images(folder, n):
    for i in range(n):
        Image.new("RGB", (64, 64), (30 * i % 255, 90, 20)).save(folder / f"new_{i}.jpg")


def test_split_json_records_every_file_once(split_run):
    data, run = split_run
    split = run.read_split()
    train = {e.file for e in split.train}
    val = {e.file for e in split.validation}
    assert len(train) == 128 and len(val) == 32 and not train & val
    on_disk = {str(p) for p in data.rglob("*.jpg")}
    assert train | val == on_disk
    assert all(e.size == os.path.getsize(e.file) for e in split.validation)


@pytest.mark.slow
def test_convert_verifies_on_the_recorded_validation_set_after_the_folder_changed(cli, one_line_error, split_run):
    from hh.converters.pipeline import recorded_images, resolve_source

    data, run = split_run
    recorded_val = [e.file for e in run.read_split().validation]
    # New images, placed so a rescan-and-resplit would move files between the splits.
    add_images(data / "healthy", 7)
    add_images(data / "brown_spot", 3)
    folder = recorded_images(resolve_source(run.path), "validation", "--eval-dir")
    assert list(folder.paths) == recorded_val

    result = cli(convert_app, run.path, "--min-agreement", 0)
    assert result.exit_code == 0, result.output
    assert "10 image(s) added to the data folders since training are not used" in result.stderr
    report = json.loads((run.path / "model_float32.report.json").read_text())
    assert report["eval_images"] == len(recorded_val) == 32

    # A recorded validation image changes: verification would no longer be on what was recorded.
    changed = recorded_val[5]
    with open(changed, "ab") as handle:
        handle.write(b"\0" * 10)
    line = one_line_error(cli(convert_app, run.path, "--out", run.path / "again.tflite"), "1 changed", changed, "--eval-dir")
    assert "validation file(s) recorded when" in line
    assert not (run.path / "again.tflite").exists()
    missing = recorded_val[6]
    os.remove(missing)
    one_line_error(cli(convert_app, run.path, "--out", run.path / "again.tflite"), "1 changed", "1 missing", missing)


@pytest.mark.slow
def test_resume_trains_on_the_recorded_split_and_says_what_it_ignores(cli, one_line_error, split_run):
    data, run = split_run
    before = run.read_record().train_images
    add_images(data / "healthy", 4)
    result = cli(train_app, "--resume", run.path, "--epochs", 3)
    assert result.exit_code == 0, result.output
    assert "4 image(s) added to the data folders since this run started are not part of it" in result.stderr
    assert run.read_record().train_images == before
    victim = run.read_split().train[0].file
    os.remove(victim)
    one_line_error(cli(train_app, "--resume", run.path, "--epochs", 4), "1 missing", victim, "start a new run")
