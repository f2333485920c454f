"""One verdict per plant from several leaves (hh.edge.plant, hh-predict --plant)."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from hh.edge.plant import MAX_LEAVES, Leaf, LeafRefused, PlantSurvey, plant_verdict

LABELS = ("brown_spot", "healthy", "unknown")


def leaf(name, probabilities, retake=None):
    p = np.array(probabilities, np.float64)
    return Leaf(name, LABELS[int(p.argmax())], p, retake)


def test_the_verdict_is_the_soft_vote_of_the_usable_leaves():
    leaves = [
        leaf("a", [0.9, 0.1, 0.0]),
        leaf("b", [0.4, 0.6, 0.0]),
        leaf("c", [0.7, 0.2, 0.1]),
        leaf("d", [0.1, 0.1, 0.8]),  # not a leaf
        leaf("e", [0.0, 1.0, 0.0], retake="blurry"),
    ]
    verdict = plant_verdict(leaves, LABELS)
    assert verdict.label == "brown_spot"
    # c renormalised over the classes: [0.778, 0.222]; mean of a, b, c.
    assert verdict.probability == pytest.approx((0.9 + 0.4 + 0.7 / 0.9) / 3)
    assert verdict.votes == {"brown_spot": 2, "healthy": 1}
    assert verdict.used == ("a", "b", "c")
    assert verdict.left_out == (("d", "unknown"), ("e", "retake: blurry"))
    assert "from 3 leaves" in verdict.line() and "left out 2" in verdict.line()
    assert json.loads(json.dumps(verdict.as_dict()))["left_out"][1] == {"leaf": "e", "why": "retake: blurry"}


def test_no_usable_leaf_is_an_unknown_verdict_that_says_what_to_do():
    verdict = plant_verdict([leaf("d", [0.1, 0.1, 0.8]), leaf("e", [1, 0, 0], retake="too dark")], LABELS)
    assert verdict.label == "unknown" and verdict.used == ()
    assert "no usable leaf of 2" in verdict.line()


def test_a_model_without_unknown_uses_every_good_leaf():
    labels = ("a", "b")
    verdict = plant_verdict([Leaf("1", "a", np.array([0.6, 0.4])), Leaf("2", "b", np.array([0.3, 0.7]))], labels)
    assert verdict.label == "b" and verdict.probability == pytest.approx(0.55)


def test_a_survey_adds_leaves_to_one_plant_until_the_next_and_is_bounded():
    survey = PlantSurvey(LABELS)
    assert survey.status() == {"plant": 1, "leaves": 0, "verdict": None} and survey.verdict_to_log() == (False, None)
    survey.add_leaf("brown_spot", np.array([0.8, 0.2, 0.0]), None, 10)
    verdict = survey.add_leaf("healthy", np.array([0.1, 0.9, 0.0]), "blurry", 11)
    assert verdict.label == "brown_spot" and verdict.used == ("leaf 1 (frame 10)",)
    assert verdict.left_out == (("leaf 2 (frame 11)", "retake: blurry"),)
    with pytest.raises(LeafRefused, match="frame 11 is a leaf of plant 1 already"):
        survey.add_leaf("healthy", np.array([0.1, 0.9, 0.0]), None, 11)  # a stalled camera, a double tap
    line = "plant 1: brown_spot 0.800 from 1 leaf (brown_spot 1); left out 1 (retake: blurry)"
    assert survey.verdict_to_log() == (True, line)
    assert survey.verdict_to_log() == (True, None)  # nothing new: logged once
    survey.new_plant()
    assert survey.status() == {"plant": 2, "leaves": 0, "verdict": None}
    for frame in range(MAX_LEAVES):
        survey.add_leaf("healthy", np.array([0.2, 0.8, 0.0]), None, frame)
    with pytest.raises(LeafRefused, match="start a new plant"):
        survey.add_leaf("healthy", np.array([0.2, 0.8, 0.0]), None, 99)
    status = survey.status()
    assert status["leaves"] == MAX_LEAVES and status["verdict"]["label"] == "healthy"


def test_predict_plant_on_a_folder_of_leaves(int8_model, synth_data, tmp_path, cli, one_line_error):
    from hh.edge.cli_predict import app

    plant = tmp_path / "plant7"
    plant.mkdir()
    for path in sorted((synth_data / "validation" / "brown_spot").iterdir())[:5]:
        shutil.copy(path, plant / path.name)
    cv2.imwrite(str(plant / "noise.png"), np.random.default_rng(0).integers(0, 256, (200, 200, 3)).astype(np.uint8))
    cv2.imwrite(str(plant / "night.jpg"), np.full((200, 200, 3), 3, np.uint8))
    (plant / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    result = cli(app, int8_model, plant, "--plant", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["type"] for r in rows] == ["image"] * 7 + ["plant"]  # the unreadable one has no answer
    verdict = rows[-1]
    assert verdict["label"] == "brown_spot"
    reasons = {entry["leaf"].rsplit("/", 1)[-1]: entry["why"] for entry in verdict["left_out"]}
    assert reasons["noise.png"] == "unknown" and reasons["night.jpg"].startswith("retake")
    assert reasons["broken.jpg"].startswith("unreadable")
    text = cli(app, int8_model, plant, "--plant")
    assert text.exit_code == 0 and text.stdout.splitlines()[-1].startswith("plant: brown_spot")
    one_line_error(cli(app, int8_model, synth_data / "validation", "--plant"), "no leaf photos", "sub-folders are not read")
    (plant / "other plant").mkdir()  # a sub-folder beside the photos is not this plant's, and no error
    shutil.copy(plant / "noise.png", plant / "other plant" / "x.png")
    again = cli(app, int8_model, plant, "--plant", "--json")
    assert again.exit_code == 0 and again.stdout == result.stdout
    one_line_error(cli(app, int8_model, plant / "noise.png", "--plant"), "needs a folder")
