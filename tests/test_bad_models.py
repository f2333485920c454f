"""Bad model and config files: one line naming the file and the problem, exit 2."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from hh.converters.cli import app as convert_app
from hh.converters.tflite import to_flatbuffer
from hh.edge.cli_predict import app as predict_app
from hh.edge.spec import PreprocessingSpec

runner = CliRunner()
SPEC = PreprocessingSpec(height=32, width=32, class_names=("a", "b"))


def tiny_model(spec=SPEC):
    inputs = keras.Input((spec.height, spec.width, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


@pytest.fixture(scope="module")
def bare_tflite():
    """A float32 .tflite of a 32x32 two-class model with no embedded metadata."""
    return to_flatbuffer(tiny_model(), SPEC, "float32")


def predict(model, image_dir):
    return runner.invoke(predict_app, [str(model), str(image_dir)])


def write_model(folder, content, spec=None, labels=None):
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "model.tflite"
    model.write_bytes(content)
    if spec is not None:
        (folder / "preprocessing.json").write_text(spec.to_json())
    if labels is not None:
        (folder / "labels.txt").write_text("".join(f"{name}\n" for name in labels))
    return model


def test_labels_count_differs_from_spec(bare_tflite, tmp_path, one_line_error):
    model = write_model(tmp_path / "m", bare_tflite, SPEC, labels=["a", "b", "c"])
    one_line_error(predict(model, tmp_path), "labels.txt", "3 labels", "differ")


def test_output_width_differs_from_label_count(bare_tflite, tmp_path, one_line_error):
    three = PreprocessingSpec(height=32, width=32, class_names=("a", "b", "c"), class_mode="categorical")
    model = write_model(tmp_path / "m", bare_tflite, three)
    one_line_error(predict(model, tmp_path), str(model), "output has 2 values but there are 3 labels")


def test_spec_size_differs_from_model_input(bare_tflite, tmp_path, one_line_error):
    model = write_model(tmp_path / "m", bare_tflite, PreprocessingSpec(height=64, width=64, class_names=("a", "b")))
    one_line_error(predict(model, tmp_path), str(model), "input is 32x32 but its preprocessing spec says 64x64")


def test_no_spec_anywhere(bare_tflite, tmp_path, one_line_error):
    model = write_model(tmp_path / "m", bare_tflite)
    one_line_error(predict(model, tmp_path), str(model), "carries no labels/preprocessing metadata")


def test_broken_spec_json(bare_tflite, tmp_path, one_line_error):
    model = write_model(tmp_path / "m", bare_tflite)
    (tmp_path / "m" / "preprocessing.json").write_text('{"height": 32, "width": ')
    one_line_error(predict(model, tmp_path), "preprocessing.json", "not valid JSON")


def test_model_with_two_inputs(tmp_path, one_line_error):
    a, b = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    two_inputs = keras.Model([a, b], keras.layers.Dense(2, activation="softmax")(x))
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(two_inputs).convert()
    model = write_model(tmp_path / "m", flatbuffer, SPEC)
    one_line_error(predict(model, tmp_path), str(model), "has 2 inputs")


def test_keras_model_with_code_is_refused_in_safe_mode(tmp_path, one_line_error):
    """A Lambda layer carries Python code: loading it would run code from a file."""
    run = tmp_path / "run"
    run.mkdir()
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x)).save(run / "model.keras")
    (run / "preprocessing.json").write_text(SPEC.to_json())
    result = runner.invoke(convert_app, [str(run), "--eval-dir", str(tmp_path)])
    one_line_error(result, "model.keras: not a loadable Keras model")
    assert "safe_mode" in result.output or "Lambda" in result.output
    assert not list(run.glob("*.tflite"))


def test_keras_model_that_does_not_match_its_spec(tmp_path, one_line_error):
    run = tmp_path / "run"
    run.mkdir()
    tiny_model(PreprocessingSpec(height=48, width=48, class_names=("a", "b"))).save(run / "model.keras")
    (run / "preprocessing.json").write_text(SPEC.to_json())
    one_line_error(runner.invoke(convert_app, [str(run)]), "model.keras", "input is (48, 48, 3)", "(32, 32, 3)")


def test_model_loads_when_contract_is_consistent(bare_tflite, tmp_path):
    """The control: the same bare file with consistent sidecars classifies."""
    from hh.edge.runtime import Classifier

    model = write_model(tmp_path / "m", bare_tflite, SPEC, labels=["a", "b"])
    classifier = Classifier(model)
    assert classifier.spec_source == "sidecar"
    result = classifier.classify(np.zeros((40, 50, 3), np.uint8))
    assert result.label in ("a", "b") and abs(result.probabilities.sum() - 1) < 1e-5


def packed_model(folder, bare, members):
    """bare + a zip of `members` ({name: (bytes, compression)}), as hh-convert appends one."""
    import io
    import zipfile

    out = io.BytesIO()
    out.write(bare)
    with zipfile.ZipFile(out, "a") as archive:
        for name, (content, compression) in members.items():
            archive.writestr(name, content, compress_type=compression)
    return write_model(folder, out.getvalue())


def test_a_damaged_packed_file_is_one_line(bare_tflite, tmp_path, one_line_error):
    """Bad deflate data in a packed file, or a compression method zip does not know: a model
    file error naming the member, not a zlib traceback."""
    import zipfile

    spec, labels = SPEC.to_json().encode(), b"a\nb\n"
    model = packed_model(
        tmp_path / "m",
        bare_tflite,
        {"labels.txt": (labels * 200, zipfile.ZIP_DEFLATED), "preprocessing.json": (spec, zipfile.ZIP_STORED)},
    )
    data = bytearray(model.read_bytes())
    start = data.index(b"labels.txt", len(bare_tflite)) + len("labels.txt")
    data[start + 2 : start + 12] = b"\xff" * 10  # inside the compressed stream
    model.write_bytes(bytes(data))
    one_line_error(predict(model, tmp_path), str(model), "packed file 'labels.txt' is damaged")
    unknown = packed_model(tmp_path / "u", bare_tflite, {"preprocessing.json": (spec, zipfile.ZIP_STORED)})
    data = bytearray(unknown.read_bytes())
    for header in (b"PK\x03\x04", b"PK\x01\x02"):  # the method field in both headers: 99
        at = data.index(header, len(bare_tflite))
        offset = 8 if header == b"PK\x03\x04" else 10
        data[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
    unknown.write_bytes(bytes(data))
    one_line_error(predict(unknown, tmp_path), str(unknown), "packed file 'preprocessing.json' is damaged")


def test_a_packed_file_claiming_too_much_is_not_read(bare_tflite, tmp_path, one_line_error):
    import zipfile

    from hh.edge.metadata import MAX_PACKED_FILE_BYTES

    big = b" " * (MAX_PACKED_FILE_BYTES + 1)  # deflates to kilobytes
    model = packed_model(tmp_path / "m", bare_tflite, {"preprocessing.json": (big, zipfile.ZIP_DEFLATED)})
    assert model.stat().st_size < 200_000
    one_line_error(predict(model, tmp_path), str(model), "claims", "not read")
