"""hh-camera --source picamera2, as far as a machine without a Pi camera allows.

picamera2 needs libcamera and a Pi camera module: it comes from Raspberry Pi OS's own packages
(python3-picamera2), not from PyPI or Debian. So this machine runs hh's picamera2 path against a
stand-in module with the calls hh makes, as picamera2's manual documents them (Picamera2(),
create_preview_configuration(main={"format": "RGB888", "size": ...}), configure, start,
capture_array -> an H x W x 3 array in B, G, R order, stop, close), fed by real frames from a
video. What it proves: hh configures the camera for the order it needs, classifies what
capture_array returns, and releases the camera at the end; and without picamera2 it says in
one line how to install it.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from hh.edge.folders import list_image_folder
from hh.trainer.synth import write_video

STAND_IN = """
import json, os, cv2

CALLS = os.environ["PICAMERA_CALLS"]


def note(*call):
    with open(CALLS, "a") as f:
        f.write(json.dumps(call) + "\\n")


class Picamera2:
    def __init__(self):
        self.video = cv2.VideoCapture(os.environ["PICAMERA_FRAMES"])
        note("open")

    def create_preview_configuration(self, main):
        return {"main": dict(main)}

    def configure(self, config):
        self.size = tuple(config["main"]["size"])
        note("configure", config["main"]["format"], list(self.size))

    def start(self):
        note("start")

    def capture_array(self):
        ok, frame = self.video.read()
        if not ok:
            raise RuntimeError("camera frontend has timed out")  # what a lost camera raises
        return cv2.resize(frame, self.size)  # RGB888 is laid out B, G, R: OpenCV's own order

    def stop(self):
        note("stop")

    def close(self):
        self.video.release()
        note("close")
"""


def run_camera(model, env, *args):
    command = [sys.executable, "-m", "hh.edge.cli_camera", str(model), "--source", "picamera2", "--json", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_the_picamera2_path_classifies_its_frames_and_releases_the_camera(int8_model, synth_data, tmp_path):
    folder = list_image_folder(synth_data / "validation")
    video = write_video(folder.paths[:12], tmp_path / "pi.avi")
    module = tmp_path / "site" / "picamera2"
    module.mkdir(parents=True)
    (module / "__init__.py").write_text(textwrap.dedent(STAND_IN))
    calls = tmp_path / "calls.jsonl"
    env = {**os.environ, "PYTHONPATH": str(module.parent), "PICAMERA_FRAMES": str(video), "PICAMERA_CALLS": str(calls)}
    done = run_camera(int8_model, env, "--max-frames", "8", "--headless")
    assert done.returncode == 0, done.stderr
    frames = [json.loads(line) for line in done.stdout.splitlines() if '"type": "frame"' in line]
    # Every frame answered; most name a class. (`unknown` is fitted to let through a share of the
    # model's own validation images, not all, and `uncertain` is an answer too.)
    answers = {*folder.class_names, "uncertain", "unknown", "retake"}
    assert len(frames) == 8 and all(f["label"] in answers for f in frames), [f["label"] for f in frames]
    assert sum(f["label"] in folder.class_names for f in frames) >= 5, [f["label"] for f in frames]
    assert "Raspberry Pi camera (picamera2)" in done.stderr
    made = [json.loads(line) for line in calls.read_text().splitlines()]
    assert made[:3] == [["open"], ["configure", "RGB888", [640, 480]], ["start"]]
    assert made[-2:] == [["stop"], ["close"]]  # the camera is released at the end


@pytest.mark.slow
def test_without_picamera2_the_error_says_how_to_install_it(int8_model, tmp_path, one_line_error):
    from typer.testing import CliRunner

    from hh.edge.cli_camera import app

    if subprocess.run([sys.executable, "-c", "import picamera2"], capture_output=True).returncode == 0:
        pytest.skip("picamera2 is installed here")
    result = CliRunner().invoke(app, [str(int8_model), "--source", "picamera2", "--json"])
    one_line_error(result, "--source", "sudo apt install python3-picamera2")


@pytest.mark.slow
def test_a_picamera2_that_fails_to_import_says_how_to_mend_it(int8_model, tmp_path, one_line_error, monkeypatch):
    """Raspberry Pi OS's simplejpeg (imported by picamera2) is built for numpy 1; in a venv with
    numpy 2 its import raises ValueError. That is one line with the fix, not a traceback."""
    from typer.testing import CliRunner

    from hh.edge.cli_camera import app

    module = tmp_path / "site" / "picamera2"
    module.mkdir(parents=True)
    (module / "__init__.py").write_text(
        'raise ValueError("numpy.dtype size changed, may indicate binary incompatibility. '
        'Expected 96 from C header, got 88 from PyObject")\n'
    )
    monkeypatch.syspath_prepend(str(module.parent))
    result = CliRunner().invoke(app, [str(int8_model), "--source", "picamera2", "--json"])
    one_line_error(result, "--source", "cannot be imported", "pip install --ignore-installed simplejpeg==1.8.2")
