"""hh-data: make a demo data set on the spot (the machine may have no internet), import a
labelled one, and fold field images into a training folder."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from ..edge.cli_util import OverwriteOption, make_app, reports_errors, run_app
from ..edge.errors import ParameterError, UserError

app = make_app("Make and import data sets for hh, and keys to sign models with.")
MAX_VIDEO_SIDE = 8192  # a stand-in camera: 8K is more than any camera hh meets
MAX_VIDEO_FPS = 240.0


@app.callback()
def _root() -> None:
    """Make and import data sets for hh, and keys to sign models with."""


@app.command()
@reports_errors({"out_dir": "OUT_DIR"})
def synth(
    out_dir: Annotated[
        Path, typer.Argument(help="A new or empty folder to write OUT_DIR/train/<class>/ and OUT_DIR/validation/<class>/ into.")
    ],
    classes: Annotated[int, typer.Option(help="Number of classes (2-4): healthy, brown_spot, mosaic, streak.")] = 2,
    per_class: Annotated[int, typer.Option(help="Images per class, split 80/20 into train and validation.")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed writes the same images.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace what an earlier hh-data synth wrote into OUT_DIR (only that).")
    ] = False,
) -> None:
    """Write a synthetic leaf-disease data set: leaves at random places, sizes and angles on
    cluttered backgrounds, in JPEGs of 200-500 px a side. Classes differ by lesions, mottling or
    streaks on the leaf, not by colour."""
    from .synth import write_dataset

    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            print(f"\r  {done}/{total} images", end="" if done < total else "\n", file=sys.stderr, flush=True)

    counts = write_dataset(out_dir, classes=classes, per_class=per_class, seed=seed, progress=progress, overwrite=overwrite)
    for split, per_class_counts in counts.items():
        summary = ", ".join(f"{name} {n}" for name, n in per_class_counts.items())
        print(f"{out_dir / split}: {summary}")
    print(f"wrote {sum(sum(c.values()) for c in counts.values())} images in {time.monotonic() - started:.1f}s")


@app.command()
@reports_errors({"out": "OUT"})
def video(
    images: Annotated[Path, typer.Argument(help="A folder of images, or of class folders (walked class by class).")],
    out: Annotated[Path, typer.Argument(help="The .avi file to write (MJPEG).")],
    width: Annotated[int, typer.Option(help="Frame width.")] = 640,
    height: Annotated[int, typer.Option(help="Frame height.")] = 480,
    fps: Annotated[float, typer.Option(help="Frames per second.")] = 10.0,
    repeat: Annotated[int, typer.Option(help="Frames per image.")] = 1,
    overwrite: OverwriteOption = False,
) -> None:
    """Write a video of IMAGES, for trying hh-camera without a camera: hh-camera MODEL --source OUT."""
    from ..edge.files import check_not_inside, check_output_file
    from ..edge.folders import is_image_file
    from .synth import write_video

    if repeat < 1:
        raise ParameterError("repeat", f"must be at least 1, got {repeat}")
    for name, value in (("width", width), ("height", height)):
        if not 8 <= value <= MAX_VIDEO_SIDE:
            raise ParameterError(name, f"must be from 8 to {MAX_VIDEO_SIDE} pixels, got {value}")
    if not 0 < fps <= MAX_VIDEO_FPS:  # NaN fails this too
        raise ParameterError("fps", f"must be a number of frames per second from above 0 to {MAX_VIDEO_FPS}, got {fps}")
    paths = sorted(str(p) for p in images.rglob("*") if is_image_file(p)) if images.is_dir() else []
    if not paths:
        raise UserError(f"{images}: no images found")
    check_output_file(out, "out", overwrite, inputs=paths)
    # A video written into the image folder would not be an image, but keep data folders clean.
    check_not_inside(out, (("image folder", images),), "out")
    write_video(paths, out, (width, height), fps, repeat)
    print(f"wrote {out}: {len(paths) * repeat} frames of {width}x{height} from {len(paths)} images")


@app.command()
@reports_errors({"source": "SOURCE", "target": "DATA_DIR"})
def merge(
    source: Annotated[
        Path,
        typer.Argument(
            help="Class folders of new images (e.g. hh-camera --collect's DIR/labelled), or a collection zip "
            "exported from the phone's web app (its labelled frames are taken)."
        ),
    ],
    target: Annotated[Path, typer.Argument(help="The training folder (one sub-folder per class) to add them to.")],
) -> None:
    """Add images collected in the field to a training folder: duplicates (the same bytes
    already anywhere in it) are skipped, taken names get a suffix, nothing there is replaced.

    Examples: hh-data merge field/labelled data/train
              hh-data merge hh-collection-2026-12-02.zip data/train
    """
    from .merge import merge as merge_folders

    report = merge_folders(source, target)
    print(report.line(target))


@app.command("import")
@reports_errors({"labels_file": "LABELS_FILE", "images": "IMAGES", "out": "OUT_DIR"})
def import_(
    labels_file: Annotated[Path, typer.Argument(help="A CSV of image,label rows (a header names its columns, or none).")],
    images: Annotated[Path, typer.Argument(help="The folder the CSV's image names are in (the photos).")],
    out: Annotated[Path, typer.Argument(help="A new or empty folder to make OUT_DIR/<class>/<photo> in.")],
    names: Annotated[
        Path | None,
        typer.Option(help='A JSON file naming the labels of the CSV: {"0": "cassava bacterial blight", ...}.'),
    ] = None,
) -> None:
    """Make a folder of class folders from a labels file, as the public cassava set ships
    (train.csv of image_id,label and train_images/): hard links to the photos where the file
    system allows (no copies; nothing in the source changes), else copies. Missing photos,
    photos listed twice or with two labels, and unreadable rows are counted and named.

    Example: hh-data import cassava/train.csv cassava/train_images data/train --names cassava/label_num_to_disease_map.json
    """
    from ..edge.signals import sigterm_as_interrupt
    from .importer import import_labels

    with sigterm_as_interrupt():  # a stopped import removes its half-made folder, as Ctrl-C does
        report = import_labels(labels_file, images, out, names)
    for line in report.lines(out):
        print(line)
    if len(report.counts) < 2:
        print("next: a classifier needs 2 classes: add photos of another, or train this one with --negatives DIR")
    else:
        print(f"next: hh-train {shlex.quote(str(out))} --val-split 0.2")


@app.command()
@reports_errors({"name": "NAME"})
def keygen(
    name: Annotated[Path, typer.Argument(help="Where to write the key pair: NAME.key (private) and NAME.pub (public).")],
) -> None:
    """Make a key pair for signing models: NAME.key stays on this workstation (hh-convert --sign
    NAME.key), NAME.pub goes to the devices (hh-camera --trust NAME.pub), which then run only
    models signed with it. Ed25519, from the cryptography package; existing files are never replaced.

    Example: hh-data keygen ~/.hh/field
    """
    from ..edge.trust import new_key_pair

    private, public, key_id = new_key_pair(name)
    print(f"wrote {private} (private: keep it here, readable by you only) and {public} (public: copy it to the devices)")
    print(f"key {key_id}")
    shown = str(private) if private.is_absolute() or str(private).startswith(".") else f"./{private}"  # never read as a flag
    print(f"next: hh-convert models/<run> --int8 --sign {shlex.quote(shown)}")


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
