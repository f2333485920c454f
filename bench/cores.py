"""Interpreter threads in the camera loop, and Pi-class numbers without a Pi.

    python bench/cores.py [MODEL.tflite [VIDEO]] [--rounds 3] [--out bench/results/cores.json] [--smoke]

1. hh-camera on VIDEO (`--loop --max-frames 3000`) with `--threads 1`, `--threads 2` and the
   default, against what its slower stage allows: the capture thread's decode alone, or
   preprocess + invoke alone at the same thread count. hh-camera decodes on its own thread
   while the model runs, so on 2 cores a 2-thread interpreter competes with the decoder.
2. hh-bench pinned to one core (`taskset -c 0`, 1 thread) beside hh-bench on every core
   (2 threads): per-frame stage times. A Pi 4 or 5 core is slower than this machine's by a
   ratio published per benchmark (for example Geekbench single-core scores); multiplying the
   one-core numbers by it estimates one Pi core, and the 2-core speed-up here bounds what more
   threads give.

Without MODEL: latency.py's edge int8 model (128 px) and its 640x480 video, made in
bench/results when missing. Without VIDEO: the demo's field.avi when it exists, else that video.
Rounds alternate; medians are reported.

--smoke: one round of a few dozen frames with a tiny model and video made in a temporary folder
(CI); JSON to bench/results/smoke/cores.json.
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

from latency import RESULTS, SMOKE_RESULTS, capture_ms, edge_model, field_video

DEMO_VIDEO = Path("demo/field.avi")
FULL = {"rounds": 3, "loop_frames": 3000, "bench_frames": 300}
SMOKE = {"rounds": 1, "loop_frames": 100, "bench_frames": 50}


def camera_fps(model: Path, video: Path, threads: int | None, frames: int) -> float:
    command = [sys.executable, "-m", "hh.edge.cli_camera", str(model), "--source", str(video), "--json"]
    command += ["--loop", "--max-frames", str(frames), "--no-selftest"]
    if threads is not None:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["fps"]


def bench_stages(model: Path, threads: int, frames: int, pin: str | None = None) -> dict:
    """hh-bench's per-stage numbers (generated frames), optionally pinned with taskset."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        command = [sys.executable, "-m", "hh.edge.cli_bench", str(model), "--threads", str(threads), "--json", str(out)]
        command += ["--frames", str(frames)]
        if pin is not None:
            command = ["taskset", "-c", pin, *command]
        subprocess.run(command, capture_output=True, text=True, check=True)
        return json.loads(out.read_text())


def bare_fps(stages: dict) -> float:
    return 1000 / sum(stages[s]["mean_ms"] for s in ("preprocess", "invoke", "postprocess"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, nargs="?", default=None)
    parser.add_argument("video", type=Path, nargs="?", default=None)
    parser.add_argument("--rounds", type=int, default=None, help=f"default: {FULL['rounds']} ({SMOKE['rounds']} with --smoke)")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/cores.json")
    parser.add_argument("--smoke", action="store_true", help="tiny, in a temporary folder (CI); JSON to bench/results/smoke/")
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        sys.exit("taskset (util-linux) is needed to pin hh-bench to one core")
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="hh-bench-cores-") as tmp:
            run(args, Path(tmp), SMOKE)
    else:
        run(args, RESULTS, FULL)


def run(args: argparse.Namespace, work: Path, scale: dict) -> None:
    """Both measurements; a model and a video that were not given are made in `work`."""
    model = args.model or edge_model(work, args.smoke)
    if args.video is not None:
        video = args.video
    elif args.model is not None and not args.smoke and DEMO_VIDEO.exists():
        video = DEMO_VIDEO
    else:
        video = field_video(work, args.smoke)
    n_rounds = args.rounds or scale["rounds"]
    loop_frames, bench_frames = scale["loop_frames"], scale["bench_frames"]
    out = args.out or (SMOKE_RESULTS if args.smoke else RESULTS) / "cores.json"

    from hh.edge.machine import default_threads

    default = default_threads(reserve=1)
    # 1 and 2, and the default when it is neither (3 on 4 cores): its share reads its bare FPS.
    thread_counts = sorted({1, 2, default})
    rounds: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        rounds.setdefault(key, []).append(value)

    for i in range(n_rounds):
        add("decode_fps", 1000 / capture_ms(video))
        for threads in thread_counts:
            stages = bench_stages(model, threads, bench_frames)
            add(f"bare_fps_{threads}", bare_fps(stages))
            add(f"invoke_ms_{threads}", stages["invoke"]["mean_ms"])
            add(f"loop_fps_{threads}", camera_fps(model, video, threads, loop_frames))
        add("loop_fps_default", camera_fps(model, video, None, loop_frames))
        one_core = bench_stages(model, 1, bench_frames, pin="0")
        add("one_core_bare_fps", bare_fps(one_core))
        add("one_core_invoke_ms", one_core["invoke"]["mean_ms"])
        add("one_core_preprocess_ms", one_core["preprocess"]["mean_ms"])
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.3g}" for k, v in rounds.items()), flush=True)
    median = {k: statistics.median(v) for k, v in rounds.items()}
    share = {
        t: median[f"loop_fps_{t}"] / min(median["decode_fps"], median[f"bare_fps_{t}"]) for t in thread_counts
    }  # fmt: skip
    share["default"] = median["loop_fps_default"] / min(median["decode_fps"], median[f"bare_fps_{default}"])
    result = {
        "model": str(model), "video": str(video), "cpus": os.cpu_count(), "rounds": n_rounds,
        "default_threads": default, "median": median, "loop_share_of_slower_stage": share,
        "two_core_speedup_of_invoke": median["one_core_invoke_ms"] / median["invoke_ms_2"],
    }  # fmt: skip
    print(f"{model} on {video}, {os.cpu_count()} CPUs, median of {n_rounds}")
    print(f"capture decode alone: {median['decode_fps']:.0f} FPS")
    print(f"{'threads':<10}{'pre+invoke FPS':>16}{'hh-camera FPS':>15}{'of slower stage':>17}")
    for t in thread_counts:
        print(f"{t:<10}{median[f'bare_fps_{t}']:>16.0f}{median[f'loop_fps_{t}']:>15.0f}{share[t]:>17.0%}")
    print(f"{'default':<10}{'(' + str(default) + ')':>16}{median['loop_fps_default']:>15.0f}{share['default']:>17.0%}")
    print(
        f"one core (taskset -c 0, 1 thread): invoke {median['one_core_invoke_ms']:.3f} ms, "
        f"preprocess {median['one_core_preprocess_ms']:.3f} ms, {median['one_core_bare_fps']:.0f} FPS; "
        f"2 cores, 2 threads: invoke {median['invoke_ms_2']:.3f} ms "
        f"({result['two_core_speedup_of_invoke']:.2f}x)"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
