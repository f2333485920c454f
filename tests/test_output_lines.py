"""One line means one line: hh's commands, run as a user runs them (a process of their own, so
what TensorFlow, LiteRT, OpenCV and FFmpeg write to the terminal is seen too)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hh.edge.evaluate import report_not_learned
from hh.edge.folders import list_image_folder
from hh.trainer.synth import write_video

# What library chatter looks like; none of it may reach a user without --verbose.
CHATTER = ("I0000", "W0000", "E0000", "absl", "oneDNN", "XNNPACK", "[ WARN", "Saved artifact", "TensorSpec", "tcp @", "Warning")


def run(module, *args, env=None):
    command = [sys.executable, "-m", module, *map(str, args)]
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user has it
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**environment, **(env or {})})


def lines(text):
    return [line for line in text.splitlines() if line.strip()]


def assert_quiet(done):
    for line in lines(done.stdout) + lines(done.stderr):
        assert not any(mark in line for mark in CHATTER), line


def assert_one_error_line(done, fragment):
    assert done.returncode == 2, done.stderr
    assert lines(done.stdout) == [], done.stdout
    assert len(lines(done.stderr)) == 1 and lines(done.stderr)[0].startswith("error: "), done.stderr
    assert fragment in done.stderr


@pytest.mark.slow
def test_user_errors_are_exactly_one_stderr_line(tmp_path, int8_model):
    (tmp_path / "empty").mkdir()
    assert_one_error_line(run("hh.trainer.cli_train", tmp_path / "nope", "--out", tmp_path / "r"), "does not exist")
    assert_one_error_line(run("hh.converters.cli", tmp_path / "empty"), "without model.keras")
    assert_one_error_line(run("hh.edge.cli_predict", int8_model, tmp_path / "nope"), "does not exist")
    assert_one_error_line(run("hh.edge.cli_camera", int8_model, "--source", "7", "--headless"), "could not be opened")
    refused = run("hh.edge.cli_camera", int8_model, "--source", "rtsp://127.0.0.1:9/x", "--headless")
    assert_one_error_line(refused, "could not be opened")
    assert_one_error_line(run("hh.edge.cli_bench", int8_model, "--threads", "-2"), "--threads must be at least 1")


@pytest.mark.slow
def test_successful_runs_print_only_hh_lines(synth_data, tmp_path):
    data = synth_data
    out = tmp_path / "run"
    train = run(
        "hh.trainer.cli_train",
        data / "train",
        "--val-dir",
        data / "validation",
        "--arch",
        "edge",
        "--image-size",
        32,
        "--epochs",
        2,
        "--batch-size",
        32,
        "--out",
        out,
    )
    assert train.returncode == 0, train.stderr
    assert_quiet(train)
    # A 2-epoch model may not have learned yet: then, and only then, one warning says so.
    unlearned = report_not_learned(json.loads((out / "evaluation.json").read_text())) is not None
    expected = ["training images", "epoch 1/2", "epoch 2/2", *(["warning"] if unlearned else [])]
    assert [line.split(":")[0] for line in lines(train.stderr)] == expected
    # best epoch; the per-class table (header, 2 classes, accuracy); files written (2); next step
    assert len(lines(train.stdout)) == 8 and lines(train.stdout)[0].startswith("best epoch")

    # A 2-epoch model: its int8 answers may all differ from Keras's; the gates are not under test here.
    convert = run("hh.converters.cli", out, "--int8", "--calib-count", 100, "--min-agreement", 0, "--max-recall-drop", 1)
    assert convert.returncode == 0, convert.stderr
    assert_quiet(convert)
    # size, verification, per-class recall, self-test, calibration, identity, quality gate, the unknown answer, next step
    # (calibration only where it helps: otherwise a note says so, and there is no line for it)
    got = [line.split()[0] for line in lines(convert.stdout)[1:]]
    expected = ["on", "per", "self-test:", "model", "quality", "unknown:", "next:"]
    assert [word for word in got if word != "probabilities:"] == expected
    assert ("probabilities:" in got) != ("does not lower the calibration error" in convert.stderr)
    progress = [line.split()[0] for line in lines(convert.stderr) if not line.startswith("note:")]
    report = json.loads((out / "model_int8.report.json").read_text())
    assert progress == ["loading", "fitting", "converting", "verifying", *(["warning:"] if report["not_learned"] else [])]

    model = out / "model_int8.tflite"
    predict = run("hh.edge.cli_predict", model, list_image_folder(data / "validation").paths[0])
    # The answer, and on stderr which model gave it.
    assert predict.returncode == 0 and len(lines(predict.stdout)) == 1
    assert len(lines(predict.stderr)) == 1 and lines(predict.stderr)[0].startswith("model "), predict.stderr
    video = write_video(list_image_folder(data / "validation").paths[:4], tmp_path / "v.avi")
    camera = run("hh.edge.cli_camera", model, "--source", video, "--headless")
    assert camera.returncode == 0, camera.stderr
    assert_quiet(camera)
    # model line, self-test line, summary; 4 frames
    assert len(lines(camera.stderr)) == 3 and len(lines(camera.stdout)) == 4, camera.stderr
    assert lines(camera.stderr)[1].startswith("self-test passed")
    bench = run("hh.edge.cli_bench", model, "--frames", 20)
    assert bench.returncode == 0 and lines(bench.stderr) == []
    # --verbose brings the libraries back.
    verbose = run("hh.edge.cli_camera", model, "--source", video, "--headless", "--verbose")
    assert "XNNPACK" in verbose.stderr


BLOCK_TENSORFLOW = textwrap.dedent(
    """
    import sys, importlib.abc

    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                raise ImportError("No module named " + repr(name))

    sys.meta_path.insert(0, NoTensorFlow())
    sys.argv = ["{command}", *sys.argv[1:]]
    from {module} import main
    main()
    """
)


@pytest.mark.parametrize("command, module", [("hh-train", "hh.trainer.cli_train"), ("hh-convert", "hh.converters.cli")])
def test_training_commands_on_a_device_install_say_what_to_install(tmp_path, command, module):
    script = BLOCK_TENSORFLOW.format(command=command, module=module)
    (tmp_path / "data" / "a").mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "data"), "--out", str(tmp_path / "r")]
        if command == "hh-train"
        else [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert len(lines(done.stderr)) == 1 and "pip install 'hh[train]'" in done.stderr and command in done.stderr


def test_small_option_mistakes(cli, one_line_error, int8_model, tmp_path):
    from hh.edge.cli_camera import app as camera_app

    video = tmp_path / "v.avi"
    video.write_bytes(b"")
    one_line_error(cli(camera_app, int8_model, "--max-frames", 0, "--source", video), "--max-frames must be at least 1")
    one_line_error(cli(camera_app, int8_model, "--threads", 0, "--source", video), "--threads must be at least 1")
    one_line_error(cli(camera_app, int8_model, "--threshold", 1.5, "--source", video), "--threshold must be between 0 and 1")
    one_line_error(cli(camera_app, int8_model, "--source", tmp_path), "--source", "is a folder")
    one_line_error(cli(camera_app, int8_model.parent, "--source", video), "is a folder, not a model file; give the .tflite file")


def float_tflite(model) -> bytes:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def test_a_model_without_a_fixed_input_size_is_refused(cli, one_line_error, tmp_path):
    import keras

    from hh.edge.cli_predict import app as predict_app
    from hh.edge.spec import PreprocessingSpec

    inputs = keras.Input((None, None, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    (tmp_path / "m.tflite").write_bytes(float_tflite(keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))))
    (tmp_path / "preprocessing.json").write_text(PreprocessingSpec(height=32, width=32, class_names=("a", "b")).to_json())
    one_line_error(cli(predict_app, tmp_path / "m.tflite", tmp_path), "input size is not fixed")


def test_a_model_that_outputs_scores_gets_probabilities(tmp_path):
    """A model saved without its softmax outputs logits: hh applies the softmax and says so."""
    import keras

    from hh.edge.runtime import Classifier
    from hh.edge.spec import PreprocessingSpec

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)  # raw 0-255 means: large scores
    head = keras.layers.Dense(3)
    model = keras.Model(inputs, head(x))
    head.set_weights([np.array([[0.2, 0, 0], [0, 0.2, 0], [0, 0, 0.2]], np.float32), np.zeros(3, np.float32)])
    (tmp_path / "m.tflite").write_bytes(float_tflite(model))
    (tmp_path / "preprocessing.json").write_text(
        PreprocessingSpec(height=32, width=32, class_names=("r", "g", "b"), class_mode="categorical").to_json()
    )
    classifier = Classifier(tmp_path / "m.tflite")
    assert classifier.outputs_scores and "softmax applied" in classifier.describe()
    blue = np.zeros((40, 40, 3), np.uint8)
    blue[..., 0] = 200  # OpenCV order: blue first
    result = classifier.classify(blue)
    assert result.label == "b" and 0.99 < result.probability <= 1.0
    assert abs(result.probabilities.sum() - 1) < 1e-5
