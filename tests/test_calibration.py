"""Calibrated probabilities (temperature scaling folded into the model) and the per-class int8 gate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hh.edge.calibration import expected_calibration_error, fit_temperature, reliability_image, softmax


def sampled(n: int, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): probabilities that mean what they say."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, classes))
    p = softmax(logits)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return logits, labels


def test_temperature_undoes_over_and_under_confidence():
    logits, labels = sampled(4000)
    for scale in (3.0, 0.4):  # over-confident, under-confident
        temperature = fit_temperature(logits * scale, labels)
        assert temperature == pytest.approx(scale, rel=0.15)
        before = expected_calibration_error(softmax(logits * scale), labels)
        after = expected_calibration_error(softmax(logits * scale / temperature), labels)
        assert after < 0.04 < before
        # Dividing by T > 0 keeps every top-1 answer.
        assert (softmax(logits * scale / temperature).argmax(1) == (logits * scale).argmax(1)).all()


def test_a_perfect_validation_set_does_not_make_every_answer_certain():
    logits = np.array([[4.0, 0.0], [0.0, 4.0]] * 50)
    labels = np.array([0, 1] * 50)
    temperature = fit_temperature(logits, labels)
    confidence = softmax(logits / temperature).max(1)
    # 100 right answers of 100 say about 101/102, not 1.0.
    assert 0.97 < confidence.min() and confidence.max() < 0.999


def test_calibration_error_and_its_picture():
    logits, labels = sampled(20000, seed=1)
    assert expected_calibration_error(softmax(logits), labels) < 0.02
    assert expected_calibration_error(softmax(logits * 4), labels) > 0.1
    picture = reliability_image(softmax(logits), labels, "test")
    assert picture.ndim == 3 and picture.shape[2] == 3 and picture.dtype == np.uint8
    assert reliability_image(np.zeros((0, 2)), np.zeros(0, np.int64)).shape == picture.shape


def test_converted_models_carry_calibrated_probabilities_with_the_same_answers(converted_run, trained_run, synth_data):
    import keras

    from hh.edge.folders import list_image_folder
    from hh.edge.runtime import Classifier
    from hh.trainer.data import load_images

    run, results = converted_run
    report = json.loads((run / "model_float32.report.json").read_text())
    calibration = report["calibration"]
    assert calibration["images"] == 40 and calibration["temperature"] > 0
    assert calibration["ece_after"] <= max(0.05, calibration["ece_before"])
    classifier = Classifier(run / "model_float32.tflite")
    images, _ = load_images(list_image_folder(synth_data / "validation"), classifier.spec)
    keras_top = (keras.models.load_model(trained_run / "model.keras").predict(images, verbose=0)[:, 0] > 0.5).astype(int)
    tflite = classifier.predict_rgb(images)
    # Calibration changes no top-1 answer between the classes.
    assert (tflite[:, :2].argmax(1) == keras_top).all()
    # The file's probabilities are the calibrated ones: not Keras's own, unless T is 1.
    plain = keras.models.load_model(trained_run / "model.keras").predict(images, verbose=0)[:, 0]
    shifted = np.abs(tflite[:, 1] / tflite[:, :2].sum(1) - plain).max()
    assert shifted > 1e-3 or abs(calibration["temperature"] - 1) < 1e-3
    # hh-train's report gives the error too, and the picture beside confusion.png.
    summary = json.loads((trained_run / "evaluation.json").read_text())["calibration"]
    assert set(summary) == {"expected_calibration_error", "temperature", "after_temperature"}
    assert (trained_run / "reliability.png").stat().st_size > 0


def test_the_per_class_gate_refuses_what_overall_agreement_would_let_through(tmp_path):
    from test_convert import invoke, write_fine_contrast_run

    run = write_fine_contrast_run(tmp_path)
    flags = ["--min-agreement", "0", "--max-prob-diff", "1", "--no-unknown"]
    result = invoke(run, "--int8", "--calib-dir", tmp_path / "calib", "--eval-dir", tmp_path / "eval", *flags)
    assert result.exit_code == 1, result.output
    assert "fewer of its images than Keras does (more than --max-recall-drop 0.05" in result.output
    report = json.loads((run / "model_int8.rejected.report.json").read_text())
    assert report["recall_drop"] > 0.05 and report["recall_drop_class"] in ("green_more", "red_more")
