"""Edge latency, the camera loop, memory, and the seed vs edge architectures, in one run.

    python bench/latency.py [--data DIR] [--size 128] [--epochs 15] [--out bench/results/latency.json] [--smoke]

1. Trains `seed` (the classic Keras course's convnet) and `edge` on the same synthetic leaf set (made here if
   missing) and converts each to float32, float16, dynamic and int8 with hh-convert's code;
   the converter's own verification reports give accuracy and agreement.
2. On the same 640x480 video: per-frame latency of Keras float32 `model(x)` and of every
   .tflite, stage by stage, 2 threads.
3. hh-camera on that video vs bare preprocess+invoke: how much the loop costs.
4. hh-camera with the edge int8 model for 10,000 frames: peak RSS and growth.
5. Invoke time of both architectures at the course's 300x300 (untrained weights: latency does
   not depend on their values).
Ratios are computed within this run; machines here are shared and noisy.

--smoke: the same steps at a tiny size (32 px, 20 images per class, 1 epoch, a few dozen frames,
64 px instead of 300) in a temporary folder, for CI; JSON to bench/results/smoke/latency.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

MODES = ("float32", "float16", "dynamic", "int8")
THREADS = 2
RESULTS = Path("bench/results")
SMOKE_RESULTS = RESULTS / "smoke"  # --smoke's JSON, never the full runs' files
# Full size, and --smoke's: the smallest that still runs every step. hh-camera compares memory
# from its 200th frame on (hh.edge.camera.WARMUP_FRAMES), so even a smoke soak needs more.
FULL = {"size": 128, "epochs": 15, "per_class": 500, "frames": 300, "soak_frames": 10_000, "loop_frames": 3000, "at_size": 300}
SMOKE = {"size": 32, "epochs": 1, "per_class": 20, "frames": 30, "soak_frames": 300, "loop_frames": 100, "at_size": 64}


def ensure_data(data: Path, per_class: int = FULL["per_class"]) -> None:
    from hh.trainer.synth import write_dataset

    if not (data / "train").exists():
        print(f"writing synthetic data set to {data} ...", flush=True)
        write_dataset(data, classes=2, per_class=per_class, seed=7)


def ensure_run(arch: str, data: Path, runs: Path, size: int, epochs: int, modes: tuple[str, ...] = MODES) -> Path:
    from hh.converters.pipeline import convert
    from hh.trainer.config import TrainConfig
    from hh.trainer.run_folder import RunFolder
    from hh.trainer.train import train

    run = runs / f"{arch}-{size}"
    if not RunFolder(run).is_run() or RunFolder(run).read_record().status != "complete":
        shutil.rmtree(run, ignore_errors=True)
        print(f"training {arch} at {size}px ...", flush=True)
        config = TrainConfig(
            data_dir=str((data / "train").absolute()),
            val_dir=str((data / "validation").absolute()),
            out=str(run),
            image_size=size,
            batch_size=32,
            epochs=epochs,
            arch=arch,
            seed=0,
        )
        train(config)
    for mode in modes:
        if not (run / f"model_{mode}.tflite").exists():
            print(f"converting {arch} to {mode} ...", flush=True)
            convert(run, mode, min_agreement=0.0)
    return run


def ensure_video(data: Path, video: Path) -> Path:
    """The validation images as a 640x480 video, one frame each (made when missing)."""
    from hh.edge.folders import list_image_folder
    from hh.trainer.synth import write_video

    if not video.exists():
        write_video(list(list_image_folder(data / "validation").paths), video, (640, 480))
    return video


def edge_model(work: Path, smoke: bool) -> Path:
    """The edge net's int8 model, trained on the synthetic leaves as this script does (made when
    missing): for the scripts that measure a model (cores.py, serve.py, web.py) when given none.
    Full size, `work` is bench/results and the run is this script's own edge-128 run."""
    scale = SMOKE if smoke else FULL
    ensure_data(work / "edge-data", scale["per_class"])
    run = ensure_run("edge", work / "edge-data", work / "runs", scale["size"], scale["epochs"], modes=("int8",))
    return run / "model_int8.tflite"


def field_video(work: Path, smoke: bool) -> Path:
    """This script's 640x480 video of the validation leaves (made when missing), for the same scripts."""
    ensure_data(work / "edge-data", (SMOKE if smoke else FULL)["per_class"])
    return ensure_video(work / "edge-data", work / "field-640x480.avi")


def video_frames(data: Path, video: Path) -> list[np.ndarray]:
    import cv2

    ensure_video(data, video)
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def capture_ms(video: Path) -> float:
    """Mean ms to read and decode one frame of the video: the capture stage of a file source."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    count, started = 0, time.perf_counter()
    while capture.read()[0]:
        count += 1
    capture.release()
    return (time.perf_counter() - started) * 1000 / max(1, count)


def keras_latency(run: Path, frames: list[np.ndarray], n: int) -> float:
    """Mean ms of Keras float32 model(x) on one prepared frame: the workstation way."""
    import keras

    from hh.edge.preprocess import to_model_rgb
    from hh.edge.spec import read_spec

    spec = read_spec(run / "preprocessing.json")
    model = keras.models.load_model(run / "model.keras")
    inputs = [to_model_rgb(f, spec)[None].astype(np.float32) for f in frames[:n]]
    for x in inputs[:10]:
        model(x, training=False)
    started = time.perf_counter()
    for x in inputs:
        model(x, training=False)
    return (time.perf_counter() - started) * 1000 / len(inputs)


def tflite_stages(model: Path, frames: list[np.ndarray], n: int) -> dict:
    from hh.edge.runtime import Classifier
    from hh.edge.stage_timing import time_stages

    classifier = Classifier(model, num_threads=THREADS)
    source = iter(frames * (n // len(frames) + 2))
    return time_stages(classifier, source.__next__, n).as_dict()


def camera_run(model: Path, video: Path, *extra: str) -> dict:
    command = [
        sys.executable,
        "-m",
        "hh.edge.cli_camera",
        str(model),
        "--source",
        str(video),
        "--json",
        "--threads",
        str(THREADS),
        *extra,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def invoke_at(arch: str, size: int, calibration: np.ndarray, tmp: Path) -> dict:
    """int8 invoke ms of an untrained `arch` at size x size (300 at full size)."""
    from hh.converters.tflite import to_flatbuffer, with_contract
    from hh.edge.runtime import Classifier
    from hh.edge.spec import PreprocessingSpec
    from hh.edge.stage_timing import time_stages
    from hh.trainer.models import build_model

    spec = PreprocessingSpec(height=size, width=size, class_names=("brown_spot", "healthy"))
    model = build_model(arch, spec)
    path = tmp / f"{arch}-{size}-int8.tflite"
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its temporary SavedModel
        flatbuffer = to_flatbuffer(model, spec, "int8", calibration)
    path.write_bytes(with_contract(flatbuffer, spec, "int8", "bench"))
    classifier = Classifier(path, num_threads=THREADS)
    frames = iter([np.zeros((480, 640, 3), np.uint8)] * 200)
    stages = time_stages(classifier, frames.__next__, 100).as_dict()
    return {"params": model.count_params(), "int8_mb": path.stat().st_size / 1e6, "invoke_ms": stages["invoke"]["mean_ms"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="default: bench/results/edge-data")
    for name in ("size", "epochs", "frames", "soak_frames"):
        default = f"default: {FULL[name]} ({SMOKE[name]} with --smoke)"
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None, help=default)
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/latency.json")
    parser.add_argument("--smoke", action="store_true", help="tiny, in a temporary folder (CI); JSON to bench/results/smoke/")
    args = parser.parse_args()
    scale = SMOKE if args.smoke else FULL
    for name in ("size", "epochs", "frames", "soak_frames"):
        if getattr(args, name) is None:
            setattr(args, name, scale[name])
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="hh-bench-latency-") as tmp:
            run_all(args, Path(tmp), SMOKE)
    else:
        run_all(args, (args.out or RESULTS / "latency.json").parent, FULL)


def run_all(args: argparse.Namespace, work: Path, scale: dict) -> None:
    """Every step; the runs, the video and the 300 px models in `work` (the results folder, or
    --smoke's temporary one)."""
    from hh.trainer.run_folder import RunFolder

    size, epochs, frames, soak_frames = args.size, args.epochs, args.frames, args.soak_frames
    loop_frames, at_size = scale["loop_frames"], scale["at_size"]
    data = args.data or (work / "edge-data" if args.smoke else RESULTS / "edge-data")
    out = args.out or (SMOKE_RESULTS if args.smoke else RESULTS) / "latency.json"
    runs = work / "runs"
    ensure_data(data, scale["per_class"])
    video = work / "field-640x480.avi"
    video_images = video_frames(data, video)
    result: dict = {"size": size, "threads": THREADS, "cpus": os.cpu_count(), "video_frames": len(video_images), "archs": {}}

    for arch in ("seed", "edge"):
        run = ensure_run(arch, data, runs, size, epochs)
        record = RunFolder(run).read_record()
        entry = {
            "val_accuracy": record.best_val_accuracy,
            "keras_float32_ms": keras_latency(run, video_images, frames),
            "modes": {},
        }
        for mode in MODES:
            report = json.loads((run / f"model_{mode}.report.json").read_text())
            stages = tflite_stages(run / f"model_{mode}.tflite", video_images, frames)
            entry["modes"][mode] = {
                "size_mb": report["size_mb"],
                "accuracy": report["tflite_accuracy"],
                "agreement": report["agreement"],
                "invoke_ms": stages["invoke"]["mean_ms"],
                "stages": stages,
            }
        int8 = entry["modes"]["int8"]
        entry["int8_speedup_vs_keras"] = entry["keras_float32_ms"] / int8["invoke_ms"]
        bare_ms = sum(int8["stages"][s]["mean_ms"] for s in ("preprocess", "invoke", "postprocess"))
        decode_ms = capture_ms(video)
        # Long enough that start-up (threads, first decode, first invoke) does not count.
        loop = camera_run(run / "model_int8.tflite", video, "--loop", "--max-frames", str(loop_frames))
        # hh-camera decodes on its own thread while the model runs, so the most it can reach is
        # set by the slower of the two; below that, the rest is the loop's own cost.
        ideal_fps = 1000 / max(bare_ms, decode_ms)
        entry["camera"] = {
            "bare_fps": 1000 / bare_ms,
            "decode_ms": decode_ms,
            "ideal_fps": ideal_fps,
            "loop_fps": loop["fps"],
            "loop_share": loop["fps"] / ideal_fps,
            "loop_vs_bare": loop["fps"] / (1000 / bare_ms),
        }
        result["archs"][arch] = entry
        print(f"{arch}: done", flush=True)

    # Memory is compared from hh-camera's 200th frame on (hh.edge.camera.WARMUP_FRAMES).
    soak = camera_run(runs / f"edge-{size}" / "model_int8.tflite", video, "--loop", "--max-frames", str(soak_frames))
    result["soak"] = {k: soak[k] for k in ("frames_classified", "fps", "rss_mb_warm", "rss_mb_end", "peak_rss_mb")}

    from hh.edge.folders import list_image_folder
    from hh.edge.spec import PreprocessingSpec
    from hh.trainer.data import load_images

    folder = list_image_folder(data / "train").sample_per_class(100)
    calibration, _ = load_images(folder, PreprocessingSpec(height=at_size, width=at_size, class_names=folder.class_names))
    at = f"at_{at_size}"
    result["at_size"] = at_size
    result[at] = {arch: invoke_at(arch, at_size, calibration, work) for arch in ("seed", "edge")}

    seed, edge = result["archs"]["seed"], result["archs"]["edge"]
    result["targets"] = {
        "int8_invoke_8x_faster_than_keras_seed": seed["int8_speedup_vs_keras"] >= 8,
        "int8_invoke_8x_faster_than_keras_edge": edge["int8_speedup_vs_keras"] >= 8,
        "camera_loop_85pct_of_bare_edge": edge["camera"]["loop_share"] >= 0.85,
        "edge_int8_rss_under_150mb": result["soak"]["peak_rss_mb"] < 150,
        "edge_int8_rss_no_growth": result["soak"]["rss_mb_end"] - result["soak"]["rss_mb_warm"] < 5,
        "edge_int8_at_most_1mb": edge["modes"]["int8"]["size_mb"] <= 1.0,
        "edge_int8_invoke_quarter_of_seed": edge["modes"]["int8"]["invoke_ms"] <= seed["modes"]["int8"]["invoke_ms"] / 4,
        f"edge_int8_invoke_quarter_of_seed_{at}": result[at]["edge"]["invoke_ms"] <= result[at]["seed"]["invoke_ms"] / 4,
        "edge_val_accuracy_within_1pt": edge["val_accuracy"] >= seed["val_accuracy"] - 0.01,
    }
    print_table(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


def print_table(result: dict) -> None:
    size = result["size"]
    print(f"\n{size}x{size} models, 640x480 video, {result['threads']} threads, {result['cpus']} CPUs")
    print(f"{'arch':<6}{'model':<16}{'size MB':>9}{'accuracy':>10}{'agree':>8}{'invoke ms':>11}{'vs keras':>10}")
    for arch, entry in result["archs"].items():
        keras_ms = entry["keras_float32_ms"]
        print(f"{arch:<6}{'keras float32':<16}{'':>9}{entry['val_accuracy']:>10.3f}{'':>8}{keras_ms:>11.3f}{1.0:>9.1f}x")
        for mode, m in entry["modes"].items():
            print(
                f"{'':<6}{mode + ' tflite':<16}{m['size_mb']:>9.3f}{m['accuracy']:>10.3f}{m['agreement']:>8.3f}"
                f"{m['invoke_ms']:>11.3f}{keras_ms / m['invoke_ms']:>9.1f}x"
            )
    for arch, entry in result["archs"].items():
        cam = entry["camera"]
        print(
            f"{arch} int8 hh-camera loop {cam['loop_fps']:.0f} FPS; bare preprocess+invoke {cam['bare_fps']:.0f} FPS, "
            f"video decode {1000 / cam['decode_ms']:.0f} FPS; loop reaches {cam['loop_share']:.0%} of the slower of the two "
            f"({cam['loop_vs_bare']:.0%} of bare)"
        )
    soak = result["soak"]
    print(
        f"soak: {soak['frames_classified']} frames, RSS {soak['rss_mb_warm']} -> {soak['rss_mb_end']} MB, "
        f"peak {soak['peak_rss_mb']} MB"
    )
    at_size = result["at_size"]
    for arch, entry in result[f"at_{at_size}"].items():
        print(
            f"at {at_size}x{at_size}: {arch} {entry['params']:,} params, int8 {entry['int8_mb']:.2f} MB, "
            f"invoke {entry['invoke_ms']:.2f} ms"
        )
    for name, ok in result["targets"].items():
        print(f"target {name}: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
