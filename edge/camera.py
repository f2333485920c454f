"""Frame sources and the live classification loop behind `hh-camera`. OpenCV + numpy only.

A capture thread reads frames as fast as the source gives them. For a live source (camera
index, stream URL, Pi camera) it keeps only the newest frame, so a model slower than the camera
always works on the present, never on a queue of stale frames (OpenCV's buffer lag). For a
video file nothing is dropped: every frame is classified, in order.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import cv2
import numpy as np

from hh.edge.errors import ParameterError, UserError
from hh.edge.health import HealthWatch
from hh.edge.quality import RETAKE
from hh.edge.runtime import Classification, TFLiteClassifier
from hh.edge.spec import QualityThresholds

UNCERTAIN = "uncertain"
FILE_QUEUE_FRAMES = 4
REDACTED = "***"
# Query parameters whose values are credentials, by name (lower case), and name fragments.
SECRET_PARAMETERS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "pw",
        "token",
        "access_token",
        "auth",
        "authorization",
        "key",
        "apikey",
        "api_key",
        "secret",
        "signature",
        "sig",
        "credential",
        "credentials",
        "session",
        "sessionid",
        "user_pass",
    }
)
SECRET_FRAGMENTS = ("pass", "token", "secret", "key", "auth", "sig", "cred")


def _is_secret_parameter(name: str) -> bool:
    name = name.lower()
    return name in SECRET_PARAMETERS or any(fragment in name for fragment in SECRET_FRAGMENTS)


def redact_url(source: str) -> str:
    """A stream URL with every credential replaced by ***: all of the userinfo (user and
    password, whatever characters they hold) and the values of query parameters whose names
    mean a secret (password, token, key, auth, signature, ...). Passwords never reach a log.

    The userinfo is everything between "://" and the last "@" before the query: that is where
    FFmpeg looks for it, and a password may itself hold "/", ":" or "@".
    """
    scheme, sep, rest = source.partition("://")
    if not sep:
        return source
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    head, tail = rest[:cut], rest[cut:]
    at = head.rfind("@")
    if at >= 0:
        head = REDACTED + head[at:]
    query, hash_sign, fragment = tail.partition("#")
    if query.startswith("?"):
        query = "?" + _redact_parameters(query[1:])
    # A fragment can carry parameters too (OAuth's #access_token=...).
    return f"{scheme}://{head}{query}{hash_sign}{_redact_parameters(fragment)}"


def _redact_parameters(text: str) -> str:
    """name=value&... with the values of secret-named parameters replaced (others untouched)."""
    parts = []
    for piece in text.split("&"):
        name, eq, _ = piece.partition("=")
        decoded = parse_qsl(piece, keep_blank_values=True)
        decoded_name = decoded[0][0] if decoded else name
        parts.append(f"{name}={REDACTED}" if eq and _is_secret_parameter(decoded_name) else piece)
    return "&".join(parts)


class PiCameraCapture:
    """The Raspberry Pi camera through picamera2, with OpenCV's read()/release() interface."""

    def __init__(self, size: tuple[int, int] = (640, 480)):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise UserError(
                "{param:source} picamera2 needs the picamera2 package (Raspberry Pi OS: sudo apt install python3-picamera2)"
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
        except Exception:  # noqa: BLE001 - picamera2 raises plain exceptions on a lost camera
            return False, None

    def release(self) -> None:
        self.camera.stop()
        self.camera.close()


@dataclass(frozen=True)
class SourceInfo:
    description: str  # safe to print: passwords redacted
    live: bool  # drop stale frames (cameras, streams) or classify every frame (files)
    path: Path | None = None  # a video file, so no output of the command overwrites it


def source_opener(source: str) -> tuple[Callable[[], object], SourceInfo]:
    """(a function that opens --source, SourceInfo). Opening again is how outages heal."""
    if source == "picamera2":
        return PiCameraCapture, SourceInfo("Raspberry Pi camera (picamera2)", live=True)
    if source.isdigit():
        return (lambda: cv2.VideoCapture(int(source))), SourceInfo(f"camera {source}", live=True)
    if "://" in source:
        return (lambda: cv2.VideoCapture(source)), SourceInfo(redact_url(source), live=True)
    if Path(source).is_dir():
        raise ParameterError("source", f"{source} is a folder; give a video file, a camera index like 0 or a stream URL")
    if not Path(source).is_file():
        raise ParameterError("source", f"{source}: no such file (give a camera index like 0, a video file or a stream URL)")
    return (lambda: cv2.VideoCapture(source)), SourceInfo(source, live=False, path=Path(source))


def open_source(source: str):
    """(an opened capture with OpenCV's read()/release(), SourceInfo, opener) for --source.

    A source that does not open at the start is an error: there is nothing to recover.
    """
    opener, info = source_opener(source)
    capture = opener()
    if not capture.isOpened():
        capture.release()
        raise ParameterError("source", f"{info.description}: could not be opened")
    return capture, info, opener


class FrameGrabber:
    """Reads a capture on its own thread and hands out frames: the newest, or every one.

    Faults never end a live run: when a camera or stream stops giving frames (unplugged,
    empty frames, dropped connection) the grabber reports an outage, reopens the source with
    exponential backoff, and reports the reconnection. A file ends at its end, or starts over
    with `loop`.
    """

    def __init__(
        self,
        capture,
        drop_stale: bool,
        reopen: Callable[[], object] | None = None,
        loop: bool = False,
        on_event: Callable[[dict], None] | None = None,
        backoff: tuple[float, float] = (0.25, 8.0),
    ):
        self.capture = capture
        self.drop_stale = drop_stale
        self.reopen = reopen
        self.loop = loop
        self.on_event = on_event or (lambda event: None)
        self.backoff = backoff
        self.frames_read = 0
        self.outages = 0
        # Live: one slot, a new frame replaces an unread one. Files: a short queue, nothing
        # dropped; a few frames of slack let decoding run ahead instead of taking turns.
        self._frames: deque[tuple[int, np.ndarray]] = deque(maxlen=1 if drop_stale else None)
        self._capacity = 1 if drop_stale else FILE_QUEUE_FRAMES
        self._ended = False
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="hh-capture", daemon=True)

    def start(self) -> FrameGrabber:
        self._thread.start()
        return self

    def _deliver(self, frame: np.ndarray) -> None:
        with self._cond:
            if not self.drop_stale:
                while len(self._frames) >= self._capacity and not self._stopping.is_set():
                    self._cond.wait(0.5)
            self._frames.append((self.frames_read, frame))
            self.frames_read += 1
            self._cond.notify_all()

    def _end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _reconnect(self, reason: str) -> bool:
        """Release, then reopen with backoff until it works or we stop. False if stopping."""
        self.outages += 1
        started = time.monotonic()
        self.on_event({"type": "outage", "outage": self.outages, "reason": reason, "time": round(time.time(), 3)})
        self.capture.release()
        delay, longest = self.backoff
        attempts = 0
        while not self._stopping.wait(delay):
            attempts += 1
            try:
                capture = self.reopen()
            except Exception:  # noqa: BLE001 - a source that cannot be opened yet is part of the outage
                capture = None
            if capture is not None and capture.isOpened():
                self.capture = capture
                self.on_event(
                    {
                        "type": "reconnected",
                        "outage": self.outages,
                        "attempts": attempts,
                        "seconds": round(time.monotonic() - started, 3),
                        "time": round(time.time(), 3),
                    }
                )
                return True
            if capture is not None:
                capture.release()
            delay = min(delay * 2, longest)
        return False

    def _run(self) -> None:
        frames_since_open = 0
        while not self._stopping.is_set():
            try:
                ok, frame = self.capture.read()
            except cv2.error as exc:
                ok, frame = False, None
                reason = f"read error: {str(exc).strip().splitlines()[-1]}"
            else:
                reason = "no frame" if not ok else "empty frame"
            if ok and frame is not None and frame.size:
                frames_since_open += 1
                self._deliver(frame)
                continue
            if not self.drop_stale:  # a file
                if self.loop and frames_since_open and self.reopen is not None:
                    self.capture.release()
                    self.capture = self.reopen()
                    frames_since_open = 0
                    continue
                break
            if self.reopen is None or not self._reconnect(reason):
                break
            frames_since_open = 0
        self._end()

    def next(self) -> tuple[int, np.ndarray] | None:
        """The newest frame not handed out yet, as (frame index, frame); None at the end.

        Blocks through outages: a live source that is reconnecting is not an end.
        """
        with self._cond:
            while not self._frames and not self._ended:
                self._cond.wait(0.5)  # in slices, so Ctrl-C gets through promptly
            if not self._frames:
                return None
            item = self._frames.popleft()
            self._cond.notify_all()
            return item

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5.0)
        self.capture.release()


@dataclass
class LoopOptions:
    threshold: float = 0.0  # below this probability the label is "uncertain"
    smooth: int = 1  # average probabilities over the last K classified frames
    every: int = 1  # classify every Nth frame handed over
    max_frames: int | None = None  # stop after this many classified frames
    show: bool = False  # draw on a window
    quality: QualityThresholds | None = None  # the image-quality gate's thresholds; None: off
    status_every: float = 10.0  # seconds between device-health status reports

    def validate(self) -> LoopOptions:
        if not 0.0 <= self.threshold <= 1.0:
            raise ParameterError("threshold", f"must be between 0 and 1, got {self.threshold}")
        for name in ("smooth", "every", "max_frames"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ParameterError(name, f"must be at least 1, got {value}")
        return self


@dataclass
class FrameResult:
    frame_index: int
    time: float
    classification: Classification
    label: str  # the top label, "uncertain" below the threshold, or "retake"
    retake: str | None  # why the frame failed the quality gate ("blurry", ...), or None
    inference_ms: float
    preprocess_ms: float
    loop_ms: float  # frame handed over -> result ready

    def as_event(self, class_names) -> dict:
        """The frame as hh-camera's --json prints it (one schema for every consumer)."""
        return {
            "type": "frame",
            "time": round(self.time, 3),
            "frame": self.frame_index,
            **self.classification.as_dict(class_names),
            "label": self.label,
            "retake": self.retake,
            "inference_ms": round(self.inference_ms, 3),
            "latency_ms": round(self.loop_ms, 3),
        }

    def journal_row(self) -> list:
        """The frame as a row of the --record journal (hh.edge.record.journal_header)."""
        probs = [f"{p:.5f}" for p in self.classification.probabilities]
        return [
            self.frame_index,
            f"{self.time:.3f}",
            self.label,
            self.retake or "",
            f"{self.classification.probability:.5f}",
            *probs,
            f"{self.inference_ms:.3f}",
        ]


def rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux /proc; peak elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MB."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a device process started
    # from a big parent (a test runner holding TensorFlow) would report the parent's peak.
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except (OSError, ValueError):
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6  # bytes on macOS, KiB on Linux


WARMUP_FRAMES = 200  # memory is compared from here on: allocators and caches have settled


@dataclass
class LoopSummary:
    frames_read: int = 0
    frames_classified: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    inference_ms: list[float] = field(default_factory=list)
    interrupted: bool = False
    outages: int = 0
    rss_mb_warm: float | None = None
    rss_mb_end: float | None = None
    retakes: int = 0  # frames that failed the quality gate
    health: dict = field(default_factory=dict)  # peak temperature, throttling seen (where sensors exist)

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
            "outages": self.outages,
            "rss_mb_warm": None if self.rss_mb_warm is None else round(self.rss_mb_warm, 1),
            "rss_mb_end": None if self.rss_mb_end is None else round(self.rss_mb_end, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "retakes": self.retakes,
            "interrupted": self.interrupted,
            **self.health,
        }

    def line(self) -> str:
        d = self.as_dict()
        return (
            f"{d['frames_classified']} frames classified ({d['frames_read']} read) in {d['seconds']:.1f}s: "
            f"{d['fps']:.1f} FPS, latency p50 {d['latency_ms_p50']} ms p95 {d['latency_ms_p95']} ms, "
            f"inference p50 {d['inference_ms_p50']} ms, {d['outages']} outages, {d['retakes']} retakes, "
            f"peak RSS {d['peak_rss_mb']} MB"
            + (f", peak {d['peak_temperature_c']} C" if "peak_temperature_c" in d else "")
            + (f", throttled ({', '.join(d['throttled'])})" if d.get("throttled") else "")
        )


class Smoother:
    """Mean of the last K probability vectors: steadier labels from a shaky hand-held camera."""

    def __init__(self, k: int):
        self.window: deque[np.ndarray] = deque(maxlen=max(1, k))

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        if self.window.maxlen == 1:
            return probabilities
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
    on_status: Callable[[dict], None] | None = None,
    health: HealthWatch | None = None,
    on_frame: Callable[[np.ndarray, FrameResult, float], None] | None = None,
) -> LoopSummary:
    """Classify frames until the source ends, max_frames, q/Esc, or Ctrl-C (a normal end).

    on_status gets a status event (FPS so far, device health) every options.status_every s;
    on_frame(frame, result, fps) gets each classified frame itself (the live view, collection).
    """
    smoother = Smoother(options.smooth)
    health = health or HealthWatch(interval=options.status_every)
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
            result, retake, (preprocess_ms, invoke_ms, post_ms) = classifier.classify_frame(frame, smoother, options.quality)
            if retake:
                label = RETAKE
                summary.retakes += 1
            else:
                label = result.label if result.probability >= options.threshold else UNCERTAIN
            loop_ms = preprocess_ms + invoke_ms + post_ms
            summary.frames_classified += 1
            if summary.frames_classified == WARMUP_FRAMES:
                summary.rss_mb_warm = rss_mb()
            summary.latencies_ms.append(loop_ms)
            summary.inference_ms.append(invoke_ms)
            elapsed = time.monotonic() - started
            fps = summary.frames_classified / elapsed if elapsed > 0 else 0.0
            frame_result = FrameResult(index, time.time(), result, label, retake, invoke_ms, preprocess_ms, loop_ms)
            on_result(frame_result)
            if on_frame:
                on_frame(frame, frame_result, fps)
            now = time.monotonic()
            if health.due(now):
                status = {"type": "status", "time": round(time.time(), 3), "fps": round(fps, 2), **health.read(now)}
                if on_status:
                    on_status(status)
            if options.show:
                shown = f"{RETAKE}: {retake}" if retake else label
                cv2.imshow("hh-camera", draw_overlay(frame, shown, result.probability, fps))
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        summary.seconds = time.monotonic() - started
        summary.frames_read = grabber.frames_read
        summary.outages = grabber.outages
        summary.rss_mb_end = rss_mb()
        summary.health = health.summary()
        if options.show:
            cv2.destroyAllWindows()
    return summary
