"""Input pipeline: hh's scan + loader vs Keras 2's ImageDataGenerator.flow_from_directory,
and vs what this machine can do at all.

Same folder, 300x300 target, batch 128, one process, one run: images per second on the first
epoch (decode from files; the files are in the OS page cache for all, having just been
written) and on a later epoch. The "limit" is a plain thread pool (one thread per core) over
OpenCV decode + resize of the same files: what the machine's JPEG decoding allows. The loaders
take turns for --rounds rounds and the medians are compared, because this machine is shared
and single measurements swing by 2x.

    python bench/loader.py [--photos demo|800x600|4000x3000|cassava] [--images 2000] [--rounds 5] [--smoke]

demo: hh-data synth's JPEGs of 200-500 px; 800x600: the same leaves at the size of the public
cassava leaf photos; 4000x3000: at a phone camera's size; cassava: the size of the public cassava
leaf set, 21,000 photos at 800x600 in 4 classes shared 61/13/13/13 % (bench/photos.py).

--smoke: 40 JPEGs to 64x64, batch 16, one round, in a temporary folder (CI); JSON to
bench/results/smoke/loader.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

SIZE, BATCH = 300, 128
SMOKE = {"size": 64, "batch": 16, "images": 40, "rounds": 1}


def epoch_rate(iterate) -> float:
    started = time.perf_counter()
    count = iterate()
    return count / (time.perf_counter() - started)


def bench_image_data_generator(train_dir: Path, size: int = SIZE, batch: int = BATCH) -> dict:
    from tf_keras.preprocessing.image import ImageDataGenerator

    flow = ImageDataGenerator(rescale=1.0 / 255).flow_from_directory(
        str(train_dir), target_size=(size, size), batch_size=batch, class_mode="binary", shuffle=True, seed=0
    )

    def one_epoch() -> int:
        count = 0
        for i in range(len(flow)):
            x, _ = flow[i]
            count += len(x)
        flow.on_epoch_end()
        return count

    return {"first_epoch": epoch_rate(one_epoch), "later_epoch": epoch_rate(one_epoch)}


def bench_limit(train_dir: Path, size: int = SIZE) -> dict:
    """A plain thread pool (one thread per core) over OpenCV decode + resize of the same files:
    the machine's decode limit. Large JPEGs decode at reduced DCT scale (read from the header),
    as hh's own decoder does, so both are held to the same method."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    from hh.edge.folders import list_image_folder
    from hh.edge.preprocess import decode_image
    from hh.edge.spec import PreprocessingSpec
    from hh.trainer.decode import model_input_array

    paths = list_image_folder(train_dir).paths
    spec = PreprocessingSpec(height=size, width=size, class_names=("a", "b"))

    def one(path):
        return cv2.resize(decode_image(np.fromfile(path, np.uint8), spec), (size, size), interpolation=cv2.INTER_LINEAR)

    def epoch() -> int:
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            return sum(1 for _ in pool.map(one, paths, chunksize=8))

    def epoch_kept() -> int:
        # The same, keeping every result in one new array, as any loader that holds the
        # decoded images in RAM must: the cost of first touching that much memory shows.
        kept = model_input_array(len(paths), spec)
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            return sum(1 for _ in pool.map(lambda i: kept.__setitem__(i, one(paths[i])), range(len(paths)), chunksize=8))

    return {"first_epoch": epoch_rate(epoch), "kept_in_ram": epoch_rate(epoch_kept)}


def bench_hh(train_dir: Path, cache_dir: Path, size: int = SIZE, batch: int = BATCH) -> dict:
    """What hh-train does: the pre-training scan checks every file and, the images fitting in
    RAM, keeps each one's model input; the first epoch then gathers batches from that array."""
    from hh.edge.folders import list_image_folder
    from hh.edge.spec import PreprocessingSpec
    from hh.trainer.data import make_dataset
    from hh.trainer.scan import scan_and_decode

    listing = list_image_folder(train_dir)
    spec = PreprocessingSpec(height=size, width=size, class_names=listing.class_names)
    started = time.perf_counter()
    folder, _, decoded = scan_and_decode(listing, cache_dir, spec)
    scan_seconds = time.perf_counter() - started
    datasets = []

    def first_epoch() -> int:
        datasets.append(make_dataset(folder, spec, batch, shuffle=True, seed=0, decoded=decoded))
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
        # What a user waits for before training: the scan (which decodes), then the first epoch.
        "first_epoch_with_scan": n / (scan_seconds + n / first),
    }


FIRST_TOUCH = """
import sys, time
import numpy as np
from hh.trainer.decode import aligned_empty
n, how = int(sys.argv[1]), sys.argv[2]
started = time.perf_counter()
a = aligned_empty((n,)) if how == "hh" else np.empty(n, np.uint8)
a[::4096] = 0
print(time.perf_counter() - started)
"""


def memory_touch(nbytes: int) -> dict:
    """Seconds to get and first touch an array of the decoded images' size in a fresh process:
    with numpy's np.empty, and with hh's aligned_empty (MAP_POPULATE). What keeping images in
    RAM costs before any image is decoded; the limit keeps nothing."""
    import subprocess
    import sys

    def seconds(how: str) -> float:
        command = [sys.executable, "-c", FIRST_TOUCH, str(nbytes), how]
        return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)

    return {"bytes": nbytes, "numpy_seconds": seconds("numpy"), "hh_seconds": seconds("hh")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", choices=("demo", "800x600", "4000x3000", "cassava"), default="demo")
    parser.add_argument(
        "--images", type=int, default=None, help="default: 2000 demo, 1000 800x600, 200 4000x3000, 21000 cassava; smoke 40"
    )
    parser.add_argument("--rounds", type=int, default=None, help="default: 5 (1 with --smoke)")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/loader-PHOTOS.json")
    parser.add_argument("--smoke", action="store_true", help="tiny, in a temporary folder (CI); JSON to bench/results/smoke/")
    args = parser.parse_args()
    if args.smoke:
        out = args.out or Path("bench/results/smoke/loader.json")
        with tempfile.TemporaryDirectory(prefix="hh-bench-loader-") as tmp:
            data = Path(tmp) / f"loader-{args.photos}"
            measure(args.photos, data, args.images or SMOKE["images"], args.rounds or SMOKE["rounds"], out, SMOKE)
    else:
        n_images = args.images or {"demo": 2000, "800x600": 1000, "4000x3000": 200, "cassava": 21000}[args.photos]
        data = Path(f"bench/results/loader-{args.photos}")
        out = args.out or Path(f"bench/results/loader-{args.photos}.json")
        measure(args.photos, data, n_images, args.rounds or 5, out, {"size": SIZE, "batch": BATCH})


def measure(photos: str, data: Path, n_images: int, n_rounds: int, out: Path, scale: dict) -> None:
    size, batch = scale["size"], scale["batch"]
    train_dir = make_photos(data, photos, n_images)
    n = sum(1 for p in train_dir.rglob("*.jpg"))
    idg_rounds, hh_rounds, limit_rounds = [], [], []
    for i in range(n_rounds):
        limit_rounds.append(bench_limit(train_dir, size))
        idg_rounds.append(bench_image_data_generator(train_dir, size, batch))
        hh_rounds.append(bench_hh(train_dir, data / "normalized", size, batch))
        print(f"round {i + 1}: limit {limit_rounds[-1]}, ImageDataGenerator {idg_rounds[-1]}, hh {hh_rounds[-1]}", flush=True)
    touch = memory_touch(n * size * size * 3)
    idg = {key: statistics.median(r[key] for r in idg_rounds) for key in idg_rounds[0]}
    ours = {key: statistics.median(r[key] for r in hh_rounds) for key in hh_rounds[0]}
    limit = statistics.median(r["first_epoch"] for r in limit_rounds)
    limit_kept = statistics.median(r["kept_in_ram"] for r in limit_rounds)
    result = {
        "photos": photos, "rounds": n_rounds, "images": n, "target": f"{size}x{size}", "batch": batch,
        "cpus": os.cpu_count(), "decode_limit": limit, "decode_limit_kept_in_ram": limit_kept,
        "image_data_generator": idg, "hh": ours,
        "ratio_first_epoch": ours["first_epoch"] / idg["first_epoch"],
        "ratio_first_epoch_with_scan": ours["first_epoch_with_scan"] / idg["first_epoch"],
        "ratio_later_epoch": ours["later_epoch"] / idg["later_epoch"],
        "share_of_limit_with_scan": ours["first_epoch_with_scan"] / limit,
        "scan_share_of_limit": n / ours["scan_seconds"] / limit,
        "memory": touch,
        "share_of_limit_kept_in_ram_with_scan": ours["first_epoch_with_scan"] / limit_kept,
    }  # fmt: skip
    print(f"{n} JPEGs ({photos}) -> {size}x{size}, batch {batch}, {os.cpu_count()} CPUs (images/s, median of {n_rounds})")
    print(f"{'loader':<40}{'first epoch':>12}{'later epoch':>12}")
    print(f"{'decode limit (thread pool, OpenCV)':<40}{limit:>12.0f}")
    print(f"{'the same, kept in a new array in RAM':<40}{limit_kept:>12.0f}")
    print(f"{'ImageDataGenerator (tf-keras)':<40}{idg['first_epoch']:>12.0f}{idg['later_epoch']:>12.0f}")
    print(f"{'hh batches from the scan (no decode)':<40}{ours['first_epoch']:>12.0f}{ours['later_epoch']:>12.0f}")
    print(f"{'hh scan (decodes) + first epoch':<40}{ours['first_epoch_with_scan']:>12.0f}")
    print(
        f"hh first epoch with scan: {result['share_of_limit_with_scan']:.0%} of the limit, "
        f"{result['ratio_first_epoch_with_scan']:.2f}x ImageDataGenerator; later epochs {result['ratio_later_epoch']:.1f}x; "
        f"the scan alone {result['scan_share_of_limit']:.0%} of the limit; "
        f"with scan {result['share_of_limit_kept_in_ram_with_scan']:.0%} of the limit that keeps its images"
    )
    print(
        f"first touch of {touch['bytes'] / 1e6:.0f} MB (the decoded images' size) in a fresh process: "
        f"numpy np.empty {touch['numpy_seconds']:.3f} s, hh's MAP_POPULATE mapping {touch['hh_seconds']:.3f} s"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


def make_photos(data: Path, photos: str, n: int) -> Path:
    """The benchmark's training folder: synthetic leaves as they come, or resized to a photo size."""
    import cv2

    from hh.trainer.synth import write_dataset

    train_dir = data / "train"
    if train_dir.exists():
        return train_dir
    source = data.with_name(data.name + "-source")
    if photos == "cassava":
        from photos import write_photos  # bench/photos.py, beside this script

        return write_photos(train_dir, n)
    print(f"writing {n} synthetic JPEGs ({photos}) to {data} ...", flush=True)
    write_dataset(source, classes=2, per_class=n // 2, val_fraction=0.0001, seed=0)
    if photos == "demo":
        source.rename(data)
        return train_dir
    width, height = map(int, photos.split("x"))
    for path in sorted((source / "train").rglob("*.jpg")):
        target = train_dir / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        photo = cv2.resize(cv2.imread(str(path)), (width, height), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(target), photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    import shutil

    shutil.rmtree(source)
    return train_dir


if __name__ == "__main__":
    main()
