"""The exact resize (hh.edge.resample) against OpenCV's own, per frame, side by side.

    python bench/resize.py [--rounds 5] [--out bench/results/resize.json] [--smoke]

For each interpolation and each case (a 640x480 camera frame to 128, 224 and 300 px; a
4000x3000 photo decoded at 1/4, 1000x750, to 300 px, as the trainer reads it), the old resize
(OpenCV's INTER_LINEAR / INTER_AREA / INTER_NEAREST_EXACT, what models before spec version 3
use) and the exact one run alternately on the same random frames; medians in microseconds and
the ratio exact / old. The camera loop's budget to compare with is BENCHMARKS.md section 3
(about 0.9 ms per frame for the edge int8 model at 128 px on this machine).

--smoke: one round of a few frames (CI); JSON to bench/results/smoke/resize.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from hh.edge.preprocess import CV2_INTERPOLATION
from hh.edge.resample import resize_exact

RESULTS = Path("bench/results")
CASES = [((480, 640), 128), ((480, 640), 224), ((480, 640), 300), ((750, 1000), 300)]


def per_call_us(function, frames: list[np.ndarray], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for frame in frames:
            function(frame)
    return (time.perf_counter() - start) / (repeat * len(frames)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    rounds, repeat, count = (1, 2, 2) if args.smoke else (args.rounds, 20, 5)
    out = args.out or (RESULTS / "smoke" / "resize.json" if args.smoke else RESULTS / "resize.json")
    rng = np.random.default_rng(0)
    rows = []
    print(f"{'interpolation':<14}{'from':>10}{'to':>5}{'OpenCV us':>11}{'exact us':>10}{'ratio':>7}")
    for interpolation, flag in CV2_INTERPOLATION.items():
        for (height, width), side in CASES:
            # Smooth random frames (a blurred noise field), not flat ones: every code path runs.
            frames = [cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (5, 5), 0) for _ in range(count)]
            old, new = [], []
            for _ in range(rounds):
                old.append(per_call_us(lambda f, s=side, i=flag: cv2.resize(f, (s, s), interpolation=i), frames, repeat))
                new.append(per_call_us(lambda f, s=side, i=interpolation: resize_exact(f, s, s, i), frames, repeat))
            row = {
                "interpolation": interpolation,
                "source": f"{width}x{height}",
                "side": side,
                "opencv_us": round(statistics.median(old), 1),
                "exact_us": round(statistics.median(new), 1),
            }
            row["ratio"] = round(row["exact_us"] / row["opencv_us"], 2)
            rows.append(row)
            print(f"{interpolation:<14}{row['source']:>10}{side:>5}{row['opencv_us']:>11}{row['exact_us']:>10}{row['ratio']:>7}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rounds": rounds, "cases": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
