"""Convert a run folder's model and prove the result: the steps behind `hh-convert`."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hh.converters.tflite import MODES, convert, with_contract
from hh.edge.cli_util import UserError
from hh.edge.files import atomic_write_bytes, atomic_write_text
from hh.edge.folders import ImageFolder, list_image_folder
from hh.edge.metadata import sidecar_spec
from hh.edge.runtime import TFLiteClassifier
from hh.edge.spec import LABELS_FILENAME, SPEC_FILENAME, PreprocessingSpec

MIN_CALIBRATION_IMAGES = 100  # below this, int8 ranges are a guess: warn


class VerificationFailed(Exception):
    """The converted model disagrees with its Keras source more than allowed."""


@dataclass
class Source:
    model_path: Path
    spec: PreprocessingSpec
    run_config: dict | None  # run.json's "config", when the model came from hh-train
    data: object = None  # the run's RunData, resolved once when first needed


@dataclass
class ConversionReport:
    mode: str
    model: str
    size_mb: float
    size_ratio_to_float32: float
    convert_seconds: float
    calibration_images: int
    eval_images: int
    keras_accuracy: float | None
    tflite_accuracy: float | None
    agreement: float | None
    max_abs_prob_diff: float | None
    mean_abs_prob_diff: float | None
    min_agreement: float
    passed: bool | None
    runtime: str

    def lines(self) -> list[str]:
        out = [
            f"{self.model}: {self.size_mb:.3f} MB ({self.size_ratio_to_float32:.2f}x float32), converted in {self.convert_seconds:.1f}s",
        ]
        if self.agreement is None:
            out.append("not verified: no evaluation images (give --eval-dir)")
        else:
            out.append(
                f"on {self.eval_images} images: keras accuracy {self.keras_accuracy:.3f}, {self.mode} accuracy "
                f"{self.tflite_accuracy:.3f}, top-1 agreement {self.agreement:.3f} (min {self.min_agreement:.2f}), "
                f"prob diff max {self.max_abs_prob_diff:.4f} mean {self.mean_abs_prob_diff:.4f}"
            )
        return out


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolve_source(path: Path) -> Source:
    """A run folder or a .keras file (with preprocessing.json beside it)."""
    model_path = path / "model.keras" if path.is_dir() else path
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if not model_path.exists():
        raise UserError(f"{path} is a folder without model.keras (expected a run folder from hh-train)")
    if model_path.suffix != ".keras":
        raise UserError(f"{model_path}: expected a .keras model or a run folder")
    spec = sidecar_spec(model_path)
    if spec is None:
        raise UserError(f"{model_path}: no {SPEC_FILENAME} beside it (it is written by hh-train)")
    run_json = model_path.parent / "run.json"
    run_config = None
    if run_json.exists():
        try:
            run_config = json.loads(run_json.read_text())["config"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise UserError(f"{run_json}: unreadable run record ({exc})") from None
    return Source(model_path, spec, run_config)


def load_keras(model_path: Path):
    import zipfile

    import keras

    if not zipfile.is_zipfile(model_path):
        raise UserError(f"{model_path}: not a loadable Keras model (a .keras file is a zip archive; this is not)")
    try:
        # safe_mode: a model file may not run arbitrary code (no Lambda deserialization).
        return keras.models.load_model(model_path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file; all mean the same here.
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{model_path}: not a loadable Keras model ({reason})") from None


def check_model_matches_spec(model, spec: PreprocessingSpec, model_path: Path) -> None:
    if len(model.inputs) != 1:
        raise UserError(f"{model_path}: has {len(model.inputs)} inputs; an image classifier has one")
    shape = tuple(model.inputs[0].shape[1:])
    if shape != (spec.height, spec.width, 3):
        raise UserError(f"{model_path}: input is {shape} but {SPEC_FILENAME} says {(spec.height, spec.width, 3)}")
    if model.output_shape[-1] not in (spec.output_units, spec.num_classes):
        raise UserError(f"{model_path}: outputs {model.output_shape[-1]} values for {spec.num_classes} labels")


def run_data(source: Source):
    """The run's own training and validation sets, listed, scanned and split as hh-train did."""
    from hh.trainer.train import TrainConfig, resolve_data

    if source.data is None:
        source.data = resolve_data(TrainConfig(**source.run_config), source.model_path.parent)
    return source.data


def checked_folder(path: Path, what: str, cache: Path) -> ImageFolder:
    """A user-given folder of class folders with unusable images dropped (and said so)."""
    from hh.trainer.scan import scan_folder

    folder, report = scan_folder(list_image_folder(path, what), cache)
    if report.bad:
        log(report.summary())
    return folder


def calibration_folder(source: Source, calib_dir: Path | None) -> ImageFolder:
    if calib_dir is not None:
        folder = checked_folder(calib_dir, "calibration folder", source.model_path.parent / "normalized")
    elif source.run_config:
        folder = run_data(source).train
    else:
        raise UserError("--int8 needs calibration images: give --calib-dir (a folder of class folders)")
    if folder.class_names != source.spec.class_names:
        raise UserError(f"calibration folder {folder.root} has classes {folder.class_names}, the model {source.spec.class_names}")
    return folder


def eval_folder(source: Source, eval_dir: Path | None) -> ImageFolder | None:
    if eval_dir is not None:
        return checked_folder(eval_dir, "evaluation folder", source.model_path.parent / "normalized")
    if not source.run_config:
        return None
    return run_data(source).val


def float32_reference_size(model, spec: PreprocessingSpec, folder: Path) -> int:
    """Bytes of the float32 .tflite, for the size ratio: the one already converted beside the
    output if there is one (same model, same metadata), else converted now in memory."""
    existing = folder / MODES["float32"].filename
    if existing.exists():
        return existing.stat().st_size
    return len(with_contract(convert(model, spec, "float32"), spec, "float32", "reference"))


def keras_probabilities(model, images: np.ndarray, spec: PreprocessingSpec) -> np.ndarray:
    probs = model.predict(images.astype(np.float32), batch_size=32, verbose=0)
    if probs.shape[-1] == 1 and spec.num_classes == 2:
        probs = np.concatenate([1.0 - probs, probs], axis=-1)
    return probs


def convert_run(
    path: Path,
    mode: str,
    calib_dir: Path | None = None,
    calib_count: int = 300,
    eval_dir: Path | None = None,
    min_agreement: float = 0.98,
    out: Path | None = None,
    version: str = "0.1.0",
) -> ConversionReport:
    from hh.trainer.data import load_images

    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}")
    if calib_count < 1:
        raise UserError(f"--calib-count must be at least 1, got {calib_count}")
    if not 0.0 <= min_agreement <= 1.0:
        raise UserError(f"--min-agreement must be between 0 and 1, got {min_agreement}")
    source = resolve_source(path)
    spec = source.spec
    model = load_keras(source.model_path)
    check_model_matches_spec(model, spec, source.model_path)
    out = out or source.model_path.parent / MODES[mode].filename
    if out.suffix != ".tflite":
        raise UserError(f"--out {out}: the file name must end in .tflite")

    calibration = None
    if mode == "int8":
        folder = calibration_folder(source, calib_dir).sample_per_class(calib_count)
        if len(folder) < MIN_CALIBRATION_IMAGES:
            log(f"warning: only {len(folder)} calibration images; int8 ranges from fewer than {MIN_CALIBRATION_IMAGES} may be off")
        log(f"loading {len(folder)} calibration images from {folder.root}")
        calibration, _ = load_images(folder, spec)
    evaluation = eval_folder(source, eval_dir)

    log(f"converting to {mode} ({MODES[mode].description})")
    started = time.monotonic()
    flatbuffer = convert(model, spec, mode, calibration)
    seconds = time.monotonic() - started
    tflite = with_contract(flatbuffer, spec, mode, version)
    float32_size = len(tflite) if mode == "float32" else float32_reference_size(model, spec, out.parent)

    # Write under a provisional name first: it only takes the real name once verified.
    pending = out.with_name(out.stem + ".unverified.tflite")
    atomic_write_bytes(pending, tflite)
    try:
        report = verify(model, pending, spec, evaluation, mode, out, min_agreement, seconds, len(tflite), float32_size)
        report.calibration_images = 0 if calibration is None else len(calibration)
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    atomic_write_text(out.with_suffix(".report.json"), json.dumps(asdict(report), indent=2) + "\n")
    if report.passed is False:
        rejected = out.with_name(out.stem + ".rejected.tflite")
        pending.replace(rejected)
        raise VerificationFailed(
            f"{mode} model agrees with Keras on {report.agreement:.3f} of {report.eval_images} images, "
            f"below --min-agreement {min_agreement:.2f}; kept as {rejected} for inspection, not as {out.name}"
        )
    pending.replace(out)
    write_sidecars(out.parent, spec)
    return report


def verify(model, tflite_path, spec, evaluation, mode, out, min_agreement, seconds, size, float32_size) -> ConversionReport:
    from hh.trainer.data import load_images

    classifier = TFLiteClassifier(tflite_path, num_threads=2)
    report = ConversionReport(
        mode=mode, model=str(out), size_mb=size / 1e6, size_ratio_to_float32=size / float32_size,
        convert_seconds=seconds, calibration_images=0, eval_images=0, keras_accuracy=None, tflite_accuracy=None,
        agreement=None, max_abs_prob_diff=None, mean_abs_prob_diff=None, min_agreement=min_agreement,
        passed=None, runtime=classifier.runtime,
    )
    if evaluation is None:
        return report
    if evaluation.class_names != spec.class_names:
        raise UserError(f"evaluation folder {evaluation.root} has classes {evaluation.class_names}, the model {spec.class_names}")
    log(f"verifying on {len(evaluation)} images from {evaluation.root}")
    images, labels = load_images(evaluation, spec)
    keras_probs = keras_probabilities(model, images, spec)
    tflite_probs = classifier.predict_rgb(images)
    keras_top, tflite_top = keras_probs.argmax(1), tflite_probs.argmax(1)
    diff = np.abs(keras_probs - tflite_probs)
    report.eval_images = len(images)
    report.keras_accuracy = float(np.mean(keras_top == labels))
    report.tflite_accuracy = float(np.mean(tflite_top == labels))
    report.agreement = float(np.mean(keras_top == tflite_top))
    report.max_abs_prob_diff = float(diff.max())
    report.mean_abs_prob_diff = float(diff.mean())
    report.passed = report.agreement >= min_agreement
    return report


def write_sidecars(folder: Path, spec: PreprocessingSpec) -> None:
    """labels.txt and preprocessing.json beside the model, for tools that read sidecars."""
    for name, text in ((LABELS_FILENAME, spec.labels_text()), (SPEC_FILENAME, spec.to_json())):
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)

