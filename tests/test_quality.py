"""The image-quality gate (thresholds calibrated from training images, carried in the model) and
device health in the camera's log."""

import json

import cv2
import numpy as np
import pytest

from hh.edge.cli_camera import app as camera_app
from hh.edge.folders import list_image_folder
from hh.edge.health import HealthWatch, decode_throttled, read_health
from hh.edge.preprocess import read_image_bgr
from hh.edge.quality import calibrate, check, measure
from hh.edge.runtime import Classifier
from hh.trainer.synth import write_video


def blurred(frame):
    side = max(frame.shape[:2])
    kernel = (side // 12) | 1  # a leaf far out of focus: detail gone at the model's size too
    return cv2.GaussianBlur(frame, (kernel, kernel), 0)


def darkened(frame):
    return (frame * 0.15).astype(np.uint8)  # deep shade


def overexposed(frame):
    return (255 - (255 - frame.astype(np.float32)) * 0.1).astype(np.uint8)  # glare


def blank(frame):
    return np.full_like(frame, 128)  # the lens cap, a wall: nothing in view


@pytest.fixture(scope="module")
def gate(int8_model, synth_data):
    classifier = Classifier(int8_model)
    frames = [read_image_bgr(p) for p in list_image_folder(synth_data / "validation").paths]
    return classifier, frames


def reasons(classifier, frames):
    return [classifier.classify_frame(frame, quality=classifier.spec.quality)[1] for frame in frames]


def test_the_model_carries_thresholds_calibrated_on_its_training_images(gate):
    classifier, _ = gate
    quality = classifier.spec.quality
    assert quality is not None and quality.calibrated_on == 160
    assert 0 < quality.min_brightness < quality.max_brightness < 255 and quality.min_sharpness > 0


def test_clean_validation_images_pass(gate):
    classifier, frames = gate
    flagged = [r for r in reasons(classifier, frames) if r]
    assert len(flagged) <= 0.1 * len(frames), flagged  # at least 90% pass


@pytest.mark.parametrize(
    "spoil, reason", [(blurred, "blurry"), (darkened, "too dark"), (overexposed, "too bright"), (blank, "low contrast")]
)
def test_spoiled_images_are_flagged_with_the_reason(gate, spoil, reason):
    classifier, frames = gate
    found = reasons(classifier, [spoil(frame) for frame in frames])
    assert found.count(reason) >= 0.9 * len(frames), found


def test_calibration_follows_the_training_images():
    rng = np.random.default_rng(0)
    dim = rng.integers(10, 70, (50, 32, 32, 3), dtype=np.uint8)  # a model trained on dim photos
    thresholds = calibrate(dim)
    assert check(measure(dim[0]), thresholds) is None  # accepts dim frames
    assert check(measure(np.full((32, 32, 3), 200, np.uint8)), thresholds) == "too bright"


@pytest.mark.slow
def test_camera_reports_retake_with_the_reason_and_the_gate_can_be_turned_off(cli, int8_model, synth_data, tmp_path):
    paths = list_image_folder(synth_data / "validation").paths[:4]
    clean = [cv2.resize(cv2.imread(p), (640, 480)) for p in paths]
    spoiled = [darkened(clean[0]), blurred(clean[1]), blank(clean[2])]
    video = tmp_path / "field.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for frame in clean + spoiled:
        writer.write(frame)
    writer.release()
    record = tmp_path / "field.csv"
    result = cli(camera_app, int8_model, "--source", video, "--json", "--record", record)
    assert result.exit_code == 0, result.output
    frames = [json.loads(line) for line in result.stdout.splitlines() if '"type": "frame"' in line]
    assert [f["retake"] for f in frames[4:]] == ["too dark", "blurry", "low contrast"]
    assert all(f["label"] == "retake" for f in frames[4:]) and all(f["label"] != "retake" for f in frames[:4])
    summary = [json.loads(line) for line in result.stdout.splitlines() if '"type": "summary"' in line][0]
    assert summary["retakes"] == 3
    rows = record.read_text().splitlines()
    assert rows[-1].split(",")[2:4] == ["retake", "low contrast"]
    headless = cli(camera_app, int8_model, "--source", video, "--headless")
    assert "retake (blurry)" in headless.stdout and "3 retakes" in headless.stderr
    off = cli(camera_app, int8_model, "--source", video, "--json", "--no-quality-gate")
    assert '"retake": "' not in off.stdout and '"label": "retake"' not in off.stdout


def fake_pi(root, temperature_millic=71500, throttled="0x50005"):
    zone = root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text(f"{temperature_millic}\n")
    (root / "sys/class/thermal/thermal_zone1").mkdir()  # a zone without a reading is skipped
    firmware = root / "sys/devices/platform/soc/soc:firmware"
    firmware.mkdir(parents=True)
    (firmware / "get_throttled").write_text(f"{throttled}\n")
    return root


def test_health_reads_a_pi_sysfs(tmp_path):
    health = read_health(fake_pi(tmp_path))
    assert health == {
        "temperature_c": 71.5,
        "throttled": ["under-voltage", "throttled"],
        "throttled_since_boot": ["under-voltage", "throttled"],
    }
    assert decode_throttled(0x20000) == ([], ["frequency capped"])


def test_missing_sensors_are_absent_not_errors(tmp_path):
    assert read_health(tmp_path) == {}


def test_throttling_is_warned_once_and_summarised(tmp_path):
    warnings = []
    watch = HealthWatch(fake_pi(tmp_path), interval=5, on_throttle=warnings.append)
    assert watch.due(0.0)
    watch.read(0.0)
    assert not watch.due(4.0) and watch.due(5.0)
    watch.read(5.0)
    assert warnings == [["under-voltage", "throttled"]]
    assert watch.summary() == {"peak_temperature_c": 71.5, "throttled": ["under-voltage", "throttled"]}


@pytest.mark.slow
def test_camera_status_lines_carry_no_invented_sensors(cli, int8_model, synth_data, tmp_path):
    """This machine has no Pi firmware: status events come, with only what exists."""
    video = write_video(list_image_folder(synth_data / "validation").paths[:3], tmp_path / "v.avi")
    result = cli(camera_app, int8_model, "--source", video, "--json")
    status = [json.loads(line) for line in result.stdout.splitlines() if '"type": "status"' in line]
    assert status and set(status[0]) - {"type", "time", "fps", "model"} == set(read_health("/", use_vcgencmd=False))
    assert status[0]["model"] == Classifier(int8_model).identity  # which model's device this is
