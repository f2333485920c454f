"""Field-grade models, measured: augmentation, class weights, backbones. One run, side by side.

    python bench/field.py [--part augment|classweight|backbones|all] [--out bench/results/field.json] [--smoke]

augment      The edge net trained with --augment none, light and strong on the same synthetic
             leaves (3 classes), two seeds each, scored on the validation images as they are
             and on "field" versions of them: shifted 15%, mirrored and darkened to 55%, the
             way a hand-held phone in shade sees a leaf.
classweight  The edge net on an imbalanced set (400/100/50 training images), --class-weight
             none vs balanced, two seeds each: balanced accuracy and per-class recall on a
             balanced validation set.
backbones    seed, edge and the three pretrained backbones: parameters, int8 size and int8
             invoke time (2 threads) at 224 and 300 px (untrained: latency does not depend on
             the weights); and, trained the same way at 128 px (20 epochs, Adam, 400 images),
             validation accuracy and the agreement with Keras of all four converted modes.
             Offline here, so the backbones train from scratch (--weights none): their
             accuracy is not what ImageNet weights give.

--smoke: every part and mode at a tiny size (a few dozen images, 32 px, 1 epoch, one seed,
latency at 32 and 64 px; of the backbones' part, seed and edge only) in a temporary folder
unless --work is given (CI); JSON to bench/results/smoke/field.json.
"""

from __future__ import annotations

import argparse
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

ARCHS = ("seed", "edge", "mobilenetv3small", "mobilenetv3large", "efficientnetb0")
MODES = ("float32", "float16", "dynamic", "int8")  # float32 first: the others' size ratio reads it
# What each part trains on and for how long. Backbones: trained at size for accuracy and
# agreement, untrained at latency_sizes for size and latency.
FULL = {
    "seeds": (0, 1),
    "augment": {"per_class": 300, "size": 96, "epochs": 20},
    "classweight": {"per_class": 500, "counts": {"healthy": 400, "brown_spot": 100, "mosaic": 50}, "size": 64, "epochs": 15},
    "backbones": {"per_class": 250, "size": 128, "epochs": 20, "latency_sizes": (224, 300), "archs": ARCHS},
}
# --smoke: the same steps at the smallest sizes that run them, with the edge net only: a Keras
# applications backbone takes about 85 s here even at 32 px (its graph traced for training,
# four conversions and two untrained ones), more than a smoke run may take.
SMOKE = {
    "seeds": (0,),
    "augment": {"per_class": 10, "size": 32, "epochs": 1},
    "classweight": {"per_class": 10, "counts": {"healthy": 8, "brown_spot": 4, "mosaic": 2}, "size": 32, "epochs": 1},
    "backbones": {"per_class": 10, "size": 32, "epochs": 1, "latency_sizes": (32, 40), "archs": ("edge",)},
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train_run(data: Path, out: Path, **options):
    from hh.trainer.api import train

    shutil.rmtree(out, ignore_errors=True)
    started = time.monotonic()
    result = train(data / "train", out, val_dir=data / "validation", verbose=False, **options)
    return result, time.monotonic() - started


def field_version(image_bgr: np.ndarray) -> np.ndarray:
    """Shifted 15% right and down (edges reflected), mirrored, darkened to 55%."""
    h, w = image_bgr.shape[:2]
    shift = np.float32([[1, 0, 0.15 * w], [0, 1, 0.15 * h]])
    moved = cv2.warpAffine(image_bgr, shift, (w, h), borderMode=cv2.BORDER_REFLECT)
    return (cv2.flip(moved, 1) * 0.55).astype(np.uint8)


def keras_accuracy(run: Path, images_bgr, labels) -> float:
    import keras

    from hh.edge.preprocess import to_model_rgb
    from hh.trainer.models import keras_probabilities
    from hh.trainer.run_folder import RunFolder

    spec = RunFolder(run).read_spec()
    model = keras.models.load_model(run / "model.keras", compile=False)
    pixels = np.stack([to_model_rgb(image, spec) for image in images_bgr])
    return float(np.mean(keras_probabilities(model, pixels, spec).argmax(1) == np.asarray(labels)))


def part_augment(work: Path, scale: dict) -> dict:
    from hh.edge.folders import list_image_folder
    from hh.edge.preprocess import read_image_bgr
    from hh.trainer.synth import write_dataset

    data = work / "aug-data"
    if not data.exists():
        write_dataset(data, classes=3, per_class=scale["augment"]["per_class"], seed=11)
    val = list_image_folder(data / "validation")
    plain = [read_image_bgr(p) for p in val.paths]
    field = [field_version(image) for image in plain]
    size, epochs = scale["augment"]["size"], scale["augment"]["epochs"]
    out: dict = {}
    for level in ("none", "light", "strong"):
        rows = []
        for seed in scale["seeds"]:
            log(f"augment {level}, seed {seed} ...")
            run = work / f"aug-{level}-{seed}"
            options = {"arch": "edge", "image_size": size, "batch_size": 32, "epochs": epochs, "augment": level, "seed": seed}
            result, seconds = train_run(data, run, **options)
            rows.append({
                "seed": seed, "val_accuracy": keras_accuracy(run, plain, val.labels),
                "field_accuracy": keras_accuracy(run, field, val.labels), "train_seconds": round(seconds, 1),
            })  # fmt: skip
        out[level] = {
            "runs": rows,
            "val_accuracy": float(np.mean([r["val_accuracy"] for r in rows])),
            "field_accuracy": float(np.mean([r["field_accuracy"] for r in rows])),
        }
    return out


def imbalanced_copy(source: Path, target: Path, counts: dict[str, int]) -> None:
    for name, n in counts.items():
        (target / "train" / name).mkdir(parents=True, exist_ok=True)
        for path in sorted((source / "train" / name).glob("*.jpg"))[:n]:
            shutil.copy(path, target / "train" / name / path.name)
    shutil.copytree(source / "validation", target / "validation")


def part_classweight(work: Path, scale: dict) -> dict:
    import json as json_module

    from hh.trainer.synth import write_dataset

    source, data = work / "cw-source", work / "cw-data"
    counts = scale["classweight"]["counts"]
    if not data.exists():
        write_dataset(source, classes=3, per_class=scale["classweight"]["per_class"], seed=12)  # 80% training each
        imbalanced_copy(source, data, counts)
    size, epochs = scale["classweight"]["size"], scale["classweight"]["epochs"]
    out: dict = {"train_counts": counts}
    for weight in ("none", "balanced"):
        rows = []
        for seed in scale["seeds"]:
            log(f"class weight {weight}, seed {seed} ...")
            run = work / f"cw-{weight}-{seed}"
            train_run(data, run, arch="edge", image_size=size, batch_size=32, epochs=epochs, class_weight=weight, seed=seed)
            report = json_module.loads((run / "evaluation.json").read_text())
            rows.append({
                "seed": seed, "accuracy": report["accuracy"], "balanced_accuracy": report["balanced_accuracy"],
                "recall": {name: m["recall"] for name, m in report["per_class"].items()},
            })  # fmt: skip
        out[weight] = {"runs": rows, "balanced_accuracy": float(np.mean([r["balanced_accuracy"] for r in rows]))}
        out[weight]["recall"] = {n: float(np.mean([r["recall"][n] for r in rows])) for n in rows[0]["recall"]}
        out[weight]["accuracy"] = float(np.mean([r["accuracy"] for r in rows]))
    return out


def int8_latency(model_path: Path, frames: int = 100) -> float:
    from hh.edge.runtime import Classifier
    from hh.edge.stage_timing import synthetic_frames, time_stages

    classifier = Classifier(model_path, num_threads=2)
    return float(np.mean(time_stages(classifier, synthetic_frames().__next__, frames).ms["invoke"]))


def untrained_int8(arch: str, size: int, work: Path) -> tuple[int, float, float]:
    """(parameters, int8 MB, int8 invoke ms) of an untrained network."""
    import contextlib
    import io

    from hh.converters.tflite import to_flatbuffer, with_contract
    from hh.edge.spec import PreprocessingSpec
    from hh.trainer.models import build_model

    spec = PreprocessingSpec(height=size, width=size, class_names=("a", "b"))
    model = build_model(arch, spec, "none")
    calibration = np.random.default_rng(0).integers(0, 256, (16, size, size, 3)).astype(np.uint8)
    with contextlib.redirect_stdout(io.StringIO()):
        tflite = with_contract(to_flatbuffer(model, spec, "int8", calibration), spec, "int8", "bench")
    path = work / f"untrained-{arch}-{size}.tflite"
    path.write_bytes(tflite)
    return model.count_params(), len(tflite) / 1e6, int8_latency(path)


def part_backbones(work: Path, scale: dict) -> dict:
    from hh.converters.pipeline import convert
    from hh.trainer.synth import write_dataset

    data = work / "bb-data"
    if not data.exists():
        write_dataset(data, classes=2, per_class=scale["backbones"]["per_class"], seed=13)
    size, epochs = scale["backbones"]["size"], scale["backbones"]["epochs"]
    out: dict = {}
    for arch in scale["backbones"]["archs"]:
        log(f"{arch}: trained at {size} px, every mode converted ...")
        run = work / f"bb-{arch}"
        weights = {"weights": "none"} if arch.startswith(("mobilenet", "efficientnet")) else {}
        result, seconds = train_run(
            data, run, arch=arch, image_size=size, batch_size=32, epochs=epochs, optimizer="adam", **weights
        )
        reports = {mode: convert(run, mode, min_agreement=0.0, selftest_per_class=0) for mode in MODES}
        entry = {
            "val_accuracy": result.best_val_accuracy, "train_seconds": round(seconds, 1),
            "agreement": {mode: r.agreement for mode, r in reports.items()},
            "int8_accuracy": reports["int8"].tflite_accuracy,
        }  # fmt: skip
        for latency_size in scale["backbones"]["latency_sizes"]:
            params, mb, ms = untrained_int8(arch, latency_size, work)
            entry.update({"parameters": params, f"int8_mb_{latency_size}": round(mb, 3), f"int8_ms_{latency_size}": ms})
        out[arch] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("augment", "classweight", "backbones", "all"), default="all")
    parser.add_argument("--work", type=Path, default=None, help="default: bench/results/field (a temporary folder with --smoke)")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/field.json")
    parser.add_argument("--smoke", action="store_true", help="tiny, in a temporary folder (CI); JSON to bench/results/smoke/")
    args = parser.parse_args()
    args.out = args.out or Path("bench/results/smoke/field.json" if args.smoke else "bench/results/field.json")
    if args.work is not None or not args.smoke:
        run(args, args.work or Path("bench/results/field"), SMOKE if args.smoke else FULL)
    else:
        with tempfile.TemporaryDirectory(prefix="hh-bench-field-") as tmp:
            run(args, Path(tmp), SMOKE)


def run(args: argparse.Namespace, work: Path, scale: dict) -> None:
    work.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["cpus"] = os.cpu_count()
    parts = ("augment", "classweight", "backbones") if args.part == "all" else (args.part,)
    for part in parts:
        result[part] = {"augment": part_augment, "classweight": part_classweight, "backbones": part_backbones}[part](work, scale)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result, scale)
    print(f"wrote {args.out}")


def print_table(result: dict, scale: dict) -> None:
    """The parts in `result` (this run's and earlier ones' in the same JSON), described by `scale`."""
    seeds = len(scale["seeds"])
    if "augment" in result:
        aug = scale["augment"]
        print(f"augmentation (edge, {aug['size']} px, {aug['epochs']} epochs; mean of {seeds} seeds):")
        for level, r in result["augment"].items():
            print(f"  {level:<7} validation {r['val_accuracy']:.3f}   field (shifted, mirrored, dark) {r['field_accuracy']:.3f}")
    if "classweight" in result:
        cw = scale["classweight"]
        counts = "/".join(str(n) for n in cw["counts"].values())
        print(f"class weights (edge, {cw['size']} px, train {counts}; mean of {seeds} seeds):")
        for weight in ("none", "balanced"):
            r = result["classweight"][weight]
            recall = ", ".join(f"{n} {v:.2f}" for n, v in r["recall"].items())
            print(f"  {weight:<9} balanced accuracy {r['balanced_accuracy']:.3f}, accuracy {r['accuracy']:.3f}, recall {recall}")
    if "backbones" in result:
        small, large = scale["backbones"]["latency_sizes"]
        header = "".join(f"{f'{what}@{size}':>8}" for size in (small, large) for what in ("MB", "ms"))
        print(f"{'arch':<18}{'params':>11}{header}{'acc@' + str(scale['backbones']['size']):>8}  agreement")
        for arch, r in result["backbones"].items():
            agreement = " ".join(f"{mode} {value:.2f}" for mode, value in r["agreement"].items())
            print(
                f"{arch:<18}{r['parameters']:>11,}{r[f'int8_mb_{small}']:>8.2f}{r[f'int8_ms_{small}']:>8.2f}"
                f"{r[f'int8_mb_{large}']:>8.2f}{r[f'int8_ms_{large}']:>8.2f}{r['val_accuracy']:>8.3f}  {agreement}"
            )


if __name__ == "__main__":
    main()
