"""A new model at the running model's path, taken only when it passes its self-test here.

A field device is updated by copying a new .tflite over the old one (rsync writes a temporary
file and renames it; scp and cp write in place, which cannot disturb the running model: it was
read into memory, hh.edge.metadata.read_model_bytes) and, with systemd, `systemctl reload
hh-camera` (SIGHUP). hh-camera
must never switch to a model that fails on this device, and must never stop answering while it
checks one. So `ModelWatch` looks at the file every few seconds (and at once on SIGHUP) from its
own thread; a changed file is loaded and self-tested there, on this device's decode, resize and
interpreter, while the loop goes on with the running model. A candidate that passes is handed
over and the loop switches between two frames; one that does not is refused, with the reason,
and the running model stays.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .errors import HHError, ModelFileError, UserError, first_line
from .metadata import model_identity, read_model_bytes
from .runtime import Classifier
from .selftest import SelfTestResult, model_selftest, run_selftest
from .trust import check_signature

log = logging.getLogger("hh.camera")

WATCH_SECONDS = 2.0  # how often the file is looked at; a copy in progress is waited out
Signature = tuple[int, int, int] | None  # (inode, size, mtime_ns); None when the file is missing
# What loading or self-testing a bad file raises: hh's refusals, an unreadable file, and what
# the interpreter says of a damaged flatbuffer.
LOAD_FAILURES = (HHError, OSError, ValueError, RuntimeError, MemoryError)


def file_signature(path: Path) -> Signature:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class ModelWatch:
    """Watches `path` for a replacement of `running`; `take()` hands over one that passed here.

    on_event(data) is called from the watch's thread: a candidate refused, and why, or the file
    at the path the running model again ("current")."""

    def __init__(
        self,
        path: str | Path,
        running: Classifier,
        num_threads: int | None,
        on_event: Callable[[dict], None],
        trusted=None,
        seen: Signature = None,
        interval: float = WATCH_SECONDS,
        language: str | None = None,
    ):
        self.path = Path(path)
        self.running = running
        self.num_threads = num_threads
        self.on_event = on_event
        self.interval = interval
        self.trusted = trusted  # with a public key (hh-camera --trust): only files signed with it
        self.language = language  # hh-camera --lang: a replacement must have names in it, as the first model had to
        # The file the running model was loaded from (as it was looked at before it was read).
        self._seen = seen if seen is not None else file_signature(self.path)
        self._ready: tuple[Classifier, SelfTestResult] | None = None
        self._lock = threading.Lock()
        self._asked = threading.Event()  # SIGHUP, systemctl reload
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ModelWatch:
        self._thread = threading.Thread(target=self._watch, name="hh-model-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._asked.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def ask(self) -> None:
        """Look at the file now, and check it even when it looks unchanged (SIGHUP). Safe in a signal handler."""
        self._asked.set()

    def take(self) -> tuple[Classifier, SelfTestResult] | None:
        """The candidate that passed its self-test here, and that result, once; None when there is none."""
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is not None:
            self.running = ready[0]
        return ready

    def _watch(self) -> None:
        while not self._stopping.is_set():
            asked = self._asked.wait(self.interval)
            self._asked.clear()
            if self._stopping.is_set():
                return
            signature = file_signature(self.path)
            if signature == self._seen and not asked:
                continue
            # A copy in progress changes size and time: wait until the file holds still.
            while not self._stopping.wait(min(0.5, self.interval)):
                again = file_signature(self.path)
                if again == signature:
                    break
                signature = again
            self._seen = signature
            if signature is None:
                self._refuse(f"{self.path} is gone; answering with the running model")
                continue
            self._check()

    def _check(self) -> None:
        """Look at the file at the path now; a candidate found before it is forgotten (the path holds another file)."""
        with self._lock:
            self._ready = None
        try:
            data = read_model_bytes(self.path)  # read once: what is checked is what runs
        except ModelFileError as exc:
            self._refuse(f"cannot load it ({exc})")
            return
        identity = model_identity(data)
        if identity == self.running.identity:
            log.info(f"model file {self.path}: the same model ({identity}); nothing to switch")
            self.on_event({"type": "model", "action": "current", "time": round(time.time(), 3), "running": identity})
            return
        if self.trusted is not None:
            try:
                check_signature(self.path, data, self.trusted)
            except ModelFileError as exc:
                self._refuse(str(exc), identity)
                return
        try:
            candidate = Classifier(self.path, num_threads=self.num_threads, data=data)
        except LOAD_FAILURES as exc:  # a damaged, half-copied or foreign file: never the end of the session
            self._refuse(f"cannot load it ({first_line(exc)})", identity)
            return
        if candidate.class_names != self.running.class_names:
            self._refuse(
                f"its labels ({', '.join(candidate.class_names)}) differ from the running model's "
                f"({', '.join(self.running.class_names)}): records, collection folders and the live view are filed "
                "under them; restart hh-camera to change labels",
                identity,
            )
            return
        if self.language is not None:
            try:
                candidate.display_names.check_language(self.language)
            except UserError as exc:
                self._refuse(str(exc).removeprefix(f"--lang {self.language}: "), identity)
                return
        try:
            selftest = model_selftest(candidate)
            result = run_selftest(candidate, selftest) if selftest is not None else None
        except LOAD_FAILURES as exc:
            self._refuse(f"its self-test cannot run ({first_line(exc)})", identity)
            return
        if result is None:
            self._refuse("it carries no self-test to prove it on this device (convert it with hh-convert)", identity)
            return
        if not result.passed:
            self._refuse(result.line(), identity)
            return
        log.info(f"model file {self.path}: {candidate.identity_line()} passed its self-test here; switching")
        with self._lock:
            self._ready = (candidate, result)

    def _refuse(self, why: str, candidate: str | None = None) -> None:
        data = {"type": "model", "action": "refused", "time": round(time.time(), 3), "running": self.running.identity}
        data.update({"candidate": candidate, "reason": why})
        log.warning(f"model update refused: {why}; still answering with model {self.running.identity}")
        self.on_event(data)
