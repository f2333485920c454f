"""The classification loop behind hh-camera: frames in, answers out, as events. OpenCV + numpy.

Each frame the capture thread (hh.edge.capture) hands over goes through the device path
(`Classifier.classify_frame`: resize, colour order, quality gate, interpreter), gets its label
("uncertain" below the threshold, "retake" when the quality gate refuses it) and is published
on the session's EventBus (hh.edge.events), with a status event every few seconds.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from .capture import FrameGrabber
from .events import UNCERTAIN, EventBus, FrameEvent, FrameResult, LoopSummary, ModelEvent, StatusEvent
from .health import HealthWatch
from .machine import rss_mb
from .quality import RETAKE
from .reload import ModelWatch
from .runtime import Classifier
from .spec import UNKNOWN_LABEL

WARMUP_FRAMES = 200  # memory is compared from here on: allocators and caches have settled
WINDOW = "hh-camera"


# Below this probability a frame's answer is "uncertain": the one default of hh-camera, the live
# page and the phone's page (web/public/index.html's slider starts here; tests/test_web.py
# checks they agree). With calibrated probabilities, an answer at 0.6 is right about 60% of the time.
UNCERTAIN_BELOW = 0.6


@dataclass(frozen=True)
class LoopSettings:
    """What the loop itself needs to know (the session's CameraOptions say it for users)."""

    threshold: float = UNCERTAIN_BELOW  # below this probability the label is "uncertain"
    smooth: int = 1  # average probabilities over the last K classified frames
    every: int = 1  # classify every Nth frame handed over
    max_frames: int | None = None  # stop after this many classified frames
    quality_gate: bool = True  # frames outside the model's calibrated quality range are "retake"
    show_window: bool = False  # draw on a window (q or Esc ends the session)
    status_every: float = 10.0  # seconds between device-health status events
    window_names: dict[str, str] = field(default_factory=dict)  # label -> what the window shows (--lang)


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
    """A copy of the frame with label, probability and FPS drawn on it (the frame itself is
    shared with the live view and the collection, which must get it as captured)."""
    frame = frame.copy()
    text = f"{label} {probability:.2f}   {fps:.1f} FPS"
    cv2.rectangle(frame, (0, 0), (frame.shape[1], 34), (0, 0, 0), -1)
    cv2.putText(frame, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return frame


def display_available() -> bool:
    """False for opencv-python-headless (no GUI backend) or no display to open a window on."""
    try:
        cv2.namedWindow(WINDOW)
        return True
    except cv2.error:
        return False


def run_loop(
    classifier: Classifier,
    grabber: FrameGrabber,
    settings: LoopSettings,
    bus: EventBus,
    health: HealthWatch,
    models: ModelWatch | None = None,
) -> LoopSummary:
    """Classify frames until the source ends, max_frames, q/Esc, or Ctrl-C (a normal end),
    publishing a FrameEvent per classified frame and a StatusEvent every status_every s. With
    `models`, a replacement model that passed its self-test is switched to between two frames
    (a ModelEvent)."""
    smoother = Smoother(settings.smooth)
    quality = classifier.spec.quality if settings.quality_gate else None
    names = classifier.class_names
    summary = LoopSummary()
    started = time.monotonic()
    handed = 0
    try:
        while settings.max_frames is None or summary.frames_classified < settings.max_frames:
            frame = grabber.next()
            if frame is None:
                break
            handed += 1
            if (handed - 1) % settings.every:
                continue
            replacement = models.take() if models is not None else None
            if replacement is not None:
                new, selftest = replacement
                switched = {"type": "model", "action": "switched", "time": round(time.time(), 3), "frame": frame.number}
                switched.update({"from": classifier.model_id, "to": new.model_id, "selftest": selftest.as_dict()})
                bus.emit(ModelEvent(switched, new))
                classifier, smoother = new, Smoother(settings.smooth)  # no average across two models
                quality = classifier.spec.quality if settings.quality_gate else None
            answer = classifier.classify_frame(frame.image, smoother, quality)
            top = answer.classification
            if answer.retake:
                label = RETAKE
                summary.retakes += 1
            else:
                # `unknown` is an answer of its own, whatever its probability: never "uncertain".
                sure = top.label == UNKNOWN_LABEL or top.probability >= settings.threshold
                label = top.label if sure else UNCERTAIN
            summary.frames_classified += 1
            if summary.frames_classified == WARMUP_FRAMES:
                summary.rss_mb_warm = rss_mb()
            summary.latencies_ms.append(answer.total_ms)
            summary.inference_ms.append(answer.invoke_ms)
            elapsed = time.monotonic() - started
            fps = summary.frames_classified / elapsed if elapsed > 0 else 0.0
            result = FrameResult(
                frame.number, frame.arrived, top, label, answer.retake, answer.invoke_ms, answer.preprocess_ms, answer.total_ms,
                classifier.identity,
            )  # fmt: skip
            bus.emit(FrameEvent(result, frame.image, fps, names))
            now = time.monotonic()
            if health.due(now):
                status = {"type": "status", "time": round(time.time(), 3), "fps": round(fps, 2), **health.read(now)}
                bus.emit(StatusEvent({**status, "model": classifier.identity}))
            if settings.show_window:
                shown = f"{RETAKE}: {answer.retake}" if answer.retake else settings.window_names.get(label, label)
                cv2.imshow(WINDOW, draw_overlay(frame.image, shown, top.probability, fps))
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
        if settings.show_window:
            cv2.destroyAllWindows()
    return summary
