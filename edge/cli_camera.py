"""hh-camera: live labels from a camera, a video file or a stream, on the device."""

from __future__ import annotations

import csv
import json
import os
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from hh.edge.cli_util import UserError, make_app, user_errors
from hh.edge.spec import SpecError

app = make_app("Classify live camera frames with a .tflite model.")


class CsvRecord:
    """Per-frame rows, written to a temporary name and renamed into place when the run ends."""

    def __init__(self, path: Path, class_names):
        from hh.edge.files import temp_name_for

        self.path = path
        self.tmp = temp_name_for(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.tmp, "w", newline="")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(["frame", "time", "label", "probability", *class_names, "inference_ms"])

    def write(self, result) -> None:
        probs = [f"{p:.5f}" for p in result.classification.probabilities]
        self.writer.writerow(
            [result.frame_index, f"{result.time:.3f}", result.label, f"{result.classification.probability:.5f}", *probs, f"{result.inference_ms:.3f}"]
        )

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, self.path)


@app.command()
@user_errors(SpecError)
def camera(
    model: Annotated[Path, typer.Argument(help="A .tflite from hh-convert (labels and preprocessing inside).")],
    source: Annotated[str, typer.Option(help="Camera index (0), video file, stream URL (rtsp://...), or picamera2.")] = "0",
    threads: Annotated[Optional[int], typer.Option(help="Interpreter threads (default: CPU cores, at most 4).")] = None,
    headless: Annotated[bool, typer.Option("--headless", help="No window: one line per classified frame on stdout.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per classified frame on stdout (implies --headless).")] = False,
    threshold: Annotated[float, typer.Option(help="Below this probability report 'uncertain' instead of a label.")] = 0.0,
    smooth: Annotated[int, typer.Option(help="Average probabilities over the last K classified frames.")] = 1,
    every: Annotated[int, typer.Option(help="Classify every Nth frame.")] = 1,
    record: Annotated[Optional[Path], typer.Option(help="Also write per-frame results to this CSV file.")] = None,
    max_frames: Annotated[Optional[int], typer.Option(help="Stop after classifying this many frames.")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Start a video file over at its end (a stand-in for an endless camera).")] = False,
) -> None:
    """Classify frames from --source with MODEL and show or print the labels.

    With a display, the label, probability and FPS are drawn on the frame (q or Esc quits).
    Without one (opencv-python-headless, no $DISPLAY) or with --headless/--json, results go to
    stdout. A camera or stream that fails mid-run is reopened with backoff, each outage logged
    (stderr, and a JSON event with --json); only a source that never opens is an error.
    Ctrl-C stops cleanly; a summary (frames, FPS, latency p50/p95, outages) goes to stderr.

    Example: hh-camera models/run1/model_int8.tflite --source 0
    """
    from hh.edge.camera import FrameGrabber, LoopOptions, display_available, open_source, run_loop
    from hh.edge.runtime import TFLiteClassifier, default_threads

    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"--threshold must be between 0 and 1, got {threshold}")
    for name, value in (("--smooth", smooth), ("--every", every), ("--threads", threads or 1), ("--max-frames", max_frames or 1)):
        if value < 1:
            raise UserError(f"{name} must be at least 1, got {value}")
    classifier = TFLiteClassifier(model, num_threads=threads or default_threads())
    capture, info, opener = open_source(source)
    show = not (headless or json_out)
    if show and not display_available():
        print("no display available (headless OpenCV or no $DISPLAY): printing results instead", file=sys.stderr)
        show = False
    print(f"{classifier.describe()}; source {info.description}", file=sys.stderr)
    recorder = CsvRecord(record, classifier.class_names) if record else None
    names = classifier.class_names

    stdout_lock = threading.Lock()  # frames print from the loop, events from the capture thread

    def event(ev: dict) -> None:
        if ev["type"] == "outage":
            print(f"source {info.description}: outage {ev['outage']} ({ev['reason']}); reconnecting", file=sys.stderr, flush=True)
        else:
            print(f"source {info.description}: reconnected after {ev['seconds']}s", file=sys.stderr, flush=True)
        if json_out:
            with stdout_lock:
                print(json.dumps(ev), flush=True)

    def emit(result) -> None:
        if json_out:
            line = json.dumps({
                "type": "frame",
                "time": round(result.time, 3),
                "frame": result.frame_index,
                **result.classification.as_dict(names),
                "label": result.label,
                "inference_ms": round(result.inference_ms, 3),
                "latency_ms": round(result.loop_ms, 3),
            })
            with stdout_lock:
                print(line, flush=True)
        elif not show:
            print(f"frame {result.frame_index:6d}  {result.label:<16} {result.classification.probability:.3f}  {result.inference_ms:.1f} ms", flush=True)
        if recorder:
            recorder.write(result)

    grabber = FrameGrabber(capture, drop_stale=info.live, reopen=opener, loop=loop, on_event=event).start()
    options = LoopOptions(threshold=threshold, smooth=smooth, every=every, max_frames=max_frames, show=show)
    try:
        # Ctrl-C is how a field session ends: run_loop returns, we release and summarise.
        summary = run_loop(classifier, grabber, options, emit)
    finally:
        grabber.stop()
        if recorder:
            recorder.close()
    print(summary.line(), file=sys.stderr)
    if json_out:
        print(json.dumps({"type": "summary", **summary.as_dict()}), flush=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
