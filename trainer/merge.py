"""Fold images collected in the field into a training folder (`hh-data merge`).

hh-camera --collect files frames someone labelled on the live view into DIR/labelled/<class>/.
Merging copies them into the training folder's class folders, the user's files untouched:

- an image whose bytes are already anywhere in the training folder is a duplicate and skipped
  (a frame filed twice, or merged twice);
- a name that is taken (by anything, a dangling link too) gets a suffix: nothing is replaced;
- a class the training folder does not have is refused (a new class is a new model);
- only real images are copied: a file that does not decode, or a link (it could point
  anywhere, outside the folder), is skipped and named;
- every copy is written under a temporary name and renamed when complete; a full or
  read-only training folder stops the merge in one line that says what was merged so far.

The next hh-train records the merged images in its split like any other.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..edge.errors import OutOfSpace, UserError
from ..edge.files import create_new, is_within
from ..edge.folders import list_image_folder
from ..edge.preprocess import decode_image

log = logging.getLogger("hh.data")
# hh-camera --collect keeps the model's own guesses here: labels nobody checked.
UNSURE_FOLDER = "unsure"


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class MergeReport:
    added: dict[str, int] = field(default_factory=dict)  # class -> new images
    duplicates: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: why", not copied

    @property
    def total(self) -> int:
        return sum(self.added.values())

    def line(self, target: Path) -> str:
        per_class = ", ".join(f"{name} {n}" for name, n in self.added.items() if n) or "none"
        skipped = f"; {len(self.skipped)} not images or links, skipped" if self.skipped else ""
        return f"merged {self.total} new images into {target} ({per_class}); {len(self.duplicates)} duplicates skipped{skipped}"


def merge(source: str | Path, target: str | Path) -> MergeReport:
    source, target = Path(source), Path(target)
    incoming = list_image_folder(source, "folder of collected images", min_classes=1)
    existing = list_image_folder(target, "training folder")
    unknown = sorted(set(incoming.class_names) - set(existing.class_names))
    if unknown:
        raise UserError(
            f"{source} has classes the training folder {target} does not: {', '.join(unknown)} "
            "(a new class makes a new model: create its folder in the training folder first)"
        )
    if source.resolve() == target.resolve():
        raise UserError(f"{source} is the training folder itself; merge another folder into it")
    if source.name == UNSURE_FOLDER:
        log.warning(
            f"{source} holds frames filed under the model's own guesses, which nobody checked: training on them teaches "
            "the model its own mistakes (merge DIR/labelled, the frames a person labelled)"
        )
    for name in incoming.class_names:
        if not is_within(target / name, target):  # a class folder that is a link elsewhere
            raise UserError(f"{target / name} leads outside {target} (a link); merge into the real folder")
    seen = {content_hash(Path(p).read_bytes()) for p in existing.paths}
    report = MergeReport(added={name: 0 for name in incoming.class_names})
    report.skipped.extend(f"{path}: {why}" for path, why in incoming.ignored if why != "hidden file")
    for path_text, label in zip(incoming.paths, incoming.labels):
        path = Path(path_text)
        data, why = _image_bytes(path, source)
        if data is None:
            report.skipped.append(f"{path}: {why}")
            continue
        digest = content_hash(data)
        if digest in seen:
            report.duplicates.append(str(path))
            continue
        name = incoming.class_names[label]
        try:
            create_new(target / name / path.name, data)
        except (OutOfSpace, OSError) as exc:
            why = str(exc) if isinstance(exc, OutOfSpace) else f"cannot write in {target / name} ({exc.strerror or exc})"
            raise UserError(f"{why}; stopped after {report.line(target)}") from None
        seen.add(digest)
        report.added[name] += 1
    for line in report.skipped[:5]:
        log.warning(f"skipped {line}")
    return report


def _image_bytes(path: Path, source: Path) -> tuple[bytes | None, str]:
    """The file's bytes when it is a real image file inside `source`, else (None, why)."""
    if path.is_symlink() or not is_within(path, source):
        return None, "a link (only the folder's own files are merged)"
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read ({exc.strerror})"
    if decode_image(np.frombuffer(data, np.uint8)) is None:
        return None, "not a readable image"
    return data, ""
