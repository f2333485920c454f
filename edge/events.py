"""What a camera session reports, and the one channel it reports through. numpy only.

A session (hh.edge.session) publishes everything that happens on one `EventBus`: each
classified frame, a source's outages and reconnections, device-health status, the self-test
at start and the summary at the end. The terminal, `--json`, the record, the live view and the
field collection are all subscribers, so they cannot disagree. Every event knows its `--json`
form (`as_json`): one schema for every consumer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from .machine import peak_rss_mb
from .runtime import Classification, Classifier

if TYPE_CHECKING:
    from .selftest import SelfTestResult

UNCERTAIN = "uncertain"  # the label below the threshold probability


@dataclass(frozen=True)
class FrameResult:
    """One classified frame, as every output shows it."""

    frame_index: int
    time: float  # wall-clock time the frame arrived from the source
    classification: Classification
    label: str  # the top label, "uncertain" below the threshold, or "retake"
    retake: str | None  # why the frame failed the quality gate ("blurry", ...), or None
    inference_ms: float
    preprocess_ms: float
    loop_ms: float  # frame handed over -> result ready
    model: str | None = None  # the identity of the model that classified it (hh.edge.runtime.Classifier.identity)

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
            "model": self.model,
        }

    def journal_row(self) -> list:
        """The frame as a row of the --record journal (record.journal_header)."""
        probs = [f"{p:.5f}" for p in self.classification.probabilities]
        return [
            self.frame_index,
            f"{self.time:.3f}",
            self.label,
            self.retake or "",
            f"{self.classification.probability:.5f}",
            *probs,
            f"{self.inference_ms:.3f}",
            self.model or "",
        ]


@dataclass
class LoopSummary:
    """A session's totals, for its last line and its last --json event."""

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


@dataclass
class FrameEvent:
    """A classified frame, with the frame itself (the live view shows it, collection keeps it)."""

    result: FrameResult
    image: np.ndarray  # BGR, as captured
    fps: float  # the session's frame rate so far
    class_names: tuple[str, ...]

    @cached_property
    def json(self) -> dict:
        return self.result.as_event(self.class_names)

    def as_json(self) -> dict:
        return self.json


@dataclass(frozen=True)
class SourceEvent:
    """The source was lost ({"type": "outage", ...}) or is back ({"type": "reconnected", ...})."""

    data: dict

    @property
    def kind(self) -> str:
        return self.data["type"]

    def as_json(self) -> dict:
        return self.data


@dataclass(frozen=True)
class StatusEvent:
    """Every few seconds: the frame rate so far and the device's health, where it has sensors."""

    data: dict

    @property
    def health(self) -> dict:
        return {k: v for k, v in self.data.items() if k not in ("type", "time", "fps", "model")}

    def as_json(self) -> dict:
        return self.data


@dataclass(frozen=True)
class SelftestEvent:
    """The model's self-test on this device, before the first frame."""

    result: SelfTestResult
    model: dict | None = None  # the model it tested (hh.edge.runtime.Classifier.model_id)

    def as_json(self) -> dict:
        return {"type": "selftest", **self.result.as_dict(), "model": self.model}


@dataclass(frozen=True)
class ModelEvent:
    """The model file was replaced: the session switched to the new model between two frames
    ({"type": "model", "action": "switched", "from", "to", ...}), or refused it and goes on with
    the running one ({"action": "refused", "running", "candidate", "reason"}), or the file is the
    running model again ({"action": "current", "running"}; hh.edge.reload)."""

    data: dict
    classifier: Classifier | None = None  # the model switched to

    def as_json(self) -> dict:
        return self.data


@dataclass(frozen=True)
class SummaryEvent:
    """The session ended (its source ended, max frames, q/Esc, Ctrl-C or SIGTERM)."""

    summary: LoopSummary
    model: dict | None = None  # the model answering at the end (hh.edge.runtime.Classifier.model_id)

    def as_json(self) -> dict:
        return {"type": "summary", **self.summary.as_dict(), "model": self.model}


Event = FrameEvent | SourceEvent | StatusEvent | SelftestEvent | ModelEvent | SummaryEvent
Subscriber = Callable[[Event], None]


class EventBus:
    """Hands every event to every subscriber, in the order they subscribed.

    Frames are published from the loop's thread and source events from the capture thread;
    a subscriber that writes somewhere shared (stdout) takes its own lock.
    """

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers = [*self._subscribers, subscriber]

    def emit(self, event: Event) -> None:
        for subscriber in self._subscribers:  # a snapshot: subscribing while emitting is safe
            subscriber(event)
