"""Pack labels and the preprocessing spec into a .tflite, in the standard TFLite-metadata form.

Stock classifiers that read TFLite metadata (MediaPipe Tasks, the TFLite Support library) find:
- a `TFLITE_METADATA` entry in the model: a ModelMetadata flatbuffer (file identifier "M001")
  describing the input as an RGB image with identity normalization (mean 0, std 1: the model
  takes raw 0-255 pixels, its Rescaling is inside) and the output as per-class probabilities
  whose TENSOR_AXIS_LABELS file is `labels.txt`;
- the associated files (`labels.txt`, and hh's own `preprocessing.json`) appended as an
  uncompressed zip archive, which is how the metadata populator packs them.

tflite-support's writer cannot share an environment with TensorFlow 2.21 (it pins protobuf
3.20), so the ModelMetadata table is built here with `flatbuffers`, following the public
metadata_schema.fbs (schema 1.0 fields only; min_parser_version 1.0.0).
"""

from __future__ import annotations

import io
import zipfile

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tflite_schema

from ..edge.spec import LABELS_FILENAME, SPEC_FILENAME, PreprocessingSpec

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"

# Enum values and union tags from metadata_schema.fbs.
FILE_UNKNOWN, FILE_TENSOR_AXIS_LABELS = 0, 2
COLOR_RGB = 1
CONTENT_FEATURE, CONTENT_IMAGE = 1, 2
UNIT_NORMALIZATION = 1


class _Writer:
    """Thin helpers over flatbuffers.Builder; each table lists its fields by schema slot."""

    def __init__(self) -> None:
        self.b = flatbuffers.Builder(1024)

    def string(self, text: str) -> int:
        return self.b.CreateString(text)

    def offsets(self, items: list[int]) -> int:
        self.b.StartVector(4, len(items), 4)
        for item in reversed(items):
            self.b.PrependUOffsetTRelative(item)
        return self.b.EndVector()

    def floats(self, values: list[float]) -> int:
        self.b.StartVector(4, len(values), 4)
        for value in reversed(values):
            self.b.PrependFloat32(value)
        return self.b.EndVector()

    def table(self, n_slots: int, offsets: dict[int, int] = {}, bytes_: dict[int, int] = {}, uints: dict[int, int] = {}) -> int:  # noqa: B006
        self.b.StartObject(n_slots)
        for slot, value in offsets.items():
            self.b.PrependUOffsetTRelativeSlot(slot, value, 0)
        for slot, value in uints.items():
            self.b.PrependUint32Slot(slot, value, 0)
        for slot, value in bytes_.items():
            self.b.PrependUint8Slot(slot, value, 0)
        return self.b.EndObject()


def build_model_metadata(
    spec: PreprocessingSpec,
    name: str,
    description: str,
    version: str,
    extra_files: dict[str, str] | None = None,
    localized_labels: dict[str, str] | None = None,
) -> bytes:
    """A ModelMetadata flatbuffer for an image classifier taking raw RGB pixels.

    extra_files: more associated files packed with the model (name -> description), listed
    in the model's metadata as the standard says every packed file should be.
    localized_labels: the output's display-name files (file name -> language), each a
    TENSOR_AXIS_LABELS file with its locale, as the standard gives labels in other languages.
    """
    w = _Writer()
    display_files = [
        w.table(
            4,
            offsets={
                0: w.string(file),
                1: w.string(f"Display names ({language}), one per line, in output order."),
                3: w.string(language),
            },
            bytes_={2: FILE_TENSOR_AXIS_LABELS},
        )
        for file, language in (localized_labels or {}).items()
    ]
    extra = [
        w.table(4, offsets={0: w.string(file), 1: w.string(text)}, bytes_={2: FILE_UNKNOWN})
        for file, text in (extra_files or {}).items()
    ]
    # AssociatedFile: name 0, description 1, type 2, locale 3.
    labels_file = w.table(
        4,
        offsets={0: w.string(LABELS_FILENAME), 1: w.string("Class names, one per line, in output order.")},
        bytes_={2: FILE_TENSOR_AXIS_LABELS},
    )
    spec_file = w.table(
        4,
        offsets={
            0: w.string(SPEC_FILENAME),
            1: w.string("hh preprocessing spec: input size, colour order, interpolation, aspect, classes."),
        },
        bytes_={2: FILE_UNKNOWN},
    )
    # Input: ImageSize(width 0, height 1), ImageProperties(color_space 0, default_size 1).
    image_size = w.table(2, uints={0: spec.width, 1: spec.height})
    image_props = w.table(2, offsets={1: image_size}, bytes_={0: COLOR_RGB})
    # Content: content_properties_type 0, content_properties 1, range 2.
    image_content = w.table(3, offsets={1: image_props}, bytes_={0: CONTENT_IMAGE})
    # NormalizationOptions(mean 0, std 1) inside ProcessUnit(options_type 0, options 1).
    normalization = w.table(2, offsets={0: w.floats([0.0]), 1: w.floats([1.0])})
    process_unit = w.table(2, offsets={1: normalization}, bytes_={0: UNIT_NORMALIZATION})
    # Stats: max 0, min 1.
    pixel_stats = w.table(2, offsets={0: w.floats([255.0]), 1: w.floats([0.0])})
    # TensorMetadata: name 0, description 1, dimension_names 2, content 3, process_units 4,
    # stats 5, associated_files 6.
    input_meta = w.table(
        7,
        offsets={
            0: w.string("image"),
            1: w.string(
                f"RGB image, pixels 0-255, resized to {spec.height}x{spec.width} "
                f"({spec.interpolation}, {spec.aspect}); scaling is inside the model."
            ),
            3: image_content,
            4: w.offsets([process_unit]),
            5: pixel_stats,
        },
    )
    feature_props = w.table(0)
    output_content = w.table(3, offsets={1: feature_props}, bytes_={0: CONTENT_FEATURE})
    prob_stats = w.table(2, offsets={0: w.floats([1.0]), 1: w.floats([0.0])})
    output_meta = w.table(
        7,
        offsets={
            0: w.string("probability"),
            1: w.string(f"Probability of each of the {spec.num_classes} classes."),
            3: output_content,
            5: prob_stats,
            6: w.offsets([labels_file, *display_files]),
        },
    )
    # SubGraphMetadata: name 0, description 1, input_tensor_metadata 2, output_tensor_metadata 3.
    subgraph = w.table(
        4,
        offsets={
            0: w.string("image_classifier"),
            1: w.string("Classifies an image into one of the labels."),
            2: w.offsets([input_meta]),
            3: w.offsets([output_meta]),
        },
    )
    # ModelMetadata: name 0, description 1, version 2, subgraph_metadata 3, author 4, license 5,
    # associated_files 6, min_parser_version 7.
    root = w.table(
        8,
        offsets={
            0: w.string(name),
            1: w.string(description),
            2: w.string(version),
            3: w.offsets([subgraph]),
            4: w.string("hh"),
            6: w.offsets([spec_file, *extra]),
            7: w.string(MIN_PARSER_VERSION),
        },
    )
    w.b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(w.b.Output())


def attach_metadata(model: bytes, metadata: bytes, files: dict[str, bytes]) -> bytes:
    """The model with a TFLITE_METADATA buffer (replacing any) and `files` zipped onto its end."""
    tree = tflite_schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    buffer = tflite_schema.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    tree.buffers.append(buffer)
    entry = tflite_schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(tree.buffers) - 1
    tree.metadata = [m for m in (tree.metadata or []) if _name(m) != METADATA_NAME] + [entry]
    builder = flatbuffers.Builder(len(model) + len(metadata) + 1024)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    out = io.BytesIO()
    out.write(builder.Output())
    # Stored, not deflated: readers may map the label file straight out of the model.
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for filename, data in files.items():
            archive.writestr(filename, data)
    return out.getvalue()


def _name(entry) -> str:
    name = entry.name
    return name.decode() if isinstance(name, bytes) else str(name)


def read_model_metadata(model: bytes) -> bytes | None:
    """The raw ModelMetadata flatbuffer of a model, or None (for tests and inspection)."""
    tree = tflite_schema.Model.GetRootAs(model, 0)
    for i in range(tree.MetadataLength()):
        entry = tree.Metadata(i)
        if entry.Name().decode() == METADATA_NAME:
            return tree.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None
