"""hh-train --negatives: photos that are none of the classes, trained as the class 'unknown',
which hh-convert then combines with the unknown score it adds to every model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from makers import grey_classes

from hh.converters.cli import app as convert_app
from hh.edge.folders import list_image_folder
from hh.edge.spec import UNKNOWN_LABEL
from hh.trainer.cli_train import app as train_app


def write_not_leaves(folder: Path, n: int, seed: int) -> Path:
    """Noise, colour fields and stripes as JPEGs, some in a sub-folder (negatives come at any depth)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = (int(v) for v in rng.integers(120, 240, 2))
        image = np.zeros((h, w, 3), np.uint8)
        if i % 3 == 0:
            image = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        elif i % 3 == 1:
            image[:] = rng.integers(0, 256, 3)
        else:
            for x in range(0, w, 12):
                cv2.line(image, (x, 0), (x, h), rng.integers(0, 256, 3).tolist(), 5)
        target = folder / ("hands" if i % 2 else "soil") / f"n{i:03d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), image)
    return folder


def test_a_class_folder_named_unknown_is_listed_last(tmp_path):
    for name in ("zebra", UNKNOWN_LABEL, "apple"):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / "a.png"), np.zeros((8, 8, 3), np.uint8))
    assert list_image_folder(tmp_path).class_names == ("apple", "zebra", UNKNOWN_LABEL)


def test_the_threshold_counts_the_leaves_the_trained_class_already_calls_unknown():
    from hh.converters.unknown import STEEPNESS, keep_threshold

    scores = np.arange(1.0, 101.0)  # 100 validation leaves; keep 95 of them
    assert keep_threshold(scores, 0.95) == np.quantile(scores, 0.95)
    already = np.zeros(100, bool)
    already[[10, 20]] = True  # two answered unknown by the trained class: the score takes three more
    assert np.sum(already | (scores > keep_threshold(scores, 0.95, already))) == 5
    already[:6] = True  # more than five already: the score leaves every other leaf a tenth inside
    threshold = keep_threshold(scores, 0.95, already)
    assert np.all(scores[~already] <= threshold * (1 - 1 / STEEPNESS) + 1e-9)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "negatives folder {neg} does not exist"),
        ("empty", "negatives folder {neg} holds no images"),
        ("inside", "--negatives is DATA_DIR itself, or inside it"),
        ("binary", "--negatives become a class 'unknown' beside the others, which a binary model cannot have"),
        ("twice", "already has a class folder 'unknown'"),
        ("Twice", "already has a class folder 'Unknown'"),
        ("blank", "--negatives is empty: give a folder"),
        (
            "few",
            "--negatives {neg} has 2 image(s); with --val-dir a fifth of them is held out for validation, so give at least 3",
        ),
        ("out", "--out {neg}/run is inside the negatives folder"),
    ],
)
def test_negatives_that_cannot_be_used_are_one_line_before_anything_is_written(tmp_path, cli, one_line_error, case, message):
    data = grey_classes(tmp_path / "train")
    neg = {"inside": data / "dark"}.get(case, tmp_path / "neg")
    if case == "empty":
        neg.mkdir()
    elif case not in ("missing", "inside"):
        write_not_leaves(neg, 2 if case == "few" else 4, seed=1)
    if case in ("twice", "Twice"):
        write_not_leaves(data / {"twice": UNKNOWN_LABEL, "Twice": "Unknown"}[case], 4, seed=2)
    out = neg / "run" if case == "out" else tmp_path / "run"
    extra = {"binary": ["--class-mode", "binary"], "few": ["--val-dir", grey_classes(tmp_path / "val")]}.get(case, [])
    result = cli(train_app, data, "--negatives", "" if case == "blank" else neg, "--out", out, *extra)
    one_line_error(result, message.format(neg=neg))
    assert not out.exists()


@pytest.mark.slow
def test_negatives_train_the_last_class_and_the_converted_model_adds_its_score(synth_data, tmp_path, cli):
    from hh.edge.runtime import Classifier

    negatives = write_not_leaves(tmp_path / "negatives", 45, seed=3)
    run = tmp_path / "run"
    trained = cli(train_app, synth_data / "train", "--val-dir", synth_data / "validation", "--negatives", negatives,
                  "--out", run, "--image-size", 64, "--batch-size", 32, "--epochs", 15, "--seed", 2)  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert (run / "labels.txt").read_text().split() == ["brown_spot", "healthy", UNKNOWN_LABEL]
    # A fifth of the negatives held out beside --val-dir, and reported like any class.
    split = json.loads((run / "split.json").read_text())
    held_out = [e for e in split["validation"] if e["label"] == 2]
    assert len(held_out) == 9 and all(str(negatives) in e["file"] for e in held_out)
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["per_class"][UNKNOWN_LABEL]["support"] == 9

    converted = cli(convert_app, run, "--int8", "--min-agreement", 0.8, "--max-recall-drop", 1, "--unknown-dir", negatives)
    assert converted.exit_code == 0, converted.output
    classifier = Classifier(run / "model_int8.tflite")
    # One label 'unknown': the trained class, its output also carrying the score's answer.
    assert classifier.class_names == ("brown_spot", "healthy", UNKNOWN_LABEL)
    assert classifier.spec.unknown is not None and classifier.spec.classes == ("brown_spot", "healthy")
    report = json.loads((run / "model_int8.report.json").read_text())
    # The score's statistics and threshold come from the leaves only: 20 validation leaves per class.
    assert report["unknown"]["calibrated_on"] == 40 and report["kept_of"] == 40
    assert report["unknown"]["fitted_on"] == report["quality"]["calibrated_on"] < report["calibration_images"]
    assert 0.85 <= report["kept"] <= 1.0
    # Negatives never seen in training or calibration: nearly all answered unknown.
    unseen = write_not_leaves(tmp_path / "unseen", 30, seed=11)
    answers = [classifier.classify(cv2.imread(str(p))).label for p in sorted(unseen.rglob("*.jpg"))]
    assert answers.count(UNKNOWN_LABEL) >= 27, answers
    # The leaves' own validation folder (no 'unknown' in it) checks the model as well.
    other = tmp_path / "other.tflite"
    checked = cli(convert_app, run, "--int8", "--eval-dir", synth_data / "validation", "--out", other, "--min-agreement", 0.8,
                  "--max-recall-drop", 1)  # fmt: skip
    assert checked.exit_code == 0, checked.output
    assert json.loads(other.with_suffix(".report.json").read_text())["kept_of"] == 40
