"""Check every image before training, so training never dies mid-epoch on a bad file, and
decode it for training in the same pass.

Folders scraped together from phones hold zero-byte files, truncated JPEGs, HTML pages saved as
.jpg, HEIC or WebP under a JPEG name, 1x1 tracking pixels. Each file is read once and decoded
by the device's own decoder (OpenCV through hh.edge.preprocess, in a thread pool at the
machine's decode limit) and sorted into:

- good: OpenCV reads it, as hh-predict and hh-camera will (EXIF orientation applied, CMYK,
  palette, 16-bit, WebP or TIFF behind any image extension). When training keeps images in RAM,
  the decoded model input is kept too, so the first epoch decodes nothing again;
- needs normalizing: a real picture OpenCV cannot read but Pillow can (PCX behind a .jpg name,
  for one). A copy is written once as upright RGB PNG into the run folder's cache and trained
  on instead; the user's file is never changed;
- bad: unreadable by both, truncated, empty, too small or too large to decode safely. Skipped
  and reported, or an error with --strict.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..edge.errors import OutOfSpace, UserError
from ..edge.files import atomic_path
from ..edge.folders import ImageFolder
from ..edge.preprocess import MAX_IMAGE_PIXELS, REDUCED_READS, decode_image, image_size, to_model_rgb, too_large
from ..edge.spec import PreprocessingSpec
from .decode import DecodedImages, model_input_array, read_model_input, run_parallel
from .input_file import ImageVersion, InputFileWriter
from .split import content_digest

MIN_IMAGE_SIDE = 16  # smaller is a thumbnail or a tracking pixel, not a photo of a leaf
# Pillow judges the files OpenCV cannot read; it refuses a decompression bomb beyond twice
# its own limit, which is the edge's MAX_IMAGE_PIXELS.
assert 2 * (Image.MAX_IMAGE_PIXELS or 0) >= MAX_IMAGE_PIXELS
# A JPEG only checked, not kept, is decoded at 1/8 scale: libjpeg still reads every
# entropy-coded byte (a truncated file fails the same way) but skips most of the IDCT
# (the speed-up is in BENCHMARKS.md).
CHECK_ONLY_READ = dict(REDUCED_READS)[8]


@dataclass(frozen=True)
class FileVerdict:
    path: str
    problem: str | None = None  # why it is bad, or None
    normalize: str | None = None  # why it needs an RGB copy, or None
    size: int = -1  # bytes and modification time when scanned: the recorded split compares them
    mtime_ns: int = -1
    load_path: str | None = None  # what training reads: the file itself or its normalized copy
    digest: str | None = None  # of the file's bytes (hh.trainer.split.content_digest)


@dataclass
class ScanReport:
    checked: int = 0
    bad: list[FileVerdict] = field(default_factory=list)
    normalized: list[FileVerdict] = field(default_factory=list)
    # Not images of a class: hidden files, other file types, broken links, stray images.
    ignored: list[FileVerdict] = field(default_factory=list)
    kept: list[FileVerdict] = field(default_factory=list)  # what training uses, in folder order

    def summary(self, first: int = 5) -> str:
        lines = [
            f"checked {self.checked} images: {len(self.bad)} unusable, {len(self.normalized)} converted to RGB; "
            f"ignored {len(self.ignored)} other files"
        ]
        for verdict in self.bad[:first]:
            lines.append(f"  skipped {verdict.path}: {verdict.problem}")
        if len(self.bad) > first:
            lines.append(f"  ... and {len(self.bad) - first} more")
        # Hidden files (.DS_Store) are expected; name only what the user may have meant to train on.
        visible = [v for v in self.ignored if v.problem != "hidden file"]
        for verdict in visible[:first]:
            lines.append(f"  ignored {verdict.path}: {verdict.problem}")
        if len(visible) > first:
            lines.append(f"  ... and {len(visible) - first} more")
        return "\n".join(lines)


def inspect_file(path: str, spec: PreprocessingSpec | None = None, into: np.ndarray | None = None) -> FileVerdict:
    """Read and fully decode one file; say whether it is bad or needs normalizing.

    With `into` (a row of a model_input_array) and `spec`, a good file's model input is written
    there, decoded as training and the device decode it; without, a JPEG is only checked.
    """
    try:
        stat = os.stat(path)
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        return FileVerdict(path, problem=f"cannot read ({exc.strerror})")
    try:
        verdict = _inspect_image(path, data, spec, into)
    except Exception as exc:  # noqa: BLE001 - one bad file must never end a scan of thousands
        verdict = FileVerdict(path, problem=f"cannot be checked ({type(exc).__name__}: {exc})")
    return FileVerdict(
        verdict.path, verdict.problem, verdict.normalize, stat.st_size, stat.st_mtime_ns, digest=content_digest(data)
    )


def _inspect_image(path: str, data: np.ndarray, spec: PreprocessingSpec | None, into: np.ndarray | None) -> FileVerdict:
    if data.size == 0:
        return FileVerdict(path, problem="empty file (0 bytes)")
    header = image_size(data)  # the device's own header check: JPEG, PNG, GIF, BMP, WebP
    is_jpeg = header is not None and data[:2].tobytes() == b"\xff\xd8"
    if header is None:  # another format: Pillow reads the size from the header
        try:
            with Image.open(path) as image:
                header = image.size[::-1]
        except Exception:  # noqa: BLE001 - whatever it is, the full check below names it
            return _inspect_with_pillow(path)
    height, width = header
    problem = too_large(header)
    if problem:
        return FileVerdict(path, problem=problem)
    if min(width, height) < MIN_IMAGE_SIDE:
        return FileVerdict(path, problem=f"too small ({width}x{height} px)")
    keep = into is not None and spec is not None
    decoded: np.ndarray | None
    if is_jpeg and not keep:
        decoded = cv2.imdecode(data, CHECK_ONLY_READ)
    else:
        decoded = decode_image(data, spec, header if is_jpeg else None)
    if decoded is None:  # OpenCV 5 also refuses a truncated JPEG or PNG here
        return _inspect_with_pillow(path)
    if keep:
        assert spec is not None
        to_model_rgb(decoded, spec, out=into)
    return FileVerdict(path)


def _inspect_with_pillow(path: str) -> FileVerdict:
    """A file OpenCV could not read: bad, or a picture Pillow can normalize into a PNG copy."""
    try:
        with Image.open(path) as image:
            fmt, (width, height) = image.format, image.size
            image.load()
    except UnidentifiedImageError:
        return FileVerdict(path, problem="not an image (unknown or unsupported format)")
    except Image.DecompressionBombError as exc:
        return FileVerdict(path, problem=f"too large to decode safely ({exc})")
    except (OSError, SyntaxError, ValueError) as exc:
        return FileVerdict(path, problem=f"damaged image ({str(exc).strip() or type(exc).__name__})")
    if min(width, height) < MIN_IMAGE_SIDE:
        return FileVerdict(path, problem=f"too small ({width}x{height} px)")
    return FileVerdict(path, normalize=f"{fmt} format, which OpenCV cannot read")


def normalized_copy(path: str, cache_dir: Path) -> str:
    """An upright RGB PNG of `path` in cache_dir, written once (keyed by path, size and mtime)."""
    stat = os.stat(path)
    key = hashlib.sha1(f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:20]
    target = cache_dir / f"{key}.png"
    if not target.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            if upright.mode in ("I", "I;16", "I;16B"):
                upright = upright.point(lambda v: v / 257).convert("L")
            rgb = upright.convert("RGB")
        with atomic_path(target) as tmp:
            rgb.save(tmp, format="PNG")
    return str(target)


def scan_folder(folder: ImageFolder, cache_dir: Path, workers: int | None = None) -> tuple[ImageFolder, ScanReport]:
    """The folder with bad files dropped and odd ones replaced by normalized copies."""
    cleaned, report, _ = _scan(folder, cache_dir, None, workers)
    return cleaned, report


def scan_and_decode(
    folder: ImageFolder,
    cache_dir: Path,
    spec: PreprocessingSpec,
    workers: int | None = None,
    writer: InputFileWriter | None = None,
) -> tuple[ImageFolder, ScanReport, DecodedImages]:
    """scan_folder, keeping every usable image's model input: one decode per file in all.
    Kept in RAM, or, with `writer`, written to that new inputs file on disk."""
    cleaned, report, decoded = _scan(folder, cache_dir, spec, workers, writer)
    assert decoded is not None
    return cleaned, report, decoded


def _scan(
    folder: ImageFolder,
    cache_dir: Path,
    keep_for: PreprocessingSpec | None,
    workers: int | None,
    writer: InputFileWriter | None = None,
) -> tuple[ImageFolder, ScanReport, DecodedImages | None]:
    """With `keep_for`, every usable image's model input for that spec is kept too (in RAM,
    or in `writer`'s file)."""
    paths, spec = folder.paths, keep_for
    pixels = model_input_array(len(paths), spec) if spec is not None and writer is None else None

    def row_buffer(row: int) -> np.ndarray | None:
        if writer is not None:
            return writer.row()
        return None if pixels is None else pixels[row]

    def inspect(row: int) -> FileVerdict:
        into = row_buffer(row)
        verdict = inspect_file(paths[row], spec, into)
        if writer is not None and into is not None and not verdict.problem and not verdict.normalize:
            writer.write(row, into)
        return verdict

    verdicts = run_parallel(inspect, len(paths), workers)
    report = ScanReport(checked=len(verdicts))
    report.ignored.extend(FileVerdict(path, problem=reason) for path, reason in folder.ignored)
    keep_paths: list[str] = []
    keep_labels: list[int] = []
    row_of: dict[str, int] = {}
    versions: list[ImageVersion | None] = [None] * len(paths)
    for row, (verdict, label) in enumerate(zip(verdicts, folder.labels)):
        if verdict.problem:
            report.bad.append(verdict)
            if verdict.size >= 0:  # known as bad: a later scan that reuses the inputs file finds it bad again
                versions[row] = ImageVersion(
                    str(Path(verdict.path).absolute()), verdict.size, verdict.mtime_ns, verdict.digest, usable=False
                )
            continue
        path = verdict.path
        if verdict.normalize:
            try:
                path = normalized_copy(path, cache_dir)
                into = row_buffer(row)
                if into is not None and spec is not None:
                    read_model_input(path, spec, into)
                    if writer is not None:
                        writer.write(row, into)
            except (OutOfSpace, PermissionError):
                raise
            except Exception as exc:  # noqa: BLE001 - skip this file, never abort the scan
                report.bad.append(FileVerdict(verdict.path, problem=f"cannot be converted to RGB ({exc})"))
                continue
            report.normalized.append(verdict)
        report.kept.append(
            FileVerdict(verdict.path, None, verdict.normalize, verdict.size, verdict.mtime_ns, path, verdict.digest)
        )
        keep_paths.append(path)
        keep_labels.append(label)
        row_of[path] = row  # rows of bad files stay unused: dropping them would copy the array
        versions[row] = ImageVersion(str(Path(verdict.path).absolute()), verdict.size, verdict.mtime_ns, verdict.digest)
    cleaned = ImageFolder(folder.root, folder.class_names, tuple(keep_paths), tuple(keep_labels), folder.ignored)
    for label, (name, count) in enumerate(cleaned.counts().items()):
        if count == 0:
            # Where its files are: a class folder, or the negatives' folder (hh-train --negatives).
            where = os.path.commonpath([os.path.dirname(p) for p, lab in zip(folder.paths, folder.labels) if lab == label])
            raise UserError(f"class {name} ({where}) has no usable images (all {folder.counts()[name]} are bad)")
    if writer is not None:
        return cleaned, report, DecodedImages(writer.commit(versions), row_of)
    return cleaned, report, None if pixels is None else DecodedImages(pixels, row_of)


def enforce(report: ScanReport, strict: bool, where: str) -> None:
    if strict and report.bad:
        first = report.bad[0]
        raise UserError(f"{len(report.bad)} unusable image(s) in {where} ({{param:strict}}), first {first.path}: {first.problem}")
