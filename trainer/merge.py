"""Fold images collected in the field into a training folder (`hh-data merge`).

hh-camera --collect files frames someone labelled on the live view into DIR/labelled/<class>/.
Merging copies them into the training folder's class folders, the user's files untouched:
an image whose bytes are already anywhere in the training folder is a duplicate and skipped
(a frame filed twice, or merged twice), a name that is taken gets a suffix, and a class the
training folder does not have is refused (a new class is a new model; make its folder first).
The next hh-train records the merged images in its split like any other.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..edge.errors import UserError
from ..edge.folders import list_image_folder


def content_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class MergeReport:
    added: dict[str, int] = field(default_factory=dict)  # class -> new images
    duplicates: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.added.values())

    def line(self, target: Path) -> str:
        per_class = ", ".join(f"{name} {n}" for name, n in self.added.items() if n) or "none"
        return f"merged {self.total} new images into {target} ({per_class}); {len(self.duplicates)} duplicates skipped"


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
    seen = {content_hash(Path(p)) for p in existing.paths}
    # Files that are not listed as images (other types) do not count; hidden temp files neither.
    report = MergeReport(added={name: 0 for name in incoming.class_names})
    for path, label in zip(incoming.paths, incoming.labels):
        path = Path(path)
        digest = content_hash(path)
        if digest in seen:
            report.duplicates.append(str(path))
            continue
        name = incoming.class_names[label]
        destination = target / name / path.name
        n = 1
        while destination.exists():
            destination = target / name / f"{path.stem}-{n}{path.suffix}"
            n += 1
        tmp = destination.with_name(f".{destination.name}.merging")
        shutil.copyfile(path, tmp)
        tmp.replace(destination)
        seen.add(digest)
        report.added[name] += 1
    return report
