"""A camera session: one model, one source, and everything that watches it. OpenCV + LiteRT.

`CameraSession` is what hh-camera runs, and a Python program runs it the same way:

    options = CameraOptions(source="field.avi", record=Path("field.csv"))
    with CameraSession("model_int8.tflite", options) as session:
        session.subscribe(lambda event: print(event.as_json()))
        summary = session.run()

Opening does everything that can refuse to start before anything is shown or written: the
options, the source, the record's path, the model, its self-test on this device, the
collection folder, the live view's port. What it opens it owns in one ExitStack, so a refusal
or an end at any point releases the camera, closes the journals and stops the server.
Everything that happens is published on one EventBus (hh.edge.events): the record, the live
view and the collection subscribe to it, and so do a command's terminal and --json output.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

from .camera import UNCERTAIN_BELOW, LoopSettings, run_loop
from .capture import DEFAULT_FILE_FPS, FrameGrabber, SourceInfo, frame_rate, open_source, source_opener
from .collect import FieldCollector
from .errors import ParameterError, VerificationFailed
from .events import (
    Event,
    EventBus,
    FrameEvent,
    LoopSummary,
    ModelEvent,
    SelftestEvent,
    SourceEvent,
    Subscriber,
    SummaryEvent,
)
from .files import check_output_file
from .health import HealthWatch
from .machine import default_threads
from .metadata import read_model_bytes
from .names import drawable_names, language_problem
from .options import option
from .record import FrameJournal
from .reload import ModelWatch, file_signature
from .runtime import Classifier
from .selftest import SelfTestResult, model_selftest, run_selftest
from .serve import LiveServer, LiveState, check_token, needs_token, new_token, parse_bind
from .trust import check_signature, load_public_key

log = logging.getLogger("hh.camera")
MAX_COLLECT_MB = 1e7  # 10 TB: more than any device's card, and a number that stays a number


@dataclass
class CameraOptions:
    """Everything that determines a camera session. hh-camera's flags are these fields."""

    source: str = option("0", "Camera index (0), video file, stream URL (rtsp://...), or picamera2.")
    threads: int | None = option(None, "Interpreter threads (default: CPU cores minus one for the camera, at most 4).")
    threshold: float = option(UNCERTAIN_BELOW, "Below this probability report 'uncertain' instead of a label (0: never).")
    smooth: int = option(1, "Average probabilities over the last K classified frames.")
    every: int = option(1, "Classify every Nth frame.")
    max_frames: int | None = option(None, "Stop after classifying this many frames.")
    loop: bool = option(False, "Start a video file over at its end (a stand-in for an endless camera).", ("--loop",))
    realtime: bool = option(
        False,
        "Play a video file at its own frame rate, as a camera would give it (default: as fast as it decodes).",
        ("--realtime",),
    )
    quality_gate: bool = option(True, "Frames that are blurry, too dark, too bright or flat report 'retake', not a label.")
    selftest_required: bool = option(
        True,
        "Refuse to start when the model's self-test fails on this device (--no-selftest: start anyway).",
        ("--selftest/--no-selftest",),
    )
    record: Path | None = option(
        None,
        "Append per-frame results to this CSV journal as they come (flushed every second; "
        "an existing record whose last row is this model's is continued).",
    )
    record_max_mb: float = option(1000.0, "--record: stop recording when the file reaches this size (the camera goes on).")
    serve: str | None = option(
        None,
        "Serve the live view and its JSON API at [HOST:]PORT (default host 127.0.0.1; "
        "any other host needs the access token printed at start).",
    )
    token: str | None = option(None, "The live view's access token (default: a new one each start).")
    collect: Path | None = option(
        None, "Keep the frames the model is unsure of (and frames filed from the live view) in this folder."
    )
    collect_below: float = option(0.6, "--collect: a frame is unsure below this probability.")
    collect_every: float = option(2.0, "--collect: save at most one unsure frame per this many seconds.")
    collect_max_mb: float = option(500.0, "--collect: stop collecting when the folder holds this much.")
    watch_model: bool = option(
        True,
        "Take a new model copied over MODEL (or on SIGHUP, systemctl reload) once it passes its self-test here; "
        "until then, and if it fails, the running model answers (--no-watch-model: keep the first).",
        ("--watch-model/--no-watch-model",),
    )
    trust: Path | None = option(
        None,
        "Run only models signed with this public key's private half (hh-data keygen, hh-convert --sign): "
        "an unsigned, altered or otherwise signed file is refused, at start and as a replacement.",
    )
    lang: str | None = option(
        None,
        "Show labels by their names in this language (sw, fr, hi...: packed by hh-convert --names) in the window, "
        "the printed lines and the live view (a browser's own language comes first there); records and --json keep the label.",
    )
    show_window: bool = False  # draw on a window (the command decides from --headless and the display)
    status_every: float = 10.0  # seconds between device-health status events

    def validate(self) -> CameraOptions:
        """Refuse a value that cannot work, naming it; returns self."""
        for name in ("threshold", "collect_below"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:  # NaN fails this too
                raise ParameterError(name, f"must be between 0 and 1, got {value}")
        for name in ("smooth", "every", "max_frames", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ParameterError(name, f"must be at least 1, got {value}")
        if not (math.isfinite(self.collect_every) and self.collect_every >= 0):
            raise ParameterError("collect_every", f"must be a number of seconds, 0 or more, got {self.collect_every}")
        if not (math.isfinite(self.record_max_mb) and self.record_max_mb >= 0.001):
            raise ParameterError("record_max_mb", f"must be a number of megabytes, at least 0.001, got {self.record_max_mb}")
        if not (math.isfinite(self.collect_max_mb) and 0 < self.collect_max_mb <= MAX_COLLECT_MB):
            raise ParameterError(
                "collect_max_mb",
                f"must be a number of megabytes more than 0, at most {MAX_COLLECT_MB:g}, got {self.collect_max_mb}",
            )
        if self.serve is not None:
            parse_bind(self.serve)
        if self.token is not None:
            check_token(self.token)
        if self.lang is not None and language_problem(self.lang):
            raise ParameterError("lang", f"{self.lang!r} {language_problem(self.lang)}")
        return self

    def loop_settings(self) -> LoopSettings:
        return LoopSettings(
            threshold=self.threshold,
            smooth=self.smooth,
            every=self.every,
            max_frames=self.max_frames,
            quality_gate=self.quality_gate,
            show_window=self.show_window,
            status_every=self.status_every,
        )


class CameraSession:
    """One model on one source, with its record, collection and live view, until it ends."""

    def __init__(self, model: str | Path, options: CameraOptions | None = None):
        self.model_path = Path(model)
        self.options = (options or CameraOptions()).validate()
        self.events = EventBus()
        self.classifier: Classifier | None = None
        self.source: SourceInfo | None = None
        self.selftest: SelfTestResult | None = None
        self.journal: FrameJournal | None = None
        self.collector: FieldCollector | None = None
        self.server: LiveServer | None = None
        self.language: str | None = None  # the model's language for --lang
        self.models: ModelWatch | None = None  # the model file, watched for a replacement
        self._grabber: FrameGrabber | None = None
        self._resources = contextlib.ExitStack()

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call `subscriber(event)` for everything the session publishes (hh.edge.events)."""
        self.events.subscribe(subscriber)

    def __enter__(self) -> CameraSession:
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- opening: every refusal before the first line of output -----------------------------
    def open(self) -> CameraSession:
        """Check and open everything the session needs; on any refusal, close what was opened."""
        try:
            self._open()
        except BaseException:
            if self.journal is not None:
                self.journal.discard_if_unused()
            self.close()
            raise
        return self

    def _open(self) -> None:
        options = self.options
        _, info = source_opener(options.source)  # a missing file is refused before the model loads
        if options.record is not None:
            inputs = [self.model_path, *([info.path] if info.path else [])]
            check_output_file(options.record, "record", append=True, inputs=inputs)
        # One core stays with the capture thread, which decodes while the model runs.
        threads = options.threads if options.threads is not None else default_threads(reserve=1)
        trusted = load_public_key(options.trust) if options.trust is not None else None
        seen = file_signature(self.model_path)  # before the read: a replacement from here on is noticed
        model = read_model_bytes(self.model_path)
        if trusted is not None:
            check_signature(self.model_path, model, trusted)
        self.classifier = classifier = Classifier(self.model_path, num_threads=threads, data=model)
        capture, self.source, reopen = open_source(options.source)
        pace = (frame_rate(capture) or DEFAULT_FILE_FPS) if options.realtime and not self.source.live else None
        if options.realtime and self.source.live:
            log.info("note: --realtime paces video files; a camera or stream gives frames at its own rate")
        self._grabber = FrameGrabber(
            capture, drop_stale=self.source.live, reopen=reopen, loop=options.loop, on_event=self._source_event, pace=pace
        )
        self._resources.callback(self._grabber.stop)
        self.selftest = self._check_on_this_device(classifier)
        if options.watch_model:
            self.models = ModelWatch(
                self.model_path, classifier, threads, self._model_file_event, trusted, seen, language=options.lang
            )
            self._resources.callback(self.models.stop)
            self.subscribe(self._model_switched)
        names = classifier.class_names
        self.language = classifier.display_names.check_language(options.lang) if options.lang else None
        if options.record is not None:
            self.journal = FrameJournal(
                options.record, names, on_error=log.warning, model=classifier.identity,
                max_bytes=int(options.record_max_mb * 1e6),
            )  # fmt: skip
            self._resources.callback(self.journal.close)
            self.subscribe(self._journal_frame)
        if options.collect is not None:
            self.collector = FieldCollector(
                options.collect, names, classifier.identity, self.source.description,
                options.collect_below, options.collect_every, options.collect_max_mb, on_note=log.warning,
            )  # fmt: skip
            self._resources.callback(self.collector.close)
            self.subscribe(self.collector.on_event)
        if options.serve is not None:
            host, port = parse_bind(options.serve)
            secret = options.token or (new_token() if needs_token(host) else None)
            state = LiveState(
                names, self.source.description, self.model_status(), collector=self.collector,
                display_names=classifier.display_names, language=self.language,
            )  # fmt: skip
            self.server = LiveServer(state, host, port, secret).start()
            self._resources.callback(self.server.stop)
            self.subscribe(state.on_event)

    def _check_on_this_device(self, classifier: Classifier) -> SelfTestResult | None:
        """The model's self-test through this device's path; a failure refuses to start
        unless the options allow it."""
        selftest = model_selftest(classifier)
        if selftest is None:
            return None
        result = run_selftest(classifier, selftest)
        if not result.passed and self.options.selftest_required:
            raise VerificationFailed(f"{result.line()}; to run anyway: {{param:selftest_required}}")
        return result

    # -- running ------------------------------------------------------------------------------
    def run(self) -> LoopSummary:
        """Classify frames until the source ends, max_frames, q/Esc or Ctrl-C; the summary.

        Opens the session first if it is not open; closes nothing (the with-block does)."""
        if self.classifier is None:
            self.open()
        assert self.classifier is not None and self._grabber is not None
        self._announce()
        if self.selftest is not None:
            self.events.emit(SelftestEvent(self.selftest, self.classifier.model_id))
        health = HealthWatch(interval=self.options.status_every, on_throttle=self._throttled)
        self._grabber.start()
        if self.models is not None:
            self.models.start()
        try:
            settings = replace(self.options.loop_settings(), window_names=drawable_names(self.shown_names))
            summary = run_loop(self.classifier, self._grabber, settings, self.events, health, self.models)
        finally:
            self._grabber.stop()
        self.events.emit(SummaryEvent(summary, self.classifier.model_id))
        return summary

    def model_status(self) -> dict:
        """The model as the live view reports it: its file, identity, training run and self-test here."""
        assert self.classifier is not None
        selftest = self.selftest.as_dict() if self.selftest is not None else None
        return {"file": self.model_path.name, **self.classifier.model_id, "selftest": selftest}

    @property
    def shown_names(self) -> dict[str, str]:
        """label -> its name in the --lang language (empty without --lang): what a person reads."""
        return self.classifier.display_names.of(self.language) if self.classifier is not None else {}

    def close(self) -> None:
        """Release the camera, stop the live view, close the record and the collection."""
        self._resources.close()

    def _announce(self) -> None:
        """What the session is about to do, for the person starting it (hh's log, INFO)."""
        assert self.classifier is not None and self.source is not None
        log.info(f"{self.classifier.describe()}; source {self.source.description}")
        if self.selftest is not None:
            log.info(self.selftest.line())
        else:
            log.info("note: the model carries no self-test (convert it again with hh-convert to add one)")
        if self.options.quality_gate and self.classifier.spec.quality is None:
            log.info("note: the model carries no quality thresholds (convert it again to add them); no quality gate")
        if self.journal is not None and self.journal.appended_to:
            log.info(f"appending to {self.options.record} ({self.journal.appended_to} rows already there)")
        if self.server is not None:
            log.info(f"live view: {self.server.url}")
        if self.collector is not None:
            log.info(f"collecting unsure frames (below {self.options.collect_below:g}) into {self.collector.folder}")

    # -- the session's own subscribers ---------------------------------------------------------
    def _journal_frame(self, event: Event) -> None:
        if isinstance(event, FrameEvent) and self.journal is not None:
            self.journal.write(event.result.journal_row())

    def reload_model(self) -> None:
        """Check the model file now (SIGHUP, systemctl reload): a new model that passes its
        self-test here replaces the running one between two frames. Safe in a signal handler."""
        if self.models is not None:
            self.models.ask()

    def _model_file_event(self, data: dict) -> None:
        """From the watch's thread: a replacement that cannot run here (the running model stays),
        or the running model's file back at the path."""
        self.events.emit(ModelEvent(data))

    def _model_switched(self, event: Event) -> None:
        if isinstance(event, ModelEvent) and event.classifier is not None:
            self.classifier = event.classifier
            if self.options.lang:  # the watch took it only with names in that language
                self.language = event.classifier.display_names.check_language(self.options.lang)
            log.info(f"switched to {event.classifier.identity_line()} at frame {event.data['frame']}")

    def _source_event(self, data: dict) -> None:
        """From the capture thread: log the outage or reconnection, then publish it."""
        where = self.source.description if self.source else "source"
        if data["type"] == "outage":
            log.info(f"source {where}: outage {data['outage']} ({data['reason']}); reconnecting")
        else:
            log.info(f"source {where}: reconnected after {data['seconds']}s")
        model = self.classifier.identity if self.classifier is not None else None
        self.events.emit(SourceEvent({**data, "model": model}))

    def _throttled(self, flags: list[str]) -> None:
        log.warning(f"the device is throttling ({', '.join(flags)}): expect a lower frame rate")
