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
.tflite answers within `tolerance` (a few int8 steps) and the same top-1 class on every image.
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
SELFTEST_VERSION = 1
# Largest allowed |device - workstation| probability. One int8 output step is 1/256 (0.004);
# the same model on the same pixels differs by at most a step or two across CPUs.
TOLERANCE = 0.03


@dataclass(frozen=True)
class SelfTestCase:
    file: str  # the image's name inside the model file
    label: str  # its true class
    keras: tuple[float, ...]  # the Keras model's probabilities
    expected: tuple[float, ...]  # this .tflite's probabilities on the workstation, device path


@dataclass(frozen=True)
class SelfTest:
    cases: tuple[SelfTestCase, ...]
    images: dict[str, bytes]
    tolerance: float = TOLERANCE

    def to_files(self) -> dict[str, bytes]:
        manifest = {"version": SELFTEST_VERSION, "tolerance": self.tolerance, "cases": [asdict(c) for c in self.cases]}
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
        if manifest.get("version") != SELFTEST_VERSION:
            raise ValueError(f"version {manifest.get('version')!r}, this hh reads {SELFTEST_VERSION}")
        tolerance = manifest.get("tolerance")
        if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not 0 <= tolerance < 1:
            raise ValueError(f"tolerance {tolerance!r} is not a probability difference")
        raw_cases = manifest.get("cases")
        if not isinstance(raw_cases, list) or not raw_cases:
            raise ValueError("it holds no images (an empty self-test proves nothing)")
        width = len(class_names) if class_names is not None else None
        cases = tuple(_case(raw, width, files) for raw in raw_cases)
        return cls(cases, {c.file: files[c.file] for c in cases}, float(tolerance))


def _case(raw, width: int | None, files: dict[str, bytes]) -> SelfTestCase:
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
    return SelfTestCase(file, label, answers[0], answers[1])


@dataclass(frozen=True)
class SelfTestResult:
    images: int
    max_difference: float  # largest |device - workstation .tflite| probability
    agree_expected: int  # images whose top-1 class is the workstation .tflite's
    agree_keras: int  # images whose top-1 class is the Keras model's
    tolerance: float
    worst: str  # the image that differs most, described

    @property
    def passed(self) -> bool:
        return self.max_difference <= self.tolerance and self.agree_expected == self.images

    def line(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        text = (
            f"self-test {verdict}: {self.images} images, max difference {self.max_difference:.3f} from the workstation "
            f"(allowed {self.tolerance:.3f}), top-1 agrees on {self.agree_expected}/{self.images} "
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


def device_probabilities(classifier: Classifier, jpeg: bytes, prepare: Prepare = to_model_rgb) -> np.ndarray:
    return classifier.invoke(classifier.quantize_input(prepare(decode(jpeg, classifier.spec), classifier.spec)))


def run_selftest(classifier: Classifier, selftest: SelfTest, prepare: Prepare = to_model_rgb) -> SelfTestResult:
    """Run the packed images through this device's path and compare with the stored answers.

    prepare: frame -> model-sized RGB, the device's preprocessing (to_model_rgb).
    """
    names = classifier.class_names
    worst, worst_text, agree_expected, agree_keras = -1.0, "", 0, 0
    for case in selftest.cases:
        got = device_probabilities(classifier, selftest.images[case.file], prepare)
        expected, keras = np.array(case.expected), np.array(case.keras)
        difference = float(np.abs(got - expected).max())
        agree_expected += int(got.argmax() == expected.argmax())
        agree_keras += int(got.argmax() == keras.argmax())
        if difference > worst:
            worst = difference
            worst_text = (
                f"{case.file} ({case.label}): expected {names[expected.argmax()]} {expected.max():.2f}, "
                f"got {names[got.argmax()]} {got.max():.2f}"
            )
    return SelfTestResult(len(selftest.cases), max(worst, 0.0), agree_expected, agree_keras, selftest.tolerance, worst_text)


def model_selftest(classifier: Classifier) -> SelfTest | None:
    """The self-test packed into the classifier's model file, or None."""
    from .metadata import read_associated_files

    return SelfTest.from_files(read_associated_files(classifier.model_path), str(classifier.model_path), classifier.class_names)


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
