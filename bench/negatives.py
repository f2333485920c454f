"""What negative photos add to the unknown score: the same leaves trained without and with
`--negatives`, each converted to int8, measured side by side on images that are not leaves.

    python bench/negatives.py [--data demo/data] [--work DIR] [--out bench/results/negatives.json] [--smoke]

The score hh-convert adds to every model (bench/unknown.py, BENCHMARKS.md 13) cannot tell a
frame of the training photos' own background from a leaf photo: "soil" passes as a leaf. That
is what negatives are for. Here the negatives are soil only (the synthetic set's backgrounds
without a leaf, 250 of them); every group measured is new images (another seed), and the other
groups (noise, colour, patterns; scikit-image's photographs and faces when it is installed) show
that the combination keeps what the score alone catches. Three int8 files:

    score           hh-train DATA               -> hh-convert --int8           (the default)
    negatives       hh-train DATA --negatives   -> hh-convert --int8 --no-unknown
    both            hh-train DATA --negatives   -> hh-convert --int8           (the larger logit)

For each: the share of the validation leaves answered with a class (kept), the leaves' accuracy,
and per group the share of non-leaf images still answered as a leaf class (lower is better).

Without --data, a synthetic set of 2 classes x 500 is made in the work folder (a temporary one
unless --work). --smoke: 2 classes x 60 at 32 px, 2 epochs, 30 negatives, no gates (CI: that it
runs, not what it measures); JSON to bench/results/smoke/negatives.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from unknown import held_out_images, tuning_images  # noqa: E402 - a sibling benchmark's image groups

RESULTS = Path("bench/results")
FULL = {"per_class": 500, "negatives": 250, "per_group": 40, "image_size": 128, "epochs": 15, "min_agreement": 0.9}
SMOKE = {"per_class": 60, "negatives": 30, "per_group": 3, "image_size": 32, "epochs": 2, "min_agreement": 0.0}


def write_negatives(folder: Path, count: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    soil = tuning_images(rng, per_group=count)["soil"]
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(soil):
        cv2.imwrite(str(folder / f"soil_{i:04d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return folder


def measure(model: Path, data: Path, groups: dict[str, list[np.ndarray]]) -> dict:
    from hh.edge.folders import list_image_folder
    from hh.edge.preprocess import read_image_bgr
    from hh.edge.runtime import Classifier
    from hh.edge.spec import UNKNOWN_LABEL

    classifier = Classifier(model, num_threads=2)
    leaves = list_image_folder(data / "validation")
    answers = [classifier.classify(read_image_bgr(p, classifier.spec)).label for p in leaves.paths]
    kept = [a != UNKNOWN_LABEL for a in answers]
    right = [a == leaves.class_names[label] for a, label in zip(answers, leaves.labels)]
    passed = {
        name: float(np.mean([classifier.classify(image).label != UNKNOWN_LABEL for image in images]))
        for name, images in groups.items()
    }
    return {"kept": float(np.mean(kept)), "accuracy": float(np.mean(right)), "passed": passed}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a folder with train/ and validation/ class folders (default: made)")
    parser.add_argument("--work", type=Path, help="where the runs and models go (default: a temporary folder)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    size = SMOKE if args.smoke else FULL
    out = args.out or (RESULTS / "smoke" / "negatives.json" if args.smoke else RESULTS / "negatives.json")
    with tempfile.TemporaryDirectory(prefix="hh-negatives-") as temporary:
        result = run(args.data, args.work or Path(temporary), size)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def run(data: Path | None, work: Path, size: dict) -> dict:
    from hh.converters.pipeline import convert
    from hh.trainer.config import TrainConfig
    from hh.trainer.synth import write_dataset
    from hh.trainer.train import train

    work.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = work / "data"
        write_dataset(data, classes=2, per_class=size["per_class"], seed=0)
    negatives = write_negatives(work / "negatives", size["negatives"], seed=100)
    rng = np.random.default_rng(7)  # other images than the negatives' (seed 100)
    groups = {**tuning_images(rng, per_group=size["per_group"]), **held_out_images(rng)}

    seconds: dict[str, float] = {}
    for name, extra in (("plain", {}), ("with_negatives", {"negatives": str(negatives)})):
        started = time.monotonic()
        train(TrainConfig(data_dir=str(data / "train"), val_dir=str(data / "validation"), out=str(work / name), arch="edge",
                          image_size=size["image_size"], batch_size=32, epochs=size["epochs"], seed=0, **extra))  # fmt: skip
        seconds[f"train {name}"] = time.monotonic() - started
    gates = {"min_agreement": size["min_agreement"], "max_recall_drop": 1.0, "max_prob_diff": 1.0}
    results = {}
    for variant, run_name, keep in (
        ("score", "plain", 0.95),
        ("negatives", "with_negatives", None),
        ("both", "with_negatives", 0.95),
    ):
        model = work / f"{variant}.tflite"
        convert(work / run_name, "int8", out=model, overwrite=True, unknown_keep=keep, **gates)
        results[variant] = measure(model, data, groups)

    names = list(groups)
    print("share of non-leaf images still answered as a leaf class (lower is better); negatives: soil only")
    print(f"{'int8 model':12s}{'kept':>7s}{'acc':>7s}" + "".join(f"{n:>9s}" for n in names))
    for variant, r in results.items():
        print(f"{variant:12s}{r['kept']:7.3f}{r['accuracy']:7.3f}" + "".join(f"{r['passed'][n]:9.3f}" for n in names))
    print("images per group: " + ", ".join(f"{n} {len(groups[n])}" for n in names) + f"; negatives {size['negatives']} (soil)")
    return {"size": size, "groups": {n: len(groups[n]) for n in names}, "results": results, "seconds": seconds}


if __name__ == "__main__":
    raise SystemExit(main())
