"""Interpreter threads in the camera loop, and Pi-class numbers without a Pi.

    python bench/cores.py MODEL.tflite [VIDEO] [--rounds 3] [--out bench/results/cores.json]

1. hh-camera on VIDEO (`--loop --max-frames 3000`) with `--threads 1`, `--threads 2` and the
   default, against what its slower stage allows: the capture thread's decode alone, or
   preprocess + invoke alone at the same thread count. hh-camera decodes on its own thread
   while the model runs, so on 2 cores a 2-thread interpreter competes with the decoder.
2. hh-bench pinned to one core (`taskset -c 0`, 1 thread) beside hh-bench on every core
   (2 threads): per-frame stage times. A Pi 4 or 5 core is slower than this machine's by a
   ratio published per benchmark (for example Geekbench single-core scores); multiplying the
   one-core numbers by it estimates one Pi core, and the 2-core speed-up here bounds what more
   threads give.

VIDEO defaults to the demo's field.avi. Rounds alternate; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from latency import capture_ms


def camera_fps(model: Path, video: Path, threads: int | None) -> float:
    command = [sys.executable, "-m", "hh.edge.cli_camera", str(model), "--source", str(video), "--json"]
    command += ["--loop", "--max-frames", "3000", "--no-selftest"]
    if threads is not None:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["fps"]


def bench_stages(model: Path, threads: int, pin: str | None = None) -> dict:
    """hh-bench's per-stage numbers (generated frames), optionally pinned with taskset."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        command = [sys.executable, "-m", "hh.edge.cli_bench", str(model), "--threads", str(threads), "--json", str(out)]
        if pin is not None:
            command = ["taskset", "-c", pin, *command]
        subprocess.run(command, capture_output=True, text=True, check=True)
        return json.loads(out.read_text())


def bare_fps(stages: dict) -> float:
    return 1000 / sum(stages[s]["mean_ms"] for s in ("preprocess", "invoke", "postprocess"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("video", type=Path, nargs="?", default=Path("demo/field.avi"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/cores.json"))
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        sys.exit("taskset (util-linux) is needed to pin hh-bench to one core")

    from hh.edge.machine import default_threads

    default = default_threads(reserve=1)
    rounds: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        rounds.setdefault(key, []).append(value)

    for i in range(args.rounds):
        add("decode_fps", 1000 / capture_ms(args.video))
        for threads in (1, 2):
            stages = bench_stages(args.model, threads)
            add(f"bare_fps_{threads}", bare_fps(stages))
            add(f"invoke_ms_{threads}", stages["invoke"]["mean_ms"])
            add(f"loop_fps_{threads}", camera_fps(args.model, args.video, threads))
        add("loop_fps_default", camera_fps(args.model, args.video, None))
        one_core = bench_stages(args.model, 1, pin="0")
        add("one_core_bare_fps", bare_fps(one_core))
        add("one_core_invoke_ms", one_core["invoke"]["mean_ms"])
        add("one_core_preprocess_ms", one_core["preprocess"]["mean_ms"])
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.3g}" for k, v in rounds.items()), flush=True)
    median = {k: statistics.median(v) for k, v in rounds.items()}
    share = {
        t: median[f"loop_fps_{t}"] / min(median["decode_fps"], median[f"bare_fps_{t}"]) for t in (1, 2)
    }  # fmt: skip
    share["default"] = median["loop_fps_default"] / min(median["decode_fps"], median[f"bare_fps_{default}"])
    result = {
        "model": str(args.model), "video": str(args.video), "cpus": os.cpu_count(), "rounds": args.rounds,
        "default_threads": default, "median": median, "loop_share_of_slower_stage": share,
        "two_core_speedup_of_invoke": median["one_core_invoke_ms"] / median["invoke_ms_2"],
    }  # fmt: skip
    print(f"{args.model} on {args.video}, {os.cpu_count()} CPUs, median of {args.rounds}")
    print(f"capture decode alone: {median['decode_fps']:.0f} FPS")
    print(f"{'threads':<10}{'pre+invoke FPS':>16}{'hh-camera FPS':>15}{'of slower stage':>17}")
    for t in (1, 2):
        print(f"{t:<10}{median[f'bare_fps_{t}']:>16.0f}{median[f'loop_fps_{t}']:>15.0f}{share[t]:>17.0%}")
    print(f"{'default':<10}{'(' + str(default) + ')':>16}{median['loop_fps_default']:>15.0f}{share['default']:>17.0%}")
    print(
        f"one core (taskset -c 0, 1 thread): invoke {median['one_core_invoke_ms']:.3f} ms, "
        f"preprocess {median['one_core_preprocess_ms']:.3f} ms, {median['one_core_bare_fps']:.0f} FPS; "
        f"2 cores, 2 threads: invoke {median['invoke_ms_2']:.3f} ms "
        f"({result['two_core_speedup_of_invoke']:.2f}x)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
