"""hh-camera --collect: keep the frames the model is unsure about, for the next training.

The frames where the model hesitates in the field are exactly the images the next training
needs, and today they are gone the moment they are classified. So, on the device:

    DIR/unsure/<predicted>/<time>_<probability>.jpg   the original frame (full resolution), saved
                                                      when the top probability is below a threshold
                                                      or the label flips from the previous frame
    DIR/labelled/<class>/<time>.jpg                   a frame someone filed as "this is <class>"
                                                      (one tap on the live view's page)
    DIR/collected.csv                                 an append-only journal of both: time, kind,
                                                      file, predicted label, true label, all
                                                      probabilities, source (redacted), model

Both are stamped with the frame's own arrival time. Every saved frame is a new file (never
one that replaces another, even with taps arriving at once) and a row of the journal.
Saving is rate-limited (at most one unsure frame every `every_s` seconds), skips frames the
quality gate refused (a black frame teaches nothing), and is bounded on disk (`max_mb`):
when full, or when the disk itself is full, collection stops and says so once; the session
goes on. Back on the workstation, `hh-data merge DIR/labelled data/train` folds the labelled
frames into the training folder.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np

from .errors import OutOfSpace, ParameterError
from .events import Event, FrameEvent, FrameResult
from .files import check_output_dir, create_new, is_within
from .folders import holds_images
from .record import FrameJournal
from .spec import label_problem

JOURNAL = "collected.csv"
KINDS = ("unsure", "labelled")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.jpg") if p.is_file()) if folder.exists() else 0


def check_not_a_training_folder(folder: Path, class_names) -> None:
    """Refuse a collection folder that is, or lies inside, a folder of class folders: the next
    training would take its `unsure` and `labelled` folders for classes, or its frames for
    images of the class folder they landed in. A folder of class folders is one that holds
    folders named like the model's classes (at any height above), or, the folder itself or
    its parent, two or more folders of images."""
    names = set(class_names)
    here = folder.absolute()
    for height, place in enumerate((here, *here.parents)):
        try:
            folders = [p for p in place.iterdir() if p.is_dir() and not p.name.startswith(".")]
        except OSError:  # not there yet, or not ours to list
            continue
        classes = sorted(p.name for p in folders if p.name in names)
        with_images = [] if height > 1 or classes else [p.name for p in folders if holds_images(p)]
        if len(classes) >= 2 or len(with_images) >= 2:
            shown = ", ".join(classes or sorted(with_images)[:4])
            raise ParameterError(
                "collect",
                f"{folder} is a training folder or inside one ({place} has class folders {shown}); "
                "collect into a folder of its own, then hh-data merge",
            )


class FieldCollector:
    def __init__(
        self,
        folder: str | Path,
        class_names,
        model: str,
        source: str,
        threshold: float = 0.6,
        every_s: float = 2.0,
        max_mb: float = 500.0,
        on_note=None,
    ):
        self.folder = check_output_dir(folder, "collect")
        check_not_a_training_folder(self.folder, class_names)
        for name in class_names:  # a crafted model's label must never become a path
            if label_problem(name):
                raise ParameterError("collect", f"the model's label {name!r} {label_problem(name)}")
        self.class_names = tuple(class_names)
        self.model, self.source = model, source
        self.threshold, self.every_s, self.max_bytes = threshold, every_s, int(max_mb * 1e6)
        self.on_note = on_note or (lambda message: None)
        self.used = folder_bytes(self.folder)  # what earlier sessions left counts too
        self.unsure = self.labelled = 0
        self.stopped: str | None = None  # why collecting stopped (the size bound, a full disk)
        self._last_saved = float("-inf")
        self._last_label: str | None = None
        self._lock = threading.Lock()  # the camera loop and the page's requests both save
        header = ["time", "kind", "file", "predicted", "label", "probability", *self.class_names, "source", "model"]
        # A collection spans models (the next training takes them all); each row names its model.
        self.journal = FrameJournal(self.folder / JOURNAL, class_names, header=header, param="collect", on_error=self._stop)

    @property
    def full(self) -> bool:
        return self.stopped is not None

    def status(self) -> dict:
        return {
            "unsure": self.unsure, "labelled": self.labelled, "mb": round(self.used / 1e6, 2),
            "max_mb": self.max_bytes / 1e6, "full": self.full, "stopped": self.stopped, "folder": str(self.folder),
        }  # fmt: skip

    def _stop(self, why: str) -> None:
        if self.stopped is None:
            self.stopped = why
            self.on_note(f"collecting stopped: {why}")

    def _save(self, frame: np.ndarray, kind: str, result: FrameResult, label: str) -> str | None:
        """Save a frame and its journal row, under the lock; the file's path (relative), or None."""
        assert kind in KINDS
        c = result.classification
        folder_label = label if kind == "labelled" else c.label
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(result.time)) + f"-{int(result.time * 1000) % 1000:03d}"
        name = f"{stamp}_{c.probability:.2f}.jpg" if kind == "unsure" else f"{stamp}.jpg"
        target = self.folder / kind / folder_label / name
        if not is_within(target, self.folder):  # belt and braces: labels were checked at start
            return None
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
        with self._lock:
            if self.stopped is not None:
                return None
            if self.used + len(jpeg) > self.max_bytes:
                self._stop(f"{self.folder} reached --collect-max-mb ({self.max_bytes / 1e6:g} MB)")
                return None
            try:
                written = create_new(target, jpeg)
            except (OutOfSpace, OSError) as exc:
                self._stop(f"cannot write in {self.folder} ({getattr(exc, 'strerror', None) or exc})")
                return None
            relative = written.relative_to(self.folder).as_posix()
            self.journal.write([
                f"{result.time:.3f}", kind, relative, c.label, label, f"{c.probability:.5f}",
                *(f"{p:.5f}" for p in c.probabilities), self.source, result.model or self.model,
            ])  # fmt: skip
            # A person's label is answered "saved" only once its row is on disk too.
            if kind == "labelled" and not self.journal.sync():
                written.unlink(missing_ok=True)
                return None
            self.used += len(jpeg)
        return relative

    def on_event(self, event: Event) -> None:
        """The session's frames: each is considered for the collection."""
        if isinstance(event, FrameEvent):
            self.consider(event.image, event.result)

    def consider(self, frame: np.ndarray, result: FrameResult) -> str | None:
        """Save the frame when the model is unsure of it (low probability, or a flip), within
        the rate and size limits. Returns the saved file (relative), or None."""
        if result.retake:  # the quality gate refused it: too dark, blurry, ... not a training image
            return None
        label = result.classification.label
        flipped = self._last_label is not None and label != self._last_label
        self._last_label = label
        unsure = result.classification.probability < self.threshold or flipped
        now = time.monotonic()
        if not unsure or self.full or now - self._last_saved < self.every_s:
            return None
        saved = self._save(frame, "unsure", result, "")
        if saved:
            self._last_saved = now
            self.unsure += 1
        return saved

    def label(self, frame: np.ndarray, result: FrameResult, label: str) -> str | None:
        """File the frame as `label` (someone in the field says what it is)."""
        if label not in self.class_names:
            raise ValueError(f"unknown label {label!r}")
        saved = self._save(frame, "labelled", result, label)
        if saved:
            with self._lock:
                self.labelled += 1
        return saved

    def close(self) -> None:
        self.journal.close()
