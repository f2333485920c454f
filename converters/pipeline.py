"""Convert and verify: the steps behind `hh-convert`.

    source (run folder or .keras) -> check outputs -> calibration images (int8) -> convert
    -> embed labels and spec -> write as *.unverified.tflite -> verify against Keras
    -> rename to the final name, or to *.rejected.tflite when it disagrees

A run folder is read through RunFolder: its model, spec, and the split recorded at training
time, so verification scores the model on exactly the images it was validated on, never on
training images (files added to the data folder since are ignored; changed ones refused).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shlex
import time
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..edge.errors import ParameterError, UserError, VerificationFailed
from ..edge.evaluate import below_field_grade, not_learned
from ..edge.files import (
    atomic_write_bytes,
    atomic_write_text,
    check_output_file,
    publish,
    remove_stale_temp_files,
    temp_name_for,
)
from ..edge.folders import ImageFolder, list_image_folder
from ..edge.metadata import identity_line, model_identity, sidecar_spec
from ..edge.names import read_names_table
from ..edge.quality import calibrate
from ..edge.quiet import native_output_captured
from ..edge.spec import SPEC_FILENAME, UNKNOWN_LABEL, PreprocessingSpec, QualityThresholds, RunInfo
from ..edge.trust import key_id, load_private_key, sign_model
from ..trainer.run_folder import RunFolder
from ..trainer.split import describe_drift
from .gates import MAX_PROB_DIFF, MAX_RECALL_DROP, MIN_AGREEMENT, UNKNOWN_KEEP
from .tflite import MODES, export_graph, to_flatbuffer, with_contract
from .verify import Verification, VerificationInput, verify

log = logging.getLogger("hh.convert")
MIN_CALIBRATION_IMAGES = 100  # below this, int8 ranges are a guess: warn
# Below this many validation images, a temperature or a 95% threshold is fitted to noise.
MIN_HELD_OUT_IMAGES = 20


@dataclass
class Source:
    model_path: Path
    spec: PreprocessingSpec
    run: RunFolder | None  # when the model is a run folder's (hh-train's), for its recorded split


@dataclass
class ConversionReport:
    mode: str
    model: str
    size_mb: float
    size_ratio_to_float32: float  # of the model part alone (model_mb): the packed files are the same in every mode
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
    max_prob_diff: float = MAX_PROB_DIFF  # the gate on max_abs_prob_diff
    selftest_images: int = 0  # validation images packed for the device's self-test
    selftest_kb: float = 0.0  # what they add to the file
    quality: dict | None = None  # the quality gate's thresholds, calibrated on training images
    unknown: dict | None = None  # how the model answers `unknown` (hh.edge.spec.UnknownRule)
    kept: float | None = None  # share of the evaluation images the converted model answers with a class
    kept_of: int | None = None  # how many images `kept` counts (a trained class 'unknown''s left out)
    model_mb: float = 0.0  # the model itself, without its packed labels, spec and self-test images
    unknown_dir: dict | None = None  # {"folder", "images", "unknown", "unreadable"}: --unknown-dir's images
    not_learned: str | None = None  # why the model is not worth deploying (at chance on the evaluation images)
    below_field_grade: str | None = None  # why a model that learned is not yet field-grade, and what to do
    calibration: dict | None = None  # {"temperature", "images", "ece_before", "ece_after"} (hh.edge.calibration)
    recall_drop: float | None = None  # the most any class's recall is below Keras's
    recall_drop_class: str | None = None
    max_recall_drop: float = MAX_RECALL_DROP  # the gate on recall_drop
    names: dict | None = None  # language -> labels named in it (hh-convert --names)
    signed_with: str | None = None  # the id of the key that signed the file (hh-convert --sign)
    identity: str | None = None  # the file's identity, as every device output names it (hh.edge.metadata.model_identity)
    run: dict | None = None  # the training run that made it (hh.edge.spec.RunInfo)

    def lines(self) -> list[str]:
        out = [
            f"{self.model}: {self.size_mb:.3f} MB, the model {self.model_mb:.3f} MB of it "
            f"({self.size_ratio_to_float32:.2f}x float32), converted in {self.convert_seconds:.1f}s",
        ]
        if self.agreement is None:
            out.append("not verified: no evaluation images (give --eval-dir)")
        else:
            out.append(
                f"on {self.eval_images} images: keras accuracy {self.keras_accuracy:.3f}, {self.mode} accuracy "
                f"{self.tflite_accuracy:.3f}, top-1 agreement {self.agreement:.3f} (min {self.min_agreement:.2f}), "
                f"prob diff max {self.max_abs_prob_diff:.4f} (max {self.max_prob_diff:.2f}) mean {self.mean_abs_prob_diff:.4f}"
            )
            if self.recall_drop is not None:
                out.append(
                    f"per class: recall at most {self.recall_drop:.3f} below Keras's ({self.recall_drop_class}; "
                    f"max {self.max_recall_drop:.2f})"
                )
        if self.selftest_images:
            out.append(f"self-test: {self.selftest_images} images packed (+{self.selftest_kb:.0f} KB), passes on this machine")
        if self.calibration:
            c = self.calibration
            out.append(
                f"probabilities: temperature {c['temperature']:.3f} fitted on {c['images']} validation images, "
                f"expected calibration error {c['ece_before']:.3f} -> {c['ece_after']:.3f}"
            )
        if self.names:
            named = ", ".join(f"{language} ({count} label{'s' * (count != 1)})" for language, count in self.names.items())
            out.append(f"display names packed: {named}")
        if self.identity:
            run = RunInfo(**self.run) if self.run else None
            out.append(f"{identity_line(self.identity, run)}: how devices, records and reports name this file")
        if self.signed_with:
            out.append(f"signed with key {self.signed_with}: devices that trust it run this file, unaltered")
        if self.quality:
            out.append(f"quality gate: thresholds calibrated on {self.quality['calibrated_on']} training images")
        if self.unknown:
            kept = f"; {self.kept:.3f} of {self.kept_of} evaluation images keep a class" if self.kept is not None else ""
            out.append(
                f"unknown: answered above a score threshold of {self.unknown['threshold']:.4g} "
                f"(fitted to keep {self.unknown['keep']:.3g} of {self.unknown['calibrated_on']} validation images){kept}"
            )
        if self.unknown_dir:
            u = self.unknown_dir
            share = u["unknown"] / max(1, u["images"])
            unreadable = f"; {u['unreadable']} unreadable skipped" if u.get("unreadable") else ""
            out.append(
                f"unknown: {u['unknown']} of {u['images']} images in {u['folder']} answered unknown ({share:.3f}){unreadable}"
            )
        return out


def resolve_source(path: Path) -> Source:
    """A run folder or a .keras file (with preprocessing.json beside it)."""
    path = Path(path).absolute()
    if not path.exists():
        raise UserError(f"{path} does not exist")
    model_path = path / RunFolder.MODEL if path.is_dir() else path
    if not model_path.exists() and RunFolder(path).is_run():
        resume = f"hh-train --resume {shlex.quote(str(path))}"
        raise UserError(f"the run in {path} has no trained epoch yet (it stopped before the first ended): {resume}")
    if not model_path.exists():
        raise UserError(f"{path} is a folder without {RunFolder.MODEL} (expected a run folder from hh-train)")
    if model_path.suffix != ".keras":
        raise UserError(f"{model_path}: expected a .keras model or a run folder")
    run: RunFolder | None = RunFolder(model_path.parent)
    if run is not None and run.is_run() and model_path == run.model_path:
        if run.repair_publication():
            log.info(
                f"note: {run.path} was interrupted while saving an epoch; rebuilt model.keras and run.json from its checkpoint"
            )
    else:
        run = None
    spec = sidecar_spec(model_path)
    if spec is None:
        raise UserError(f"{model_path}: no {SPEC_FILENAME} beside it (it is written by hh-train)")
    return Source(model_path, spec, run)


def load_keras(model_path: Path):
    from ..trainer.models import load_model_file

    return load_model_file(model_path, "not a loadable Keras model")


def check_model_matches_spec(model, spec: PreprocessingSpec, model_path: Path) -> None:
    if len(model.inputs) != 1:
        raise UserError(f"{model_path}: has {len(model.inputs)} inputs; an image classifier has one")
    shape = tuple(model.inputs[0].shape[1:])
    if shape != (spec.height, spec.width, 3):
        raise UserError(f"{model_path}: input is {shape} but {SPEC_FILENAME} says {(spec.height, spec.width, 3)}")
    if model.output_shape[-1] not in (spec.output_units, spec.num_classes):
        raise UserError(f"{model_path}: outputs {model.output_shape[-1]} values for {spec.num_classes} labels")


def recorded_split(source: Source):
    """The run's recorded split (hh.trainer.split), or None for a bare .keras file."""
    return source.run.read_split() if source.run is not None else None


def recorded_images(source: Source, split: str, instead: str) -> ImageFolder | None:
    """The run's recorded training or validation images, checked against the disk."""
    if source.run is None:
        return None
    recorded = source.run.read_split()
    if recorded is None:
        return None
    drift = recorded.drift((split,))
    if drift:
        raise UserError(
            f"{len(drift)} {split} file(s) recorded when {source.run.path} was trained are not as they were "
            f"({describe_drift(drift)}); restore them, or give other images with {{param:{instead}}}"
        )
    added = recorded.added()
    if added and split == "validation":
        log.info(f"note: {len(added)} image(s) added to the data folders since training are not used (not in the recorded split)")
    return recorded.folder(split, source.run.path)


def checked_folder(path: Path, what: str, cache: Path) -> ImageFolder:
    """A user-given folder of class folders with unusable images dropped (and said so)."""
    from ..trainer.scan import scan_folder

    folder, report = scan_folder(list_image_folder(path, what), cache)
    if report.bad:
        log.info(report.summary())
    return folder


def scratch_dir(source: Source) -> Path:
    return source.run.normalized_dir if source.run else source.model_path.parent / RunFolder.NORMALIZED


def as_model_classes(folder: ImageFolder, spec: PreprocessingSpec, what: str) -> ImageFolder:
    """`folder` labelled with the model's classes: the same classes, or, for a model with a class
    'unknown' trained from negatives, the others alone (images of the leaves, no negatives)."""
    if folder.class_names == spec.class_names:
        return folder
    if trained_unknown(spec) and folder.class_names == spec.class_names[:-1]:
        return replace(folder, class_names=spec.class_names)  # 'unknown' is last: the labels stay
    raise UserError(f"{what} {folder.root} has classes {folder.class_names}, the model {spec.class_names}")


def calibration_folder(source: Source, calib_dir: Path | None) -> ImageFolder:
    if calib_dir is not None:
        folder = checked_folder(calib_dir, "calibration folder", scratch_dir(source))
    else:
        recorded = recorded_images(source, "train", "calib_dir")
        if recorded is None:
            raise UserError("int8 needs calibration images: give {param:calib_dir} (a folder of class folders)")
        folder = recorded
    return as_model_classes(folder, source.spec, "calibration folder")


def eval_folder(source: Source, eval_dir: Path | None) -> ImageFolder | None:
    if eval_dir is not None:
        return checked_folder(eval_dir, "evaluation folder", scratch_dir(source))
    return recorded_images(source, "validation", "eval_dir")


def model_part_size(tflite: bytes) -> int:
    """Bytes of the model itself, without the files zipped onto its end (labels, self-test)."""
    try:
        with zipfile.ZipFile(io.BytesIO(tflite)) as archive:
            return min((info.header_offset for info in archive.infolist()), default=len(tflite))
    except zipfile.BadZipFile:
        return len(tflite)


def float32_reference_size(model, spec: PreprocessingSpec, folder: Path, unknown=None) -> int:
    """Bytes of the float32 model, for the size ratio: the one already converted beside the
    output if there is one (same model), else converted now in memory."""
    existing = folder / MODES["float32"].filename
    if existing.is_file():
        return model_part_size(existing.read_bytes())
    with native_output_captured((1, 2)), contextlib.redirect_stdout(io.StringIO()):
        return model_part_size(
            with_contract(to_flatbuffer(model, spec, "float32", unknown=unknown), spec, "float32", "reference")
        )


def training_sample(source: Source, calib_dir: Path | None, count: int):
    """A sample of the training images (--calib-dir's, else the run's recorded ones), `count`
    per class, as (model inputs, labels); None when there are none to use. A recorded training
    file that changed since is an error, as for int8: what they calibrate must not silently go missing."""
    from ..trainer.data import load_images

    if calib_dir is None and recorded_split(source) is None:
        return None
    return load_images(calibration_folder(source, calib_dir).sample_per_class(count), source.spec)


def trained_unknown(spec: PreprocessingSpec) -> bool:
    """Whether the model has a class UNKNOWN_LABEL of its own, trained from negative images, as
    its last output (hh-train --negatives): the unknown score is then added to that output."""
    return spec.class_names[-1] == UNKNOWN_LABEL and spec.class_mode == "categorical"


def leaves_only(images_and_labels, spec: PreprocessingSpec):
    """The images of the classes proper, without a trained class UNKNOWN_LABEL's negatives:
    what the quality gate and the unknown score learn as normal. None stays None."""
    if images_and_labels is None:
        return None
    images, labels = images_and_labels
    return images[labels != spec.num_classes - 1] if trained_unknown(spec) else images


def quality_thresholds(training) -> QualityThresholds | None:
    """The quality gate's thresholds from training images; None (said so) when there are none."""
    if training is None:
        log.info("note: no recorded training images to calibrate the quality gate on (give --calib-dir); the model carries none")
        return None
    return calibrate(training)


def class_logits(model, images):
    """The logits the model's softmax (or sigmoid) head computes for `images` [N, C] (a
    sigmoid's s as [0, s]), in float64; None when the head is not a Dense softmax or sigmoid."""
    import keras
    import numpy as np

    from .tflite import score_head, score_weights

    found = score_head(model)
    if found is None:
        return None
    features, head = found
    kernel, bias = score_weights(head)
    body = keras.Model(model.inputs, features)
    return body.predict(images.astype(np.float32), batch_size=32, verbose=0).astype(np.float64) @ kernel + bias


def fit_calibration(logits, labels) -> dict | None:
    """Temperature scaling (hh.edge.calibration) fitted on the validation images' logits, with
    the expected calibration error before and after; None (said why) when it does not help."""
    from ..edge.calibration import TEMPERATURE_RANGE, expected_calibration_error, fit_temperature, softmax

    temperature = fit_temperature(logits, labels)
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits / temperature), labels)
    if not TEMPERATURE_RANGE[0] * 1.01 < temperature < TEMPERATURE_RANGE[1] * 0.99 or after > before:
        log.info(
            f"note: the temperature fitted on {len(labels)} validation images ({temperature:.3g}) does not lower the "
            f"calibration error ({before:.3f} -> {after:.3f}); the probabilities are left as trained"
        )
        return None
    return {
        "temperature": round(temperature, 6),
        "images": len(labels),
        "ece_before": round(before, 4),
        "ece_after": round(after, 4),
    }


def fit_unknown_answer(model, mode: str, training, calibration, validation, keep: float, logit_range: float | None, already=None):
    """The unknown answer's statistics (from `training`) and threshold (from `validation`), in
    `mode`'s arithmetic (int8: `calibration`'s ranges); None (said why) when it cannot be fitted.
    already: which of `validation` the model's own class 'unknown' answers (they count against keep)."""
    from .tflite import score_head
    from .unknown import NoStages, fit_unknown

    if score_head(model) is None:
        log.info("note: the model does not end in a Dense softmax or sigmoid layer; it answers no 'unknown'")
        return None
    if validation is None:  # none given (said by the caller), or too few (said where counted)
        return None
    if training is None:
        log.info("note: no training images to fit the 'unknown' answer on (give --calib-dir); the model answers no 'unknown'")
        return None
    log.info(f"fitting the 'unknown' answer on {len(training)} training and {len(validation)} validation images")
    try:
        # The converter prints its temporary SavedModel to stdout: never a caller's business.
        with native_output_captured((1, 2)), contextlib.redirect_stdout(io.StringIO()):
            return fit_unknown(model, training, validation, keep, mode, calibration, logit_range, already)
    except NoStages as exc:
        log.info(f"note: no 'unknown' answer for this model: {exc}")
        return None


def unknown_dir_images(folder: Path) -> list[Path]:
    """The image files under `folder`, at any depth (symbolic links to folders not followed)."""
    from ..edge.folders import is_image_file

    try:
        images = sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_file(p))
    except OSError as exc:
        raise ParameterError("unknown_dir", f"{folder}: cannot be read ({exc.strerror or exc})") from None
    if not images:
        raise ParameterError("unknown_dir", f"{folder}: holds no image files")
    return images


def count_unknown(classifier, folder: Path) -> dict:
    """How many images under `folder` (at any depth) `classifier` answers unknown."""
    from ..edge.preprocess import UnreadableImage, read_image_bgr
    from ..edge.spec import UNKNOWN_LABEL

    images = unknown = unreadable = 0
    for path in unknown_dir_images(folder):
        try:
            frame = read_image_bgr(str(path), classifier.spec)
        except UnreadableImage:
            unreadable += 1
            continue
        images += 1
        unknown += classifier.classify(frame).label == UNKNOWN_LABEL
    if not images:
        raise UserError(f"{folder}: no readable images for {{param:unknown_dir}} ({unreadable} unreadable)")
    return {"folder": str(folder), "images": images, "unknown": unknown, "unreadable": unreadable}


def pack_selftest(model, spec: PreprocessingSpec, evaluation: ImageFolder, per_class: int, pending: Path):
    """The golden self-test for `pending` (the converted model), checked here first: a model
    whose self-test fails on the machine that made it would fail on every device."""
    from ..edge.runtime import Classifier
    from ..edge.selftest import run_selftest
    from .selftest import build_selftest

    selftest = build_selftest(model, spec, evaluation, per_class, pending)
    result = run_selftest(Classifier(pending, num_threads=1), selftest)
    if not result.passed:
        raise VerificationFailed(f"the self-test fails on the machine that made it: {result.line()}")
    return selftest


def output_names(out: Path) -> dict[str, Path]:
    """The files one conversion may write: the model, its report, the refused variants, and
    the model while it is verified (a temporary name of this process: two conversions at
    once never share it, and one killed is cleaned up like any temporary file)."""
    return {
        "model": out,
        "report": out.with_suffix(".report.json"),
        "pending": temp_name_for(out.with_name(out.stem + ".unverified.tflite")),
        "rejected": out.with_name(out.stem + ".rejected.tflite"),
        "rejected_report": out.with_name(out.stem + ".rejected.report.json"),
    }


def check_outputs(names: dict[str, Path], overwrite: bool, model_path: Path) -> None:
    """Every file the conversion may write obeys the overwrite rule, not only the model."""
    out = names["model"]
    if out.exists() and not overwrite and not out.is_dir():
        raise UserError(
            f"{out} already exists (converted before); add {{param:overwrite}} to replace it, or give {{param:out}} another file"
        )
    for name in ("model", "report", "rejected", "rejected_report"):
        check_output_file(names[name], "out", overwrite, inputs=[model_path])


def check_options(mode: str, calib_count: int, min_agreement: float, max_prob_diff: float, max_recall_drop: float) -> None:
    if mode not in MODES:
        raise ParameterError("mode", f"{mode!r} is unknown; choose one of {', '.join(MODES)}")
    if calib_count < 1:
        raise ParameterError("calib_count", f"must be at least 1, got {calib_count}")
    if not 0.0 <= min_agreement <= 1.0:
        raise ParameterError("min_agreement", f"must be between 0 and 1, got {min_agreement}")
    if not 0.0 <= max_prob_diff <= 1.0:
        raise ParameterError("max_prob_diff", f"must be between 0 and 1, got {max_prob_diff}")
    if not 0.0 <= max_recall_drop <= 1.0:
        raise ParameterError("max_recall_drop", f"must be between 0 and 1, got {max_recall_drop}")


def convert(
    path: str | Path,
    mode: str = "float32",
    calib_dir: Path | None = None,
    calib_count: int = 300,
    eval_dir: Path | None = None,
    min_agreement: float = MIN_AGREEMENT,
    out: Path | None = None,
    overwrite: bool = False,
    selftest_per_class: int = 2,
    version: str = "0.1.0",
    max_prob_diff: float = MAX_PROB_DIFF,
    unknown_keep: float | None = UNKNOWN_KEEP,
    unknown_dir: Path | None = None,
    calibrate: bool = True,
    max_recall_drop: float = MAX_RECALL_DROP,
    names: Path | None = None,
    sign: Path | None = None,
) -> ConversionReport:
    """Convert a run folder's model (or a .keras file) to `mode`, embed its contract, verify it.

    The file also carries the quality gate's thresholds (calibrated on training images) and,
    unless selftest_per_class is 0, a golden self-test of that many held-out images per class,
    and, unless unknown_keep is None, the answer `unknown` (hh.converters.unknown) with its
    threshold set to keep that share of the held-out images. With `calibrate`, the probabilities
    are calibrated on the held-out images (temperature scaling, folded into the last layer).
    With `names` (a CSV of label,language,name; hh.edge.names), the labels' display names in
    those languages are packed too. With `sign` (an Ed25519 private key file, hh.edge.trust),
    the file is signed.

    Raises VerificationFailed (keeping the file as *.rejected.tflite) when the converted model
    agrees with Keras on less than `min_agreement` of the held-out images, or when any of its
    probabilities is more than `max_prob_diff` from Keras's, or any class's recall is more than
    `max_recall_drop` below Keras's.
    """
    from ..trainer.data import load_images

    check_options(mode, calib_count, min_agreement, max_prob_diff, max_recall_drop)
    if unknown_keep is not None and not 0.5 <= unknown_keep < 1.0:
        raise ParameterError("unknown_keep", f"must be at least 0.5 and below 1, got {unknown_keep}")
    if unknown_dir is not None and not Path(unknown_dir).is_dir():
        raise ParameterError("unknown_dir", f"{unknown_dir}: not a folder")
    if unknown_dir is not None and unknown_keep is None:
        raise ParameterError("unknown_dir", "counts the images answered unknown, which a model without it never gives")
    if unknown_dir is not None:
        unknown_dir_images(Path(unknown_dir))  # before any work: a folder without images is an error
    if selftest_per_class < 0:
        raise ParameterError("selftest_per_class", f"must be 0 or more, got {selftest_per_class}")
    source = resolve_source(Path(path))
    spec = source.spec
    signing_key = load_private_key(sign) if sign is not None else None  # before any work
    table = None
    if names is not None:  # before any work: a table that names no label of this model is an error
        # 'unknown' may be named whether or not this conversion adds it: one table serves every conversion.
        added = (UNKNOWN_LABEL,) if UNKNOWN_LABEL not in spec.class_names else ()
        table, notes = read_names_table(names, (*spec.class_names, *added))
        for note in notes:
            log.info(f"note: {note}")
    out = Path(out).absolute() if out else source.model_path.parent / MODES[mode].filename
    if out.suffix != ".tflite":
        raise ParameterError("out", f"{out}: the file name must end in .tflite")
    paths = output_names(out)
    check_outputs(paths, overwrite, source.model_path)
    remove_stale_temp_files(out.parent, recursive=False)  # what a killed conversion left

    model = load_keras(source.model_path)
    check_model_matches_spec(model, spec, source.model_path)
    calibration = sample = None
    if mode == "int8":
        folder = calibration_folder(source, calib_dir).sample_per_class(calib_count)
        if len(folder) < MIN_CALIBRATION_IMAGES:
            log.warning(f"only {len(folder)} calibration images; int8 ranges from fewer than {MIN_CALIBRATION_IMAGES} may be off")
        log.info(f"loading {len(folder)} calibration images from {folder.root}")
        sample = load_images(folder, spec)
        calibration = sample[0]
    evaluation = eval_folder(source, eval_dir)
    if evaluation is not None:  # before anything is fitted on it: the labels must index the model's classes
        evaluation = as_model_classes(evaluation, spec, "evaluation folder")
    # The quality gate and `unknown` learn from training images: int8's calibration images, or one sample loaded once.
    training = leaves_only(sample or training_sample(source, calib_dir, calib_count), spec)
    model_spec = spec.with_quality(quality_thresholds(training))

    started = time.monotonic()
    wanted = calibrate or unknown_keep is not None
    validation = load_images(evaluation, spec) if evaluation is not None and wanted else None
    if validation is not None and len(validation[1]) < MIN_HELD_OUT_IMAGES:
        log.info(
            f"note: {len(validation[1])} validation images are too few (at least {MIN_HELD_OUT_IMAGES}) to calibrate the "
            "probabilities or set the 'unknown' threshold on; the model has neither"
        )
        validation = None
    logits = class_logits(model, validation[0]) if validation is not None else None
    calibrated = None
    if calibrate and validation is not None:
        if logits is None:
            log.info("note: the model does not end in a Dense softmax or sigmoid layer; its probabilities are not calibrated")
        else:
            calibrated = fit_calibration(logits, validation[1])
    temperature = calibrated["temperature"] if calibrated else 1.0
    unknown = None
    # A class of that name elsewhere than last (an older run's sorted folders) is answered as trained.
    unusable = UNKNOWN_LABEL in spec.class_names and not trained_unknown(spec)
    if unknown_keep is not None and unusable:
        log.info(f"note: the model has its own class {UNKNOWN_LABEL!r}, not as its last output: no other 'unknown' is added")
    if unknown_keep is not None and not unusable:
        if evaluation is None:
            log.info(
                "note: no validation images to set the 'unknown' threshold on (give --eval-dir); the model answers no 'unknown'"
            )
        leaves = leaves_only(validation, spec)
        spread = float(logits.max() - logits.min()) / temperature if logits is not None else None
        already = None
        if trained_unknown(spec) and validation is not None and logits is not None:
            own = spec.num_classes - 1
            already = logits[validation[1] != own].argmax(1) == own  # leaves its trained class calls unknown
        unknown = fit_unknown_answer(model, mode, training, calibration, leaves, unknown_keep, spread, already)
    if unknown is not None:
        model_spec = model_spec.with_unknown(unknown.rule)
    elif unknown_dir is not None and UNKNOWN_LABEL not in spec.class_names:
        raise UserError("{param:unknown_dir}: the model answers no 'unknown' (see the note above), so there is nothing to count")
    display = table.for_labels(model_spec.class_names) if table is not None else None
    if table is not None and UNKNOWN_LABEL in table.labels and UNKNOWN_LABEL not in model_spec.class_names:
        log.info(f"note: the model answers no {UNKNOWN_LABEL!r}; the names given for it are not packed")
    log.info(f"converting to {mode} ({MODES[mode].description})")
    with native_output_captured((1, 2)), contextlib.redirect_stdout(io.StringIO()):
        flatbuffer = to_flatbuffer(model, spec, mode, calibration, unknown, temperature)
        # What the converted model is checked against: the same graph in Keras, in float.
        changed = unknown is not None or temperature != 1.0
        reference = export_graph(model, spec, unknown=unknown, temperature=temperature, batch_size=None) if changed else model
    seconds = time.monotonic() - started
    # Unsigned until it passes: a model the gates refuse must not carry a signature devices trust.
    tflite = with_contract(flatbuffer, model_spec, mode, version, names=display)
    model_size = model_part_size(tflite)
    float32_size = model_size if mode == "float32" else float32_reference_size(model, spec, out.parent, unknown)

    # Written under a provisional name first: it only takes the real name once verified.
    atomic_write_bytes(paths["pending"], tflite)
    try:
        selftest = None
        if evaluation is not None and selftest_per_class:
            selftest = pack_selftest(reference, model_spec, evaluation, selftest_per_class, paths["pending"])
            tflite = with_contract(flatbuffer, model_spec, mode, version, selftest, display)
            atomic_write_bytes(paths["pending"], tflite)
        verification = None
        if evaluation is not None:
            verification = verify(
                VerificationInput(
                    reference,
                    paths["pending"],
                    spec,
                    evaluation,
                    min_agreement,
                    max_prob_diff,
                    max_recall_drop,
                    model_spec.class_names.index(UNKNOWN_LABEL) if model_spec.unknown else None,
                )
            )
        report = make_report(
            mode, out, tflite, model_size / float32_size, seconds, calibration, verification, min_agreement, paths["pending"]
        )
        report.model_mb = model_size / 1e6
        report.selftest_images = len(selftest.cases) if selftest else 0
        report.selftest_kb = selftest.size_bytes / 1000 if selftest else 0.0
        report.quality = model_spec.quality.as_dict() if model_spec.quality else None
        report.unknown = model_spec.unknown.as_dict() if model_spec.unknown else None
        report.calibration = calibrated
        report.names = display.counts() if display else None
        if signing_key is not None and report.passed is not False:
            tflite = signed(tflite, signing_key)
            atomic_write_bytes(paths["pending"], tflite)
            report.signed_with = key_id(signing_key.public_key())
        report.identity = model_identity(tflite)
        report.run = model_spec.run.as_dict() if model_spec.run else None
        report.max_recall_drop = max_recall_drop
        if verification is not None:
            report.recall_drop, report.recall_drop_class = verification.recall_drop, verification.recall_drop_class
            report.kept, report.kept_of = verification.kept, verification.kept_of
            report.not_learned = not_learned(verification.keras_balanced_accuracy, verification.classes)
            report.below_field_grade = below_field_grade(
                verification.keras_balanced_accuracy,
                verification.classes,
                verification.keras_weakest_class,
                verification.keras_weakest_recall,
            )
        if unknown_dir is not None:
            from ..edge.runtime import Classifier

            report.unknown_dir = count_unknown(Classifier(paths["pending"], num_threads=2), Path(unknown_dir))
    except BaseException:
        paths["pending"].unlink(missing_ok=True)
        raise
    if report.passed is False:
        publish(paths["pending"], paths["rejected"], overwrite)  # the name first: a report never describes another file
        atomic_write_text(paths["rejected_report"], json.dumps(asdict(report), indent=2) + "\n")
        assert verification is not None
        # A model at chance has near-equal scores that rounding reorders: the cause is its training.
        cause = f"; besides, {report.not_learned}" if report.not_learned else ""
        if report.below_field_grade and not cause:
            # An under-trained model has many photos near a class boundary, which int8's rounding flips.
            cause = f"; the model itself is not field-grade: {report.below_field_grade}"
        raise VerificationFailed(
            f"{mode} model {verification.why_refused()}; kept as {paths['rejected']} for inspection, not as {out.name}{cause}"
        )
    publish(paths["pending"], out, overwrite)  # the name first: a report never describes another file
    atomic_write_text(paths["report"], json.dumps(asdict(report), indent=2) + "\n")
    if report.not_learned:  # converted faithfully, and still useless: said as loudly as a refusal
        log.warning(f"warning: {report.not_learned} (the conversion itself is sound)")
    return report


def signed(model: bytes, key) -> bytes:
    """The model, signed with `key` when there is one (hh.edge.trust)."""
    return sign_model(model, key) if key is not None else model


def make_report(
    mode, out, tflite, ratio, seconds, calibration, verification: Verification | None, min_agreement, path
) -> ConversionReport:
    from ..edge.runtime import Classifier

    runtime = Classifier(path, num_threads=1).runtime
    v = verification
    return ConversionReport(
        mode=mode,
        model=str(out),
        size_mb=len(tflite) / 1e6,
        size_ratio_to_float32=ratio,
        convert_seconds=seconds,
        calibration_images=0 if calibration is None else len(calibration),
        eval_images=v.images if v else 0,
        keras_accuracy=v.keras_accuracy if v else None,
        tflite_accuracy=v.tflite_accuracy if v else None,
        agreement=v.agreement if v else None,
        max_abs_prob_diff=v.max_abs_prob_diff if v else None,
        mean_abs_prob_diff=v.mean_abs_prob_diff if v else None,
        min_agreement=min_agreement,
        passed=v.passed if v else None,
        runtime=runtime,
        max_prob_diff=v.max_prob_diff if v else MAX_PROB_DIFF,
    )
