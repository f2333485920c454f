"""Models on real field photos: recipes and augmentation, measured side by side in one run.

    python bench/real_photos.py PHOTOS [--part recipes|augment|all] [--recipes a,b] [--out FILE] [--smoke]

PHOTOS is a folder of class folders of real photos: iBean's 1,167 photos of bean leaves from
Ugandan fields (angular leaf spot, bean rust, healthy). It is split once, as
bench/data/ibean_split.json records (20% of each class for validation, drawn with a fixed
seed); every number here is measured on that validation split. (The set's official test
split is kept apart, for an independent check.)

recipes   Each recipe as a user runs it (hh.train, then hh.convert --int8 with the default gates):
          validation accuracy (Keras), int8 accuracy and agreement, whether the converter takes
          it, the int8 file's size, training time on this machine, int8 time per camera frame
          (640x480, 2 threads), and the int8 model's accuracy on field-like variants of the
          validation photos (VARIANTS).
augment   The default recipe with one transform of augmentation at a time (and all, and none):
          accuracy on the validation photos and on their field-like variants.

--smoke: the 300 photos in tests/data/ibean at 32 px, 1 epoch, the default recipe and two
augmentations (CI: that the script runs, not what it measures); JSON to
bench/results/smoke/real_photos.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
SPLIT = HERE / "data" / "ibean_split.json"
SMOKE_PHOTOS = HERE.parent / "tests" / "data" / "ibean"

# Recipe name -> hh.train options (the rest are hh-train's defaults).
BEFORE = {  # hh-train's defaults until they were chosen on real photos
    "arch": "edge",
    "image_size": 300,
    "epochs": 15,
    "augment": "light",
    "optimizer": "rmsprop",
    "learning_rate": 0.001,
    "schedule": "constant",
    "warmup_epochs": 0,
    "label_smoothing": 0.0,
}
RECIPES = {
    "before": BEFORE,
    "course": {**BEFORE, "arch": "seed", "image_size": 150},
    "edge": {"arch": "edge"},  # the 17k-weight net with today's recipe
    "default": {},  # hh-train DATA --out RUN, no other flag
    "large": {"image_size": 224, "epochs": 150},  # larger and longer: about 20 minutes here
}
SMOKE_RECIPES = {"default": {"image_size": 32, "epochs": 1}}

# The default recipe with one transform at a time. Each level is an hh.trainer.augment.Augmentation.
NEUTRAL = {
    "vertical_flip": False,
    "rotation_deg": 0.0,
    "zoom": (1.0, 1.0),
    "shift": 0.0,
    "brightness": 0.0,
    "contrast": 0.0,
    "saturation": 0.0,
    "blur": 0.0,
    "jpeg": 0.0,
}
TRANSFORMS = {
    "flips": {"vertical_flip": True},  # (left-right is always on with any level)
    "rotation": {"rotation_deg": 180.0},
    "zoom+shift": {"zoom": (0.8, 1.25), "shift": 0.1},
    "light": {"brightness": 0.5, "contrast": 0.2, "saturation": 0.2},
    "blur": {"blur": 0.25},
    "jpeg": {"jpeg": 0.25},
}
AUGMENT_RUN = {"image_size": 128, "epochs": 40}  # smaller than the default: 8 runs in one benchmark


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def split_folders(photos: Path, work: Path, split_file: Path) -> Path:
    """work/data/{train,validation}/<class>/ as links to the photos, by the recorded split."""
    data = work / "data"
    if data.exists():
        return data
    recorded = json.loads(split_file.read_text())["validation"]
    staging = work / "data.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    for name in sorted(p.name for p in photos.iterdir() if p.is_dir()):
        validation = set(recorded.get(name, ()))
        for part in ("train", "validation"):
            (staging / part / name).mkdir(parents=True)
        for photo in sorted((photos / name).iterdir()):
            part = "validation" if photo.name in validation else "train"
            os.symlink(photo.resolve(), staging / part / name / photo.name)
    staging.rename(data)
    return data


def smoke_folders(work: Path) -> Path:
    """The test photos are split already (train/, validation/)."""
    data = work / "data"
    if not data.exists():
        shutil.copytree(SMOKE_PHOTOS, data, ignore=shutil.ignore_patterns("*.md", "LICENSE"))
    return data


# Field-like variants of a photo (BGR, any size): what a phone in a field sees differently.
def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT_101)


def _zoom_in(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image[h // 8 : h - h // 8, w // 8 : w - w // 8], (w, h), interpolation=cv2.INTER_LINEAR)


def _zoom_out(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    small = cv2.resize(image, (w * 7 // 10, h * 7 // 10), interpolation=cv2.INTER_AREA)
    top, left = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    return cv2.copyMakeBorder(small, top, h - small.shape[0] - top, left, w - small.shape[1] - left, cv2.BORDER_REFLECT_101)


VARIANTS = {
    "dark": lambda im: (im * 0.5).astype(np.uint8),  # shade, dusk
    "bright": lambda im: np.clip(im * 1.4, 0, 255).astype(np.uint8),  # noon sun
    "blur": lambda im: cv2.GaussianBlur(im, (0, 0), 2.5 * im.shape[0] / 320),  # out of focus, shake
    "rotated": lambda im: _rotate(im, 30),
    "closer": _zoom_in,  # a quarter of the frame less
    "farther": _zoom_out,  # the leaf at 70%
    "jpeg": lambda im: _jpeg(im, 20),  # a cheap phone's compression, a messaging app's
}


def validation_sets(data: Path) -> tuple[list, np.ndarray, dict[str, list]]:
    """(photos as BGR, labels, variant name -> variant photos) of the validation folder."""
    from hh.edge.folders import list_image_folder
    from hh.edge.preprocess import read_image_bgr

    folder = list_image_folder(data / "validation")
    photos = [read_image_bgr(path) for path in folder.paths]
    variants = {name: [change(photo) for photo in photos] for name, change in VARIANTS.items()}
    return photos, np.asarray(folder.labels), variants


def tflite_accuracy(model: Path, photos: list, labels: np.ndarray) -> float:
    """Top-1 accuracy among the classes (the model's own `unknown` column left out)."""
    from hh.converters.verify import among_classes
    from hh.edge.runtime import Classifier
    from hh.edge.spec import UNKNOWN_LABEL

    classifier = Classifier(model, num_threads=2)
    names = classifier.spec.class_names
    unknown = names.index(UNKNOWN_LABEL) if classifier.spec.unknown else None
    probabilities = np.stack([classifier.invoke(classifier.prepare(photo)) for photo in photos])
    return float(np.mean(among_classes(probabilities, unknown).argmax(1) == labels))


def keras_accuracy(run: Path, photos: list, labels: np.ndarray) -> float:
    import keras

    from hh.edge.preprocess import to_model_rgb
    from hh.trainer.models import keras_probabilities
    from hh.trainer.run_folder import RunFolder

    spec = RunFolder(run).read_spec()
    model = keras.models.load_model(run / "model.keras", compile=False)
    pixels = np.stack([to_model_rgb(photo, spec) for photo in photos])
    return float(np.mean(keras_probabilities(model, pixels, spec).argmax(1) == labels))


def frame_ms(model: Path, frames: int = 100) -> float:
    from hh.edge.runtime import Classifier
    from hh.edge.stage_timing import synthetic_frames, time_stages

    classifier = Classifier(model, num_threads=2)
    times = time_stages(classifier, synthetic_frames().__next__, frames)
    return float(np.median([sum(parts) for parts in zip(times.ms["preprocess"], times.ms["invoke"])]))


def train(data: Path, out: Path, options: dict) -> tuple[object, float]:
    from hh.trainer.api import train as hh_train

    shutil.rmtree(out, ignore_errors=True)
    started = time.monotonic()
    result = hh_train(data / "train", out, val_dir=data / "validation", verbose=False, **options)
    return result, time.monotonic() - started


def part_recipes(data: Path, work: Path, recipes: dict) -> dict:
    from hh.edge.errors import VerificationFailed
    from hh.trainer.api import convert

    photos, labels, variants = validation_sets(data)
    out = {}
    for name, options in recipes.items():
        log(f"recipe {name}: {options or 'the defaults'} ...")
        run = work / f"recipe-{name}"
        result, seconds = train(data, run, options)
        config = json.loads((run / "run.json").read_text())["config"]
        converted, refusal = True, None
        try:
            model = Path(convert(run, "int8", verbose=False).model)
            report = json.loads((run / "model_int8.report.json").read_text())
        except VerificationFailed as exc:
            converted, refusal = False, str(exc)
            model = run / "model_int8.rejected.tflite"
            report = json.loads((run / "model_int8.rejected.report.json").read_text())
        int8 = {"accuracy": tflite_accuracy(model, photos, labels)}
        int8.update({variant: tflite_accuracy(model, changed, labels) for variant, changed in variants.items()})
        out[name] = {
            "options": options,
            "arch": config["arch"],
            "image_size": config["image_size"],
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "train_seconds": round(seconds, 1),
            "val_accuracy": result.evaluation["accuracy"],
            "val_balanced_accuracy": result.evaluation["balanced_accuracy"],
            "converted": converted,
            "refusal": refusal,
            "int8_accuracy": int8["accuracy"],
            "int8_variants": {v: int8[v] for v in VARIANTS},
            "int8_variants_mean": float(np.mean([int8[v] for v in VARIANTS])),
            "agreement": _agreement(run, model, photos),
            "int8_mb": round(model.stat().st_size / 1e6, 3),  # the file, with its packed self-test photos
            "int8_model_mb": round(report["model_mb"], 3),  # the model alone
            "frame_ms": frame_ms(model),
        }
        log(f"  {json.dumps({k: v for k, v in out[name].items() if k not in ('options', 'refusal')})}")
    return out


def _agreement(run: Path, model: Path, photos: list) -> float:
    """Top-1 agreement of the int8 model with its Keras source on the validation photos."""
    import keras

    from hh.converters.verify import among_classes
    from hh.edge.preprocess import to_model_rgb
    from hh.edge.runtime import Classifier
    from hh.edge.spec import UNKNOWN_LABEL
    from hh.trainer.models import keras_probabilities

    classifier = Classifier(model, num_threads=2)
    spec = classifier.spec
    unknown = spec.class_names.index(UNKNOWN_LABEL) if spec.unknown else None
    pixels = np.stack([to_model_rgb(photo, spec) for photo in photos])
    tflite = among_classes(classifier.predict_rgb(pixels), unknown).argmax(1)
    source = keras.models.load_model(run / "model.keras", compile=False)
    return float(np.mean(keras_probabilities(source, pixels, spec).argmax(1) == tflite))


def part_augment(data: Path, work: Path, run_options: dict, transforms: dict) -> dict:
    from hh.trainer import augment

    photos, labels, variants = validation_sets(data)
    levels = {"none": None, **{name: {**NEUTRAL, **change} for name, change in transforms.items()}, "field": "field"}
    out = {}
    for name, level in levels.items():
        log(f"augmentation {name} ...")
        if isinstance(level, dict):
            augment.LEVELS[f"only-{name}"] = augment.Augmentation(**level)
            choice = f"only-{name}"
        else:
            choice = level or "none"
        run = work / f"augment-{name}"
        # hh.train validates --augment against its list: the one-transform levels are this
        # benchmark's own, so the run is made with 'field' and its pipeline given the level.
        with augment_as(choice):
            result, seconds = train(data, run, {**run_options, "augment": "field" if choice.startswith("only-") else choice})
        accuracy = {"validation": keras_accuracy(run, photos, labels)}
        accuracy.update({v: keras_accuracy(run, changed, labels) for v, changed in variants.items()})
        out[name] = {
            "level": dataclasses.asdict(augment.LEVELS[choice]) if choice != "none" else None,
            "val_accuracy": accuracy["validation"],
            "variants": {v: accuracy[v] for v in VARIANTS},
            "variants_mean": float(np.mean([accuracy[v] for v in VARIANTS])),
            "train_seconds": round(seconds, 1),
        }
        log(f"  {name}: validation {accuracy['validation']:.3f}, variants {out[name]['variants_mean']:.3f}")
    return out


@contextlib.contextmanager
def augment_as(choice: str):
    """Within the block, training's 'field' level is `choice` (a benchmark-only level)."""
    from hh.trainer import augment

    saved = augment.LEVELS["field"]
    if choice.startswith("only-"):
        augment.LEVELS["field"] = augment.LEVELS[choice]
    try:
        yield
    finally:
        augment.LEVELS["field"] = saved


def print_tables(result: dict) -> None:
    if "recipes" in result:
        print(
            f"{'recipe':<9}{'arch':<8}{'px':>5}{'epochs':>7}{'train s':>9}{'val acc':>9}{'int8 acc':>9}"
            f"{'agree':>7}{'converts':>9}{'model MB':>9}{'ms/frame':>9}{'variants':>9}"
        )
        for name, r in result["recipes"].items():
            print(
                f"{name:<9}{r['arch']:<8}{r['image_size']:>5}{r['epochs_run']:>7}{r['train_seconds']:>9.0f}"
                f"{r['val_accuracy']:>9.3f}{r['int8_accuracy']:>9.3f}{r['agreement']:>7.3f}"
                f"{'yes' if r['converted'] else 'REFUSED':>9}{r['int8_model_mb']:>9.3f}{r['frame_ms']:>9.2f}"
                f"{r['int8_variants_mean']:>9.3f}"
            )
        names = list(VARIANTS)
        print("int8 accuracy on field-like variants of the validation photos:")
        print(f"{'recipe':<9}" + "".join(f"{n:>9}" for n in names))
        for name, r in result["recipes"].items():
            print(f"{name:<9}" + "".join(f"{r['int8_variants'][n]:>9.3f}" for n in names))
    if "augment" in result:
        names = list(VARIANTS)
        print("augmentation, one transform at a time (Keras accuracy):")
        print(f"{'transform':<12}{'validation':>11}{'variants':>9}" + "".join(f"{n:>9}" for n in names))
        for name, r in result["augment"].items():
            print(
                f"{name:<12}{r['val_accuracy']:>11.3f}{r['variants_mean']:>9.3f}"
                + "".join(f"{r['variants'][n]:>9.3f}" for n in names)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path, nargs="?", help="a folder of class folders of real photos (iBean)")
    parser.add_argument("--split", type=Path, default=SPLIT, help="the recorded validation split (JSON)")
    parser.add_argument("--part", choices=("recipes", "augment", "all"), default="all")
    parser.add_argument("--recipes", default=None, help=f"a comma-separated subset of {', '.join(RECIPES)}")
    parser.add_argument("--work", type=Path, default=None, help="default: bench/results/real_photos")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/real_photos.json")
    parser.add_argument("--smoke", action="store_true", help="tiny, in a temporary folder (CI)")
    args = parser.parse_args()
    if args.photos is None and not args.smoke:
        parser.error("give the folder of real photos (for example a copy of iBean), or --smoke")
    args.out = args.out or Path("bench/results/smoke/real_photos.json" if args.smoke else "bench/results/real_photos.json")
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="hh-bench-photos-") as tmp:
            run(args, Path(tmp), smoke_folders(Path(tmp)))
    else:
        work = args.work or Path("bench/results/real_photos")
        work.mkdir(parents=True, exist_ok=True)
        run(args, work, split_folders(args.photos, work, args.split))


def run(args: argparse.Namespace, work: Path, data: Path) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = json.loads(args.out.read_text()) if args.out.exists() and not args.smoke else {}
    result["cpus"] = os.cpu_count()
    recipes = SMOKE_RECIPES if args.smoke else RECIPES
    if args.recipes:
        unknown = set(args.recipes.split(",")) - set(recipes)
        if unknown:
            raise SystemExit(f"unknown recipe(s): {', '.join(sorted(unknown))}; choose from {', '.join(recipes)}")
        recipes = {name: recipes[name] for name in args.recipes.split(",")}
    if args.part in ("recipes", "all"):
        result.setdefault("recipes", {}).update(part_recipes(data, work, recipes))
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.part in ("augment", "all"):
        options = {"image_size": 32, "epochs": 1} if args.smoke else AUGMENT_RUN
        transforms = {} if args.smoke else TRANSFORMS  # smoke: none and field only
        result["augment"] = part_augment(data, work, options, transforms)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_tables(result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
