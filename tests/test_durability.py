"""Logs and runs that survive the way devices and workstations really stop: SIGTERM, SIGKILL,
a full disk, a kill between two writes, a damaged checkpoint."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest
from makers import grey_classes

from hh.edge.folders import list_image_folder
from hh.edge.record import FrameJournal, read_journal
from hh.trainer.cli_train import app as train_app
from hh.trainer.run_folder import RunFolder, model_epoch
from hh.trainer.synth import write_video


def start_camera(model, video, record, *extra):
    command = [
        sys.executable,
        "-m",
        "hh.edge.cli_camera",
        str(model),
        "--source",
        str(video),
        "--loop",
        "--headless",
        "--record",
        str(record),
        *extra,
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_rows(record, rows, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if record.exists() and len(read_journal(record)[1]) >= rows:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("no rows in time")


@pytest.fixture(scope="module")
def loop_video(synth_data, tmp_path_factory):
    return write_video(list_image_folder(synth_data / "validation").paths[:8], tmp_path_factory.mktemp("v") / "loop.avi")


@pytest.mark.slow
def test_sigterm_ends_the_camera_like_ctrl_c(int8_model, loop_video, tmp_path):
    record = tmp_path / "field.csv"
    process = start_camera(int8_model, loop_video, record, "--threads", "1")
    wait_for_rows(record, 50, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "frames classified" in stderr and "Traceback" not in stderr  # the summary, not a crash
    header, rows = read_journal(record)
    classified = int(stderr.split("frames classified")[0].split()[-1])
    assert header[:3] == ["frame", "time", "label"] and len(rows) == classified  # every row is on disk


@pytest.mark.slow
def test_sigkill_loses_at_most_the_last_second_of_the_record(int8_model, loop_video, tmp_path):
    record = tmp_path / "field.csv"
    process = start_camera(int8_model, loop_video, record, "--threads", "1")
    wait_for_rows(record, 50, process)
    time.sleep(1.5)
    killed_at = time.time()
    process.kill()
    process.wait()
    _, rows = read_journal(record)  # a torn last line, if any, is dropped
    last = float(rows[-1][1])
    # Flushed at least every second; the margin is for a loaded machine's scheduling.
    assert killed_at - last < 2.0, (killed_at, last)


def test_a_torn_last_line_is_tolerated_and_cut_before_appending(tmp_path):
    record = tmp_path / "r.csv"
    journal = FrameJournal(record, ("a", "b"), model="m1")
    journal.write([0, "1.000", "a", "", "0.90000", "0.90000", "0.10000", "0.500", "m1"])
    journal.close()
    with open(record, "a") as handle:
        handle.write("1,2.000,b,0.8")  # the power went out mid-row
    header, rows = read_journal(record)
    assert len(rows) == 1 and header[-2:] == ["inference_ms", "model"]
    journal = FrameJournal(record, ("a", "b"), model="m1")
    journal.write([1, "3.000", "b", "", "0.70000", "0.30000", "0.70000", "0.400", "m1"])
    journal.close()
    lines = record.read_text().splitlines()
    assert len(lines) == 3 and lines[2].startswith("1,3.000,b") and all(len(line.split(",")) == 9 for line in lines)


def test_a_journal_continues_only_under_the_model_that_started_it(tmp_path):
    from hh.edge.errors import ParameterError

    record = tmp_path / "r.csv"
    journal = FrameJournal(record, ("a", "b"), model="m1")
    journal.write([0, "1.000", "a", "", "0.90000", "0.90000", "0.10000", "0.500", "m1"])
    journal.close()
    with pytest.raises(ParameterError, match="another model .m1, this one is m2"):
        FrameJournal(record, ("a", "b"), model="m2")  # same labels, another model
    FrameJournal(record, ("a", "b"), model="m1").close()  # the same model goes on


def test_the_journal_is_on_disk_within_a_second_without_close(tmp_path):
    record = tmp_path / "r.csv"
    journal = FrameJournal(record, ("a", "b"), flush_seconds=0.2)
    journal.write([0, "1.000", "a", "", "0.9", "0.9", "0.1", "0.5", "m"])
    time.sleep(0.6)
    assert len(read_journal(record)[1]) == 1  # flushed by the timer, the file still open
    journal.close()


def train_args(data, out, epochs=2):
    return [
        str(data),
        "--val-split",
        "0.25",
        "--arch",
        "edge",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--epochs",
        str(epochs),
        "--out",
        str(out),
    ]


def limit_file_size(limit):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


@pytest.mark.slow
def test_full_disk_is_one_line_and_the_run_resumes(cli, tmp_path):
    data, out = grey_classes(tmp_path / "data"), tmp_path / "run"
    # 60 KB: run.json and split.json fit, the first epoch's model file (~180 KB) does not.
    done = subprocess.run(
        [sys.executable, "-m", "hh.trainer.cli_train", *train_args(data, out)],
        capture_output=True,
        text=True,
        preexec_fn=limit_file_size(60_000),
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    # Progress lines (class counts) come first; then one error line, and no traceback.
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith(("epoch ", "training images"))]
    assert len(lines) == 1 and lines[0].startswith("error: no space left to write"), done.stderr
    assert f"hh-train --resume {out}" in lines[0]
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]  # no half-written files
    result = cli(train_app, "--resume", out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


@pytest.mark.slow
def test_interrupted_before_the_first_epoch_resumes(tmp_path, interrupt_at_line):
    from hh.trainer.config import TrainConfig
    from hh.trainer.train import resume, train

    data = grey_classes(tmp_path / "data")

    config = TrainConfig(data_dir=str(data), out=str(tmp_path / "run"), arch="edge", image_size=32, batch_size=8, epochs=2)
    with pytest.raises(KeyboardInterrupt):
        with interrupt_at_line(lambda line: "holding out" in line):
            train(config)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "interrupted"
    result = resume(tmp_path / "run")
    assert result.epochs_run == 2


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from hh.trainer.config import TrainConfig
    from hh.trainer.train import train

    root = tmp_path_factory.mktemp("small")
    data = grey_classes(root / "data")
    config = TrainConfig(
        data_dir=str(data), out=str(root / "run"), val_split=0.25, arch="edge", image_size=32, batch_size=8, epochs=4, seed=3
    )
    train(config)
    return root / "run"


def copy_run(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def test_a_kill_between_model_and_record_is_repaired_from_the_checkpoint(small_run, tmp_path):
    run = RunFolder(copy_run(small_run, tmp_path))
    record = run.read_record()
    state = run.read_state()
    assert model_epoch(run.model_path) == record.best_epoch == state.best_epoch
    # What a kill after model.keras was replaced but before run.json was rewritten leaves: the
    # model of the last epoch, a record still naming the best one.
    shutil.copy(run.checkpoint_dir() / state.last_file, run.model_path)
    if state.last_file == state.best_file:
        record.best_epoch = state.best_epoch - 1 or 2
        run.write_record(record)
        shutil.copy(run.checkpoint_dir() / state.best_file, run.model_path)
    assert run.stale_publication() is not None
    assert run.repair_publication() is True
    assert run.stale_publication() is None
    assert model_epoch(run.model_path) == run.read_record().best_epoch == state.best_epoch


@pytest.mark.parametrize("damage", ["state", "model"])
def test_a_damaged_checkpoint_is_one_line(cli, one_line_error, small_run, tmp_path, damage):
    run = RunFolder(copy_run(small_run, tmp_path))
    state = run.read_state()
    if damage == "state":
        (run.checkpoint_dir() / "state.json").write_text('{"epochs_done": 4, "best_')
        fragment = "state.json is damaged"
    else:
        path = run.checkpoint_dir() / state.last_file
        path.write_bytes(path.read_bytes()[:1000])
        fragment = "the checkpoint cannot be loaded"
    one_line_error(cli(train_app, "--resume", run.path, "--epochs", 6), fragment, "cannot be resumed")


def test_resume_refuses_changed_settings_and_cleans_dead_temp_files(cli, one_line_error, small_run, tmp_path):
    run = RunFolder(copy_run(small_run, tmp_path))
    for args, fragment in (
        (["--lr", "0.5"], "--lr cannot change when resuming"),
        (["--image-size", "48"], "--image-size cannot change when resuming"),
        (["--arch", "seed"], "--arch cannot change when resuming"),
        ([], "--epochs 4 are already done"),
        (["--epochs", "3"], "--epochs 3 are already done"),
    ):
        one_line_error(cli(train_app, "--resume", run.path, *args), fragment)
    stale = run.checkpoint_dir() / ".epoch-0005.tmp-999999999.keras"
    stale.write_bytes(b"left by a SIGKILL")
    orphan = run.checkpoint_dir() / "epoch-0009.keras"  # written, never committed
    orphan.write_bytes(b"x")
    result = cli(train_app, "--resume", run.path, "--epochs", 5, "--lr", "0.002")  # the same lr is no change
    assert result.exit_code == 0, result.output
    assert not stale.exists() and not orphan.exists()
    assert run.read_state().epochs_done == 5 and len(run.read_history()["loss"]) == 5


def test_outputs_are_checked_before_training(cli, one_line_error, tmp_path):
    data = grey_classes(tmp_path / "data", n=3)
    (tmp_path / "a_file").write_text("x")
    one_line_error(cli(train_app, data, "--out", tmp_path / "a_file" / "run"), "--out", "is a file, not a folder")
    one_line_error(cli(train_app, data, "--out", tmp_path / "r", "--cache", tmp_path / "a_file"), "--cache", "is a file")
    assert not (tmp_path / "r").exists()


def test_class_folder_names_with_control_characters_are_refused(cli, one_line_error, tmp_path):
    data = grey_classes(tmp_path / "data", n=2)
    os.rename(data / "dark", data / "da\nrk")
    one_line_error(cli(train_app, data, "--out", tmp_path / "r"), "control character")
    # U+202E turns the rest of a shown line around: "healthy" could read as anything.
    os.rename(data / "da\nrk", data / "dark\u202eyhtlaeh")
    one_line_error(cli(train_app, data, "--out", tmp_path / "r"), "reorders the text around it")


def test_a_key_name_with_a_control_character_is_refused(cli, one_line_error, tmp_path):
    from hh.trainer.cli_data import app as data_app

    for name in ("fie\nld", "fie\u202eld"):
        one_line_error(cli(data_app, "keygen", tmp_path / name), "a key's name holds a control character")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_full_disk_stops_the_record_not_the_session(int8_model, loop_video, tmp_path):
    record = tmp_path / "field.csv"
    command = [sys.executable, "-m", "hh.edge.cli_camera", str(int8_model), "--source", str(loop_video), "--loop",
               "--headless", "--record", str(record), "--max-frames", "3000"]  # fmt: skip
    # 20 KB of record: the header and a few hundred rows fit, then every write fails.
    done = subprocess.run(command, capture_output=True, text=True, preexec_fn=limit_file_size(20_000), timeout=120)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "recording stopped after" in warnings[0], done.stderr
    assert "3000 frames classified" in done.stderr  # the session went on
    _, rows = read_journal(record)
    assert 100 < len(rows) < 3000


def test_names_near_the_file_systems_limit_are_written_and_kept_apart(tmp_path):
    """A 250-byte photo name: the temporary name beside it (.name.tmp-PID-N.jpg) passed 255
    bytes and the whole merge stopped; a second copy's name-1.jpg did too."""
    from hh.edge.files import MAX_NAME_BYTES, atomic_write_bytes, create_new

    name = "é" * 60 + "x" * (250 - 120 - 4) + ".jpg"  # 250 bytes, two-byte characters among them
    assert len(name.encode()) == 250
    target = tmp_path / name
    atomic_write_bytes(target, b"one")
    assert target.read_bytes() == b"one"
    second = create_new(target, b"two")
    third = create_new(target, b"three")
    assert second != target != third and second != third
    assert second.read_bytes() == b"two" and third.read_bytes() == b"three"
    assert all(len(p.name.encode()) <= MAX_NAME_BYTES for p in tmp_path.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left
