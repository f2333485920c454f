"""Nothing the user has is overwritten unless they ask: every output path of every command.

Each refusal is checked three ways: exit code 2, exactly one error line naming the problem,
and the bytes of the user's file unchanged.
"""

import json
import shutil

import pytest
from PIL import Image

from hh.converters.cli import app as convert_app
from hh.edge.cli_bench import app as bench_app
from hh.edge.cli_camera import app as camera_app
from hh.edge.folders import list_image_folder
from hh.trainer.cli_data import app as data_app
from hh.trainer.cli_train import app as train_app
from hh.trainer.synth import write_video


@pytest.fixture(scope="module")
def video(synth_data, tmp_path_factory):
    paths = list_image_folder(synth_data / "validation").paths[:6]
    return write_video(paths, tmp_path_factory.mktemp("video") / "field.avi")


def unchanged(path, before: bytes) -> bool:
    return path.read_bytes() == before


@pytest.mark.parametrize("target", ["model", "video"])
def test_camera_record_never_replaces_an_input(cli, one_line_error, int8_model, video, target):
    path = int8_model if target == "model" else video
    before = path.read_bytes()
    result = cli(camera_app, int8_model, "--source", video, "--headless", "--record", path)
    one_line_error(result, "--record", "is also an input of this command")
    assert unchanged(path, before)


def test_camera_record_refuses_a_foreign_csv_and_appends_to_its_own(cli, one_line_error, int8_model, video, tmp_path):
    mine = tmp_path / "mine.csv"
    mine.write_text("plot,yield\nA,3.2\n")
    before = mine.read_bytes()
    one_line_error(
        cli(camera_app, int8_model, "--source", video, "--headless", "--record", mine),
        "--record",
        "not an hh journal with these columns",
    )
    assert unchanged(mine, before)

    record = tmp_path / "field.csv"
    for _ in range(2):
        result = cli(camera_app, int8_model, "--source", video, "--headless", "--record", record)
        assert result.exit_code == 0, result.output
    lines = record.read_text().splitlines()
    assert len(lines) == 1 + 2 * 6 and lines[0].startswith("frame,time,label") and lines.count(lines[0]) == 1
    assert "appending to" in result.stderr and "(6 rows already there)" in result.stderr


def test_camera_record_that_is_a_folder_is_refused_before_the_run(cli, one_line_error, int8_model, video, tmp_path):
    one_line_error(cli(camera_app, int8_model, "--source", video, "--headless", "--record", tmp_path), "--record", "is a folder")
    (tmp_path / "afile").write_text("x")
    one_line_error(
        cli(camera_app, int8_model, "--source", video, "--headless", "--record", tmp_path / "afile" / "r.csv"),
        "--record",
        "is a file, not a folder",
    )


def test_bench_json_refuses_the_model_and_existing_files(cli, one_line_error, int8_model, tmp_path):
    before = int8_model.read_bytes()
    one_line_error(cli(bench_app, int8_model, "--frames", 5, "--json", int8_model), "--json", "is also an input")
    assert unchanged(int8_model, before)
    existing = tmp_path / "numbers.json"
    existing.write_text('{"mine": 1}\n')
    one_line_error(cli(bench_app, int8_model, "--frames", 5, "--json", existing), "--json", "already exists", "--overwrite")
    assert existing.read_text() == '{"mine": 1}\n'
    result = cli(bench_app, int8_model, "--frames", 5, "--json", existing, "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads(existing.read_text())["frames"] == 5


def test_data_video_refuses_an_existing_video(cli, one_line_error, synth_data, video, tmp_path):
    old = tmp_path / "old.avi"
    shutil.copy(video, old)
    before = old.read_bytes()
    one_line_error(cli(data_app, "video", synth_data / "validation", old), "OUT", "already exists")
    assert unchanged(old, before)
    result = cli(data_app, "video", synth_data / "validation", old, "--overwrite")
    assert result.exit_code == 0, result.output
    assert old.read_bytes() != before


@pytest.mark.slow
def test_convert_out_elsewhere_leaves_that_folders_files_alone(cli, one_line_error, trained_run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "labels.txt").write_text("cat\ndog\n")
    (other / "preprocessing.json").write_text('{"someone": "else"}\n')
    result = cli(convert_app, trained_run, "--out", other / "m.tflite")
    assert result.exit_code == 0, result.output
    assert (other / "labels.txt").read_text() == "cat\ndog\n"
    assert (other / "preprocessing.json").read_text() == '{"someone": "else"}\n'
    from hh.edge.runtime import Classifier

    # The model carries its own labels: the folder's other labels.txt does not confuse it.
    assert Classifier(other / "m.tflite").class_names == ("brown_spot", "healthy", "unknown")
    before = (other / "m.tflite").read_bytes()
    one_line_error(cli(convert_app, trained_run, "--out", other / "m.tflite"), "already exists", "--overwrite")
    assert unchanged(other / "m.tflite", before)
    assert cli(convert_app, trained_run, "--out", other / "m.tflite", "--overwrite").exit_code == 0


def make_classes(root, names=("a", "b"), n=4):
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (24, 24), (i * 40, 0, 0)).save(root / name / f"{i}.png")
    return root


def test_train_out_refuses_a_users_folder_and_a_data_folder(cli, one_line_error, tmp_path):
    data = make_classes(tmp_path / "data")
    userdir = tmp_path / "userdir"
    userdir.mkdir()
    (userdir / "labels.txt").write_text("my own labels\n")
    one_line_error(cli(train_app, data, "--out", userdir), "--out", "folder with other files in it")
    assert (userdir / "labels.txt").read_text() == "my own labels\n" and len(list(userdir.iterdir())) == 1

    one_line_error(cli(train_app, data, "--out", data / "run"), "--out", "inside the training folder")
    one_line_error(cli(train_app, data, "--out", data), "--out", "inside the training folder")
    assert sorted(p.name for p in data.iterdir()) == ["a", "b"]  # no checkpoint/ class appeared

    val = make_classes(tmp_path / "val")
    one_line_error(cli(train_app, data, "--val-dir", val, "--out", val / "run"), "inside the validation folder")
    one_line_error(cli(train_app, data, "--val-dir", data, "--out", tmp_path / "r"), "--val-dir", "is the training folder itself")
    one_line_error(
        cli(train_app, data, "--out", tmp_path / "r", "--cache", data / "cache"), "--cache", "inside the training folder"
    )
    assert not (tmp_path / "r").exists()


def test_synth_refuses_a_used_folder_and_overwrite_replaces_only_its_own(cli, one_line_error, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "README").write_text("my notes\n")
    one_line_error(cli(data_app, "synth", out, "--per-class", 10), "OUT_DIR", "not empty", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["README"]

    fresh = tmp_path / "fresh"
    assert cli(data_app, "synth", fresh, "--per-class", 20).exit_code == 0
    own = fresh / "train" / "healthy" / "my_photo.jpg"
    Image.new("RGB", (40, 40)).save(own)
    result = cli(data_app, "synth", fresh, "--per-class", 10, "--overwrite")
    assert result.exit_code == 0, result.output
    train = {p.name for p in (fresh / "train").rglob("*.jpg")}
    val = {p.name for p in (fresh / "validation").rglob("*.jpg")}
    assert not train & val  # no image in both splits after a smaller second run
    assert len(val) == 2 * 2 and len(train) == 2 * 8 + 1 and own.exists()  # the user's own image is kept


def test_the_chief_starts_in_a_folder_an_extra_worker_already_entered(tmp_path):
    """Workers of one run start together: worker 1's folder checkpoint/worker-1/ (its lock, split,
    inputs file) may be there before the chief looks. It is the run's own, not a user's files;
    anything else is not."""
    from hh.edge.errors import ParameterError
    from hh.trainer.config import TrainConfig
    from hh.trainer.run_folder import RunFolder

    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    out = tmp_path / "run"
    (out / "checkpoint" / "worker-1" / "inputs").mkdir(parents=True)
    (out / "checkpoint" / "worker-1" / ".train.lock").touch()
    config = TrainConfig(data_dir=str(data), out=str(out))
    RunFolder(out).check_new(config)
    for other in (out / "inputs", out / "checkpoint" / "state.json", out / "notes.txt"):
        other.write_text("not a worker's")
        with pytest.raises(ParameterError, match="other files in it"):
            RunFolder(out).check_new(config)
        other.unlink()
