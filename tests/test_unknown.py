"""The `unknown` answer: inside the converted model, calibrated by hh-convert, read by every reader."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from hh.edge.errors import SpecError
from hh.edge.spec import UNKNOWN_LABEL, PreprocessingSpec, UnknownRule

RULE = UnknownRule(score="s", threshold=2.5, keep=0.95, calibrated_on=40, fitted_on=160)


def not_leaves(n: int = 30, seed: int = 5) -> list[np.ndarray]:
    """Noise, colour fields and stripes: BGR images nothing like a leaf photo."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(120, 300, 2))
        if i % 3 == 0:
            image = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        elif i % 3 == 1:
            image = np.zeros((h, w, 3), np.uint8)
            image[:] = rng.integers(0, 256, 3)
        else:
            image = np.zeros((h, w, 3), np.uint8)
            for x in range(0, w, 12):
                cv2.line(image, (x, 0), (x, h), rng.integers(0, 256, 3).tolist(), 5)
        images.append(image)
    return images


def test_spec_with_unknown_round_trips_and_says_which_classes_were_trained():
    spec = PreprocessingSpec(64, 64, ("healthy", "sick")).with_unknown(RULE)
    assert spec.class_names == ("healthy", "sick", UNKNOWN_LABEL)
    assert spec.classes == ("healthy", "sick")
    assert spec.class_mode == "categorical"
    again = PreprocessingSpec.from_json(spec.to_json())
    assert again == spec and again.unknown == RULE
    assert "unknown" not in json.loads(PreprocessingSpec(64, 64, ("a", "b")).to_json())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: {**d, "version": 3}, "unknown field(s) unknown for spec version 3"),
        (lambda d: {**d, "class_names": ["a", "b", "c"]}, "has it as its last label"),
        (lambda d: {**d, "unknown": {**d["unknown"], "threshold": "many"}}, "must be numbers"),
        (lambda d: {**d, "unknown": {**d["unknown"], "calibrated_on": True}}, "whole numbers"),
        (lambda d: {**d, "unknown": {**d["unknown"], "threshold": -5}}, "threshold above 0"),
        (lambda d: {**d, "unknown": {**d["unknown"], "keep": 1.5}}, "keep at least 0.5, below 1"),
        (lambda d: {**d, "unknown": {"threshold": 1}}, "unknown must hold exactly"),
    ],
)
def test_spec_refuses_an_unknown_rule_that_does_not_fit(change, message):
    data = json.loads(PreprocessingSpec(64, 64, ("a", "b")).with_unknown(RULE).to_json())
    with pytest.raises(SpecError) as error:
        PreprocessingSpec.from_json(json.dumps(change(data)))
    assert message in str(error.value)


def test_int8_model_answers_unknown_for_what_is_not_a_leaf_and_keeps_the_leaves(converted_run, int8_model):
    from hh.edge.runtime import Classifier
    from hh.edge.spec import parse_labels

    run, _ = converted_run
    classifier = Classifier(int8_model)
    assert classifier.class_names[-1] == UNKNOWN_LABEL and classifier.spec.unknown is not None
    report = json.loads((run / "model_int8.report.json").read_text())
    assert report["unknown"]["keep"] == 0.95
    # Fitted on the shipped model's own arithmetic: it keeps what it promises on its validation images.
    assert 0.9 <= report["kept"] <= 1.0
    answers = [classifier.classify(image).label for image in not_leaves()]
    assert answers.count(UNKNOWN_LABEL) >= 0.9 * len(answers), answers
    # Every reader sees the label in the file: labels.txt inside the model ends with it.
    from hh.edge.metadata import read_associated_files

    assert parse_labels(read_associated_files(int8_model)["labels.txt"].decode())[-1] == UNKNOWN_LABEL


def test_float_models_answer_unknown_too(converted_run):
    from hh.edge.runtime import Classifier

    run, results = converted_run
    for mode in ("float32", "float16", "dynamic"):
        assert results[mode].exit_code == 0, results[mode].output
        report = json.loads((run / f"model_{mode}.report.json").read_text())
        assert 0.9 <= report["kept"] <= 1.0, (mode, report["kept"])
        classifier = Classifier(run / f"model_{mode}.tflite")
        answers = [classifier.classify(image).label for image in not_leaves(12)]
        assert answers.count(UNKNOWN_LABEL) >= 10, (mode, answers)


def test_no_unknown_leaves_the_labels_as_trained_and_unknown_dir_is_counted(trained_run, tmp_path, cli):
    import shutil

    from hh.converters.cli import app
    from hh.edge.runtime import Classifier

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    result = cli(app, *[str(run), "--no-unknown", "--out", str(tmp_path / "plain.tflite")])
    assert result.exit_code == 0, result.output
    assert UNKNOWN_LABEL not in Classifier(tmp_path / "plain.tflite").class_names
    assert "unknown:" not in result.output

    others = tmp_path / "others" / "deeper"
    others.mkdir(parents=True)
    for i, image in enumerate(not_leaves(10)):
        cv2.imwrite(str(others / f"{i}.png"), image)
    result = cli(app, *[str(run), "--unknown-dir", str(tmp_path / "others"), "--out", str(tmp_path / "u.tflite")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "u.report.json").read_text())
    assert report["unknown_dir"]["images"] == 10 and report["unknown_dir"]["unknown"] >= 9
    assert f"of 10 images in {tmp_path / 'others'} answered unknown" in result.output


@pytest.mark.parametrize("keep", ["0.3", "1"])
def test_unknown_keep_out_of_range_is_one_line(trained_run, cli, one_line_error, keep):
    from hh.converters.cli import app

    result = cli(app, *[str(trained_run), "--unknown-keep", keep])
    one_line_error(result, "--unknown-keep")


def test_conflicting_or_empty_unknown_options_are_refused_before_any_work(trained_run, tmp_path, cli, one_line_error):
    from hh.converters.cli import app

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    one_line_error(cli(app, trained_run, "--no-unknown", "--unknown-dir", empty), "--no-unknown", "--unknown-dir")
    one_line_error(cli(app, trained_run, "--no-unknown", "--unknown-keep", "0.9"), "--no-unknown", "--unknown-keep")
    one_line_error(cli(app, trained_run, "--unknown-dir", empty), "--unknown-dir", "holds no image files")


def test_an_evaluation_folder_of_other_classes_is_refused_before_anything_is_fitted(trained_run, synth_data, tmp_path, cli):
    import shutil

    from hh.converters.cli import app

    other = tmp_path / "eval"
    shutil.copytree(synth_data / "validation", other)
    (other / "unknown").mkdir()
    for i, image in enumerate(not_leaves(3)):
        cv2.imwrite(str(other / "unknown" / f"{i}.png"), image)
    result = cli(app, trained_run, "--eval-dir", other, "--out", tmp_path / "m.tflite")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "has classes ('brown_spot', 'healthy', 'unknown'), the model ('brown_spot', 'healthy')" in result.output
    assert "fitting" not in result.output


def test_a_model_that_outputs_logits_is_verified_on_its_answers(synth_data, tmp_path, cli):
    import keras

    from hh.converters.cli import app
    from hh.edge.spec import PreprocessingSpec

    keras.utils.set_random_seed(3)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))  # logits: no softmax
    folder = tmp_path / "logits"
    folder.mkdir()
    keras.Model(inputs, outputs).save(folder / "model.keras")
    (folder / "preprocessing.json").write_text(PreprocessingSpec(32, 32, ("brown_spot", "healthy")).to_json())
    # Its probabilities are not comparable (the device softmaxes scores), its answers are.
    flags = ["--selftest", "0", "--max-prob-diff", "1"]
    result = cli(app, folder / "model.keras", "--eval-dir", synth_data / "validation", *flags)
    assert result.exit_code == 0, result.output
    report = json.loads((folder / "model_float32.report.json").read_text())
    assert report["agreement"] == 1.0 and report["unknown"] is None and report["calibration"] is None
