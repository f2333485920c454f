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


def default_sigint():
    """For a child: SIGINT as a terminal's foreground job has it, whatever this test run was started
    with (a background job starts with SIGINT ignored, and a child inherits that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_training(synth_data, out, sigint=default_sigint, epochs=EPOCHS):
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
        str(epochs),
        "--out",
        str(out),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=sigint)


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


@pytest.fixture
def sigint_handler():
    """SIGINT as Python sets it up in a foreground terminal, for the test, then what the test run
    had (ignored, in a background job): these tests must not depend on how pytest was started."""
    found = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield signal.default_int_handler
    signal.signal(signal.SIGINT, found)


@pytest.fixture
def sigint_ignored():
    found = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield signal.SIG_IGN
    signal.signal(signal.SIGINT, found)


def test_ctrl_c_during_epoch_writes_waits_for_them(sigint_handler):
    """SIGINT inside the block is held until the block's writes are done, then raised."""
    from hh.edge.signals import deferred_interrupt

    written = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            written.append("history")  # still runs: the interrupt waited
    assert written == ["history"]
    assert signal.getsignal(signal.SIGINT) is sigint_handler  # the handler it found is back


def test_held_interrupt_waits_for_a_safe_point_and_a_second_one_raises_at_once(sigint_handler):
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
    assert signal.getsignal(signal.SIGINT) is sigint_handler


def test_an_ignored_sigint_stays_ignored_and_is_put_back(sigint_ignored):
    """A background job starts with SIGINT ignored: a Ctrl-C meant for the foreground is not for it."""
    from hh.edge.signals import held_interrupts, sigterm_as_interrupt

    with sigterm_as_interrupt(), held_interrupts(second_raises=True) as held:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        held.raise_if_received()  # nothing was received
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # SIGTERM still saves and stops
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_handler_of_the_callers_is_put_back_after_each_block(sigint_handler):
    from hh.edge.signals import deferred_interrupt, held_interrupts, sigterm_as_interrupt

    def callers(signum, frame):
        raise AssertionError("the caller's handler ran inside the block")

    found_term = signal.signal(signal.SIGTERM, callers)
    signal.signal(signal.SIGINT, callers)
    try:
        for block in (sigterm_as_interrupt(), held_interrupts(), deferred_interrupt()):
            with block:
                pass
            assert signal.getsignal(signal.SIGINT) is callers and signal.getsignal(signal.SIGTERM) is callers
    finally:
        signal.signal(signal.SIGTERM, found_term)


@pytest.mark.slow
def test_hh_train_started_with_sigint_ignored_trains_on_through_it(synth_data, tmp_path):
    """`hh-train ... &` from a script: SIGINT is ignored from the start and stays so; SIGTERM
    still saves and stops."""
    out = tmp_path / "run"
    process = start_training(synth_data, out, sigint=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN), epochs=10)
    wait_for_epochs(process, out, at_least=1)
    process.send_signal(signal.SIGINT)
    assert process.poll() is None  # it came while training ran
    sent_after = json.loads((out / "checkpoint" / "state.json").read_text())["epochs_done"]
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert sent_after < 10
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and record["epochs_done"] == 10
