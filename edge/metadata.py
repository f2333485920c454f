"""Read the labels and preprocessing spec a .tflite carries inside itself. stdlib only.

hh-convert packs them the standard TFLite-metadata way: the model's metadata flatbuffer names
`labels.txt` as the output's TENSOR_AXIS_LABELS file, and the files themselves are appended as
an uncompressed zip archive, so the .tflite is also a valid zip. zipfile reads that directly.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from pathlib import Path

from .errors import ModelFileError, first_line
from .files import read_regular_file
from .spec import LABELS_FILENAME, SPEC_FILENAME, PreprocessingSpec, RunInfo, SpecError, parse_labels, read_spec

# What hh packs (labels, spec, a few self-test JPEGs) is kilobytes; a member that claims more
# than this is not read (a zip bomb: 400 MB from a 437 KB model).
MAX_PACKED_FILE_BYTES = 16 * 1024 * 1024
# What reading a damaged member can raise: bad deflate data, an unknown compression method, an
# encrypted member, a truncated one.
DAMAGED_MEMBER = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, ValueError)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, model_path: str | Path) -> bytes:
    if info.file_size > MAX_PACKED_FILE_BYTES:
        raise ModelFileError(f"{model_path}: packed file {info.filename!r} claims {info.file_size} bytes: not read")
    try:
        return archive.read(info)
    except DAMAGED_MEMBER as exc:
        raise ModelFileError(f"{model_path}: packed file {info.filename!r} is damaged ({first_line(exc)})") from None


def model_identity(model: bytes) -> str:
    """What names a model file in every record and report: the start of the SHA-256 of its bytes.
    Two files with the same identity are the same model, labels, spec and self-test included."""
    return hashlib.sha256(model).hexdigest()[:12]


def identity_line(identity: str, run: RunInfo | None) -> str:
    """A model's identity for a person, as every command prints it: its hash, and the run that made it."""
    return f"model {identity}" + (f" (run {run.id}, trained {run.started})" if run else " (no training run recorded)")


# Larger than any model hh makes or a device runs (TFLite's own flatbuffers end at 2 GB).
MAX_MODEL_BYTES = 1 << 30


def read_model_bytes(model_path: str | Path) -> bytes:
    """The bytes of a model file, read once: everything about a loaded model (its interpreter,
    spec, self-test, identity, signature) comes from them, so a file replaced or overwritten
    while it runs changes nothing (the interpreter does not map the file). Only a regular file
    of a sane size is read: a device, a pipe or a link to one is refused, not waited on."""
    path = Path(model_path)
    hint = f"; give the .tflite file (for example {path}/model_int8.tflite)"
    data = read_regular_file(path, "model file", MAX_MODEL_BYTES, ModelFileError, hint)
    if len(data) < 16:
        raise ModelFileError(f"{path}: not a TFLite model (file is {len(data)} bytes)")
    if data[4:8] != b"TFL3":
        raise ModelFileError(f"{path}: not a TFLite model (no TFL3 identifier)")
    return data


def _archive(model_path: str | Path, data: bytes | None) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(data) if data is not None else model_path)


def read_associated_files(model_path: str | Path, data: bytes | None = None) -> dict[str, bytes]:
    """Files packed into a .tflite (empty when it carries none); a damaged or oversized one is
    a ModelFileError. With `data`, from those bytes of the file (`model_path` names it)."""
    try:
        with _archive(model_path, data) as archive:
            return {info.filename: _read_member(archive, info, model_path) for info in archive.infolist()}
    except (zipfile.BadZipFile, OSError):
        return {}


def declared_outputs(model_path: str | Path, data: bytes | None = None) -> str | None:
    """What the model's quantization.json says its output is ("scores"), or None when it does
    not say (older files, other converters): the runtime then finds out by probing."""
    try:
        with _archive(model_path, data) as archive:
            declared = json.loads(_read_member(archive, archive.getinfo("quantization.json"), model_path))
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, RecursionError, ModelFileError):
        return None
    outputs = declared.get("outputs") if isinstance(declared, dict) else None
    return outputs if outputs in ("scores", "probabilities") else None


def embedded_spec(model_path: str | Path, data: bytes | None = None) -> PreprocessingSpec | None:
    files = read_associated_files(model_path, data)
    if SPEC_FILENAME not in files:
        return None
    try:
        spec = PreprocessingSpec.from_json(files[SPEC_FILENAME].decode("utf-8"))
    except (SpecError, UnicodeDecodeError) as exc:
        raise SpecError(f"{model_path}: embedded {SPEC_FILENAME}: {exc}") from None
    if LABELS_FILENAME in files:
        labels = parse_labels(files[LABELS_FILENAME].decode("utf-8"))
        if labels != spec.class_names:
            raise SpecError(f"{model_path}: embedded {LABELS_FILENAME} and {SPEC_FILENAME} disagree on the labels")
    return spec


def sidecar_spec(model_path: str | Path) -> PreprocessingSpec | None:
    """preprocessing.json beside the model; labels.txt beside it, when present, must agree."""
    folder = Path(model_path).parent
    if not (folder / SPEC_FILENAME).exists():
        return None
    spec = read_spec(folder / SPEC_FILENAME)
    labels_path = folder / LABELS_FILENAME
    if labels_path.exists():
        labels = parse_labels(labels_path.read_text(encoding="utf-8"))
        if labels != spec.class_names:
            raise SpecError(
                f"{labels_path}: {len(labels)} labels that differ from the {spec.num_classes} in {folder / SPEC_FILENAME}"
            )
    return spec


def read_model_spec(model_path: str | Path, data: bytes | None = None) -> tuple[PreprocessingSpec, str]:
    """The spec for a model, embedded first, sidecar files second; and where it came from."""
    spec = embedded_spec(model_path, data)
    if spec is not None:
        return spec, "embedded"
    spec = sidecar_spec(model_path)
    if spec is not None:
        return spec, "sidecar"
    raise SpecError(
        f"{model_path}: carries no labels/preprocessing metadata and has no {SPEC_FILENAME} beside it "
        "(convert it with hh-convert)"
    )
