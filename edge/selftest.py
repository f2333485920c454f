"""The golden self-test that travels inside a .tflite: does this device give the workstation's
answers? numpy + OpenCV + LiteRT.

hh proves train/serve parity on the workstation; the device is another machine (another OpenCV
build, another LiteRT, another CPU, sometimes a camera that hands out RGB where BGR was meant).
So hh-convert packs a few validation images into the model file, stored as JPEGs at about twice
the model's input size (so the device's own decoder and resize run), together with

- the Keras model's probabilities for them (the source of truth), and
- the converted model's probabilities on the workstation, through the device path.

`run_selftest` sends the images through this device's exact path (OpenCV decode, fit_to_spec,
colour order, quantization, interpreter) and compares: the device must give the workstation's
.tflite answers within `tolerance` (one output step) and the same top-1 class on every image.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .errors import ModelFileError
from .preprocess import decode_image, to_model_rgb
from .runtime import Classifier
from .spec import PreprocessingSpec

MANIFEST = "selftest.json"
IMAGE_PREFIX = "selftest/"
# 2 added each image's raw output on the workstation and `max_steps`, the rule a device is held
# to; version 1 self-tests (probabilities only, held to `tolerance`) still read.
SELFTEST_VERSION = 2
SELFTEST_VERSIONS = (1, 2)
# How far a device's raw output may be from the workstation's, in quantization steps. Measured
# with the exact resize (hh.edge.resample) and scores out of the int8 model: the same LiteRT on
# x86-64 and on arm64 (emulated Pi 4 and Pi 5 CPUs, `make test-arm`) gives 0 steps, tf.lite on
# x86 too; another kernel set (TFLite's reference kernels, or its builtin ones without XNNPACK)
# differs by one step on some images and never by two. So a device may differ by one step.
MAX_STEPS = 1
# The same in probability, for self-tests of version 1 (hh before the exact resize; OpenCV's own
# resize moved their answers by up to 8 steps of 1/256 between CPUs, hence 0.03).
TOLERANCE = 0.03


@dataclass(frozen=True)
class SelfTestCase:
    file: str  # the image's name inside the model file
    label: str  # its true class
    keras: tuple[float, ...]  # the Keras model's probabilities
    expected: tuple[float, ...]  # this .tflite's probabilities on the workstation, device path
    raw: tuple[int, ...] | None = None  # its raw output tensor there (version 2)


@dataclass(frozen=True)
class SelfTest:
    cases: tuple[SelfTestCase, ...]
    images: dict[str, bytes]
    tolerance: float = TOLERANCE  # probability; the rule when max_steps is None (version 1)
    max_steps: int | None = None  # output steps; the rule when given (version 2)

    def to_files(self) -> dict[str, bytes]:
        manifest: dict = {"version": SELFTEST_VERSION if self.max_steps is not None else 1, "tolerance": self.tolerance}
        if self.max_steps is not None:
            manifest["max_steps"] = self.max_steps
        cases = [{k: v for k, v in asdict(c).items() if not (k == "raw" and v is None)} for c in self.cases]
        manifest["cases"] = cases
        return {MANIFEST: (json.dumps(manifest, indent=1) + "\n").encode(), **self.images}

    @property
    def size_bytes(self) -> int:
        return sum(len(data) for data in self.to_files().values())

    @classmethod
    def from_files(cls, files: dict[str, bytes], where: str = "model", class_names=None) -> SelfTest | None:
        """The self-test packed among a model's associated files, or None when there is none.
        Everything in it is checked; a damaged one is a ModelFileError saying what is wrong."""
        if MANIFEST not in files:
            return None
        try:
            return cls._parse(files, class_names)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:
            raise ModelFileError(f"{where}: its self-test is damaged ({MANIFEST}: {exc})") from None

    @classmethod
    def _parse(cls, files: dict[str, bytes], class_names) -> SelfTest:
        manifest = json.loads(files[MANIFEST])
        if not isinstance(manifest, dict):
            raise ValueError(f"not a JSON object but a {type(manifest).__name__}")
        version = manifest.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version not in SELFTEST_VERSIONS:
            raise ValueError(f"version {version!r}, this hh reads {' and '.join(map(str, SELFTEST_VERSIONS))}")
        tolerance = manifest.get("tolerance")
        if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not 0 <= tolerance < 1:
            raise ValueError(f"tolerance {tolerance!r} is not a probability difference")
        max_steps = manifest.get("max_steps") if version >= 2 else None
        if version >= 2 and (not isinstance(max_steps, int) or isinstance(max_steps, bool) or not 0 <= max_steps < 256):
            raise ValueError(f"max_steps {max_steps!r} is not a number of output steps")
        raw_cases = manifest.get("cases")
        if not isinstance(raw_cases, list) or not raw_cases:
            raise ValueError("it holds no images (an empty self-test proves nothing)")
        width = len(class_names) if class_names is not None else None
        cases = tuple(_case(raw, width, files, with_raw=version >= 2) for raw in raw_cases)
        return cls(cases, {c.file: files[c.file] for c in cases}, float(tolerance), max_steps)


def _case(raw, width: int | None, files: dict[str, bytes], with_raw: bool) -> SelfTestCase:
    """One case of the manifest, checked: its image is packed, its answers are probabilities."""
    if not isinstance(raw, dict):
        raise ValueError(f"a case is a {type(raw).__name__}, not an object")
    file, label = raw.get("file"), raw.get("label")
    if not isinstance(file, str) or file not in files or file == MANIFEST:
        raise ValueError(f"case image {file!r} is not in the model")
    if not isinstance(label, str):
        raise ValueError(f"case {file} has no label")
    answers = []
    for key in ("keras", "expected"):
        values = raw.get(key)
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in values)
        ):
            raise ValueError(f"case {file}: {key} is not a list of probabilities")
        if width is not None and len(values) != width:
            raise ValueError(f"case {file}: {key} has {len(values)} probabilities for {width} classes")
        answers.append(tuple(float(v) for v in values))
    outputs = None
    if with_raw:
        values = raw.get("raw")
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31 for v in values)
        ):
            raise ValueError(f"case {file}: raw is not a list of whole numbers (the output tensor)")
        outputs = tuple(values)
    return SelfTestCase(file, label, answers[0], answers[1], outputs)


@dataclass(frozen=True)
class SelfTestResult:
    images: int
    max_difference: float  # largest |device - workstation .tflite| probability
    agree_expected: int  # images whose top-1 class is the workstation .tflite's
    agree_keras: int  # images whose top-1 class is the Keras model's
    tolerance: float
    worst: str  # the image that differs most, described
    steps: int | None = None  # largest |device - workstation| raw output, in quantization steps
    max_steps: int | None = None  # allowed steps (version 2 self-tests; else `tolerance` rules)

    @property
    def passed(self) -> bool:
        if self.max_steps is not None and self.steps is not None:
            close = self.steps <= self.max_steps
        else:
            close = self.max_difference <= self.tolerance
        return close and self.agree_expected == self.images

    def line(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        if self.max_steps is not None and self.steps is not None:
            steps = "step" if self.steps == 1 else "steps"
            allowed = "step" if self.max_steps == 1 else "steps"
            difference = (
                f"max difference {self.steps} output {steps} ({self.max_difference:.3f} in probability) from the "
                f"workstation (allowed {self.max_steps} {allowed})"
            )
        else:
            difference = f"max difference {self.max_difference:.3f} from the workstation (allowed {self.tolerance:.3f})"
        text = (
            f"self-test {verdict}: {self.images} images, {difference}, top-1 agrees on {self.agree_expected}/{self.images} "
            f"(with Keras {self.agree_keras}/{self.images})"
        )
        if not self.passed:
            text += (
                f"; worst: {self.worst}. This device does not see images as the workstation did: check the camera's "
                "colour order (RGB vs BGR), the OpenCV build and the LiteRT version"
            )
        return text

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def decode(jpeg: bytes, spec: PreprocessingSpec | None = None) -> np.ndarray:
    """A stored image as this device decodes image files (hh.edge.preprocess.decode_image)."""
    image = decode_image(np.frombuffer(jpeg, np.uint8), spec)
    if image is None:
        raise ModelFileError("a self-test image in the model cannot be decoded")
    return image


Prepare = Callable[[np.ndarray, PreprocessingSpec], np.ndarray]


def device_outputs(classifier: Classifier, jpeg: bytes, prepare: Prepare = to_model_rgb) -> tuple[np.ndarray, np.ndarray]:
    """(raw output tensor, probabilities) for a stored image, through this device's path."""
    raw = classifier.invoke_raw(classifier.quantize_input(prepare(decode(jpeg, classifier.spec), classifier.spec)))
    return raw, classifier.dequantize_output(raw)


def run_selftest(classifier: Classifier, selftest: SelfTest, prepare: Prepare = to_model_rgb) -> SelfTestResult:
    """Run the packed images through this device's path and compare with the stored answers.

    prepare: frame -> model-sized RGB, the device's preprocessing (to_model_rgb).
    """
    names = classifier.class_names
    worst, worst_text, largest, agree_expected, agree_keras = -1.0, "", 0.0, 0, 0
    steps: int | None = 0 if selftest.max_steps is not None else None
    for case in selftest.cases:
        raw, got = device_outputs(classifier, selftest.images[case.file], prepare)
        expected, keras = np.array(case.expected), np.array(case.keras)
        difference = float(np.abs(got - expected).max())
        largest = max(largest, difference)
        badness = difference  # the worst image: by steps when the self-test counts them
        if steps is not None:
            if case.raw is not None and len(case.raw) == raw.size:
                case_steps = int(np.abs(raw.astype(np.int64).ravel() - np.array(case.raw, np.int64)).max())
            else:
                case_steps = 256  # an output of another shape: as far off as it gets
            steps = max(steps, case_steps)
            badness += case_steps
        agree_expected += int(got.argmax() == expected.argmax())
        agree_keras += int(got.argmax() == keras.argmax())
        if badness > worst:
            worst = badness
            worst_text = (
                f"{case.file} ({case.label}): expected {names[expected.argmax()]} {expected.max():.2f}, "
                f"got {names[got.argmax()]} {got.max():.2f}"
            )
    return SelfTestResult(
        len(selftest.cases), largest, agree_expected, agree_keras, selftest.tolerance, worst_text, steps, selftest.max_steps
    )


def model_selftest(classifier: Classifier) -> SelfTest | None:
    """The self-test packed into the classifier's model file, or None."""
    from .metadata import read_associated_files

    files = read_associated_files(classifier.model_path, classifier.model_bytes)
    return SelfTest.from_files(files, str(classifier.model_path), classifier.class_names)


def selftest_image(frame_bgr: np.ndarray, spec: PreprocessingSpec, quality: int = 80) -> bytes:
    """An image as the self-test stores it: about twice the model's input size (never larger
    than it was), aspect kept so the device's own crop or squash runs, as JPEG."""
    height, width = frame_bgr.shape[:2]
    scale = min(1.0, 2 * max(spec.height / height, spec.width / width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        frame_bgr = cv2.resize(frame_bgr, size, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode a self-test image")
    return jpeg.tobytes()
