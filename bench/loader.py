"""Input pipeline: hh's tf.data loader vs Keras 2's ImageDataGenerator.flow_from_directory.

Same folder (synthetic JPEGs of 200-500 px, made by hh-data synth), 300x300 target, batch 128,
one process, one run: images per second on the first epoch (decode from files; the files are
in the OS page cache for both, having just been written) and on a later epoch. The two loaders
take turns for --rounds rounds and the medians are compared, because this machine is shared and
single measurements swing by 2x.

    python bench/loader.py [--images 2000] [--rounds 3] [--data DIR] [--out bench/results/loader.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SIZE, BATCH = 300, 128


def epoch_rate(iterate) -> float:
    started = time.perf_counter()
    count = iterate()
    return count / (time.perf_counter() - started)


def bench_image_data_generator(train_dir: Path) -> dict:
    from tf_keras.preprocessing.image import ImageDataGenerator

    flow = ImageDataGenerator(rescale=1.0 / 255).flow_from_directory(
        str(train_dir), target_size=(SIZE, SIZE), batch_size=BATCH, class_mode="binary", shuffle=True, seed=0
    )

    def one_epoch() -> int:
        count = 0
        for i in range(len(flow)):
            x, _ = flow[i]
            count += len(x)
        flow.on_epoch_end()
        return count

    return {"first_epoch": epoch_rate(one_epoch), "later_epoch": epoch_rate(one_epoch)}


def bench_hh(train_dir: Path, cache_dir: Path) -> dict:
    from hh.edge.folders import list_image_folder
    from hh.edge.spec import PreprocessingSpec
    from hh.trainer.data import make_dataset
    from hh.trainer.scan import scan_folder

    started = time.perf_counter()
    folder, _ = scan_folder(list_image_folder(train_dir), cache_dir)
    scan_seconds = time.perf_counter() - started
    spec = PreprocessingSpec(height=SIZE, width=SIZE, class_names=folder.class_names)
    datasets = []

    def first_epoch() -> int:
        # Building the dataset decodes into RAM when it fits: that is first-epoch work.
        datasets.append(make_dataset(folder, spec, BATCH, shuffle=True, seed=0))
        return sum(int(x.shape[0]) for x, _ in datasets[0])

    def later_epoch() -> int:
        return sum(int(x.shape[0]) for x, _ in datasets[0])

    first = epoch_rate(first_epoch)
    later = epoch_rate(later_epoch)
    n = len(folder)
    return {
        "first_epoch": first,
        "later_epoch": later,
        "scan_seconds": scan_seconds,
        # What a user waits for before training: the scan, then the first epoch.
        "first_epoch_with_scan": n / (scan_seconds + n / first),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path("bench/results/loader-data"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/loader.json"))
    args = parser.parse_args()

    from hh.trainer.synth import write_dataset

    train_dir = args.data / "train"
    if not train_dir.exists():
        print(f"writing {args.images} synthetic JPEGs to {args.data} ...", flush=True)
        write_dataset(args.data, classes=2, per_class=args.images // 2, val_fraction=0.0001, seed=0)
    n = sum(1 for p in train_dir.rglob("*.jpg"))
    idg_rounds, hh_rounds = [], []
    for i in range(args.rounds):
        idg_rounds.append(bench_image_data_generator(train_dir))
        hh_rounds.append(bench_hh(train_dir, args.data / "normalized"))
        print(f"round {i + 1}: ImageDataGenerator {idg_rounds[-1]}, hh {hh_rounds[-1]}", flush=True)
    idg = {key: statistics.median(r[key] for r in idg_rounds) for key in idg_rounds[0]}
    ours = {key: statistics.median(r[key] for r in hh_rounds) for key in hh_rounds[0]}
    result = {
        "rounds": args.rounds,
        "images": n,
        "target": f"{SIZE}x{SIZE}",
        "batch": BATCH,
        "cpus": os.cpu_count(),
        "image_data_generator": idg,
        "hh": ours,
        "ratio_first_epoch": ours["first_epoch"] / idg["first_epoch"],
        "ratio_first_epoch_with_scan": ours["first_epoch_with_scan"] / idg["first_epoch"],
        "ratio_later_epoch": ours["later_epoch"] / idg["later_epoch"],
    }
    print(f"{n} JPEGs -> {SIZE}x{SIZE}, batch {BATCH}, {os.cpu_count()} CPUs (images/s, median of {args.rounds} rounds)")
    print(f"{'loader':<34}{'first epoch':>12}{'later epoch':>12}")
    print(f"{'ImageDataGenerator (tf-keras)':<34}{idg['first_epoch']:>12.0f}{idg['later_epoch']:>12.0f}")
    print(f"{'hh tf.data':<34}{ours['first_epoch']:>12.0f}{ours['later_epoch']:>12.0f}")
    print(f"{'hh tf.data incl. pre-train scan':<34}{ours['first_epoch_with_scan']:>12.0f}")
    print(
        f"ratio: first epoch {result['ratio_first_epoch']:.2f}x (with scan {result['ratio_first_epoch_with_scan']:.2f}x), "
        f"later epoch {result['ratio_later_epoch']:.1f}x"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
