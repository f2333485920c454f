"""hh-camera: live labels from a camera, a video file or a stream, on the device."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from hh.edge.cli_util import VerboseOption, make_app, reports_errors, setup_output, sigterm_as_interrupt

app = make_app("Classify live camera frames with a .tflite model.")


@app.command()
@reports_errors()
def camera(
    model: Annotated[Path, typer.Argument(help="A .tflite from hh-convert (labels and preprocessing inside).")],
    source: Annotated[str, typer.Option(help="Camera index (0), video file, stream URL (rtsp://...), or picamera2.")] = "0",
    threads: Annotated[int | None, typer.Option(help="Interpreter threads (default: CPU cores, at most 4).")] = None,
    headless: Annotated[bool, typer.Option("--headless", help="No window: one line per classified frame on stdout.")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object per classified frame on stdout (implies --headless).")
    ] = False,
    threshold: Annotated[float, typer.Option(help="Below this probability report 'uncertain' instead of a label.")] = 0.0,
    smooth: Annotated[int, typer.Option(help="Average probabilities over the last K classified frames.")] = 1,
    every: Annotated[int, typer.Option(help="Classify every Nth frame.")] = 1,
    record: Annotated[
        Path | None,
        typer.Option(
            help="Append per-frame results to this CSV journal as they come (flushed every second; "
            "an existing record of the same model is continued)."
        ),
    ] = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop after classifying this many frames.")] = None,
    loop: Annotated[
        bool, typer.Option("--loop", help="Start a video file over at its end (a stand-in for an endless camera).")
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Classify frames from --source with MODEL and show or print the labels.

    With a display, the label, probability and FPS are drawn on the frame (q or Esc quits).
    Without one (opencv-python-headless, no $DISPLAY) or with --headless/--json, results go to
    stdout. A camera or stream that fails mid-run is reopened with backoff, each outage logged
    (stderr, and a JSON event with --json); only a source that never opens is an error.
    Ctrl-C or SIGTERM (systemd, docker stop) stops cleanly; a summary (frames, FPS, latency
    p50/p95, outages) goes to stderr. A power cut loses at most the last second of --record.

    Example: hh-camera models/run1/model_int8.tflite --source 0
    """
    setup_output(verbose)
    from hh.edge.camera import FrameGrabber, LoopOptions, display_available, open_source, run_loop, source_opener
    from hh.edge.files import check_output_file
    from hh.edge.record import FrameJournal
    from hh.edge.runtime import TFLiteClassifier, default_threads

    options = LoopOptions(threshold=threshold, smooth=smooth, every=every, max_frames=max_frames).validate()
    _, info = source_opener(source)  # checks a file source exists before the model loads
    if record is not None:
        check_output_file(record, "record", append=True, inputs=[model, *([info.path] if info.path else [])])
    classifier = TFLiteClassifier(model, num_threads=threads if threads is not None else default_threads())
    names = classifier.class_names
    journal = (
        FrameJournal(record, names, on_error=lambda why: print(f"warning: {why}", file=sys.stderr, flush=True))
        if record
        else None
    )
    try:
        capture, info, opener = open_source(source)
    except BaseException:
        if journal:
            journal.close()
        raise
    options.show = not (headless or json_out)
    if options.show and not display_available():
        print("no display available (headless OpenCV or no $DISPLAY): printing results instead", file=sys.stderr)
        options.show = False
    print(f"{classifier.describe()}; source {info.description}", file=sys.stderr)
    if journal and journal.appended_to:
        print(f"appending to {record} ({journal.appended_to} rows already there)", file=sys.stderr)

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
            line = json.dumps(result.as_event(names))
            with stdout_lock:
                print(line, flush=True)
        elif not options.show:
            print(
                f"frame {result.frame_index:6d}  {result.label:<16} {result.classification.probability:.3f}  "
                f"{result.inference_ms:.1f} ms",
                flush=True,
            )
        if journal:
            journal.write(result.journal_row())

    grabber = FrameGrabber(capture, drop_stale=info.live, reopen=opener, loop=loop, on_event=event).start()
    try:
        # Ctrl-C and SIGTERM are how a field session ends: run_loop returns, we release and summarise.
        with sigterm_as_interrupt():
            summary = run_loop(classifier, grabber, options, emit)
    finally:
        grabber.stop()
        if journal:
            journal.close()
    print(summary.line(), file=sys.stderr)
    if json_out:
        print(json.dumps({"type": "summary", **summary.as_dict()}), flush=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
