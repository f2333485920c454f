"""Same files, same answers on x86-64 and arm64: the measuring half of `make test-arm`.

    parity.py make WORK              (x86, with TensorFlow) a model, images and a video in WORK
    parity.py measure WORK OUT.json  (any CPU, hh[edge] only) what this CPU makes of them
    parity.py compare X86.json ARM.json...   every answer equal, or exit 1 saying which differ

`measure` records, for the files `make` wrote: the model input's bytes (a digest) for every
interpolation, aspect and three sizes, on photos up to 4000x3000, with hh's exact resize and,
as a control, the OpenCV resize of older models; the model's raw output tensor on every
validation and near-boundary image; and the lines of the commands a user runs (`hh-predict
--selftest`, `hh-predict --json` on the validation and near-boundary folders, `hh-camera --json`
on the video) with the fields that are times or memory left out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

SIZES = ((64, 64), (96, 72), (300, 300))
# Parts of a key that mark a measurement of time or memory in the commands' JSON lines, not an answer.
NOT_ANSWERS = re.compile(r"_ms|ms_|fps|rss|_mb|seconds|elapsed|time")


def make(work: Path) -> None:
    """Synthetic leaves -> a small trained int8 model; near-boundary blends; phone-sized photos; a video."""
    import cv2
    import numpy as np

    bin_dir = Path(sys.executable).parent
    run = [str(bin_dir / "hh-data"), "synth", str(work / "data"), "--classes", "3", "--per-class", "120", "--seed", "3"]
    subprocess.run(run, check=True)
    # 30 epochs: with the default schedule, 12 left a model whose int8 agreement was 0.986, at the gate.
    subprocess.run(
        [str(bin_dir / "hh-train"), str(work / "data/train"), "--val-dir", str(work / "data/validation"),
         "--arch", "edge", "--image-size", "96", "--batch-size", "16", "--epochs", "30", "--out", str(work / "run")],
        check=True,
    )  # fmt: skip
    subprocess.run([str(bin_dir / "hh-convert"), str(work / "run"), "--int8"], check=True)
    validation = sorted((work / "data/validation").rglob("*.jpg"))
    # Near the boundary: two classes' leaves blended, so the model hesitates between them.
    classes = sorted(p.name for p in (work / "data/validation").iterdir())
    by_class = {c: sorted((work / "data/validation" / c).glob("*.jpg")) for c in classes}
    blends = work / "boundary"
    blends.mkdir()
    for i in range(24):
        a, b = by_class[classes[i % len(classes)]][i // 3], by_class[classes[(i + 1) % len(classes)]][i // 3]
        image_a, image_b = cv2.imread(str(a)), cv2.imread(str(b))
        image_b = cv2.resize(image_b, (image_a.shape[1], image_a.shape[0]), interpolation=cv2.INTER_AREA)
        for alpha in (0.4, 0.5, 0.6):
            blend = cv2.addWeighted(image_a, alpha, image_b, 1 - alpha, 0)
            cv2.imwrite(str(blends / f"blend{i:02d}_{int(alpha * 10)}.jpg"), blend, [cv2.IMWRITE_JPEG_QUALITY, 92])
    photos = work / "photos"
    photos.mkdir()
    for i, path in enumerate(validation[:: max(1, len(validation) // 6)][:6]):
        image = cv2.imread(str(path))
        size = (4000, 3000) if i < 2 else (1600, 1200) if i < 4 else (image.shape[1], image.shape[0])
        photo = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC) if size != image.shape[1::-1] else image
        # Fine detail, so every resize has something to get wrong.
        noise = np.random.default_rng(i).integers(-12, 13, photo.shape, dtype=np.int16)
        photo = np.clip(photo.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        cv2.imwrite(str(photos / f"photo{i}_{size[0]}x{size[1]}.jpg"), photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    subprocess.run([str(bin_dir / "hh-data"), "video", str(work / "data/validation"), str(work / "field.avi")], check=True)


def _digest(array) -> str:
    return hashlib.sha256(array.tobytes()).hexdigest()[:16]


def _answers(lines: str) -> list:
    """A command's JSON lines without the fields that are times."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not NOT_ANSWERS.search(k)}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return [strip(json.loads(line)) for line in lines.splitlines() if line.startswith("{")]


def measure(work: Path, out: Path) -> None:

    from hh.edge.preprocess import read_image_bgr, to_model_rgb
    from hh.edge.runtime import Classifier
    from hh.edge.spec import PreprocessingSpec

    logging.getLogger("hh").setLevel(logging.ERROR)  # the control uses the older resize on purpose
    model = work / "run/model_int8.tflite"
    result: dict = {"machine": os.uname().machine, "cpu": os.environ.get("QEMU_CPU", "native"), "inputs": {}}
    for photo in sorted((work / "photos").glob("*.jpg")):
        for size in SIZES:
            for resize in ("exact", "opencv"):
                for interpolation in ("bilinear", "area", "nearest"):
                    for aspect in ("squash", "crop"):
                        spec = PreprocessingSpec(
                            height=size[0], width=size[1], class_names=("a", "b"), interpolation=interpolation,
                            aspect=aspect, resize=resize,
                        )  # fmt: skip
                        key = f"{resize}/{interpolation}/{aspect}/{size[0]}x{size[1]}/{photo.name}"
                        result["inputs"][key] = _digest(to_model_rgb(read_image_bgr(str(photo), spec), spec))
    classifier = Classifier(model, num_threads=1)
    outputs = {}
    images = sorted((work / "data/validation").rglob("*.jpg")) + sorted((work / "boundary").glob("*.jpg"))
    for path in images:
        tensor = classifier.prepare(read_image_bgr(str(path), classifier.spec))
        outputs[str(path.relative_to(work))] = [int(v) for v in classifier.invoke_raw(tensor).ravel()]
        result["inputs"][f"model/{path.relative_to(work)}"] = _digest(tensor)
    result["outputs"] = outputs
    bin_dir = Path(sys.executable).parent

    def command(*args: str) -> list:
        done = subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True)
        if done.returncode not in (0, 1):
            sys.exit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
        return [done.returncode, *_answers(done.stdout)]

    result["commands"] = {
        "selftest": command("hh-predict", str(model), "--selftest", "--json", "--threads", "1"),
        "predict_validation": command("hh-predict", str(model), str(work / "data/validation"), "--json", "--threads", "1"),
        "predict_boundary": command("hh-predict", str(model), str(work / "boundary"), "--json", "--threads", "1"),
        "camera_video": command(
            "hh-camera", str(model), "--source", str(work / "field.avi"), "--headless", "--json", "--threads", "1"
        ),
    }
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['machine']} ({result['cpu']}): {len(result['inputs'])} model inputs, {len(outputs)} outputs -> {out}")


def compare(reference_path: Path, others: list[Path]) -> int:
    reference = json.loads(reference_path.read_text())
    failed = False
    for path in others:
        other = json.loads(path.read_text())
        name = f"{other['machine']} {other['cpu']}"
        exact = [k for k in reference["inputs"] if not k.startswith("opencv/")]
        exact_off = [k for k in exact if reference["inputs"][k] != other["inputs"].get(k)]
        control = [k for k in reference["inputs"] if k.startswith("opencv/")]
        control_off = [k for k in control if reference["inputs"][k] != other["inputs"].get(k)]
        steps = max(
            max(abs(a - b) for a, b in zip(values, other["outputs"].get(image, [-999] * len(values)), strict=True))
            for image, values in reference["outputs"].items()
        )
        differing = sum(reference["outputs"][i] != other["outputs"].get(i) for i in reference["outputs"])
        commands_off = [c for c in reference["commands"] if reference["commands"][c] != other["commands"].get(c)]
        print(
            f"{name}: model inputs (exact resize) identical {len(exact) - len(exact_off)}/{len(exact)}; "
            f"outputs identical {len(reference['outputs']) - differing}/{len(reference['outputs'])} "
            f"(largest difference {steps} steps); commands identical "
            f"{len(reference['commands']) - len(commands_off)}/{len(reference['commands'])}; "
            f"control, OpenCV's own resize: identical {len(control) - len(control_off)}/{len(control)}"
        )
        for key in exact_off[:5]:
            print(f"  differs: model input {key}")
        for command in commands_off:
            print(f"  differs: {command}")
        if exact_off or differing or commands_off:
            failed = True
        if not control_off:
            # The control must show what the exact resize fixes, or this comparison proves nothing.
            print("  the control found no difference: this comparison could not have caught a non-exact resize")
            failed = True
    print("arm64 parity: " + ("FAILED" if failed else "every answer identical"))
    return 1 if failed else 0


def main() -> None:
    verb, *args = sys.argv[1:] or ["help"]
    if verb == "make" and len(args) == 1:
        make(Path(args[0]))
    elif verb == "measure" and len(args) == 2:
        measure(Path(args[0]), Path(args[1]))
    elif verb == "compare" and len(args) >= 2:
        sys.exit(compare(Path(args[0]), [Path(a) for a in args[1:]]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
