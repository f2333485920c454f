"""hh-train at field scale: time and peak memory from 1,000 to 50,000 photos, side by side with
what the machine allows (the model's own compute, and the loader alone).

    python bench/scale.py [--sizes 1000,5000,21000,50000] [--image-size 300] [--epochs 2]
                          [--photos DIR] [--ram-budget GB] [--smoke]

The photos: synthetic leaves as JPEGs at 800x600 in 4 classes shared 61/13/13/13 % like the
public cassava leaf set (21,397 photos), written once by bench/photos.py into --photos (default
bench/results/photos-cassava) and hard-linked into one folder per size.

Each size is one `hh-train DATA --val-split 0.1 --arch edge --batch-size 64` in its own process,
exactly as a user runs it: its wall time, the time before the first epoch (start, listing and
the scan, which decodes every photo once), each epoch's time, and its peak resident memory
(the child's ru_maxrss). Then, in the same run:

- compute: model.fit of the same net on uint8 tensors already in memory, no loader at all: what
  the model allows on this machine;
- loader: the input pipeline alone, no model, at the run's size and at 224 px: batches gathered
  from RAM, read from an inputs file on disk, or decoded from the JPEGs every epoch (what a GPU
  machine, whose model is fast, would get);
- share: an epoch's images per second over the slower of compute and its loader (with the
  default light augmentation, which runs in the input pipeline); shared: over their serial
  bound 1 / (1/compute + 1/loader), as on a CPU-only machine both take turns on the same cores.

JSON in bench/results/scale.json. --smoke: 120 photos at 160x120 to 64 px, sizes 60 and 120, one
epoch, in a temporary folder (CI); JSON to bench/results/smoke/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos import subset, write_photos  # noqa: E402

BATCH = 64
LOADER_SECOND_SIZE = 224  # the loader alone is measured here too: the common size of pretrained backbones
FULL = {"sizes": "1000,5000,21000,50000", "image_size": 300, "epochs": 2, "photo": (800, 600)}
SMOKE = {"sizes": "60,120", "image_size": 64, "epochs": 1, "photo": (160, 120)}
EPOCH_LINE = re.compile(r"^epoch (\d+)/\d+: .*\(([\d.]+)s\)")
# Run in its own process, so ru_maxrss of its children is this one run's peak.
PEAK_OF = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "print('peak_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"
)


def run_hh_train(data: Path, out: Path, image_size: int, epochs: int, ram_budget: float | None) -> dict:
    """One hh-train as a user runs it; its timings from its own lines, its peak memory."""
    command = [sys.executable, "-m", "hh.trainer.cli_train", str(data), "--out", str(out), "--val-split", "0.1"]
    command += ["--arch", "edge", "--image-size", str(image_size), "--batch-size", str(BATCH), "--epochs", str(epochs)]
    if ram_budget is not None:
        command += ["--ram-budget", str(ram_budget)]
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", PEAK_OF, *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    epochs_s: list[float] = []
    first_epoch_at = None
    peak_kb = 0
    kept = "RAM"
    lines = []
    for line in process.stderr:
        lines.append(line)
        now = time.perf_counter() - started
        match = EPOCH_LINE.match(line)
        if match:
            seconds = float(match.group(2))
            epochs_s.append(seconds)
            if first_epoch_at is None:
                first_epoch_at = now - seconds
        if line.startswith("model inputs:"):
            kept = "file" if "decoded once into" in line or "read from" in line else kept
        if line.startswith("note:") and "decodes the images again" in line:
            kept = "decode"
        if line.startswith("peak_kb"):
            peak_kb = int(line.split()[1])
    code = process.wait()
    if code != 0:
        raise SystemExit(f"hh-train failed ({code}):\n{''.join(lines[-20:])}")
    record = json.loads((out / "run.json").read_text())
    train_images = sum(record["train_images"].values())
    return {
        "images": train_images + sum(record["val_images"].values()),
        "train_images": train_images,
        "kept": kept,
        "wall_s": round(time.perf_counter() - started, 1),
        "before_first_epoch_s": round(first_epoch_at or 0.0, 1),
        "epoch_s": epochs_s,
        "epoch_images_per_s": [round(train_images / s, 1) for s in epochs_s],
        "peak_rss_gb": round(peak_kb * 1024 / 1e9, 2),
    }


def compute_rate(image_size: int, steps: int) -> float:
    """Images per second of model.fit on tensors already in memory: the model alone."""
    import numpy as np
    import tensorflow as tf

    from hh.edge.spec import PreprocessingSpec
    from hh.trainer.models import build_model, compile_model

    spec = PreprocessingSpec(height=image_size, width=image_size, class_names=("a", "b", "c", "d"), class_mode="categorical")
    model = compile_model(build_model("edge", spec, "none"), spec, 0.001, "rmsprop")
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, 256, (BATCH * 4, image_size, image_size, 3), dtype=np.uint8))
    y = tf.constant(np.eye(4, dtype=np.float32)[rng.integers(0, 4, BATCH * 4)])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).repeat()
    model.fit(ds, steps_per_epoch=4, epochs=1, verbose=0)  # compile and warm up
    started = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return BATCH * steps / (time.perf_counter() - started)


def loader_rates(photos: Path, image_size: int, count: int, work: Path) -> dict:
    """The input pipeline alone, one epoch of `count` photos each way: batches gathered from
    RAM, read from an inputs file, decoded from the JPEGs."""
    import shutil

    from hh.edge.folders import list_image_folder
    from hh.edge.spec import PreprocessingSpec
    from hh.trainer.data import make_dataset
    from hh.trainer.decode import DecodedImages, decode_into_file
    from hh.trainer.input_file import ImageVersion, InputFileWriter

    listing = list_image_folder(photos)
    folder = listing.subset(list(range(0, len(listing), max(1, len(listing) // count)))[:count])
    spec = PreprocessingSpec(height=image_size, width=image_size, class_names=folder.class_names, class_mode="categorical")

    def epoch(decoded, augment: str = "none") -> float:
        ds = make_dataset(folder, spec, BATCH, shuffle=True, seed=0, augment=augment, decoded=decoded)
        started = time.perf_counter()
        n = sum(int(x.shape[0]) for x, _ in ds)
        return n / (time.perf_counter() - started)

    started = time.perf_counter()
    in_ram = DecodedImages.of_files(folder.paths, spec)
    decode_once = len(folder) / (time.perf_counter() - started)
    writer = InputFileWriter(work / "loader-inputs", len(folder), spec)
    decode_into_file(folder.paths, spec, writer)
    versions = [ImageVersion(p, i, 0, None) for i, p in enumerate(folder.paths)]
    on_disk = DecodedImages(writer.commit(versions), {p: i for i, p in enumerate(folder.paths)})
    rates = {
        "images": len(folder),
        "decode_to_ram": round(decode_once, 1),
        "ram": round(epoch(in_ram), 1),
        "file": round(epoch(on_disk), 1),
        "decode": round(epoch(None), 1),
        # hh-train's default --augment light runs in the input pipeline too, on the same cores.
        "ram_light": round(epoch(in_ram, "light"), 1),
    }
    shutil.rmtree(work / "loader-inputs", ignore_errors=True)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=None, help=f"photos per run; default {FULL['sizes']} ({SMOKE['sizes']} smoke)")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--photos", type=Path, default=Path("bench/results/photos-cassava"))
    parser.add_argument("--ram-budget", type=float, default=None, help="passed to hh-train (default: its own)")
    parser.add_argument("--loader-images", type=int, default=2000, help="photos for the loader-alone rates")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    scale = SMOKE if args.smoke else FULL
    sizes = [int(s) for s in (args.sizes or scale["sizes"]).split(",")]
    image_size = args.image_size or scale["image_size"]
    epochs = args.epochs or scale["epochs"]
    if args.smoke:
        out = args.out or Path("bench/results/smoke/scale.json")
        with tempfile.TemporaryDirectory(prefix="hh-bench-scale-") as tmp:
            measure(Path(tmp) / "photos", Path(tmp), sizes, image_size, epochs, scale["photo"], args.ram_budget, 60, out)
    else:
        out = args.out or Path("bench/results/scale.json")
        work = Path("bench/results/scale")
        measure(args.photos, work, sizes, image_size, epochs, scale["photo"], args.ram_budget, args.loader_images, out)


def measure(photos, work, sizes, image_size, epochs, photo, ram_budget, loader_images, out) -> None:
    import shutil

    from hh.edge.machine import memory_limit

    write_photos(photos, max(sizes), photo)
    print(f"compute alone: edge net at {image_size} px, batch {BATCH} ...", flush=True)
    compute = [compute_rate(image_size, 12 if loader_images < 1000 else 40)]
    loader_sizes = sorted({image_size, LOADER_SECOND_SIZE if image_size > 100 else image_size // 2}, reverse=True)
    loaders = {}
    for px in loader_sizes:
        print(f"loader alone: {loader_images} photos to {px} px ...", flush=True)
        loaders[px] = loader_rates(photos, px, min(loader_images, max(sizes)), work)
    loader = loaders[image_size]
    runs = []
    for n in sizes:
        data = subset(photos, work / f"data-{n}", n)
        run_dir = work / f"run-{n}"
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"hh-train on {n} photos ...", flush=True)
        result = run_hh_train(data, run_dir, image_size, epochs, ram_budget)
        compute.append(compute_rate(image_size, 12 if loader_images < 1000 else 40))
        runs.append(result)
        shutil.rmtree(run_dir, ignore_errors=True)
    model_rate = statistics.median(compute)
    for result in runs:
        source = {"RAM": "ram", "file": "file", "decode": "decode"}[result["kept"]]
        # The slower of the model and the input pipeline with its default augmentation; and,
        # as both take turns on the same CPU cores here, their serial bound 1 / (1/a + 1/b).
        loader_rate = 1 / (1 / loader[source] + 1 / loader["ram_light"] - 1 / loader["ram"])
        limit = min(model_rate, loader_rate)
        shared = 1 / (1 / model_rate + 1 / loader_rate)
        result["limit_images_per_s"] = round(limit, 1)
        result["share_of_limit"] = [round(rate / limit, 2) for rate in result["epoch_images_per_s"]]
        result["shared_cores_bound_images_per_s"] = round(shared, 1)
        result["share_of_shared_bound"] = [round(rate / shared, 2) for rate in result["epoch_images_per_s"]]
    report = {
        "image_size": image_size,
        "epochs": epochs,
        "batch": BATCH,
        "photo": f"{photo[0]}x{photo[1]}",
        "cpus": os.cpu_count(),
        "memory_limit_gb": round(memory_limit() / 1e9, 1),
        "compute_images_per_s": [round(c, 1) for c in compute],
        "loader_images_per_s": {str(px): rates for px, rates in loaders.items()},
        "runs": runs,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{image_size} px, batch {BATCH}, {os.cpu_count()} CPUs, {report['memory_limit_gb']} GB; images/s")
    print(f"model alone {model_rate:.0f} (median of {len(compute)})")
    for px, rates in loaders.items():
        print(f"loader alone at {px} px: " + ", ".join(f"{k} {v}" for k, v in rates.items()))
    columns = [("photos", 7), ("kept", 5), ("start s", 7), ("epochs s", 16), ("img/s", 12), ("share", 10), ("shared", 10)]
    print(" ".join(f"{name:>{width}}" for name, width in (*columns, ("peak GB", 8), ("total s", 8))))
    for r in runs:
        print(
            f"{r['images']:>7} {r['kept']:>5} {r['before_first_epoch_s']:>7} {'/'.join(str(s) for s in r['epoch_s']):>16} "
            f"{'/'.join(str(s) for s in r['epoch_images_per_s']):>12} {'/'.join(str(s) for s in r['share_of_limit']):>10} "
            f"{'/'.join(str(s) for s in r['share_of_shared_bound']):>10} "
            f"{r['peak_rss_gb']:>8} {r['wall_s']:>8}"
        )
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
