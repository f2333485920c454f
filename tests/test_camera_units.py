"""Fast unit tests of the camera loop's parts: FrameGrabber, Smoother, and hh-bench.

The grabber reads from a capture object with OpenCV's read()/isOpened()/release() interface;
here that is a small scripted source, so the timing behaviour can be pinned down exactly.
"""

import json
import logging
import threading
import time

import numpy as np
import pytest

from hh.edge.camera import Smoother
from hh.edge.capture import FrameGrabber


class ScriptedCapture:
    """Frames 0..n-1 (each a 1x1 image holding its number), then failure; optional pacing."""

    def __init__(self, n, interval=0.0, opened=True):
        self.n, self.interval, self.opened = n, interval, opened
        self.next = 0
        self.released = False

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return self.opened

    def read(self):
        if self.interval:
            time.sleep(self.interval)
        if self.next >= self.n:
            return False, None
        frame = np.full((1, 1, 3), self.next % 256, np.uint8)
        self.next += 1
        return True, frame

    def release(self):
        self.released = True


def drain(grabber, delay=0.0):
    out = []
    while (item := grabber.next()) is not None:
        out.append(item[0])
        time.sleep(delay)
    return out


def test_a_file_gives_every_frame_in_order_even_to_a_slow_consumer():
    grabber = FrameGrabber(ScriptedCapture(40), drop_stale=False).start()
    assert drain(grabber, delay=0.002) == list(range(40))
    grabber.stop()


def test_a_live_source_hands_over_only_the_newest_frame():
    capture = ScriptedCapture(300, interval=0.001)
    grabber = FrameGrabber(capture, drop_stale=True).start()
    handed = drain(grabber, delay=0.02)  # the model is ~20x slower than the camera
    grabber.stop()
    assert handed == sorted(handed) and len(set(handed)) == len(handed)
    assert len(handed) < 100  # stale frames were skipped, not queued
    assert handed[-1] >= 290  # and the last one handed over is (nearly) the newest


def test_a_lost_live_source_reconnects_with_doubling_capped_backoff():
    attempts = []
    events = []

    def reopen():
        attempts.append(time.monotonic())
        return ScriptedCapture(5) if len(attempts) >= 5 else ScriptedCapture(0, opened=False)

    grabber = FrameGrabber(ScriptedCapture(3), drop_stale=True, reopen=reopen, on_event=events.append, backoff=(0.02, 0.08))
    grabber.start()
    deadline = time.monotonic() + 5
    while not any(e["type"] == "reconnected" for e in events) and time.monotonic() < deadline:
        time.sleep(0.01)
    grabber.stop()
    assert [e["type"] for e in events[:2]] == ["outage", "reconnected"] and events[1]["attempts"] == 5
    gaps = np.diff(attempts)
    # Waits of 0.02 before the first attempt, then 0.04, 0.08, 0.08, 0.08: doubling, capped. A
    # wait is never shorter than asked; on a busy machine it may run late, not 0.1 s late.
    expected = np.array([0.04, 0.08, 0.08, 0.08])
    assert np.all(gaps >= expected - 0.005) and np.all(gaps < expected + 0.1), gaps


def test_stop_releases_the_capture_promptly():
    capture = ScriptedCapture(10**9, interval=0.001)
    grabber = FrameGrabber(capture, drop_stale=True).start()
    grabber.next()
    started = time.monotonic()
    grabber.stop()
    assert capture.released and time.monotonic() - started < 1.0
    assert not [t for t in threading.enumerate() if t.name == "hh-capture" and t.is_alive()]


def test_smoother_averages_the_last_k_and_k1_passes_through():
    frames = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([0.5, 0.5]), np.array([1.0, 0.0])]
    smooth = Smoother(3)
    outputs = [smooth(p) for p in frames]
    np.testing.assert_allclose(outputs[1], [0.5, 0.5])
    np.testing.assert_allclose(outputs[3], np.mean(frames[1:], axis=0))
    passthrough = Smoother(1)
    assert passthrough(frames[1]) is frames[1]


@pytest.mark.slow
def test_bench_reports_every_stage_and_writes_json(cli, int8_model, tmp_path):
    from hh.edge.cli_bench import app

    out = tmp_path / "bench.json"
    result = cli(app, int8_model, "--frames", 30, "--threads", 1, "--json", out)
    assert result.exit_code == 0, result.output
    numbers = json.loads(out.read_text())
    assert numbers["frames"] == 30 and numbers["threads"] == 1 and numbers["runtime"] == "ai-edge-litert"
    stages = sum(numbers[s]["mean_ms"] for s in ("capture", "preprocess", "invoke", "postprocess"))
    assert numbers["end_to_end"]["fps"] == pytest.approx(1000 / stages, rel=0.02)
    for stage in ("capture", "preprocess", "invoke", "postprocess", "end to end"):
        assert stage in result.stdout


def test_interpreter_threads_follow_the_cores_the_process_may_use():
    """Pinned to one core (as taskset does), every command gets one interpreter thread; on
    more, hh-camera keeps one core for its capture thread."""
    import os
    import subprocess
    import sys

    script = "from hh.edge.machine import default_threads as d; print(d(), d(reserve=1))"
    pinned = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {0}),
    )
    assert pinned.stdout.split() == ["1", "1"]
    cores = len(os.sched_getaffinity(0))
    free = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert free.stdout.split() == [str(min(4, cores)), str(max(1, min(4, cores - 1)))]


def write_frames(path, codec, frames):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), 10.0, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_a_motion_jpeg_file_is_decoded_like_image_files_and_a_damaged_frame_is_skipped(tmp_path, caplog):
    """Motion-JPEG frames go through libjpeg-turbo (cv2.imdecode), the decoder of every image
    file, not FFmpeg's, whose pixels differ between x86 and arm64 (make test-arm)."""
    import cv2

    from hh.edge.capture import MjpegFileCapture

    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (7, 7), 0) for _ in range(6)]
    video = write_frames(tmp_path / "v.avi", "MJPG", frames)
    capture = MjpegFileCapture.open(str(video))
    assert isinstance(capture, MjpegFileCapture)
    raw = cv2.VideoCapture(str(video))
    raw.set(cv2.CAP_PROP_FORMAT, -1)
    packets = [raw.read()[1].reshape(-1) for _ in range(6)]
    read = [capture.read() for _ in range(7)]
    assert [ok for ok, _ in read] == [True] * 6 + [False]
    for (_, frame), packet in zip(read, packets):
        np.testing.assert_array_equal(frame, cv2.imdecode(packet, cv2.IMREAD_COLOR))
    capture.release()
    # The third frame's JPEG start marker destroyed: that frame is skipped, the rest are read.
    data = bytearray(video.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"]
    data[starts[2] : starts[2] + 2] = b"\x00\x00"
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    capture = MjpegFileCapture.open(str(damaged))
    frames_read = 0
    while capture.read()[0]:
        frames_read += 1
    assert frames_read == 5
    with caplog.at_level(logging.WARNING, logger="hh"):
        capture.release()
    assert "damaged.avi: 1 of 6 frames damaged or too large to decode, skipped" in caplog.text


def test_motion_jpeg_frames_stay_full_size_and_a_forged_giant_is_not_decoded(tmp_path, caplog):
    """A 4000x3000 frame comes out 4000x3000 (collection keeps what was recorded); a frame whose
    header claims 13000x13000 (169 million pixels, 1.5 GB decoded) is skipped and counted."""
    import cv2

    from hh.edge.capture import MjpegFileCapture

    frame = cv2.resize(np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8), (4000, 3000))
    video = write_frames(tmp_path / "big.avi", "MJPG", [frame, frame])
    capture = MjpegFileCapture.open(str(video))
    ok, got = capture.read()
    assert ok and got.shape == (3000, 4000, 3)
    capture.release()
    data = bytearray(video.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"]
    sof = data.index(b"\xff\xc0", starts[1])  # the second frame's size, in its frame header
    data[sof + 5 : sof + 9] = (13000).to_bytes(2, "big") * 2
    forged = tmp_path / "forged.avi"
    forged.write_bytes(bytes(data))
    capture = MjpegFileCapture.open(str(forged))
    assert capture.read()[0] and not capture.read()[0]
    with caplog.at_level(logging.WARNING, logger="hh"):
        capture.release()
    assert "1 of 2 frames damaged or too large to decode" in caplog.text


def test_other_codecs_keep_opencvs_own_reader(tmp_path):
    import cv2

    from hh.edge.capture import MjpegFileCapture

    frames = [np.full((64, 64, 3), level, np.uint8) for level in (10, 200, 90)]
    video = write_frames(tmp_path / "v.mp4", "mp4v", frames)
    capture = MjpegFileCapture.open(str(video))
    assert isinstance(capture, cv2.VideoCapture) and capture.read()[0]
