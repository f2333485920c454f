"""Finding images in a folder of class folders, without TensorFlow.

Labels come from the sub-folder names in sorted order, as `flow_from_directory` did. It lives in
`edge` (stdlib only) so the trainer, the converter's calibration sampling and `hh-predict` on a
device all list a folder the same way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from .errors import ParameterError, UserError
from .spec import UNKNOWN_LABEL, label_problem

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif"})


@dataclass(frozen=True)
class ImageFolder:
    """Image paths with integer labels indexing `class_names`."""

    root: Path
    class_names: tuple[str, ...]
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    # Files that are not listed, each with the reason: hidden (.DS_Store), not an image type,
    # a broken link, or an image lying beside the class folders instead of inside one.
    ignored: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        out = {name: 0 for name in self.class_names}
        for label in self.labels:
            out[self.class_names[label]] += 1
        return out

    def subset(self, indices: list[int]) -> ImageFolder:
        return ImageFolder(
            self.root,
            self.class_names,
            tuple(self.paths[i] for i in indices),
            tuple(self.labels[i] for i in indices),
            self.ignored,
        )

    def sample_per_class(self, count: int, seed: int = 0) -> ImageFolder:
        """About `count` images drawn evenly across classes (all of a class when it has fewer)."""
        rng = random.Random(seed)
        per_class = max(1, -(-count // len(self.class_names)))
        chosen: list[int] = []
        for label in range(len(self.class_names)):
            members = [i for i, lab in enumerate(self.labels) if lab == label]
            rng.shuffle(members)
            chosen.extend(sorted(members[:per_class]))
        return self.subset(chosen)


def is_image_file(path: Path) -> bool:
    # Hidden files (.DS_Store, ._IMG_0001.jpg from macOS, our own .tmp files) are never images.
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


# The pictures hh writes into a run or report folder (plots, the evaluation's): not a data set's images.
HH_PICTURES = frozenset({"confusion.png", "mistakes.png", "reliability.png", "curves.png"})


def holds_images(folder: Path) -> bool:
    """Whether a folder has image files directly in it (as a class folder does), hh's own
    report pictures aside (a run folder is not a class)."""
    try:
        return any(is_image_file(entry) and entry.name not in HH_PICTURES for entry in folder.iterdir())
    except OSError:  # not there (yet), not a folder, not readable
        return False


def files_below(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """(images, [(other file, why it is not used)]) below a folder, at any depth, sorted."""
    images, others = [], []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() and not path.exists():
            others.append((str(path), "broken link (points to nothing)"))
            continue
        if not path.is_file():
            continue
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        if hidden:
            others.append((str(path), "hidden file"))
        elif is_image_file(path):
            images.append(path)
        else:
            others.append((str(path), "not an image file type"))
    return images, others


def check_class_name(name: str, folder: Path) -> None:
    """A class folder's name is its label (hh.edge.spec.label_problem says what a label may be)."""
    problem = label_problem(name)
    if problem:
        raise UserError(f"class folder {str(folder)!r}: its name {problem}; rename it")


def list_image_folder(root: str | Path, what: str = "data folder", min_classes: int = 2) -> ImageFolder:
    """List ROOT/<class>/**/<image>; every problem a user can make is a one-line UserError.

    min_classes: 2 for anything a classifier trains or is scored on; 1 for images to add to
    a training folder (hh-data merge)."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"{what} {root} does not exist")
    if not root.is_dir():
        raise UserError(f"{what} {root} is not a folder")
    # Sorted by name, with a class named UNKNOWN_LABEL last: a model answers that label as its
    # last output, whether it was trained from images (hh-train --negatives) or added by hh-convert.
    class_dirs = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: (p.name == UNKNOWN_LABEL, p.name)
    )
    loose_images = sorted(p for p in root.iterdir() if is_image_file(p))
    if not class_dirs:
        if loose_images:
            # The most common mistake: pointing at one class folder instead of its parent.
            raise UserError(
                f"{what} {root} holds images but no class sub-folders: it looks like a single class; "
                f"point at its parent {root.parent} (which should hold one sub-folder per class)"
            )
        raise UserError(f"{what} {root} has no class sub-folders (expected {root}/<class name>/<images>)")
    if len(class_dirs) < min_classes:
        raise UserError(f"{what} {root} has only one class folder ({class_dirs[0].name}); a classifier needs at least 2")
    for class_dir in class_dirs:
        check_class_name(class_dir.name, class_dir)
    paths: list[str] = []
    labels: list[int] = []
    ignored: list[tuple[str, str]] = [(str(p), "image beside the class folders, not in one") for p in loose_images]
    ignored.extend(
        (str(p), "broken link (points to nothing)") for p in sorted(root.iterdir()) if p.is_symlink() and not p.exists()
    )
    for label, class_dir in enumerate(class_dirs):
        images, others = files_below(class_dir)
        if not images:
            raise UserError(f"class folder {class_dir} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        paths.extend(str(p) for p in images)
        labels.extend([label] * len(images))
        ignored.extend(others)
    return ImageFolder(root, tuple(p.name for p in class_dirs), tuple(paths), tuple(labels), tuple(ignored))


def list_negatives(root: str | Path, what: str = "negatives folder") -> ImageFolder:
    """The images below `root` (at any depth) as one class, UNKNOWN_LABEL: photos that are none
    of the classes (soil, hands, other plants)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{what} {root} {'is not a folder' if root.exists() else 'does not exist'}")
    images, others = files_below(root)
    if not images:
        raise UserError(f"{what} {root} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return ImageFolder(root, (UNKNOWN_LABEL,), tuple(str(p) for p in images), (0,) * len(images), tuple(others))


def with_class(folder: ImageFolder, extra: ImageFolder) -> ImageFolder:
    """`folder` with the one class of `extra` added as its last class."""
    (name,) = extra.class_names
    same = [other for other in folder.class_names if other.casefold() == name.casefold()]
    if same:
        raise UserError(
            f"{folder.root} already has a class folder {same[0]!r}; give those images once, as a folder or as negatives"
        )
    label = len(folder.class_names)
    return ImageFolder(
        folder.root,
        (*folder.class_names, name),
        (*folder.paths, *extra.paths),
        (*folder.labels, *(label,) * len(extra)),
        (*folder.ignored, *extra.ignored),
    )


def split_validation(folder: ImageFolder, fraction: float, seed: int) -> tuple[ImageFolder, ImageFolder]:
    """A stratified, seeded split: the same folder, fraction and seed give the same split."""
    if not 0.0 < fraction < 1.0:
        raise ParameterError("val_split", f"must be between 0 and 1, got {fraction}")
    rng = random.Random(seed)
    train_idx: list[int] = []
    val_idx: list[int] = []
    for label, name in enumerate(folder.class_names):
        members = [i for i, lab in enumerate(folder.labels) if lab == label]
        rng.shuffle(members)
        n_val = round(len(members) * fraction)
        if n_val < 1 or n_val >= len(members):
            raise UserError(f"class {name} has {len(members)} images: too few to split {fraction:.0%} off for validation")
        val_idx.extend(members[:n_val])
        train_idx.extend(members[n_val:])
    return folder.subset(sorted(train_idx)), folder.subset(sorted(val_idx))


def check_same_classes(train: ImageFolder, val: ImageFolder) -> None:
    if train.class_names != val.class_names:
        only_train = sorted(set(train.class_names) - set(val.class_names))
        only_val = sorted(set(val.class_names) - set(train.class_names))
        parts = []
        if only_train:
            parts.append(f"only in training: {', '.join(only_train)}")
        if only_val:
            parts.append(f"only in validation: {', '.join(only_val)}")
        raise UserError(f"validation folder {val.root} has other classes than training folder {train.root} ({'; '.join(parts)})")
