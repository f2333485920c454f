"""The train/validation split, recorded once at training time (RUN/split.json). stdlib only.

Rebuilding the split by rescanning the data folder drifts: one image added after training
moves others between training and validation, and the converter's verification would then
score the model on images it was trained on. So hh-train records every file it used, with its
label and what it looked like (size and modification time), and `--resume` and hh-convert
read that record instead of the folder:

- files added to the folder since are ignored, and said so;
- files missing or changed since are an error naming them: the record no longer describes
  what is on disk, and only the user can say which is right.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..edge.errors import UserError
from ..edge.folders import ImageFolder, list_image_folder

SPLIT_VERSION = 1
SPLITS = ("train", "validation")


@dataclass(frozen=True)
class SplitEntry:
    file: str  # the user's image, absolute path
    label: int  # index into class_names
    size: int  # bytes, when scanned
    mtime_ns: int  # modification time, when scanned
    # Name of the upright RGB copy in RUN/normalized/ that training reads instead (pictures
    # OpenCV cannot read but Pillow can; see hh.trainer.scan), or None when read as it is.
    normalized: str | None = None
    digest: str | None = None  # of the bytes, when scanned (records from before it have none)

    def status(self) -> str | None:
        """None when the file is as recorded, else "missing" or "changed". A file whose time
        alone changed (touched, copied with new times) is compared by content."""
        try:
            stat = os.stat(self.file)
        except OSError:
            return "missing"
        if stat.st_size != self.size:
            return "changed"
        if stat.st_mtime_ns != self.mtime_ns:
            try:
                same = self.digest is not None and file_digest(self.file) == self.digest
            except OSError:
                return "missing"
            return None if same else "changed"
        return None


def content_digest(data) -> str:
    """What identifies a file's bytes in the record (BLAKE2b: as fast as reading them)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_digest(path: str) -> str:
    with open(path, "rb") as handle:
        return content_digest(handle.read())


@dataclass
class RecordedSplit:
    class_names: tuple[str, ...]
    data_dir: str
    val_dir: str | None
    train: list[SplitEntry]
    validation: list[SplitEntry]
    # Files seen and not used (unusable, hidden, not images): not "added" later.
    skipped: list[str] = field(default_factory=list)

    def entries(self, split: str) -> list[SplitEntry]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.train if split == "train" else self.validation

    def folder(self, split: str, run_dir: Path) -> ImageFolder:
        """The images of one split as training reads them (normalized copies where recorded)."""
        entries = self.entries(split)
        root = Path(self.val_dir) if split == "validation" and self.val_dir else Path(self.data_dir)
        paths = tuple(str(run_dir / "normalized" / e.normalized) if e.normalized else e.file for e in entries)
        return ImageFolder(root, self.class_names, paths, tuple(e.label for e in entries))

    def drift(self, splits: tuple[str, ...] = SPLITS) -> list[tuple[str, str]]:
        """(file, "missing" | "changed") for recorded files that are not as they were."""
        out = []
        for split in splits:
            for entry in self.entries(split):
                status = entry.status()
                if status:
                    out.append((entry.file, status))
        return out

    def added(self) -> list[str]:
        """Images now in the data folders that the record does not know (added since)."""
        known = {e.file for e in (*self.train, *self.validation)} | set(self.skipped)
        found: list[str] = []
        for root in (self.data_dir, self.val_dir):
            if root is None:
                continue
            try:
                folder = list_image_folder(root)
            except UserError:
                continue  # a folder that no longer lists shows up as missing files instead
            found.extend(str(Path(p).absolute()) for p in folder.paths if str(Path(p).absolute()) not in known)
        return found

    def to_json(self) -> str:
        record = {
            "version": SPLIT_VERSION,
            "class_names": list(self.class_names),
            "data_dir": self.data_dir,
            "val_dir": self.val_dir,
            "train": [asdict(e) for e in self.train],
            "validation": [asdict(e) for e in self.validation],
            "skipped": self.skipped,
        }
        return json.dumps(record, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RecordedSplit:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != SPLIT_VERSION:
            raise ValueError(f"not a version {SPLIT_VERSION} split record")
        return cls(
            class_names=tuple(data["class_names"]),
            data_dir=data["data_dir"],
            val_dir=data["val_dir"],
            train=[SplitEntry(**e) for e in data["train"]],
            validation=[SplitEntry(**e) for e in data["validation"]],
            skipped=list(data.get("skipped", [])),
        )


def describe_drift(drift: list[tuple[str, str]], first: int = 3) -> str:
    """'2 missing, 1 changed: a.jpg (missing), b.jpg (missing), c.jpg (changed)'."""
    counts: dict[str, int] = {}
    for _, status in drift:
        counts[status] = counts.get(status, 0) + 1
    head = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    named = ", ".join(f"{path} ({status})" for path, status in drift[:first])
    more = f" and {len(drift) - first} more" if len(drift) > first else ""
    return f"{head}: {named}{more}"
