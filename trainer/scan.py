"""Check every image before training, so training never dies mid-epoch on a bad file.

Folders scraped together from phones hold zero-byte files, truncated JPEGs, HTML pages saved as
.jpg, HEIC or WebP under a JPEG name, 1x1 tracking pixels. Each file is opened and fully decoded
with Pillow (in parallel threads; Pillow releases the GIL while decoding) and sorted into:

- good: TensorFlow's decoders read it as it is;
- needs normalising: a real picture TensorFlow would read wrongly or not at all (CMYK JPEG,
  EXIF-rotated photo, palette or 16-bit BMP, a WebP/TIFF behind an image extension). A copy is
  written once as upright RGB PNG into the run folder's cache and trained on instead; the
  user's file is never changed. OpenCV on the device reads these the same way (it applies EXIF
  orientation and converts CMYK), so training and the field still agree;
- bad: unreadable, truncated, empty or too small. Skipped and reported, or an error with --strict.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from hh.edge.errors import OutOfSpace, UserError
from hh.edge.files import atomic_path
from hh.edge.folders import ImageFolder

MIN_IMAGE_SIDE = 16  # smaller is a thumbnail or a tracking pixel, not a photo of a leaf
EXIF_ORIENTATION = 0x0112
# What tf.io.decode_image reads correctly as it is, by (format, mode).
TF_NATIVE = {
    "JPEG": {"RGB", "L"},
    "PNG": {"RGB", "RGBA", "L", "LA", "P", "I", "I;16", "I;16B", "1"},
    "GIF": {"P", "L", "RGB"},
    "BMP": {"RGB", "RGBA"},
}
BAD_FILES_NAME = "bad_files.txt"


@dataclass(frozen=True)
class FileVerdict:
    path: str
    problem: str | None = None  # why it is bad, or None
    normalise: str | None = None  # why it needs an RGB copy, or None
    size: int = -1  # bytes and modification time when scanned: the recorded split compares them
    mtime_ns: int = -1
    load_path: str | None = None  # what training reads: the file itself or its normalised copy


@dataclass
class ScanReport:
    checked: int = 0
    bad: list[FileVerdict] = field(default_factory=list)
    normalised: list[FileVerdict] = field(default_factory=list)
    # Not images of a class: hidden files, other file types, broken links, stray images.
    ignored: list[FileVerdict] = field(default_factory=list)
    kept: list[FileVerdict] = field(default_factory=list)  # what training uses, in folder order

    def summary(self, first: int = 5) -> str:
        lines = [
            f"checked {self.checked} images: {len(self.bad)} unusable, {len(self.normalised)} converted to RGB; "
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


def inspect_file(path: str) -> FileVerdict:
    """Open and fully decode one file; say whether it is bad or needs normalising."""
    try:
        stat = os.stat(path)
    except OSError as exc:
        return FileVerdict(path, problem=f"cannot read ({exc.strerror})")
    try:
        verdict = _inspect_image(path)
    except Exception as exc:  # noqa: BLE001 - one bad file must never end a scan of thousands
        verdict = FileVerdict(path, problem=f"cannot be checked ({type(exc).__name__}: {exc})")
    return FileVerdict(verdict.path, verdict.problem, verdict.normalise, stat.st_size, stat.st_mtime_ns)


def _inspect_image(path: str) -> FileVerdict:
    if os.path.getsize(path) == 0:
        return FileVerdict(path, problem="empty file (0 bytes)")
    try:
        with Image.open(path) as image:
            fmt, mode = image.format, image.mode
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            width, height = image.size
            if fmt == "JPEG":
                # Decode at 1/8 scale: several times faster, and still reads every byte, so a
                # truncated file fails here as it would in training.
                image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
    except UnidentifiedImageError:
        return FileVerdict(path, problem="not an image (unknown or unsupported format)")
    except Image.DecompressionBombError as exc:
        return FileVerdict(path, problem=f"too large to decode safely ({exc})")
    except (OSError, SyntaxError, ValueError) as exc:
        return FileVerdict(path, problem=f"damaged image ({str(exc).strip() or type(exc).__name__})")
    if min(width, height) < MIN_IMAGE_SIDE:
        return FileVerdict(path, problem=f"too small ({width}x{height} px)")
    if fmt not in TF_NATIVE:
        return FileVerdict(path, normalise=f"{fmt} format")
    if mode not in TF_NATIVE[fmt]:
        return FileVerdict(path, normalise=f"{fmt} in {mode} mode")
    if orientation not in (None, 1):
        return FileVerdict(path, normalise=f"EXIF orientation {orientation}")
    return FileVerdict(path)


def normalised_copy(path: str, cache_dir: Path) -> str:
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
    """The folder with bad files dropped and odd ones replaced by normalised copies."""
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(workers) as pool:
        verdicts = list(pool.map(inspect_file, folder.paths, chunksize=16))
    report = ScanReport(checked=len(verdicts))
    report.ignored.extend(FileVerdict(path, problem=reason) for path, reason in folder.ignored)
    keep_paths: list[str] = []
    keep_labels: list[int] = []
    for verdict, label in zip(verdicts, folder.labels):
        if verdict.problem:
            report.bad.append(verdict)
            continue
        path = verdict.path
        if verdict.normalise:
            try:
                path = normalised_copy(path, cache_dir)
            except (OutOfSpace, PermissionError):
                raise
            except Exception as exc:  # noqa: BLE001 - skip this file, never abort the scan
                report.bad.append(FileVerdict(verdict.path, problem=f"cannot be converted to RGB ({exc})"))
                continue
            report.normalised.append(verdict)
        report.kept.append(FileVerdict(verdict.path, None, verdict.normalise, verdict.size, verdict.mtime_ns, path))
        keep_paths.append(path)
        keep_labels.append(label)
    cleaned = ImageFolder(folder.root, folder.class_names, tuple(keep_paths), tuple(keep_labels), folder.ignored)
    for name, count in cleaned.counts().items():
        if count == 0:
            raise UserError(f"class {name} in {folder.root} has no usable images (all {folder.counts()[name]} are bad)")
    return cleaned, report


def enforce(report: ScanReport, strict: bool, where: str) -> None:
    if strict and report.bad:
        first = report.bad[0]
        raise UserError(f"{len(report.bad)} unusable image(s) in {where} ({{param:strict}}), first {first.path}: {first.problem}")
