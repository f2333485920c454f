"""Scale-out: two MultiWorkerMirroredStrategy workers on loopback train one model together."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from hh.trainer.cli_train import app


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_and_only_the_chief_writes(synth_data, tmp_path):
    import keras

    from hh.edge.folders import list_image_folder
    from hh.edge.spec import read_spec
    from hh.trainer.data import load_images

    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    out = tmp_path / "run"

    def start(index):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "3"}
        command = [
            sys.executable,
            "-m",
            "hh.trainer.cli_train",
            str(synth_data / "train"),
            "--val-dir",
            str(synth_data / "validation"),
            "--strategy",
            "multiworker",
            "--arch",  # the network the accuracy bound below was measured with
            "seed",
            "--image-size",
            "64",
            "--batch-size",
            "32",
            "--epochs",
            "20",
            "--augment",  # this tests distribution; augmentation has tests of its own
            "none",
            "--out",
            str(out),
        ]
        if index == 1:  # its model inputs on disk: its shard reads its rows from the inputs file
            command += ["--ram-budget", "0"]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    # Both start together; either may look at --out first. An extra worker writes only in its
    # own checkpoint/worker-1/ (its lock, split and inputs file), which the chief's check of
    # --out accepts, so the order does not matter (tests/test_overwrite.py holds the check).
    own = out / "checkpoint" / "worker-1"
    processes = [start(0), start(1)]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=300))
    finally:
        for process in processes:
            process.kill()
    for process, (_stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
        assert "multi-worker" in stderr and "2 replicas, global batch 32" in stderr
    assert f"more than the RAM budget of 0 KB (--ram-budget): decoded once into {own / 'inputs'}" in outputs[1][1]
    assert not (out / "inputs").exists() and not (own / "inputs").exists()  # removed once the run was complete

    # The chief (worker 0) wrote the run; worker 1 only its own resumable checkpoint.
    for name in ("model.keras", "labels.txt", "preprocessing.json", "history.csv", "curves.png", "run.json"):
        assert (out / name).exists(), name
    assert (out / "checkpoint" / "state.json").exists()
    assert json.loads((out / "checkpoint" / "worker-1" / "state.json").read_text())["epochs_done"] == 20
    assert not list((out / "checkpoint" / "worker-1").glob("model.keras"))
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and record["config"]["strategy"] == "multiworker"

    # The result is an ordinary model: it loads without any strategy and classifies well.
    spec = read_spec(out / "preprocessing.json")
    model = keras.models.load_model(out / "model.keras")
    images, labels = load_images(list_image_folder(synth_data / "validation"), spec)
    accuracy = np.mean((model.predict(images, verbose=0)[:, 0] > 0.5) == labels)
    assert accuracy >= 0.75, accuracy


@pytest.mark.parametrize(
    "tf_config, fragment",
    [(None, "needs TF_CONFIG"), ("{not json", "TF_CONFIG must be JSON"), ('{"cluster": {}}', "TF_CONFIG must be JSON")],
)
def test_multiworker_without_a_valid_tf_config(tmp_path, monkeypatch, tf_config, fragment):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
    result = CliRunner().invoke(app, [str(tmp_path / "data"), "--strategy", "multiworker", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and fragment in result.output


def test_unknown_strategy(tmp_path):
    result = CliRunner().invoke(app, [str(tmp_path), "--strategy", "horovod", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--strategy must be one of" in result.output
