"""Class folders from a labels file (`hh-data import`): how public and field data sets come.

The public cassava leaf set is a folder of photos and a CSV of `image_id,label` (its labels
numbers, with a JSON file naming them); many field collections are the same, or a spreadsheet
saved as CSV. hh trains on a folder of class folders, so this makes one:

    OUT/<class>/<photo>    a hard link to the photo where the file system allows (no copy of
                           gigabytes, nothing changed in the source), else a copy

Rows are read as (image, label): with a header, from the columns named like an image
(`image`, `image_id`, `file`, `filename`, `path`) and a label (`label`, `class`, `category`,
`disease`); without one, the first two columns. Missing photos, photos listed twice (the same
label: kept once; two labels: left out, since neither can be trusted), unreadable rows and
labels that cannot be folder names are counted and named, never fatal one by one. OUT is built
under a temporary name beside it and renamed when complete: an interrupted import leaves no
half-made data set.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..edge.errors import OutOfSpace, ParameterError, UserError
from ..edge.files import is_out_of_space, pid_alive, read_regular_file, unusable_path
from ..edge.folders import IMAGE_EXTENSIONS, files_below, is_image_file
from ..edge.spec import label_problem

IMAGE_COLUMNS = ("image", "image_id", "file", "filename", "file_name", "path", "image_path")
LABEL_COLUMNS = ("label", "class", "category", "disease", "class_name")
MAX_FIELD = 4096  # a cell longer than any file name or label: not a labels file
# Far beyond any real one (the public cassava set's: 0.5 MB for 21,000 photos; its names: 200 bytes).
MAX_LABELS_BYTES = 256 * 10**6
MAX_NAMES_BYTES = 10**6


@dataclass
class ImportReport:
    counts: dict[str, int] = field(default_factory=dict)  # class -> images
    missing: list[str] = field(default_factory=list)  # listed, not found
    repeated: list[str] = field(default_factory=list)  # listed again with the same label (kept once)
    conflicting: list[str] = field(default_factory=list)  # listed with two labels (left out)
    bad_rows: list[str] = field(default_factory=list)  # "line N: why"
    copied: int = 0  # images copied because a hard link was not possible
    unlisted: int = 0  # photos in the folder that no row names

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def case_twins(self) -> list[str]:
        """Classes whose names differ only in case ("Healthy", "healthy"): likely one class."""
        seen: dict[str, list[str]] = {}
        for name in self.counts:
            seen.setdefault(name.casefold(), []).append(name)
        return [" / ".join(sorted(names)) for names in seen.values() if len(names) > 1]

    def lines(self, out: Path) -> list[str]:
        per_class = ", ".join(f"{name} {n}" for name, n in sorted(self.counts.items()))
        how = "hard links" if not self.copied else f"{self.total - self.copied} hard links, {self.copied} copies"
        lines = [f"imported {self.total} images into {out} ({how}): {per_class}"]
        if self.unlisted:
            lines.append(f"{self.unlisted} photos in the folder are not in the labels file (not imported)")
        for twins in self.case_twins():
            lines.append(f"note: classes {twins} differ only in case: one class? correct the labels file and import again")
        for what, items in (
            ("listed but not found", self.missing),
            ("listed twice with the same label (kept once)", self.repeated),
            ("listed with two labels (left out)", self.conflicting),
            ("rows not read", self.bad_rows),
        ):
            if items:
                more = f" and {len(items) - 3} more" if len(items) > 3 else ""
                lines.append(f"{len(items)} {what}: {', '.join(items[:3])}{more}")
        return lines


def read_label_names(path: Path) -> dict[str, str]:
    """A JSON object from the label as written in the CSV to a class name (the cassava set's
    label_num_to_disease_map.json: {"0": "Cassava Bacterial Blight (CBB)", ...})."""
    try:
        raw = read_regular_file(path, "file", MAX_NAMES_BYTES)
    except UserError as exc:  # a folder, a pipe, a device, too large: refused before it is read
        raise ParameterError("names", str(exc)) from None
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, RecursionError):  # UnicodeDecodeError too; RecursionError: nested beyond reason
        raise ParameterError("names", f'{path}: not JSON in UTF-8 (expected {{"0": "class name", ...}})') from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ParameterError("names", f"{path}: expected a JSON object of label -> class name")
    return {str(k).strip(): v.strip() for k, v in data.items()}


def read_labels_file(labels_file: Path) -> bytes:
    """The labels file's bytes: a regular file of a sane size (a folder, a pipe or /dev/zero is
    refused before it is read)."""
    try:
        return read_regular_file(labels_file, "file", MAX_LABELS_BYTES)
    except UserError as exc:
        raise ParameterError("labels_file", str(exc)) from None


def read_rows(labels_file: Path, data: bytes, images: Path, report: ImportReport) -> list[tuple[int, str, str]]:
    """(line number, image, label) for every row of the CSV (`data`, the bytes of `labels_file`).
    Its first row is a header when it names known columns, or when it names no photo while the
    next row does."""
    csv.field_size_limit(MAX_FIELD)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{labels_file}: not UTF-8 text; save it as CSV UTF-8 (spreadsheets offer it) and import again") from None
    first = text.split("\n", 1)[0]
    # Spreadsheets save with semicolons where the comma is the decimal mark, or with tabs.
    delimiter = next((d for d in (",", ";", "\t") if d in first), ",")
    try:
        rows = list(enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1))
    except csv.Error as exc:
        raise UserError(f"{labels_file}: not a CSV labels file ({str(exc).splitlines()[0][:120]})") from None
    rows = [(n, row) for n, row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise UserError(f"{labels_file}: no rows")
    header = [cell.strip().lower() for cell in rows[0][1]]
    image_col, label_col = 0, 1

    def names_a_photo(row: list[str]) -> bool:
        path = images / row[0].strip() if row else None
        return path is not None and unusable_path(path) is None and path.is_file()

    looks_like_header = len(rows) > 1 and not names_a_photo(rows[0][1]) and names_a_photo(rows[1][1])
    if looks_like_header or any(name in header for name in IMAGE_COLUMNS + LABEL_COLUMNS):
        image_at = [header.index(n) for n in IMAGE_COLUMNS if n in header]
        label_at = [header.index(n) for n in LABEL_COLUMNS if n in header]
        if not image_at or not label_at:
            raise UserError(
                f"{labels_file}: its header {rows[0][1]} needs an image column ({', '.join(IMAGE_COLUMNS)}) "
                f"and a label column ({', '.join(LABEL_COLUMNS)})"
            )
        image_col, label_col = image_at[0], label_at[0]
        rows = rows[1:]
    out = []
    for number, row in rows:
        if len(row) <= max(image_col, label_col):
            report.bad_rows.append(f"line {number}: {len(row)} column(s)")
            continue
        image, label = row[image_col].strip(), row[label_col].strip()
        if not image or not label:
            report.bad_rows.append(f"line {number}: {'no image' if not image else 'no label'}")
            continue
        out.append((number, image, label))
    if not out:
        raise UserError(f"{labels_file}: no row names an image and its label")
    return out


def short(name: str, keep: int = 60) -> str:
    """A name as a line shows it: quoted, and cut in the middle when long."""
    return repr(name if len(name) <= keep else f"{name[: keep // 2]}...{name[-keep // 2 :]}")


def plan_import(
    labels_file: Path, data: bytes, images: Path, names: dict[str, str] | None, report: ImportReport
) -> dict[str, list[Path]]:
    """class -> the photos to put in its folder, after checking every row of `labels_file` (`data`)."""
    wanted: dict[Path, tuple[str, int]] = {}
    labels_of: dict[Path, set[str]] = {}
    root = images.resolve()
    for number, image, label in read_rows(labels_file, data, images, report):
        if names is not None:
            if label not in names:
                report.bad_rows.append(f"line {number}: label {label!r} is not in the names file")
                continue
            label = names[label]
        problem = label_problem(label)
        if problem:
            report.bad_rows.append(f"line {number}: label {label!r} {problem}")
            continue
        too_long = unusable_path(images / image)
        if too_long:
            report.bad_rows.append(f"line {number}: {short(image)} {too_long}")
            continue
        path = (images / image).resolve()
        if not path.is_relative_to(root):  # "../../etc/passwd" in a downloaded CSV
            report.bad_rows.append(f"line {number}: {image!r} is outside {images}")
            continue
        if not path.is_file():
            report.missing.append(image)
            continue
        if not is_image_file(path) or path.stat().st_size == 0:
            report.bad_rows.append(f"line {number}: {image!r} is not an image file ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            continue
        labels_of.setdefault(path, set()).add(label)
        if path in wanted:
            if wanted[path][0] == label:
                report.repeated.append(image)
            continue
        wanted[path] = (label, number)
    report.unlisted = sum(1 for p in files_below(images)[0] if p.resolve() not in labels_of)
    plan: dict[str, list[Path]] = {}
    for path, (label, _) in wanted.items():
        if len(labels_of[path]) > 1:
            report.conflicting.append(f"{path.name} ({', '.join(sorted(labels_of[path]))})")
            continue
        plan.setdefault(label, []).append(path)
    if not plan:
        raise UserError(f"{labels_file}: none of its rows names a photo found in {images}")
    return plan


def link_or_copy(source: Path, target: Path) -> bool:
    """Make `target` the same photo as `source`: a hard link (True), or a copy (False) where
    links are impossible (another file system, a FAT card)."""
    try:
        os.link(source, target)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
    shutil.copyfile(source, target)
    return False


def import_labels(labels_file: Path, images: Path, out: Path, names_file: Path | None = None) -> ImportReport:
    """Make OUT/<class>/<photo> from a labels file (see the module's doc). OUT must be new or empty."""
    labels_file, images, out = Path(labels_file), Path(images), Path(out)
    data = read_labels_file(labels_file)  # refused here, before anything else is looked at
    if not images.is_dir():
        raise ParameterError("images", f"{images}: not a folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ParameterError("out", f"{out} exists and is not an empty folder; give a new one")
    if out.resolve().is_relative_to(images.resolve()):
        raise ParameterError("out", f"{out} is inside the photos' folder {images}; write it somewhere else")
    names = read_label_names(names_file) if names_file is not None else None
    report = ImportReport()
    plan = plan_import(labels_file, data, images, names, report)
    prefix = f".{out.name}.importing-"  # not a glob: a name may hold [ or *
    for left in [p for p in out.parent.iterdir() if p.name.startswith(prefix)] if out.parent.is_dir() else []:
        pid = left.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(left, ignore_errors=True)
    staging = out.with_name(f".{out.name}.importing-{os.getpid()}")
    try:
        for label, paths in sorted(plan.items()):
            folder = staging / label
            folder.mkdir(parents=True)
            for path in paths:
                target, n = folder / path.name, 1
                while target.exists():  # the same name from two sub-folders of the photos
                    n += 1
                    target = folder / f"{path.stem}-{n}{path.suffix}"
                report.copied += not link_or_copy(path, target)
            report.counts[label] = len(paths)
        if out.exists():
            out.rmdir()  # empty (checked): the finished folder takes its name
        os.rename(staging, out)
    except OSError as exc:
        if is_out_of_space(exc):
            raise OutOfSpace(f"no space left to import into {out} ({exc.strerror}); nothing was written") from None
        raise UserError(f"cannot write {out} ({exc.strerror or exc}); nothing was written") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report
