"""Frame sources for hh-camera: cameras, video files, stream URLs, the Pi camera, and the
capture thread that reads them. OpenCV + numpy only.

A capture thread reads frames as fast as the source gives them. For a live source (camera
index, stream URL, Pi camera) it keeps only the newest frame, so a model slower than the camera
always works on the present, never on a queue of stale frames (OpenCV's buffer lag). For a
video file nothing is dropped: every frame is classified, in order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import cv2
import numpy as np

from .errors import ParameterError, UserError, first_line, last_line
from .preprocess import image_size, too_large
from .redact import describe_source

log = logging.getLogger("hh.capture")

FILE_QUEUE_FRAMES = 4


class Capture(Protocol):
    """What hh needs of a frame source: OpenCV's VideoCapture interface."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


class Frame(NamedTuple):
    """A frame as the capture thread handed it over."""

    number: int  # frames read from the source before it (not only classified ones)
    image: np.ndarray  # BGR, as OpenCV gives it
    arrived: float  # wall-clock time it was read: what every record of it is stamped with


# The first simplejpeg with wheels built for numpy 2 (aarch64 included) that picamera2 accepts.
SIMPLEJPEG_FOR_NUMPY_2 = "1.8.2"


class PiCameraCapture:
    """The Raspberry Pi camera through picamera2, with OpenCV's read()/release() interface."""

    def __init__(self, size: tuple[int, int] = (640, 480)):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise UserError(
                "{param:source} picamera2 needs the picamera2 package (Raspberry Pi OS: sudo apt install python3-picamera2, "
                "and a venv made with --system-site-packages)"
            ) from None
        except Exception as exc:  # noqa: BLE001 - a broken install raises whatever its modules raise
            # Raspberry Pi OS's simplejpeg, which picamera2 imports, is built for numpy 1; hh's
            # OpenCV needs numpy 2 in the venv, and the two cannot share a process.
            hint = (
                "; install a simplejpeg built for numpy 2 into the venv: .venv/bin/pip install --ignore-installed "
                f"simplejpeg=={SIMPLEJPEG_FOR_NUMPY_2}"
                if "numpy" in str(exc) or "binary incompatibility" in str(exc)
                else ""
            )
            raise UserError(f"{{param:source}} picamera2 is installed but cannot be imported ({first_line(exc)}){hint}") from None
        self.camera: Any = Picamera2()  # None once released
        # picamera2's "RGB888" is laid out B, G, R in memory: exactly OpenCV's BGR.
        self.camera.configure(self.camera.create_preview_configuration(main={"format": "RGB888", "size": size}))
        self.camera.start()

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        try:
            return True, self.camera.capture_array()
        except Exception:  # noqa: BLE001 - picamera2 raises plain exceptions on a lost camera
            return False, None

    def release(self) -> None:
        if self.camera is not None:
            self.camera.stop()
            self.camera.close()
            self.camera = None


# A video frame larger than this is not decoded (8K is 33 million pixels; a forged header can
# claim 169 million, 1.5 GB and a second per frame).
MAX_VIDEO_FRAME_PIXELS = 40_000_000


class MjpegFileCapture:
    """A Motion-JPEG video file, each frame decoded at full size by libjpeg-turbo (cv2.imdecode,
    the decoder of image files) from the packet cv2.VideoCapture hands over undecoded, with
    VideoCapture's read()/release().

    FFmpeg's MJPEG decoder, which VideoCapture uses otherwise, gives other pixels on arm64 than
    on x86-64 (its IDCT and colour conversion have CPU-specific code; the same .avi moved an int8
    answer by 0.005 on an emulated Pi), and other pixels than the same frame decoded as a JPEG
    file (up to 22 levels: another chroma upsampling). libjpeg-turbo's default IDCT is exact
    integer arithmetic: the same file gives the same frames on every CPU. Frames stay full size,
    as a camera's: collection keeps them at the resolution they were recorded."""

    def __init__(self, capture: Any, name: str):
        self.capture, self.name = capture, name
        self.packets = 0  # read from the file so far
        self.damaged = 0  # of them skipped: not decodable, or too large to decode safely

    @classmethod
    def open(cls, path: str) -> Any:
        """The video at `path`: this reader for Motion-JPEG, OpenCV's own for anything else."""
        capture = cv2.VideoCapture(path)
        fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)) if capture.isOpened() else 0
        if fourcc.to_bytes(4, "little").upper() in (b"MJPG", b"AVRN", b"MJPA") and capture.set(cv2.CAP_PROP_FORMAT, -1):
            return cls(capture, describe_source(path))
        return capture

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return bool(self.capture.isOpened())

    def read(self) -> tuple[bool, np.ndarray | None]:
        # A damaged frame is skipped, as a player would, and said once at the end (release).
        while True:
            ok, packet = self.capture.read()
            if not ok or packet is None or not packet.size:
                return False, None
            self.packets += 1
            packet = packet.reshape(-1)
            frame = None
            if not too_large(image_size(packet), MAX_VIDEO_FRAME_PIXELS):
                frame = cv2.imdecode(packet, cv2.IMREAD_COLOR)
            if frame is not None and frame.size:
                return True, frame
            self.damaged += 1

    def release(self) -> None:
        self.capture.release()
        if self.damaged:
            log.warning(f"{self.name}: {self.damaged} of {self.packets} frames damaged or too large to decode, skipped")
            self.packets = self.damaged = 0


DEFAULT_FILE_FPS = 30.0  # a video file that does not say its frame rate plays at a camera's


def frame_rate(capture: Any) -> float | None:
    """The frames per second a video file says it holds, or None when it does not say."""
    inner = capture.capture if isinstance(capture, MjpegFileCapture) else capture
    try:
        fps = float(inner.get(cv2.CAP_PROP_FPS))
    except (AttributeError, cv2.error, TypeError, ValueError):
        return None
    return fps if 0.1 <= fps <= 1000 else None  # NaN fails this too


@dataclass(frozen=True)
class SourceInfo:
    description: str  # safe to print: passwords redacted
    live: bool  # drop stale frames (cameras, streams) or classify every frame (files)
    path: Path | None = None  # a video file, so no output of the command overwrites it


def source_opener(source: str) -> tuple[Callable[[], Capture], SourceInfo]:
    """(a function that opens --source, SourceInfo). Opening again is how outages heal."""
    description = describe_source(source)  # the only form of the source any output shows
    if source == "picamera2":
        return PiCameraCapture, SourceInfo(description, live=True)
    if source.isdigit():
        return (lambda: cv2.VideoCapture(int(source))), SourceInfo(description, live=True)
    if "://" in source:
        return (lambda: cv2.VideoCapture(source)), SourceInfo(description, live=True)
    if _is(Path.is_dir, source):
        raise ParameterError("source", f"{description} is a folder; give a video file, a camera index like 0 or a stream URL")
    if not _is(Path.is_file, source):
        raise ParameterError(
            "source", f"{description}: no such file (give a camera index like 0, a video file or a stream URL with its scheme)"
        )
    return (lambda: MjpegFileCapture.open(source)), SourceInfo(description, live=False, path=Path(source))


def _is(test, path: str) -> bool:
    """Path.is_dir / is_file that says False for a name no file can have (too long, a NUL)."""
    try:
        return test(Path(path))
    except (OSError, ValueError):
        return False


def open_source(source: str) -> tuple[Capture, SourceInfo, Callable[[], Capture]]:
    """(an opened capture, SourceInfo, opener) for --source.

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
        capture: Capture,
        drop_stale: bool,
        reopen: Callable[[], Capture] | None = None,
        loop: bool = False,
        on_event: Callable[[dict], None] | None = None,
        backoff: tuple[float, float] = (0.25, 8.0),
        pace: float | None = None,
    ):
        """pace: frames per second to hand out a file's frames at (its own rate, --realtime),
        instead of as fast as they decode."""
        self.capture = capture
        self.drop_stale = drop_stale
        self.reopen = reopen
        self.loop = loop
        self.on_event = on_event or (lambda event: None)
        self.backoff = backoff
        self.pace = pace
        self.frames_read = 0
        self.outages = 0
        # Live: one slot, a new frame replaces an unread one. Files: a short queue, nothing
        # dropped; a few frames of slack let decoding run ahead instead of taking turns.
        self._frames: deque[Frame] = deque(maxlen=1 if drop_stale else None)
        self._capacity = 1 if drop_stale else FILE_QUEUE_FRAMES
        self._ended = False
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="hh-capture", daemon=True)

    def start(self) -> FrameGrabber:
        self._thread.start()
        return self

    def _deliver(self, frame: np.ndarray) -> None:
        arrived = time.time()
        with self._cond:
            if not self.drop_stale:
                while len(self._frames) >= self._capacity and not self._stopping.is_set():
                    self._cond.wait(0.5)
            self._frames.append(Frame(self.frames_read, frame, arrived))
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
                capture = self.reopen() if self.reopen is not None else None
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
        opened = time.monotonic()
        while not self._stopping.is_set():
            try:
                ok, frame = self.capture.read()
            except cv2.error as exc:
                ok, frame = False, None
                reason = f"read error: {last_line(exc)}"
            else:
                reason = "no frame" if not ok else "empty frame"
            if ok and frame is not None and frame.size:
                if self.pace:  # frame n at n / fps after the file (re)opened: the file's own timing
                    if frames_since_open == 0:
                        opened = time.monotonic()
                    due = opened + frames_since_open / self.pace
                    if self._stopping.wait(max(0.0, due - time.monotonic())):
                        break
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

    def next(self) -> Frame | None:
        """The newest frame not handed out yet; None at the end.

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
        """Stop reading and release the source (again: a no-op)."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=5.0)
        self.capture.release()
