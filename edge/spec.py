"""The preprocessing contract: the one description of what a model expects as input.

Train/serve skew (BGR vs RGB, another resize interpolation or aspect handling, another
scale) is the usual reason an edge classifier disagrees with the workstation model. So the
facts live here once: the trainer writes this spec beside the model, the converter packs it
into the .tflite, and the edge runtime reads it back. Nothing else types an image size or a
label list.

numpy-free even: plain dataclass + JSON, so it loads anywhere.

A spec file says which version of this format it is. A reader refuses a newer version and
any field it does not know, rather than silently dropping a fact the writer thought mattered.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .errors import SpecError

SPEC_FILENAME = "preprocessing.json"
LABELS_FILENAME = "labels.txt"
# 2 added `quality`, the image-quality gate's thresholds (hh.edge.quality); version 1 files,
# which have none, still read. 3 added `resize`: "exact" (hh.edge.resample, the same pixels on
# every CPU); files of versions 1 and 2 read as "opencv", the resize their models were trained with.
# 4 added `unknown`: the model's last label is the answer "none of the classes" (UnknownRule).
# 5 added `run`: which training run made the model, and when (RunInfo).
SPEC_VERSION = 5

# The model sees RGB. OpenCV hands out BGR; the edge side converts, the trainer decodes RGB.
COLOR_ORDER = "RGB"
INTERPOLATIONS = ("bilinear", "nearest", "area")
RESIZES = ("exact", "opencv")
ASPECTS = ("squash", "crop")
CLASS_MODES = ("binary", "categorical")
# The answer "this is none of the classes" (a hand, soil, the sky): the last label of a model
# that carries an UnknownRule. hh-convert adds it, or, for a model with a class of this name trained
# from negative images (hh-train --negatives), adds its score to that class's output.
UNKNOWN_LABEL = "unknown"


MAX_LABEL_BYTES = 255  # a folder name's limit on every common file system


# Characters that reorder the text around them (bidirectional embeddings, overrides, isolates):
# never in a label, a display name or a key's name. One of them turns "Mzima 97%" into "%79 amizM"
# on a page, and makes "healthy" read as any word.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def control_problem(text: str) -> str | None:
    """Why `text` cannot be shown as one plain line (a label, a key's name), or None: a C0 or C1
    control character (a newline), or a character that reorders the text around it."""
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
        return "holds a control character (such as a newline)"
    if BIDI_CONTROLS & set(text):
        return "holds a character that reorders the text around it (a bidi override or isolate)"
    return None


def label_problem(name: object) -> str | None:
    """Why `name` cannot be a class label, or None. The one rule for labels: a label is one
    line of labels.txt, text on a screen, and the name of a folder (a class folder, and the
    folders hh-camera --collect and hh-data merge write into), never a path."""
    if not isinstance(name, str) or not name:
        return "is empty"
    if name != name.strip():
        return "starts or ends with a space"
    if control_problem(name):
        return control_problem(name)
    if "/" in name or "\\" in name or name.startswith("."):
        return "is not a plain folder name (a slash, or a leading dot)"
    if len(name.encode("utf-8")) > MAX_LABEL_BYTES:
        return f"is longer than a folder name may be ({MAX_LABEL_BYTES} bytes)"
    return None


@dataclass(frozen=True)
class QualityThresholds:
    """What a frame must show to be classified (see hh.edge.quality: measured on the model-sized
    grey image, calibrated on the model's training images by hh-convert)."""

    min_sharpness: float  # variance of the Laplacian
    min_brightness: float  # mean grey level
    max_brightness: float
    min_contrast: float  # standard deviation of the grey level
    calibrated_on: int  # how many training images set these

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data) -> QualityThresholds:
        if not isinstance(data, dict) or set(data) != set(cls.__dataclass_fields__):
            raise SpecError(f"quality must hold exactly {', '.join(cls.__dataclass_fields__)}")
        try:
            thresholds = cls(
                min_sharpness=float(data["min_sharpness"]),
                min_brightness=float(data["min_brightness"]),
                max_brightness=float(data["max_brightness"]),
                min_contrast=float(data["min_contrast"]),
                calibrated_on=int(data["calibrated_on"]),
            )
        except (TypeError, ValueError, OverflowError):
            raise SpecError("quality thresholds must be numbers") from None
        # A NaN compares false with everything: a gate with one would pass every frame, silently.
        levels = (thresholds.min_brightness, thresholds.max_brightness)
        finite = all(math.isfinite(v) for v in (thresholds.min_sharpness, thresholds.min_contrast, *levels))
        if not finite or thresholds.min_sharpness < 0 or thresholds.min_contrast < 0 or thresholds.calibrated_on < 1:
            raise SpecError("quality thresholds must be finite and not negative, calibrated on at least one image")
        if not 0 <= levels[0] <= levels[1] <= 255:
            raise SpecError("quality brightness thresholds must lie within 0-255, the lower first")
        return thresholds


@dataclass(frozen=True)
class UnknownRule:
    """How a converted model decides `unknown` (hh.converters.unknown): inside the model, which
    outputs it as its last label; these are the facts of its calibration, for reports."""

    score: str  # what is measured
    threshold: float  # above it, the answer is unknown
    keep: float  # the share of the validation images it keeps (answers with their class)
    calibrated_on: int  # validation images that set the threshold
    fitted_on: int  # training images that set the statistics

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> UnknownRule:
        if not isinstance(data, dict) or set(data) != set(cls.__dataclass_fields__):
            raise SpecError(f"unknown must hold exactly {', '.join(cls.__dataclass_fields__)}")

        def number(value) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        counts = (data["calibrated_on"], data["fitted_on"])
        if not (number(data["threshold"]) and number(data["keep"]) and all(isinstance(c, int) and number(c) for c in counts)):
            raise SpecError("unknown's threshold and keep must be numbers, its image counts whole numbers")
        if not isinstance(data["score"], str):
            raise SpecError("unknown's score must be text")
        rule = cls(data["score"], float(data["threshold"]), float(data["keep"]), *counts)
        if not (math.isfinite(rule.threshold) and rule.threshold > 0 and 0.5 <= rule.keep < 1):
            raise SpecError("unknown must have a finite threshold above 0 and keep at least 0.5, below 1")
        if min(counts) < 1:
            raise SpecError("unknown must be fitted and calibrated on at least one image each")
        return rule


RUN_STARTED = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


@dataclass(frozen=True)
class RunInfo:
    """Which training run made a model: with the file's own hash, what names a model in every
    record and report (hh.edge.runtime.Classifier.identity)."""

    id: str  # the run folder's name
    started: str  # when its training started, UTC, as 2026-12-02T03:00:00Z

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> RunInfo:
        if not isinstance(data, dict) or set(data) != set(cls.__dataclass_fields__):
            raise SpecError(f"run must hold exactly {', '.join(cls.__dataclass_fields__)}")
        run_id = data["id"]
        if not isinstance(run_id, str) or not run_id.isprintable() or not 0 < len(run_id.encode("utf-8")) <= MAX_LABEL_BYTES:
            raise SpecError(f"run id {run_id!r} is not a folder's name")
        if not isinstance(data["started"], str) or not RUN_STARTED.fullmatch(data["started"]):
            raise SpecError(f"run started {data['started']!r} is not a UTC time such as 2026-12-02T03:00:00Z")
        return cls(data["id"], data["started"])


@dataclass(frozen=True)
class PreprocessingSpec:
    """What a model expects: resize raw RGB pixels (0-255) to height x width, nothing more.

    Scaling to [0, 1] is *not* part of preprocessing: it is the model's own first layer
    (`Rescaling(1/255)`), so a full-int8 model can take raw uint8 pixels.
    """

    height: int
    width: int
    class_names: tuple[str, ...]
    class_mode: str = "binary"
    interpolation: str = "bilinear"
    # "squash": resize the whole frame to the model size, ignoring aspect (what Keras' flow_from_directory does).
    # "crop": centre-crop the largest box of the model's aspect, then resize.
    aspect: str = "squash"
    color_order: str = COLOR_ORDER
    quality: QualityThresholds | None = None  # the quality gate's thresholds, once calibrated
    # "exact": hh.edge.resample, the same bytes on every CPU. "opencv": OpenCV's own resize, what
    # models of spec versions 1 and 2 were trained with (its pixels differ between x86 and arm64).
    resize: str = "exact"
    # When set, the last class name is UNKNOWN_LABEL, which the model answers by itself.
    unknown: UnknownRule | None = None
    run: RunInfo | None = None  # the training run that made the model (written by hh-train)
    version: int = field(default=SPEC_VERSION)

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.height < 8 or self.width < 8:
            raise SpecError(f"image size {self.height}x{self.width} is too small (minimum 8x8)")
        if self.interpolation not in INTERPOLATIONS:
            raise SpecError(f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
        if self.resize not in RESIZES:
            raise SpecError(f"resize {self.resize!r} is not one of {', '.join(RESIZES)}")
        if self.aspect not in ASPECTS:
            raise SpecError(f"aspect {self.aspect!r} is not one of {', '.join(ASPECTS)}")
        if self.class_mode not in CLASS_MODES:
            raise SpecError(f"class mode {self.class_mode!r} is not one of {', '.join(CLASS_MODES)}")
        if self.color_order != COLOR_ORDER:
            raise SpecError(f"colour order {self.color_order!r} is not supported (models take {COLOR_ORDER})")
        if len(self.class_names) < 2:
            raise SpecError(f"a classifier needs at least 2 classes, got {len(self.class_names)}")
        if len(set(self.class_names)) != len(self.class_names):
            raise SpecError("class names are not unique")
        for name in self.class_names:
            problem = label_problem(name)
            if problem:
                raise SpecError(f"class name {name!r} {problem}")
        if self.class_mode == "binary" and len(self.class_names) != 2:
            raise SpecError(f"binary class mode needs exactly 2 classes, got {len(self.class_names)}")
        if self.unknown is not None and (self.class_names[-1] != UNKNOWN_LABEL or self.class_mode != "categorical"):
            raise SpecError(f"a model that answers {UNKNOWN_LABEL!r} has it as its last label, of categorical outputs")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width), the order numpy and TensorFlow use."""
        return (self.height, self.width)

    @property
    def output_units(self) -> int:
        """Units of the Keras model's last layer: one sigmoid for binary, else one per class."""
        return 1 if self.class_mode == "binary" else self.num_classes

    def to_json(self) -> str:
        data = asdict(self)
        data["class_names"] = list(self.class_names)
        data["version"] = SPEC_VERSION  # a writer writes its own format (an older model's resize included)
        if self.quality is None:
            del data["quality"]
        else:
            data["quality"] = self.quality.as_dict()
        if self.unknown is None:
            del data["unknown"]
        if self.run is None:
            del data["run"]
        return json.dumps(data, indent=2) + "\n"

    def with_run(self, run: RunInfo) -> PreprocessingSpec:
        return replace(self, run=run)

    def with_quality(self, quality: QualityThresholds | None) -> PreprocessingSpec:
        return replace(self, quality=quality)

    def with_unknown(self, rule: UnknownRule) -> PreprocessingSpec:
        """The spec of a converted model that answers UNKNOWN_LABEL besides these classes (a
        class of that name trained from images, last, stays the one label)."""
        trained = self.class_names[-1] == UNKNOWN_LABEL
        names = self.class_names if trained else (*self.class_names, UNKNOWN_LABEL)
        return replace(self, class_names=names, class_mode="categorical", unknown=rule)

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes proper: the labels without the unknown answer (added, or trained from negatives)."""
        return self.class_names[:-1] if self.unknown is not None else self.class_names

    @classmethod
    def from_json(cls, text: str) -> PreprocessingSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except ValueError:  # a number of thousands of digits, beyond Python's conversion limit
            raise SpecError("not a spec (a number too long to read)") from None
        except RecursionError:
            raise SpecError("not a spec (nested beyond any spec's depth)") from None
        if not isinstance(data, dict):
            raise SpecError("not a JSON object")
        version = data.get("version", SPEC_VERSION)
        if not isinstance(version, int) or version < 1:
            raise SpecError(f"version {version!r} is not a spec version")
        if version > SPEC_VERSION:
            raise SpecError(
                f"spec version {version} is newer than this hh understands ({SPEC_VERSION}); upgrade hh on this machine"
            )
        missing = {"height", "width", "class_names"} - set(data)
        if missing:
            raise SpecError(f"missing field(s): {', '.join(sorted(missing))}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise SpecError(f"unknown field(s) {', '.join(sorted(unknown))} for spec version {version}")
        for name in ("height", "width"):
            if not isinstance(data[name], int) or isinstance(data[name], bool):
                raise SpecError(f"{name} must be a whole number, got {data[name]!r}")
        if not isinstance(data["class_names"], list) or not all(isinstance(n, str) for n in data["class_names"]):
            raise SpecError("class_names must be a list of strings")
        if version < 3:
            if "resize" in data:
                raise SpecError(f"unknown field(s) resize for spec version {version}")
            data = {**data, "resize": "opencv"}
        for name, since in (("unknown", 4), ("run", 5)):
            if version < since and name in data:
                raise SpecError(f"unknown field(s) {name} for spec version {version}")
        if data.get("quality") is not None:
            data = {**data, "quality": QualityThresholds.from_dict(data["quality"])}
        if data.get("unknown") is not None:
            data = {**data, "unknown": UnknownRule.from_dict(data["unknown"])}
        if data.get("run") is not None:
            data = {**data, "run": RunInfo.from_dict(data["run"])}
        try:
            return cls(**data)
        except TypeError as exc:
            raise SpecError(str(exc)) from None

    def labels_text(self) -> str:
        return "".join(name + "\n" for name in self.class_names)


def center_crop_box(height: int, width: int, target_height: int, target_width: int) -> tuple[int, int, int, int]:
    """The largest centred box of the target aspect ratio: (top, left, crop_height, crop_width)."""
    # At least one pixel: a frame thinner than the model's aspect still gives a (tiny) box.
    crop_height = max(1, min(height, (width * target_height) // target_width))
    crop_width = max(1, min(width, (height * target_width) // target_height))
    top = (height - crop_height) // 2
    left = (width - crop_width) // 2
    return top, left, crop_height, crop_width


def read_spec(path: str | Path) -> PreprocessingSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return PreprocessingSpec.from_json(text)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None


def parse_labels(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())
