"""Per-stage timing of the edge pipeline: capture/decode, preprocess, invoke, postprocess.

Stages run one after another in one thread, so each is measured alone; hh-camera overlaps
capture with inference on its own thread, so its FPS can exceed 1 / (sum of the stages).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .capture import open_source
from .errors import UserError
from .machine import peak_rss_mb
from .runtime import Classifier

STAGES = ("capture", "preprocess", "invoke", "postprocess")


@dataclass
class StageTimes:
    runtime: str
    frames: int = 0
    ms: dict[str, list[float]] = field(default_factory=lambda: {stage: [] for stage in STAGES})

    def total_ms(self) -> np.ndarray:
        return np.sum([self.ms[stage] for stage in STAGES], axis=0)

    def as_dict(self) -> dict:
        out: dict = {"runtime": self.runtime, "frames": self.frames}
        for stage in STAGES:
            values = self.ms[stage]
            out[stage] = {
                "mean_ms": round(float(np.mean(values)), 3),
                "p50_ms": round(float(np.percentile(values, 50)), 3),
                "p95_ms": round(float(np.percentile(values, 95)), 3),
            }
        total = self.total_ms()
        out["end_to_end"] = {
            "fps": round(1000.0 / float(np.mean(total)), 1),
            "p50_ms": round(float(np.percentile(total, 50)), 3),
            "p95_ms": round(float(np.percentile(total, 95)), 3),
        }
        out["peak_rss_mb"] = round(peak_rss_mb(), 1)
        return out


def synthetic_frames(width: int = 640, height: int = 480, seed: int = 0) -> Iterator[np.ndarray]:
    """Endless camera-sized frames when there is no camera (a few, reused: no decode cost)."""
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(8)]
    i = 0
    while True:
        yield frames[i % len(frames)]
        i += 1


def time_model(model: str | Path, num_threads: int, frames: int, source: str | None = None) -> tuple[dict, str]:
    """hh-bench: `frames` frames from `source` (default: generated 640x480 frames) through the
    device path, stage by stage. (The numbers as a dict, the classifier described.)"""
    classifier = Classifier(model, num_threads=num_threads)
    capture = None
    if source is None:
        read_frame = synthetic_frames().__next__
        description = "generated 640x480 frames"
    else:
        capture, info, _ = open_source(source)

        def read_frame():
            ok, frame = capture.read()
            return frame if ok else None

        description = info.description
    try:
        times = time_stages(classifier, read_frame, frames)
    finally:
        if capture is not None:
            capture.release()
    if times.frames == 0:
        raise UserError(f"{description}: gave no frames to time")
    result = times.as_dict()
    result.update(model=str(model), source=description, threads=num_threads, input_dtype=classifier.input_dtype.name)
    return result, classifier.describe()


def time_stages(classifier: Classifier, read_frame, frames: int, warmup: int = 10) -> StageTimes:
    """Run `frames` frames through the pipeline; read_frame() -> BGR frame or None at the end."""
    times = StageTimes(classifier.runtime)
    for i in range(warmup + frames):
        t0 = time.perf_counter()
        frame = read_frame()
        if frame is None:
            break
        capture_ms = (time.perf_counter() - t0) * 1000
        answer = classifier.classify_frame(frame)
        if i < warmup:
            continue
        for stage, ms in zip(STAGES, (capture_ms, answer.preprocess_ms, answer.invoke_ms, answer.postprocess_ms)):
            times.ms[stage].append(ms)
        times.frames += 1
    return times
