"""Synthetic photo sets at the size of real field data, for the scale benchmarks.

    python bench/photos.py OUT --images 21000 [--size 800x600]

"cassava": JPEGs at 800x600 (the public cassava leaf photos' size), quality 90, in 4 classes
shared 61/13/13/13 %, as the public set is shared (one class, mosaic disease there, is most of
it). Every image is its own synthetic leaf (hh.trainer.synth), rendered on every core; a set is
written once and a smaller one is a prefix of each class of a larger one, so sizes can share
files through hard links (`subset`).
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SHARES = {"healthy": 0.13, "brown_spot": 0.13, "mosaic": 0.61, "streak": 0.13}
PHOTO_SIZE = (800, 600)


def class_counts(n: int) -> dict[str, int]:
    """n images shared as SHARES, the largest class taking what rounding leaves."""
    counts = {name: round(n * share) for name, share in SHARES.items()}
    counts["mosaic"] += n - sum(counts.values())
    return counts


def _write_one(job: tuple[str, int, str, tuple[int, int]]) -> None:
    import cv2
    import numpy as np

    from hh.trainer.synth import render_image

    name, index, path, size = job
    rng = np.random.default_rng([7, list(SHARES).index(name), index])
    photo = cv2.resize(render_image(name, rng), size, interpolation=cv2.INTER_CUBIC)
    ok, jpeg = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    tmp = path + ".tmp"
    Path(tmp).write_bytes(jpeg.tobytes())
    os.replace(tmp, path)


def write_photos(out: Path, n: int, size: tuple[int, int] = PHOTO_SIZE) -> Path:
    """OUT/<class>/<class>_NNNNN.jpg, n in all; files already there are kept (a set grows)."""
    jobs = []
    for name, count in class_counts(n).items():
        (out / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            path = out / name / f"{name}_{i:05d}.jpg"
            if not path.exists():
                jobs.append((name, i, str(path), size))
    if jobs:
        print(f"writing {len(jobs)} synthetic {size[0]}x{size[1]} JPEGs to {out} ...", flush=True)
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            for done, _ in enumerate(pool.map(_write_one, jobs, chunksize=32), start=1):
                if done % 5000 == 0:
                    print(f"  {done}/{len(jobs)}", flush=True)
    return out


def subset(full: Path, out: Path, n: int) -> Path:
    """The first images of each class of `full` (shared as SHARES), hard-linked into `out`."""
    for name, count in class_counts(n).items():
        (out / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            target = out / name / f"{name}_{i:05d}.jpg"
            if not target.exists():
                os.link(full / name / f"{name}_{i:05d}.jpg", target)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=21000)
    parser.add_argument("--size", default="800x600")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    write_photos(args.out, args.images, (width, height))


if __name__ == "__main__":
    main()
