"""Interrupted training: SIGKILL or Ctrl-C at any moment, then --resume finishes the run."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from hh.trainer.cli_train import app

EPOCHS = 20


def start_training(synth_data, out):
    args = [
        sys.executable,
        "-m",
        "hh.trainer.cli_train",
        str(synth_data / "train"),
        "--val-dir",
        str(synth_data / "validation"),
        "--image-size",
        "32",
        "--batch-size",
        "32",
        "--epochs",
        str(EPOCHS),
        "--out",
        str(out),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_epochs(process, out, at_least, timeout=120):
    state = out / "checkpoint" / "state.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state.exists() and json.loads(state.read_text())["epochs_done"] >= at_least:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError("training did not reach the epoch in time")


def assert_finished(out):
    with open(out / "history.csv") as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == list(range(1, EPOCHS + 1))
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and record["epochs_done"] == EPOCHS
    assert (out / "model.keras").exists() and (out / "curves.png").exists()
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]  # no half-written leftovers


@pytest.mark.slow
def test_sigkill_then_resume_finishes_with_the_right_epoch_count(synth_data, tmp_path):
    out = tmp_path / "run"
    process = start_training(synth_data, out)
    wait_for_epochs(process, out, at_least=2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    done = json.loads((out / "checkpoint" / "state.json").read_text())["epochs_done"]
    assert 2 <= done < EPOCHS
    result = CliRunner().invoke(app, ["--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert f"after epoch {done} of {EPOCHS}" in result.stderr  # at most the running epoch was lost
    assert_finished(out)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_saves_and_says_how_to_resume(synth_data, tmp_path, stop):
    out = tmp_path / "run"
    process = start_training(synth_data, out)
    wait_for_epochs(process, out, at_least=1)
    process.send_signal(stop)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert f"hh-train --resume {out}" in stderr and "Traceback" not in stderr, stderr
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted", stderr
    result = CliRunner().invoke(app, ["--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert_finished(out)


def test_resume_without_a_checkpoint_is_a_user_error(tmp_path):
    (tmp_path / "run").mkdir()
    result = CliRunner().invoke(app, ["--resume", str(tmp_path / "run")])
    assert result.exit_code == 2 and "not a run folder" in result.output


def test_ctrl_c_during_epoch_writes_waits_for_them():
    """SIGINT inside the block is held until the block's writes are done, then raised."""
    from hh.edge.signals import deferred_interrupt

    written = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            written.append("history")  # still runs: the interrupt waited
    assert written == ["history"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_held_interrupt_waits_for_a_safe_point_and_a_second_one_raises_at_once():
    from hh.edge.signals import held_interrupts

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with held_interrupts(second_raises=True) as held:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            reached.append("after the signal")  # held: the code goes on to its safe point
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)  # the second one does not wait
                time.sleep(0.05)
            reached.append("safe point")
            held.raise_if_received()
            reached.append("never")
    assert reached == ["after the signal", "safe point"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
