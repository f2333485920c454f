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

A collection exported from the phone's web app is a zip of the same layout (labelled/<class>/,
unsure/<predicted>/, collected.csv) and merges as it is: `hh-data merge collection.zip
data/train` takes its labelled/ frames. Its members are read, never extracted: only
labelled/<class>/<image> entries of a known class, a size each (MAX_MEMBER_BYTES) and a
decodable image are taken; names with folders, links or `..` cannot place a file anywhere.

The next hh-train records the merged images in its split like any other.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import lzma
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ..edge.errors import OutOfSpace, UserError
from ..edge.files import create_new, is_within
from ..edge.folders import IMAGE_EXTENSIONS, list_image_folder
from ..edge.preprocess import decode_image

log = logging.getLogger("hh.data")
# hh-camera --collect keeps the model's own guesses here: labels nobody checked.
UNSURE_FOLDER = "unsure"
LABELLED_FOLDER = "labelled"
# A phone photo is a few MB; anything far larger in a collection zip is not one (or a zip bomb).
MAX_MEMBER_BYTES = 64 * 2**20
# What all of a zip's images may expand to: photos do not compress, so a collection expands to
# about its own size; a zip that says it holds far more than it weighs is a zip bomb.
MIN_EXPANSION_BUDGET = 256 * 2**20
EXPANSION_RATIO = 20
# Everything reading a damaged member can raise: bad deflate data (zlib.error), an encrypted
# member (RuntimeError), bad LZMA data, a truncated or lying archive.
ZIP_READ_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    ValueError,
    NotImplementedError,
    EOFError,
    RuntimeError,
    zlib.error,
    lzma.LZMAError,
)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class MergeReport:
    added: dict[str, int] = field(default_factory=dict)  # class -> new images
    duplicates: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: why", not copied
    unlabelled: int = 0  # a collection zip's unsure frames: nobody said what they are

    @property
    def total(self) -> int:
        return sum(self.added.values())

    def line(self, target: Path) -> str:
        per_class = ", ".join(f"{name} {n}" for name, n in self.added.items() if n) or "none"
        skipped = f"; {len(self.skipped)} not images or links, skipped" if self.skipped else ""
        unlabelled = f"; {self.unlabelled} unsure frames not merged (label them first)" if self.unlabelled else ""
        return (
            f"merged {self.total} new images into {target} ({per_class}); {len(self.duplicates)} duplicates skipped"
            f"{skipped}{unlabelled}"
        )


@dataclass(frozen=True)
class IncomingImage:
    label: str  # its class
    name: str  # the file name it is filed under
    where: str  # as the report names it
    read: Callable[[], tuple[bytes | None, str]]  # its bytes, or (None, why not)


def merge(source: str | Path, target: str | Path) -> MergeReport:
    """Merge `source`, class folders or a collection zip, into the training folder `target`."""
    source, target = Path(source), Path(target)
    report = MergeReport()
    if source.is_file() and (source.suffix.lower() == ".zip" or zipfile.is_zipfile(source)):
        archive = _open_zip(source)
        with archive:
            return _merge_images(list(_zip_images(archive, source, report)), source, target, report)
    incoming = list_image_folder(source, "folder of collected images", min_classes=1)
    if source.resolve() == target.resolve():
        raise UserError(f"{source} is the training folder itself; merge another folder into it")
    if source.name == UNSURE_FOLDER:
        log.warning(
            f"{source} holds frames filed under the model's own guesses, which nobody checked: training on them teaches "
            "the model its own mistakes (merge DIR/labelled, the frames a person labelled)"
        )
    report.skipped.extend(f"{path}: {why}" for path, why in incoming.ignored if why != "hidden file")
    images = [
        IncomingImage(incoming.class_names[label], Path(p).name, p, functools.partial(_image_bytes, Path(p), source))
        for p, label in zip(incoming.paths, incoming.labels)
    ]
    return _merge_images(images, source, target, report)


def _merge_images(images: list[IncomingImage], source: Path, target: Path, report: MergeReport) -> MergeReport:
    existing = list_image_folder(target, "training folder")
    classes = sorted({image.label for image in images})
    unknown = sorted(set(classes) - set(existing.class_names))
    if unknown:
        raise UserError(
            f"{source} has classes the training folder {target} does not: {', '.join(unknown)} "
            "(a new class makes a new model: create its folder in the training folder first)"
        )
    for name in classes:
        if not is_within(target / name, target):  # a class folder that is a link elsewhere
            raise UserError(f"{target / name} leads outside {target} (a link); merge into the real folder")
    seen = {content_hash(Path(p).read_bytes()) for p in existing.paths}
    report.added = {name: 0 for name in classes}
    for image in images:
        data, why = image.read()
        if data is None:
            report.skipped.append(f"{image.where}: {why}")
            continue
        digest = content_hash(data)
        if digest in seen:
            report.duplicates.append(image.where)
            continue
        try:
            create_new(target / image.label / image.name, data)
        except OutOfSpace as exc:  # a full disk is exit 1, as every command says it
            raise OutOfSpace(f"{exc}; stopped after {report.line(target)}") from None
        except OSError as exc:
            why = f"cannot write in {target / image.label} ({exc.strerror or exc})"
            raise UserError(f"{why}; stopped after {report.line(target)}") from None
        seen.add(digest)
        report.added[image.label] += 1
    for line in report.skipped[:5]:
        log.warning(f"skipped {line}")
    return report


def _open_zip(source: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UserError(f"{source} cannot be read as a zip ({exc})") from None


def _zip_images(archive: zipfile.ZipFile, source: Path, report: MergeReport) -> Iterator[IncomingImage]:
    """The labelled images of a collection zip; everything else counted or named as skipped.
    Members that share their bytes with another (a zip bomb's trick: many entries, one member)
    and members beyond the zip's expansion budget are skipped before anything is decompressed."""
    found = 0
    overlapping = _overlapping_members(archive.infolist())
    budget = max(MIN_EXPANSION_BUDGET, EXPANSION_RATIO * source.stat().st_size)
    for info in archive.infolist():
        path = PurePosixPath(info.filename)
        where = f"{source}:{info.filename}"
        if info.is_dir() or path.name == "collected.csv":
            continue
        if path.parts[:1] == (UNSURE_FOLDER,):
            report.unlabelled += 1
            continue
        why = _zip_member_problem(info, path)
        if not why and id(info) in overlapping:
            why = "shares its bytes with another member (a zip bomb's trick); not read"
        if not why and info.file_size > budget:
            why = f"past what the whole zip may expand to ({budget / 2**20:g} MB for a zip of its size); not read"
        if why:
            report.skipped.append(f"{where}: {why}")
            continue
        budget -= info.file_size
        found += 1
        yield IncomingImage(path.parts[1], path.name, where, functools.partial(_zip_member_bytes, archive, info))
    if not found:
        raise UserError(
            f"{source} holds no labelled images ({LABELLED_FOLDER}/<class>/<image>): "
            "label frames on the phone (one tap on a class) before exporting the collection"
        )


def _overlapping_members(members: list[zipfile.ZipInfo]) -> set[int]:
    """The ids of members whose stored bytes start inside another member's (or at the same place):
    in a zip that was written, not crafted, every member has bytes of its own."""
    found: set[int] = set()
    previous_end = -1
    for info in sorted(members, key=lambda m: m.header_offset):
        if info.header_offset < previous_end:
            found.add(id(info))
        else:
            previous_end = info.header_offset + 30 + len(info.orig_filename.encode()) + info.compress_size
    return found


def _zip_member_problem(info: zipfile.ZipInfo, path: PurePosixPath) -> str:
    """Why a zip member is not a labelled image to merge ('' when it is one)."""
    from ..edge.spec import label_problem

    if len(path.parts) != 3 or path.parts[0] != LABELLED_FOLDER or path.is_absolute() or ".." in path.parts:
        return f"not a {LABELLED_FOLDER}/<class>/<image> entry"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a link (only images are merged)"
    if label_problem(path.parts[1]):
        return f"class name {path.parts[1]!r} {label_problem(path.parts[1])}"
    if label_problem(path.name) or path.suffix.lower() not in IMAGE_EXTENSIONS:
        return "not an image file name"
    if info.file_size > MAX_MEMBER_BYTES:
        return f"larger than {MAX_MEMBER_BYTES / 2**20:g} MB"
    return ""


def _zip_member_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[bytes | None, str]:
    try:
        with archive.open(info) as handle:
            data = handle.read(MAX_MEMBER_BYTES + 1)  # the header's size may lie: read no more than the bound
    except ZIP_READ_ERRORS as exc:
        return None, f"cannot be read ({str(exc)[:120] or type(exc).__name__})"
    if len(data) > MAX_MEMBER_BYTES:
        return None, f"larger than {MAX_MEMBER_BYTES / 2**20:g} MB"
    if decode_image(np.frombuffer(data, np.uint8)) is None:
        return None, "not a readable image"
    return data, ""


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
