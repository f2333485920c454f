"""A synthetic leaf-disease data set, made on the spot (the machine has no internet).

It has what makes real field photos harder than a studio set: leaves at different places in
the frame, of different sizes and angles, sometimes more than one, on cluttered backgrounds,
in images of different sizes and aspect ratios. The classes differ by what is *on* the leaf
(lesions, mottling, streaks), not by a colour that gives them away: leaf and background hues
are drawn from the same ranges for every class.

numpy + OpenCV only; deterministic for a seed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..edge.errors import OutOfSpace, ParameterError, UserError
from ..edge.files import atomic_path, atomic_write_bytes, atomic_write_text, check_output_dir

# Named after cassava conditions, the field case that motivates the toolkit.
CLASS_NAMES = ("healthy", "brown_spot", "mosaic", "streak")
MIN_SIDE, MAX_SIDE = 200, 500


@dataclass(frozen=True)
class Leaf:
    cx: float
    cy: float
    length: float  # half-length of the major axis, px
    width: float  # half-length of the minor axis, px
    angle: float  # degrees


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    # Soil, dry grass, shade: earthy BGR with red >= green-ish >= blue.
    blue = rng.uniform(30, 90)
    green_ = blue + rng.uniform(10, 50)
    base = np.array([blue, green_, green_ + rng.uniform(-15, 35)])
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    # Low-frequency lighting and texture.
    coarse = rng.normal(0, 12, (max(2, h // 40), max(2, w // 40), 3)).astype(np.float32)
    img += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 6, (h, w, 3)).astype(np.float32)
    # Clutter: stems, grass blades, stones.
    for _ in range(rng.integers(6, 18)):
        colour = rng.uniform(20, 170, 3).tolist()
        if rng.random() < 0.6:
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p2 = (int(p1[0] + rng.normal(0, w / 4)), int(p1[1] + rng.normal(0, h / 4)))
            cv2.line(img, p1, p2, colour, int(rng.integers(1, 4)), cv2.LINE_AA)
        else:
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.integers(3, 18)), int(rng.integers(3, 18)))
            cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    return img


def _leaf_mask(h: int, w: int, leaf: Leaf) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (int(leaf.cx), int(leaf.cy)), (int(leaf.length), int(leaf.width)), leaf.angle, 0, 360, 255, -1, cv2.LINE_AA)
    return mask


def _along(leaf: Leaf, t: float, s: float) -> tuple[int, int]:
    """Point at fraction t along the major axis and s across it (both in [-1, 1])."""
    a = np.deg2rad(leaf.angle)
    x = leaf.cx + t * leaf.length * np.cos(a) - s * leaf.width * np.sin(a)
    y = leaf.cy + t * leaf.length * np.sin(a) + s * leaf.width * np.cos(a)
    return int(x), int(y)


def _draw_veins(layer: np.ndarray, leaf: Leaf, colour) -> None:
    thickness = max(1, int(leaf.width / 14))
    cv2.line(layer, _along(leaf, -0.95, 0), _along(leaf, 0.95, 0), colour, thickness, cv2.LINE_AA)
    for t in np.linspace(-0.6, 0.7, 5):
        for side in (-1, 1):
            cv2.line(layer, _along(leaf, t, 0), _along(leaf, t + 0.25, side * 0.8), colour, max(1, thickness // 2), cv2.LINE_AA)


def _spots(layer, leaf, rng):
    for _ in range(rng.integers(5, 11)):
        centre = _along(leaf, rng.uniform(-0.7, 0.7), rng.uniform(-0.6, 0.6))
        r = max(2, int(leaf.width * rng.uniform(0.12, 0.22)))
        cv2.circle(layer, centre, int(r * 1.5), (60, 190, 210), -1, cv2.LINE_AA)  # yellow halo
        cv2.circle(layer, centre, r, (20, 45, 90), -1, cv2.LINE_AA)  # brown lesion


def _mosaic(layer, leaf, rng):
    for _ in range(rng.integers(10, 20)):
        centre = _along(leaf, rng.uniform(-0.9, 0.9), rng.uniform(-0.9, 0.9))
        axes = (max(2, int(leaf.width * rng.uniform(0.15, 0.35))), max(2, int(leaf.width * rng.uniform(0.1, 0.25))))
        cv2.ellipse(layer, centre, axes, float(rng.uniform(0, 180)), 0, 360, (70, 215, 225), -1, cv2.LINE_AA)


def _streaks(layer, leaf, rng):
    for _ in range(rng.integers(3, 6)):
        s = rng.uniform(-0.7, 0.7)
        t0 = rng.uniform(-0.9, 0.0)
        thickness = max(2, int(leaf.width * rng.uniform(0.08, 0.14)))
        cv2.line(layer, _along(leaf, t0, s), _along(leaf, t0 + rng.uniform(0.6, 1.0), s), (30, 60, 110), thickness, cv2.LINE_AA)


SYMPTOMS: dict[str, Callable | None] = {
    "healthy": None,
    "brown_spot": _spots,
    "mosaic": _mosaic,
    "streak": _streaks,
}


def render_image(class_name: str, rng: np.random.Generator) -> np.ndarray:
    """One BGR uint8 image of `class_name` at a random size and aspect ratio."""
    h, w = (int(v) for v in rng.integers(MIN_SIDE, MAX_SIDE + 1, 2))
    img = _background(rng, h, w)
    n_leaves = 1 if rng.random() < 0.75 else 2
    for _ in range(n_leaves):
        side = min(h, w)
        length = side * rng.uniform(0.22, 0.42) / (1 if n_leaves == 1 else 1.3)
        leaf = Leaf(
            cx=rng.uniform(length * 0.6, w - length * 0.6),
            cy=rng.uniform(length * 0.6, h - length * 0.6),
            length=length,
            width=length * rng.uniform(0.38, 0.55),
            angle=float(rng.uniform(0, 180)),
        )
        # Same hue range for every class: green from yellowish to bluish, light to dark.
        green = np.array([rng.uniform(20, 90), rng.uniform(110, 200), rng.uniform(30, 120)], np.float32)
        layer = np.zeros_like(img)
        layer[:] = green
        layer += rng.normal(0, 5, layer.shape).astype(np.float32)
        _draw_veins(layer, leaf, (green * 0.7).tolist())
        symptom = SYMPTOMS[class_name]
        if symptom is not None:
            symptom(layer, leaf, rng)
        mask = cv2.GaussianBlur(_leaf_mask(h, w, leaf), (3, 3), 0).astype(np.float32)[..., None] / 255.0
        img = img * (1 - mask) + layer * mask
    brightness = rng.uniform(0.75, 1.2)
    return np.clip(img * brightness, 0, 255).astype(np.uint8)


MANIFEST = ".hh-synth.json"  # the files a synth run wrote, so --overwrite removes only those


def write_dataset(
    out_dir: str | Path,
    classes: int = 2,
    per_class: int = 100,
    val_fraction: float = 0.2,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
) -> dict[str, dict[str, int]]:
    """Write OUT/train/<class>/*.jpg and OUT/validation/<class>/*.jpg; return counts per split.

    OUT must be new or empty. With overwrite, the files an earlier run wrote (listed in
    OUT/.hh-synth.json) are removed first, and nothing else is touched: a smaller second set
    never leaves the first one's images behind in the other split.
    """
    if not 2 <= classes <= len(CLASS_NAMES):
        raise ParameterError("classes", f"must be between 2 and {len(CLASS_NAMES)}, got {classes}")
    if per_class < 2:
        raise ParameterError("per_class", f"must be at least 2, got {per_class}")
    out_dir = Path(out_dir)
    check_output_dir(out_dir, "out_dir")
    names = CLASS_NAMES[:classes]
    n_val = max(1, round(per_class * val_fraction))
    targets = [
        (name, i, out_dir / ("validation" if i < n_val else "train") / name / f"{name}_{i:05d}.jpg")
        for name in names
        for i in range(per_class)
    ]
    previous = _previous_files(out_dir, overwrite)
    for _, _, path in targets:
        if path.exists() and path not in previous:
            raise ParameterError("out_dir", f"{path} exists and was not written by hh-data synth; choose another folder")
    for path in previous:
        path.unlink(missing_ok=True)
    counts: dict[str, dict[str, int]] = {"train": {}, "validation": {}}
    # Every file this run will write is listed before the first is written: a run cut short
    # at any point still lets --overwrite clean up after it.
    planned = [str(path.relative_to(out_dir)) for _, _, path in targets]
    atomic_write_text(out_dir / MANIFEST, json.dumps({"files": planned}, indent=0) + "\n")
    for done, (name, i, path) in enumerate(targets, start=1):
        if i == 0:
            # One generator per class: adding images to one class never changes another's.
            rng = np.random.default_rng([seed, names.index(name)])
        ok, jpeg = cv2.imencode(".jpg", render_image(name, rng), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise UserError(f"could not encode {path}")
        # Not fsynced: a synthetic image is cheap to make again, and a thousand fsyncs are not.
        atomic_write_bytes(path, jpeg.tobytes(), sync=False)
        split = path.parent.parent.name
        counts[split][name] = counts[split].get(name, 0) + 1
        if progress:
            progress(done, len(targets))
    return counts


def _previous_files(out_dir: Path, overwrite: bool) -> set[Path]:
    """The files an earlier synth run wrote into out_dir (to be replaced), or refuse."""
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return set()
    if not overwrite:
        raise ParameterError(
            "out_dir",
            f"{out_dir} exists and is not empty; choose a new folder, or add {{param:overwrite}} to replace "
            "what an earlier hh-data synth wrote there",
        )
    manifest = out_dir / MANIFEST
    if not manifest.exists():
        return set()
    try:
        return {out_dir / name for name in json.loads(manifest.read_text())["files"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{manifest}: unreadable ({exc}); remove the folder's old images yourself") from None


def write_video(
    image_paths: list[str], out_path: str | Path, size: tuple[int, int] = (640, 480), fps: float = 10.0, repeat: int = 1
) -> Path:
    """An MJPEG .avi showing each image for `repeat` frames: a stand-in for a camera walk.

    Written to a temporary name and renamed, like every output of the toolkit.
    """
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".avi":
        raise ParameterError("out", f"{out_path}: the video is MJPEG in an .avi container; name it *.avi")
    with atomic_path(out_path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
        if not writer.isOpened():
            raise UserError(f"OpenCV cannot write {out_path}")
        try:
            for path in image_paths:
                frame = cv2.imread(str(path))
                if frame is None:
                    raise UserError(f"{path}: not a readable image")
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                for _ in range(repeat):
                    writer.write(frame)
        finally:
            writer.release()
        # OpenCV's writer says nothing when the disk fills: count what the file really holds.
        written = video_frames(tmp)
        expected = len(image_paths) * repeat
        if written < expected:
            raise OutOfSpace(f"{out_path}: only {written} of {expected} frames could be written (is the disk full?)")
    return out_path


def video_frames(path: Path) -> int:
    """How many frames a video file holds, counted by reading it."""
    capture = cv2.VideoCapture(str(path))
    count = 0
    try:
        while capture.grab():
            count += 1
    finally:
        capture.release()
    return count
