"""Does the live view slow classification? hh-camera's FPS with no client and with one client
watching the stream, side by side, alternating, in one run.

    python bench/serve.py [MODEL.tflite [VIDEO.avi]] [--frames 3000] [--rounds 3] [--out bench/results/serve.json] [--smoke]

Each round runs hh-camera on the looping video for --frames classified frames, once serving
with nobody connected, once with one client reading /stream.mjpg and polling /api/status
twice a second (what the page does). The target: at least 90% of the FPS without a client.

Without MODEL or VIDEO: latency.py's edge int8 model (128 px) and its 640x480 video, made in
bench/results when missing. --smoke: one round of 600 frames with a tiny model and video made in
a temporary folder (CI); JSON to bench/results/smoke/serve.json.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

from latency import RESULTS, SMOKE_RESULTS, edge_model, field_video

# --smoke's frames: a tiny model runs them in about a second, long enough for the client to
# connect, read some of the stream and poll the status.
FULL = {"frames": 3000, "rounds": 3}
SMOKE = {"frames": 600, "rounds": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def watch(url: str, stop: threading.Event, counts: dict) -> None:
    """A phone's page: the MJPEG stream, and the status every half second."""

    def stream():
        try:
            with urllib.request.urlopen(url + "stream.mjpg", timeout=10) as response:
                while not stop.is_set():
                    line = response.readline()
                    if not line:
                        return
                    counts["jpeg_parts"] += line.startswith(b"--hhframe")
        except OSError:
            return

    threading.Thread(target=stream, daemon=True).start()
    while not stop.wait(0.5):
        try:
            with urllib.request.urlopen(url + "api/status", timeout=10) as response:
                json.loads(response.read())
                counts["status"] += 1
        except OSError:  # hh-camera has finished its frames
            return


def run(model: Path, video: Path, frames: int, client: bool) -> dict:
    command = [sys.executable, "-m", "hh.edge.cli_camera", str(model), "--source", str(video), "--loop", "--json",
               "--serve", str(free_port()), "--max-frames", str(frames), "--threads", "1"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = None
    while url is None:
        line = process.stderr.readline()
        if not line:
            raise RuntimeError("hh-camera ended before serving")
        match = re.search(r"live view: (http://\S+/)", line)
        url = match.group(1) if match else None
    stop, counts = threading.Event(), {"jpeg_parts": 0, "status": 0}
    watcher = threading.Thread(target=watch, args=(url, stop, counts), daemon=True) if client else None
    if watcher:
        watcher.start()
    stdout, _ = process.communicate(timeout=600)
    stop.set()
    summary = [json.loads(line) for line in stdout.splitlines() if '"type": "summary"' in line][0]
    return {"fps": summary["fps"], **counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, nargs="?", default=None)
    parser.add_argument("video", type=Path, nargs="?", default=None)
    parser.add_argument("--frames", type=int, default=None, help=f"default: {FULL['frames']} ({SMOKE['frames']} with --smoke)")
    parser.add_argument("--rounds", type=int, default=None, help=f"default: {FULL['rounds']} ({SMOKE['rounds']} with --smoke)")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/serve.json")
    parser.add_argument("--smoke", action="store_true", help="tiny, in a temporary folder (CI); JSON to bench/results/smoke/")
    args = parser.parse_args()
    scale = SMOKE if args.smoke else FULL
    args.frames, args.rounds = args.frames or scale["frames"], args.rounds or scale["rounds"]
    args.out = args.out or (SMOKE_RESULTS if args.smoke else RESULTS) / "serve.json"
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="hh-bench-serve-") as tmp:
            measure(args, Path(tmp))
    else:
        measure(args, RESULTS)


def measure(args: argparse.Namespace, work: Path) -> None:
    """The alternating rounds; a model and a video that were not given are made in `work`."""
    model = args.model or edge_model(work, args.smoke)
    video = args.video or field_video(work, args.smoke)
    alone, watched = [], []
    for i in range(args.rounds):
        alone.append(run(model, video, args.frames, client=False))
        watched.append(run(model, video, args.frames, client=True))
        print(f"round {i + 1}: {alone[-1]['fps']:.0f} FPS alone, {watched[-1]['fps']:.0f} FPS watched", file=sys.stderr)
    fps_alone = statistics.median(r["fps"] for r in alone)
    fps_watched = statistics.median(r["fps"] for r in watched)
    result = {
        "model": str(model), "frames": args.frames, "rounds": args.rounds,
        "fps_no_client": fps_alone, "fps_one_client": fps_watched, "ratio": fps_watched / fps_alone,
        "jpeg_parts_per_round": [r["jpeg_parts"] for r in watched], "runs": {"alone": alone, "watched": watched},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"hh-camera --serve, {args.frames} frames, median of {args.rounds} alternating rounds:")
    print(f"  no client      {fps_alone:.0f} FPS")
    print(
        f"  one client     {fps_watched:.0f} FPS  ({result['ratio']:.0%}; stream parts received {result['jpeg_parts_per_round']})"
    )


if __name__ == "__main__":
    main()
