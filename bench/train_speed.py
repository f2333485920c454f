"""Training throughput: hh.train against the plain Keras 3 script a user would write today,
same data, same model, same epochs, one process, one run.

    python bench/train_speed.py [--size 128] [--epochs 3] [--per-class 500] [--rounds 2] [--smoke]

- hh: `hh.train(...)`, everything hh-train does: the scan (which decodes every file once and
  keeps the model inputs in RAM), a checkpoint committed after every epoch, the evaluation
  report at the end. `--augment none`, so both do the same work per image.
- keras: `keras.utils.image_dataset_from_directory(...)` for training and validation,
  `.prefetch(AUTOTUNE)`, the same model from hh's builder, `model.fit(...)`: the script of
  keras.io's "image classification from scratch" example, which decodes every file every epoch.
- keras + cache: the same with `.cache()` before prefetch, as TensorFlow's image-loading
  tutorial adds.
- compute: model.fit on the decoded images already in RAM as tensors: what the model's
  forward and backward passes alone allow; no loader can beat it.

Images per second = training images x epochs / wall time from the call to the trained model
(data loading included). Each arm runs once per round, in turn; medians are compared.

--smoke: 32 px, 1 epoch, 20 images per class, one round, in a temporary folder (CI); JSON to
bench/results/smoke/train_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BATCH = 32
FULL = {"size": 128, "epochs": 3, "per_class": 500, "rounds": 2}
SMOKE = {"size": 32, "epochs": 1, "per_class": 20, "rounds": 1}


# The Keras arms' training step, for hh too: the same optimizer, rate and loss on every side.
SAME_STEP = {"optimizer": "rmsprop", "learning_rate": 0.001, "schedule": "constant", "warmup_epochs": 0, "label_smoothing": 0.0}


def run_hh(data: Path, arch: str, size: int, epochs: int, out: Path, augment: str = "none") -> float:
    import hh

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    hh.train(
        data / "train",
        out,
        val_dir=data / "validation",
        arch=arch,
        image_size=size,
        epochs=epochs,
        batch_size=BATCH,
        augment=augment,
        verbose=False,
        **SAME_STEP,
    )
    return time.perf_counter() - started


def keras_model(arch: str, size: int):
    from hh.edge.spec import PreprocessingSpec
    from hh.trainer.models import build_model, compile_model

    spec = PreprocessingSpec(height=size, width=size, class_names=("brown_spot", "healthy"))
    return compile_model(build_model(arch, spec), spec, 0.001, "rmsprop")


def run_keras(data: Path, arch: str, size: int, epochs: int, cache: bool) -> float:
    import keras
    import tensorflow as tf

    started = time.perf_counter()
    load = dict(image_size=(size, size), batch_size=BATCH, label_mode="binary", verbose=False)
    train = keras.utils.image_dataset_from_directory(data / "train", shuffle=True, seed=0, **load)
    val = keras.utils.image_dataset_from_directory(data / "validation", shuffle=False, **load)
    if cache:
        train, val = train.cache(), val.cache()
    model = keras_model(arch, size)
    model.fit(train.prefetch(tf.data.AUTOTUNE), validation_data=val.prefetch(tf.data.AUTOTUNE), epochs=epochs, verbose=0)
    return time.perf_counter() - started


def run_compute(images, labels, val_images, val_labels, arch: str, size: int, epochs: int) -> float:
    import tensorflow as tf

    train = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(labels), seed=0).batch(BATCH)
    val = tf.data.Dataset.from_tensor_slices((val_images, val_labels)).batch(BATCH)
    started = time.perf_counter()
    model = keras_model(arch, size)
    model.fit(train.prefetch(tf.data.AUTOTUNE), validation_data=val, epochs=epochs, verbose=0)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, what in (("size", "px"), ("epochs", ""), ("per_class", "synthetic images per class (80%% train)"), ("rounds", "")):
        default = f"default: {FULL[name]} ({SMOKE[name]} with --smoke)"
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None, help=f"{what}; {default}" if what else default)
    parser.add_argument("--archs", default="edge,seed")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/train_speed.json")
    parser.add_argument("--smoke", action="store_true", help="tiny, in a temporary folder (CI); JSON to bench/results/smoke/")
    args = parser.parse_args()
    scale = SMOKE if args.smoke else FULL
    for name in ("size", "epochs", "per_class", "rounds"):
        if getattr(args, name) is None:
            setattr(args, name, scale[name])
    if args.smoke:
        args.out = args.out or Path("bench/results/smoke/train_speed.json")
        with tempfile.TemporaryDirectory(prefix="hh-bench-train-speed-") as tmp:
            measure(args, Path(tmp))
    else:
        args.out = args.out or Path("bench/results/train_speed.json")
        measure(args, Path("bench/results"))


def measure(args: argparse.Namespace, work: Path) -> None:
    """Every arm; the data set and hh's run folders in `work`."""
    import numpy as np
    import tensorflow as tf

    from hh.edge.folders import list_image_folder
    from hh.edge.spec import PreprocessingSpec
    from hh.trainer.data import load_images
    from hh.trainer.synth import write_dataset

    data = work / f"train-speed-{args.per_class}"
    if not (data / "train").exists():
        print(f"writing {2 * args.per_class} synthetic JPEGs to {data} ...", flush=True)
        write_dataset(data, classes=2, per_class=args.per_class, val_fraction=0.2, seed=0)
    train_folder = list_image_folder(data / "train")
    val_folder = list_image_folder(data / "validation")
    n_train = len(train_folder)
    spec = PreprocessingSpec(height=args.size, width=args.size, class_names=train_folder.class_names)
    images, labels = load_images(train_folder, spec)
    val_images, val_labels = load_images(val_folder, spec)
    tensors = (
        tf.constant(images),
        tf.constant(labels.astype(np.float32)[:, None]),
        tf.constant(val_images),
        tf.constant(val_labels.astype(np.float32)[:, None]),
    )

    results = {}
    for arch in args.archs.split(","):
        rounds: dict[str, list[float]] = {"hh": [], "keras": [], "keras_cache": [], "compute": [], "hh_augment": []}
        for i in range(args.rounds):
            rounds["keras"].append(run_keras(data, arch, args.size, args.epochs, cache=False))
            rounds["hh"].append(run_hh(data, arch, args.size, args.epochs, work / f"train-speed-run-{arch}"))
            rounds["keras_cache"].append(run_keras(data, arch, args.size, args.epochs, cache=True))
            rounds["compute"].append(run_compute(*tensors, arch, args.size, args.epochs))
            # The same with hh's default augmentation (OpenCV, in the input pipeline): what it adds.
            rounds["hh_augment"].append(
                run_hh(data, arch, args.size, args.epochs, work / f"train-speed-run-{arch}", augment="field")
            )
            seconds = ", ".join(f"{k} {v[-1]:.1f} s" for k, v in rounds.items())
            print(f"{arch} round {i + 1}: {seconds}", flush=True)
        rate = {k: n_train * args.epochs / statistics.median(v) for k, v in rounds.items()}
        results[arch] = {
            "images_per_second": rate,
            "seconds": rounds,
            "ratio_hh_to_keras": rate["hh"] / rate["keras"],
            "ratio_hh_to_keras_cache": rate["hh"] / rate["keras_cache"],
            "hh_share_of_compute": rate["hh"] / rate["compute"],
            "hh_augment_share_of_compute": rate["hh_augment"] / rate["compute"],
        }
    result = {
        "size": args.size, "epochs": args.epochs, "batch": BATCH, "train_images": n_train,
        "val_images": len(val_folder), "rounds": args.rounds, "cpus": os.cpu_count(), "archs": results,
    }  # fmt: skip
    print(
        f"{n_train} training images, {len(val_folder)} validation, {args.size} px, batch {BATCH}, "
        f"{args.epochs} epochs, {os.cpu_count()} CPUs (training images/s, median of {args.rounds})"
    )
    print(
        f"{'arch':<8}{'keras':>10}{'keras+cache':>13}{'hh':>10}{'compute':>10}{'hh/keras':>10}{'hh/cache':>10}{'hh/compute':>12}"
    )
    for arch, r in results.items():
        rate = r["images_per_second"]
        print(
            f"{arch:<8}{rate['keras']:>10.0f}{rate['keras_cache']:>13.0f}{rate['hh']:>10.0f}{rate['compute']:>10.0f}"
            f"{r['ratio_hh_to_keras']:>10.2f}{r['ratio_hh_to_keras_cache']:>10.2f}{r['hh_share_of_compute']:>12.2f}"
        )
        print(
            f"{'  +aug':<8}{'':>10}{'':>13}{rate['hh_augment']:>10.0f}{'':>10}{'':>10}{'':>10}"
            f"{r['hh_augment_share_of_compute']:>12.2f}   (hh with --augment field)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
