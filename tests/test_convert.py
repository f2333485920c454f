"""hh-convert: every mode converts, loads in LiteRT, carries its contract, and is verified."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from hh.converters.cli import app
from hh.edge.metadata import embedded_spec, read_associated_files
from hh.edge.spec import read_spec

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def converted(converted_run):
    return converted_run


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic", "int8"])
def test_each_mode_converts_loads_and_agrees(converted, mode, min_int8_agreement):
    from ai_edge_litert.interpreter import Interpreter

    run, results = converted
    assert results[mode].exit_code == 0, results[mode].output
    path = run / f"model_{mode}.tflite"
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(inp["shape"]) == [1, 64, 64, 3]
    # Batch 1 in the signature too, not a dynamic batch: LiteRT.js and accelerators need it fixed.
    assert list(inp["shape_signature"]) == [1, 64, 64, 3]
    # One probability per class, even for a sigmoid model, and one for "unknown".
    assert list(out["shape"]) == [1, 3]
    report = json.loads((run / f"model_{mode}.report.json").read_text())
    assert report["passed"] is True and report["eval_images"] == 40
    assert report["agreement"] >= (min_int8_agreement if mode == "int8" else 1.0)
    assert report["max_abs_prob_diff"] < (0.1 if mode in ("int8", "dynamic") else 0.01)
    assert report["size_mb"] == pytest.approx(path.stat().st_size / 1e6)
    assert "top-1 agreement" in results[mode].output
    assert not list(run.glob("*.unverified.tflite"))


@pytest.mark.slow
def test_int8_is_full_integer_with_raw_uint8_pixels_and_small(converted):
    from ai_edge_litert.interpreter import Interpreter

    run, _ = converted
    interpreter = Interpreter(model_path=str(run / "model_int8.tflite"))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    assert inp["dtype"] == np.uint8
    # Rescaling(1/255) folded into the input quantization: raw pixels go in unchanged.
    assert inp["quantization"] == (1.0, 0)
    assert interpreter.get_output_details()[0]["dtype"] == np.uint8
    internal = {t["dtype"] for t in interpreter.get_tensor_details() if t["index"] not in (inp["index"],)}
    float_tensors = [t["name"] for t in interpreter.get_tensor_details() if t["dtype"] == np.float32]
    assert not float_tensors, float_tensors  # no float fallback anywhere in the graph
    assert np.int8 in internal
    ratio = json.loads((run / "model_int8.report.json").read_text())["size_ratio_to_float32"]
    assert ratio <= 0.3


@pytest.mark.slow
def test_labels_and_spec_read_back_from_the_tflite_alone(converted, tmp_path):
    from hh.converters.metadata import read_model_metadata
    from hh.edge.runtime import Classifier

    run, _ = converted
    lonely = tmp_path / "model_int8.tflite"  # no labels.txt or preprocessing.json beside it
    shutil.copy(run / "model_int8.tflite", lonely)
    embedded = embedded_spec(lonely)
    # The run's spec, plus the quality gate's thresholds calibrated by hh-convert.
    assert embedded.quality is not None and embedded.quality.calibrated_on == 160
    # ... and the answer "unknown" after the trained classes.
    assert embedded.unknown is not None
    assert embedded == read_spec(run / "preprocessing.json").with_quality(embedded.quality).with_unknown(embedded.unknown)
    files = read_associated_files(lonely)
    assert files["labels.txt"].decode() == (run / "labels.txt").read_text() + "unknown\n"
    classifier = Classifier(lonely)
    assert classifier.spec_source == "embedded" and classifier.class_names == ("brown_spot", "healthy", "unknown")
    # The standard metadata flatbuffer is there, with its identifier and the label file named.
    metadata = read_model_metadata(lonely.read_bytes())
    assert metadata is not None and metadata[4:8] == b"M001"
    assert b"labels.txt" in metadata and b"TENSOR" not in metadata


def write_fine_contrast_run(root):
    """A run whose model decides on mean(red) - mean(green) differences of a fraction of one
    pixel level, with images that differ only that much: information an 8-bit activation
    cannot hold. Its int8 conversion must lose agreement, and the converter must notice."""
    import keras
    from PIL import Image

    from hh.edge.spec import PreprocessingSpec

    spec = PreprocessingSpec(height=32, width=32, class_names=("green_more", "red_more"))
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    head = keras.layers.Dense(1, activation="sigmoid")
    model = keras.Model(inputs, head(x))
    head.set_weights([np.array([[3000.0], [-3000.0], [0.0]], np.float32), np.zeros(1, np.float32)])
    run = root / "run"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "preprocessing.json").write_text(spec.to_json())
    rng = np.random.default_rng(0)
    for split in ("calib", "eval"):
        for label, name in enumerate(spec.class_names):
            (root / split / name).mkdir(parents=True)
            for i in range(20):
                image = np.full((32, 32, 3), 120, np.uint8)
                # A few pixels one level up in one channel: mean differs by a fraction of a level.
                flips = rng.choice(32 * 32, size=int(rng.integers(20, 60)), replace=False)
                image.reshape(-1, 3)[flips, 0 if label else 1] += 1
                Image.fromarray(image).save(root / split / name / f"{i}.png")
    return run


@pytest.mark.slow
def test_int8_that_loses_agreement_fails_and_does_not_ship(tmp_path):
    run = write_fine_contrast_run(tmp_path)
    result = invoke(run, "--int8", "--calib-dir", tmp_path / "calib", "--eval-dir", tmp_path / "eval")
    assert result.exit_code == 1, result.output
    assert "warning: only 40 calibration images" in result.output
    assert "below --min-agreement 0.98" in result.output
    assert not (run / "model_int8.tflite").exists()
    assert (run / "model_int8.rejected.tflite").exists()
    assert not (run / "model_int8.report.json").exists()  # the refused model has its own report
    report = json.loads((run / "model_int8.rejected.report.json").read_text())
    assert report["passed"] is False and report["agreement"] < 0.98
    assert report["keras_accuracy"] == 1.0  # the float model does see the difference
    # The float32 conversion of the same model keeps it: the gate is not just always failing.
    ok = invoke(run, "--eval-dir", tmp_path / "eval")
    assert ok.exit_code == 0, ok.output


def test_conflicting_flags(trained_run, one_line_error):
    one_line_error(invoke(trained_run, "--int8", "--float16"), "choose one quantization", "--int8 and --float16")


def test_missing_model(tmp_path, one_line_error):
    one_line_error(invoke(tmp_path / "nothing"), "does not exist")
    (tmp_path / "empty_run").mkdir()
    one_line_error(invoke(tmp_path / "empty_run"), "without model.keras")


def test_corrupt_keras_model(trained_run, tmp_path, one_line_error):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("preprocessing.json", "labels.txt"):
        shutil.copy(trained_run / name, run / name)
    (run / "model.keras").write_bytes(b"PK\x03\x04 this is not a model" * 10)
    one_line_error(invoke(run), "model.keras: not a loadable Keras model")
    assert not list(run.glob("*.tflite"))


def test_empty_calibration_folder(trained_run, tmp_path, one_line_error):
    (tmp_path / "calib").mkdir()
    one_line_error(invoke(trained_run, "--int8", "--calib-dir", tmp_path / "calib"), "calibration folder", "no class sub-folders")
    assert not (trained_run / "model_int8.tflite").exists()
