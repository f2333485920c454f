"""hh-camera: live labels from a camera, a video file or a stream, on the device."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from .cli_util import VerboseOption, make_app, options_command, reports_errors, run_app, setup_output
from .events import Event, FrameEvent
from .quiet import scrubbed_stderr
from .redact import secrets_of
from .session import CameraOptions, CameraSession
from .signals import sighup_calls, sigterm_as_interrupt

app = make_app("Classify live camera frames with a .tflite model.")


@app.command()
@reports_errors({"selftest_required": "--no-selftest", "num_threads": "--threads"})
@options_command(CameraOptions)
def camera(
    model: Annotated[Path, typer.Argument(help="A .tflite from hh-convert (labels and preprocessing inside).")],
    headless: Annotated[bool, typer.Option("--headless", help="No window: one line per classified frame on stdout.")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object per classified frame on stdout (implies --headless).")
    ] = False,
    verbose: VerboseOption = False,
    **options,
) -> None:
    """Classify frames from --source with MODEL and show or print the labels.

    With a display, the label, probability and FPS are drawn on the frame (q or Esc quits).
    Without one (opencv-python-headless, no $DISPLAY) or with --headless/--json, results go to
    stdout. A camera or stream that fails mid-run is reopened with backoff, each outage logged
    (stderr, and a JSON event with --json); only a source that never opens is an error.
    Ctrl-C or SIGTERM (systemd, docker stop) stops cleanly; a summary (frames, FPS, latency
    p50/p95, outages, retakes, peak temperature) goes to stderr. A power cut loses at most the
    last second of --record.

    At start, the self-test packed in the model runs through this device's own decode, resize,
    colour order and interpreter: a failure stops here (unless --no-selftest) and says what
    differs. Frames that fail the quality gate report 'retake' and the reason.

    Example: hh-camera models/run1/model_int8.tflite --source 0
    """
    setup_output(verbose)
    # Whatever native code prints about the source (with --verbose, FFmpeg's lines) loses its secrets too.
    with scrubbed_stderr(secrets_of(options["source"])), CameraSession(model, CameraOptions(**options)) as session:
        # Everything that can refuse to start has; from here on the session speaks.
        session.options.show_window = not (headless or json_out) and window_or_say_why()
        if json_out:
            session.subscribe(JsonLines())
        elif not session.options.show_window:
            session.subscribe(FrameLines(lambda: session.shown_names))  # the running model's, after a swap too
        # SIGTERM ends the session as Ctrl-C does (summary, record flushed); SIGHUP looks for a new model.
        with sigterm_as_interrupt(), sighup_calls(session.reload_model):
            summary = session.run()
    print(summary.line(), file=sys.stderr)


def window_or_say_why() -> bool:
    from .camera import display_available

    if display_available():
        return True
    print("no display available (headless OpenCV or no $DISPLAY): printing results instead", file=sys.stderr)
    return False


class JsonLines:
    """--json: every event of the session as one JSON object per line on stdout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # frames come from the loop, source events from the capture thread

    def __call__(self, event: Event) -> None:
        line = json.dumps(event.as_json())
        with self._lock:
            print(line, flush=True)


class FrameLines:
    """Without a window: one line per classified frame on stdout, a label by its --lang name."""

    def __init__(self, names: Callable[[], dict[str, str]]) -> None:
        self.names = names

    def __call__(self, event: Event) -> None:
        if isinstance(event, FrameEvent):
            result = event.result
            label = self.names().get(result.label, result.label)
            shown = f"{label} ({result.retake})" if result.retake else label
            probability = result.classification.probability
            print(f"frame {result.frame_index:6d}  {shown:<16} {probability:.3f}  {result.inference_ms:.1f} ms", flush=True)


def main() -> None:
    # Until the session listens for it, a reload (SIGHUP) must not end the process: the model is
    # being read from its path anyway, and a file changed meanwhile is noticed (hh.edge.reload).
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    run_app(app)


if __name__ == "__main__":
    main()
