"""The golden self-test packed into every converted model: passes on a faithful device, fails
when the expectations or the device's path are wrong, and the camera refuses to start then."""

import json
import shutil

import numpy as np
import pytest
from makers import repack

from hh.edge.cli_camera import app as camera_app
from hh.edge.cli_predict import app as predict_app
from hh.edge.folders import list_image_folder
from hh.edge.metadata import read_associated_files
from hh.edge.preprocess import fit_to_spec
from hh.edge.runtime import Classifier
from hh.edge.selftest import MANIFEST, SelfTest, model_selftest, run_selftest
from hh.trainer.synth import write_video


def tamper_expectations(files):
    manifest = json.loads(files[MANIFEST])
    for case in manifest["cases"]:
        case["expected"] = list(reversed(case["expected"]))  # what a swapped pair of labels would say
    files[MANIFEST] = json.dumps(manifest).encode()


def shift_raw(steps):
    """A manifest edit: the workstation's raw answer for the first image, off by `steps`."""

    def change(files):
        manifest = json.loads(files[MANIFEST])
        raw = manifest["cases"][0]["raw"]
        raw[0] = raw[0] + steps if raw[0] + steps <= 255 else raw[0] - steps
        files[MANIFEST] = json.dumps(manifest).encode()

    return change


@pytest.mark.parametrize("steps, passes", [(1, True), (2, False)])
def test_a_device_may_differ_by_one_output_step_not_two(int8_model, tmp_path, steps, passes):
    """The rule of version 2 self-tests, on the raw output tensor: the same LiteRT on x86 and
    arm64 gives 0 steps, another kernel set 1 (make test-arm, TFLite's reference kernels)."""
    shifted = Classifier(repack(int8_model, tmp_path, shift_raw(steps)))
    result = run_selftest(shifted, model_selftest(shifted))
    assert (result.steps, result.max_steps, result.passed) == (steps, 1, passes), result.line()
    assert f"max difference {steps} output step" in result.line()


def test_a_version_1_self_test_is_still_held_to_its_probability_tolerance(int8_model, tmp_path):
    def as_version_1(files):
        manifest = json.loads(files[MANIFEST])
        manifest["version"] = 1
        del manifest["max_steps"]
        for case in manifest["cases"]:
            del case["raw"]
        files[MANIFEST] = json.dumps(manifest).encode()

    old = Classifier(repack(int8_model, tmp_path, as_version_1))
    packed = model_selftest(old)
    assert packed.max_steps is None and all(case.raw is None for case in packed.cases)
    result = run_selftest(old, packed)
    assert result.passed and result.steps is None and "allowed 0.030" in result.line()


def test_a_clean_model_passes_on_this_device(cli, int8_model, converted_run):
    result = cli(predict_app, int8_model, "--selftest")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("self-test passed: 4 images, max difference 0 output steps")
    report = json.loads((converted_run[0] / "model_int8.report.json").read_text())
    assert report["selftest_images"] == 4 and 0 < report["selftest_kb"] < 60  # 4 JPEGs of 128 px: small
    packed = model_selftest(Classifier(int8_model))
    assert [case.label for case in packed.cases] == ["brown_spot", "brown_spot", "healthy", "healthy"]


def test_tampered_expectations_fail_and_the_camera_will_not_start(cli, one_line_error, int8_model, synth_data, tmp_path):
    tampered = repack(int8_model, tmp_path, tamper_expectations)
    result = cli(predict_app, tampered, "--selftest")
    assert result.exit_code == 1 and "self-test FAILED" in result.stdout, result.output
    video = write_video(list_image_folder(synth_data / "validation").paths[:3], tmp_path / "v.avi")
    refused = cli(camera_app, tampered, "--source", video, "--headless")
    line = one_line_error(refused, "self-test FAILED", "colour order", "--no-selftest", code=1)
    assert "expected" in line and "got" in line
    forced = cli(camera_app, tampered, "--source", video, "--headless", "--no-selftest")
    assert forced.exit_code == 0 and "self-test FAILED" in forced.stderr


def test_a_device_that_feeds_bgr_fails(int8_model):
    classifier = Classifier(int8_model)
    packed = model_selftest(classifier)

    def bgr_to_the_model(frame, spec):  # a camera path that forgot OpenCV's channel order
        return fit_to_spec(frame, spec)

    assert run_selftest(classifier, packed).passed
    broken = run_selftest(classifier, packed, prepare=bgr_to_the_model)
    assert packed.max_steps == 1 and not broken.passed and broken.steps > packed.max_steps, broken
    print(f"BGR: {broken.line()}")


def test_a_damaged_self_test_is_one_line(cli, one_line_error, int8_model, tmp_path):
    def damage(files):
        files[MANIFEST] = b'{"version": 1, "cases": [{"file": "x"'

    one_line_error(cli(predict_app, repack(int8_model, tmp_path, damage), "--selftest"), "self-test is damaged")


def test_a_model_without_a_self_test_says_so(cli, one_line_error, converted_run, tmp_path):
    def strip(files):
        for name in [n for n in files if n == MANIFEST or n.startswith("selftest/")]:
            del files[name]

    plain = repack(converted_run[0] / "model_float32.tflite", tmp_path, strip)
    assert SelfTest.from_files(read_associated_files(plain)) is None
    one_line_error(cli(predict_app, plain, "--selftest"), "carries no self-test")


def test_selftest_images_are_twice_the_input_and_keep_their_aspect(int8_model):
    import cv2

    packed = model_selftest(Classifier(int8_model))
    for jpeg in packed.images.values():
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert min(image.shape[:2]) == 128  # twice the 64 px input, the longer side in proportion


@pytest.mark.slow
def test_convert_without_a_self_test(cli, trained_run, tmp_path):
    from hh.converters.cli import app as convert_app

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    result = cli(convert_app, run, "--selftest", 0)
    assert result.exit_code == 0, result.output
    assert model_selftest(Classifier(run / "model_float32.tflite")) is None


@pytest.mark.slow
def test_a_run_of_the_older_resize_converts_with_a_probability_self_test(cli, trained_run, tmp_path, caplog):
    """A run trained before the exact resize (spec version 2) keeps OpenCV's resize, whose
    answers move by several output steps between CPUs: its self-test keeps the 0.03 tolerance."""
    from hh.converters.cli import app as convert_app

    run = tmp_path / "old"
    shutil.copytree(trained_run, run)
    spec = json.loads((run / "preprocessing.json").read_text())
    spec["version"] = 2
    del spec["resize"], spec["run"]  # what version 2 did not have
    (run / "preprocessing.json").write_text(json.dumps(spec))
    result = cli(convert_app, run, "--int8")
    assert result.exit_code == 0, result.output
    model = run / "model_int8.tflite"
    packed = json.loads(read_associated_files(model)["selftest.json"])
    assert packed["version"] == 1 and "max_steps" not in packed and packed["tolerance"] == 0.03
    assert all("raw" not in case for case in packed["cases"])
    classifier = Classifier(model)
    assert classifier.spec.resize == "opencv" and run_selftest(classifier, model_selftest(classifier)).passed
