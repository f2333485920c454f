"""Frame sources and the live classification loop behind `hh-camera`. OpenCV + numpy only.

A capture thread reads frames as fast as the source gives them. For a live source (camera
index, stream URL, Pi camera) it keeps only the newest frame, so a model slower than the camera
always works on the present, never on a queue of stale frames (OpenCV's buffer lag). For a
video file nothing is dropped: every frame is classified, in order.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hh.edge.cli_util import UserError
from hh.edge.runtime import Classification, TFLiteClassifier

UNCERTAIN = "uncertain"


def redact_url(source: str) -> str:
    """rtsp://user:secret@host/... -> rtsp://user:***@host/...: passwords never reach a log."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", source)


class PiCameraCapture:
    """The Raspberry Pi camera through picamera2, with OpenCV's read()/release() interface."""

    def __init__(self, size: tuple[int, int] = (640, 480)):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise UserError(
                "--source picamera2 needs the picamera2 package (Raspberry Pi OS: sudo apt install python3-picamera2)"
            ) from None
        self.camera = Picamera2()
        # picamera2's "RGB888" is laid out B, G, R in memory: exactly OpenCV's BGR.
        self.camera.configure(self.camera.create_preview_configuration(main={"format": "RGB888", "size": size}))
        self.camera.start()

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def read(self):
        try:
            return True, self.camera.capture_array()
        except Exception:  # picamera2 raises plain exceptions on a lost camera
            return False, None

    def release(self) -> None:
        self.camera.stop()
        self.camera.close()


@dataclass(frozen=True)
class SourceInfo:
    description: str  # safe to print: passwords redacted
    live: bool  # drop stale frames (cameras, streams) or classify every frame (files)


def open_source(source: str):
    """(an object with OpenCV's read()/release(), SourceInfo) for --source."""
    if source == "picamera2":
        return PiCameraCapture(), SourceInfo("Raspberry Pi camera (picamera2)", live=True)
    if source.isdigit():
        capture = cv2.VideoCapture(int(source))
        info = SourceInfo(f"camera {source}", live=True)
    elif "://" in source:
        capture = cv2.VideoCapture(source)
        info = SourceInfo(redact_url(source), live=True)
    else:
        if not Path(source).is_file():
            raise UserError(f"--source {source}: no such file (give a camera index like 0, a video file or a stream URL)")
        capture = cv2.VideoCapture(source)
        info = SourceInfo(source, live=False)
    if not capture.isOpened():
        capture.release()
        raise UserError(f"--source {info.description}: could not be opened")
    return capture, info


class FrameGrabber:
    """Reads a capture on its own thread and hands out frames: the newest, or every one."""

    def __init__(self, capture, drop_stale: bool):
        self.capture = capture
        self.drop_stale = drop_stale
        self.frames_read = 0
        self.frames_taken = 0
        self._frame: np.ndarray | None = None
        self._index = -1
        self._taken = -1
        self._ended = False
        self._stopping = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="hh-capture", daemon=True)

    def start(self) -> FrameGrabber:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping:
            ok, frame = self.capture.read()
            with self._cond:
                if not ok or frame is None:
                    self._ended = True
                    self._cond.notify_all()
                    return
                if not self.drop_stale:
                    # Files: wait until the consumer took the previous frame; nothing is lost.
                    while self._taken < self._index and not self._stopping:
                        self._cond.wait()
                self._frame = frame
                self._index += 1
                self.frames_read += 1
                self._cond.notify_all()

    def next(self, timeout: float = 5.0) -> tuple[int, np.ndarray] | None:
        """The newest frame not handed out yet, as (frame index, frame); None at the end."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._index <= self._taken and not self._ended:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._index <= self._taken:
                return None
            self._taken = self._index
            self.frames_taken += 1
            frame = self._frame
            self._cond.notify_all()
            return self._index, frame

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)
        self.capture.release()


@dataclass
class LoopOptions:
    threshold: float = 0.0
    smooth: int = 1
    every: int = 1
    max_frames: int | None = None
    show: bool = False


@dataclass
class FrameResult:
    frame_index: int
    time: float
    classification: Classification
    label: str  # the top label, or "uncertain" below the threshold
    inference_ms: float
    preprocess_ms: float
    loop_ms: float  # frame handed over -> result ready


@dataclass
class LoopSummary:
    frames_read: int = 0
    frames_classified: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    inference_ms: list[float] = field(default_factory=list)
    interrupted: bool = False

    def as_dict(self) -> dict:
        def pct(values, q):
            return round(float(np.percentile(values, q)), 3) if values else None

        return {
            "frames_read": self.frames_read,
            "frames_classified": self.frames_classified,
            "seconds": round(self.seconds, 3),
            "fps": round(self.frames_classified / self.seconds, 2) if self.seconds > 0 else 0.0,
            "latency_ms_p50": pct(self.latencies_ms, 50),
            "latency_ms_p95": pct(self.latencies_ms, 95),
            "inference_ms_p50": pct(self.inference_ms, 50),
            "inference_ms_p95": pct(self.inference_ms, 95),
        }

    def line(self) -> str:
        d = self.as_dict()
        return (
            f"{d['frames_classified']} frames classified ({d['frames_read']} read) in {d['seconds']:.1f}s: "
            f"{d['fps']:.1f} FPS, latency p50 {d['latency_ms_p50']} ms p95 {d['latency_ms_p95']} ms, "
            f"inference p50 {d['inference_ms_p50']} ms"
        )


class Smoother:
    """Mean of the last K probability vectors: steadier labels from a shaky hand-held camera."""

    def __init__(self, k: int):
        self.window: deque[np.ndarray] = deque(maxlen=max(1, k))

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        self.window.append(probabilities)
        return np.mean(self.window, axis=0)


def draw_overlay(frame: np.ndarray, label: str, probability: float, fps: float) -> np.ndarray:
    text = f"{label} {probability:.2f}   {fps:.1f} FPS"
    cv2.rectangle(frame, (0, 0), (frame.shape[1], 34), (0, 0, 0), -1)
    cv2.putText(frame, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return frame


def display_available() -> bool:
    """False for opencv-python-headless (no GUI backend) or no display to open a window on."""
    try:
        cv2.namedWindow("hh-camera")
        return True
    except cv2.error:
        return False


def run_loop(
    classifier: TFLiteClassifier,
    grabber: FrameGrabber,
    options: LoopOptions,
    on_result: Callable[[FrameResult], None],
) -> LoopSummary:
    """Classify frames until the source ends, max_frames, q/Esc, or Ctrl-C (a normal end)."""
    smoother = Smoother(options.smooth)
    summary = LoopSummary()
    started = time.monotonic()
    fps = 0.0
    handed = 0
    try:
        while options.max_frames is None or summary.frames_classified < options.max_frames:
            item = grabber.next()
            if item is None:
                break
            index, frame = item
            handed += 1
            if (handed - 1) % options.every:
                continue
            t0 = time.perf_counter()
            tensor = classifier.prepare(frame)
            t1 = time.perf_counter()
            raw = classifier.invoke(tensor)
            t2 = time.perf_counter()
            result = classifier.result(smoother(raw))
            label = result.label if result.probability >= options.threshold else UNCERTAIN
            loop_ms = (time.perf_counter() - t0) * 1000
            summary.frames_classified += 1
            summary.latencies_ms.append(loop_ms)
            summary.inference_ms.append((t2 - t1) * 1000)
            elapsed = time.monotonic() - started
            fps = summary.frames_classified / elapsed if elapsed > 0 else 0.0
            on_result(FrameResult(index, time.time(), result, label, (t2 - t1) * 1000, (t1 - t0) * 1000, loop_ms))
            if options.show:
                cv2.imshow("hh-camera", draw_overlay(frame, label, result.probability, fps))
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        summary.seconds = time.monotonic() - started
        summary.frames_read = grabber.frames_read
        if options.show:
            cv2.destroyAllWindows()
    return summary
