"""hh-camera: live labels from a camera, a video file or a stream, on the device."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from hh.edge.cli_util import VerboseOption, make_app, reports_errors, setup_output, sigterm_as_interrupt
from hh.edge.errors import ParameterError, VerificationFailed

app = make_app("Classify live camera frames with a .tflite model.")


@app.command()
@reports_errors()
def camera(
    model: Annotated[Path, typer.Argument(help="A .tflite from hh-convert (labels and preprocessing inside).")],
    source: Annotated[str, typer.Option(help="Camera index (0), video file, stream URL (rtsp://...), or picamera2.")] = "0",
    threads: Annotated[
        int | None, typer.Option(help="Interpreter threads (default: CPU cores minus one for the camera, at most 4).")
    ] = None,
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
    quality_gate: Annotated[
        str, typer.Option(help="on: frames that are blurry, too dark, too bright or flat report 'retake', not a label.")
    ] = "on",
    no_selftest: Annotated[
        bool, typer.Option("--no-selftest", help="Start even when the model's self-test fails on this device.")
    ] = False,
    serve: Annotated[
        str | None,
        typer.Option(
            help="Serve the live view and its JSON API at [HOST:]PORT (default host 127.0.0.1; "
            "any other host needs the access token printed at start)."
        ),
    ] = None,
    token: Annotated[str | None, typer.Option(help="The live view's access token (default: a new one each start).")] = None,
    collect: Annotated[
        Path | None,
        typer.Option(help="Keep the frames the model is unsure of (and frames filed from the live view) in this folder."),
    ] = None,
    collect_below: Annotated[float, typer.Option(help="--collect: a frame is unsure below this probability.")] = 0.6,
    collect_every: Annotated[float, typer.Option(help="--collect: save at most one unsure frame per this many seconds.")] = 2.0,
    collect_max_mb: Annotated[float, typer.Option(help="--collect: stop collecting when the folder holds this much.")] = 500.0,
    verbose: VerboseOption = False,
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
    from hh.edge.camera import FrameGrabber, LoopOptions, display_available, open_source, run_loop, source_opener
    from hh.edge.collect import FieldCollector
    from hh.edge.files import check_output_file
    from hh.edge.health import HealthWatch
    from hh.edge.record import FrameJournal
    from hh.edge.runtime import TFLiteClassifier, default_threads
    from hh.edge.serve import LiveServer, LiveState, needs_token, new_token, parse_bind

    if quality_gate not in ("on", "off"):
        raise ParameterError("quality_gate", f"must be on or off, got {quality_gate!r}")
    if not 0.0 <= collect_below <= 1.0:
        raise ParameterError("collect_below", f"must be between 0 and 1, got {collect_below}")
    if collect_every < 0 or collect_max_mb <= 0:
        raise ParameterError("collect_every", "must be 0 or more, and {param:collect_max_mb} more than 0")
    bind = parse_bind(serve) if serve is not None else None
    options = LoopOptions(threshold=threshold, smooth=smooth, every=every, max_frames=max_frames).validate()
    _, info = source_opener(source)  # checks a file source exists before the model loads
    if record is not None:
        check_output_file(record, "record", append=True, inputs=[model, *([info.path] if info.path else [])])
    # One core stays with the capture thread, which decodes while the model runs.
    classifier = TFLiteClassifier(model, num_threads=threads if threads is not None else default_threads(reserve=1))
    names = classifier.class_names

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)

    # Everything that can refuse to start comes before the first line of output: a mistake is
    # one line on stderr, nothing else.
    capture, info, opener = open_source(source)
    journal = collector = server = None
    try:
        selftest_line = check_on_this_device(classifier, no_selftest, json_out)
        journal = FrameJournal(record, names, on_error=warn) if record else None
        if collect is not None:
            collector = FieldCollector(
                collect, names, model.name, info.description, collect_below, collect_every, collect_max_mb, on_note=warn
            )
        if bind is not None:
            host, port = bind
            secret = token or (new_token() if needs_token(host) else None)
            live = LiveState(names, info.description, model.name)
            live.collector = collector
            server = LiveServer(live, host, port, secret).start()
    except BaseException:
        capture.release()
        for opened in (journal, collector):
            if opened:
                opened.close()
        raise
    print(f"{classifier.describe()}; source {info.description}", file=sys.stderr)
    print(selftest_line, file=sys.stderr)
    if quality_gate == "on":
        options.quality = classifier.spec.quality
        if options.quality is None:
            print(
                "note: the model carries no quality thresholds (convert it again to add them); no quality gate", file=sys.stderr
            )
    options.show = not (headless or json_out)
    if options.show and not display_available():
        print("no display available (headless OpenCV or no $DISPLAY): printing results instead", file=sys.stderr)
        options.show = False
    if journal and journal.appended_to:
        print(f"appending to {record} ({journal.appended_to} rows already there)", file=sys.stderr)
    if server:
        print(f"live view: {server.url}", file=sys.stderr, flush=True)
    if collector:
        print(f"collecting unsure frames (below {collect_below:g}) into {collector.folder}", file=sys.stderr)

    stdout_lock = threading.Lock()  # frames print from the loop, events from the capture thread

    def print_json(event: dict) -> None:
        if json_out:
            line = json.dumps(event)
            with stdout_lock:
                print(line, flush=True)

    def on_frame(frame, result, fps: float) -> None:
        if server:
            server.state.update(frame, result, result.as_event(names), fps)
        if collector:
            collector.consider(frame, result)

    def on_status(event: dict) -> None:
        print_json(event)
        if server:
            server.state.health = {k: v for k, v in event.items() if k not in ("type", "time", "fps")}

    def on_source_event(ev: dict) -> None:
        if server:
            server.state.source_event(ev)
        if ev["type"] == "outage":
            print(f"source {info.description}: outage {ev['outage']} ({ev['reason']}); reconnecting", file=sys.stderr, flush=True)
        else:
            print(f"source {info.description}: reconnected after {ev['seconds']}s", file=sys.stderr, flush=True)
        print_json(ev)

    def emit(result) -> None:
        print_json(result.as_event(names))
        if not json_out and not options.show:
            shown = f"{result.label} ({result.retake})" if result.retake else result.label
            print(
                f"frame {result.frame_index:6d}  {shown:<16} "
                f"{result.classification.probability:.3f}  {result.inference_ms:.1f} ms",
                flush=True,
            )
        if journal:
            journal.write(result.journal_row())

    def on_throttle(flags) -> None:
        warn(f"the device is throttling ({', '.join(flags)}): expect a lower frame rate")

    health = HealthWatch(interval=options.status_every, on_throttle=on_throttle)
    grabber = FrameGrabber(capture, drop_stale=info.live, reopen=opener, loop=loop, on_event=on_source_event).start()
    try:
        # Ctrl-C and SIGTERM are how a field session ends: run_loop returns, we release and summarise.
        with sigterm_as_interrupt():
            summary = run_loop(
                classifier, grabber, options, emit, on_status=on_status, health=health,
                on_frame=on_frame if (server or collector) else None,
            )  # fmt: skip
    finally:
        grabber.stop()
        if server:
            server.stop()
        for opened in (journal, collector):
            if opened:
                opened.close()
    print(summary.line(), file=sys.stderr)
    print_json({"type": "summary", **summary.as_dict()})


def check_on_this_device(classifier, skip: bool, json_out: bool) -> str:
    """Run the model's self-test here: the line to show, or VerificationFailed unless `skip`."""
    from hh.edge.selftest import model_selftest, run_selftest

    selftest = model_selftest(classifier)
    if selftest is None:
        return "note: the model carries no self-test (convert it again with hh-convert to add one)"
    result = run_selftest(classifier, selftest)
    if not (result.passed or skip):
        raise VerificationFailed(f"{result.line()}; to run anyway: {{param:no_selftest}}")
    if json_out:
        print(json.dumps({"type": "selftest", **result.as_dict()}), flush=True)
    return result.line()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
