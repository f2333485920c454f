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

Saving is rate-limited (at most one unsure frame every `every_s` seconds) and bounded on disk
(`max_mb`): when full, collection stops and says so once; it never fills the SD card. Back on
the workstation, `hh-data merge DIR/labelled data/train` folds the labelled frames into the
training folder (duplicates skipped), and the next hh-train records them in its split.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np

from .events import Event, FrameEvent
from .files import atomic_write_bytes, check_output_dir
from .record import FrameJournal

JOURNAL = "collected.csv"


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.jpg") if p.is_file()) if folder.exists() else 0


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
        self.class_names = tuple(class_names)
        self.model, self.source = model, source
        self.threshold, self.every_s, self.max_bytes = threshold, every_s, int(max_mb * 1e6)
        self.on_note = on_note or (lambda message: None)
        self.used = folder_bytes(self.folder)  # what earlier sessions left counts too
        self.unsure = self.labelled = 0
        self.full = False
        self._last_saved = float("-inf")
        self._last_label: str | None = None
        self._lock = threading.Lock()  # the camera loop and the page's requests both save
        header = ["time", "kind", "file", "predicted", "label", "probability", *self.class_names, "source", "model"]
        self.journal = FrameJournal(self.folder / JOURNAL, class_names, header=header, param="collect")

    def status(self) -> dict:
        return {
            "unsure": self.unsure, "labelled": self.labelled, "mb": round(self.used / 1e6, 2),
            "max_mb": self.max_bytes / 1e6, "full": self.full, "folder": str(self.folder),
        }  # fmt: skip

    def _save(self, frame: np.ndarray, relative: str, kind: str, result, label: str) -> str | None:
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
        if self.used + len(jpeg) > self.max_bytes:
            if not self.full:
                self.full = True
                self.on_note(
                    f"collection folder {self.folder} reached --collect-max-mb ({self.max_bytes / 1e6:g} MB): collecting stopped"
                )
            return None
        atomic_write_bytes(self.folder / relative, jpeg)
        self.used += len(jpeg)
        c = result.classification
        self.journal.write([
            f"{time.time():.3f}", kind, relative, c.label, label, f"{c.probability:.5f}",
            *(f"{p:.5f}" for p in c.probabilities), self.source, self.model,
        ])  # fmt: skip
        return relative

    def on_event(self, event: Event) -> None:
        """The session's frames: each is considered for the collection."""
        if isinstance(event, FrameEvent):
            self.consider(event.image, event.result)

    def consider(self, frame: np.ndarray, result) -> str | None:
        """Save the frame when the model is unsure of it (low probability, or a flip), within
        the rate and size limits. Returns the saved file (relative), or None."""
        label = result.classification.label
        flipped = self._last_label is not None and label != self._last_label
        self._last_label = label
        unsure = result.classification.probability < self.threshold or flipped
        now = time.monotonic()
        if not unsure or self.full or now - self._last_saved < self.every_s:
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        relative = f"unsure/{label}/{stamp}-{int(now * 1000) % 1000:03d}_{result.classification.probability:.2f}.jpg"
        with self._lock:
            saved = self._save(frame, relative, "unsure", result, "")
        if saved:
            self._last_saved = now
            self.unsure += 1
        return saved

    def label(self, frame: np.ndarray, result, label: str) -> str | None:
        """File the frame as `label` (someone in the field says what it is)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        relative = f"labelled/{label}/{stamp}-{int(time.time() * 1000) % 1000:03d}.jpg"
        with self._lock:
            saved = self._save(frame, relative, "labelled", result, label)
        if saved:
            self.labelled += 1
        return saved

    def close(self) -> None:
        self.journal.close()
