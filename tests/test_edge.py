"""The edge side: parity with training, hh-camera on a real video file, hh-predict, no TensorFlow."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hh.edge.cli_camera import app as camera_app
from hh.edge.cli_predict import app as predict_app
from hh.edge.folders import list_image_folder
from hh.edge.preprocess import read_image_bgr, to_model_rgb
from hh.edge.runtime import Classifier
from hh.edge.spec import PreprocessingSpec
from hh.trainer.synth import write_video

runner = CliRunner()
# The int8 model through the edge path (cv2 decode, resize, BGR->RGB, quantize) vs the Keras
# model through the training path: top-1 agreement on the 40 held-out images.
MIN_EDGE_AGREEMENT = 0.95
# hh-camera on a video of the held-out images (re-encoded as MJPEG at 640x480): accuracy.
MIN_VIDEO_ACCURACY = 0.75


@pytest.fixture(scope="module")
def photo_sizes(synth_data, tmp_path_factory):
    """The validation leaves, plus some of them at a phone's size (4000x3000) and at 1600x1200:
    JPEGs large enough to be decoded at reduced DCT scale."""
    import cv2

    root = tmp_path_factory.mktemp("photos") / "photos"
    folder = list_image_folder(synth_data / "validation")
    for path, label in list(zip(folder.paths, folder.labels))[::5]:
        for size in ((4000, 3000), (1600, 1200)):
            target = root / folder.class_names[label] / f"{size[0]}_{Path(path).name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            photo = cv2.resize(cv2.imread(path), size, interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(str(target), photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return synth_data / "validation", root


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest", "area"])
@pytest.mark.parametrize("aspect", ["squash", "crop"])
@pytest.mark.parametrize("size", [(64, 64), (96, 72), (300, 300)])
@pytest.mark.parametrize("photos", ["leaves", "large"])
def test_training_loader_and_edge_give_identical_model_inputs(photo_sizes, interpolation, aspect, size, photos):
    """The same files through tf.data and through the edge's file path (OpenCV decode, with
    reduced DCT scale for large JPEGs, fit_to_spec, BGR->RGB): every pixel equal. Bound: 0.

    The loader calls the device's own functions, so this tests the pipeline around them. (Before
    the loader shared them it differed by ~1 level per pixel on average, TensorFlow's default
    fast IDCT, and by up to 160 levels at some pixels when upscaling with nearest or area.)"""
    from hh.trainer.data import load_images

    folder = list_image_folder(photo_sizes[0] if photos == "leaves" else photo_sizes[1])
    spec = PreprocessingSpec(
        height=size[0], width=size[1], class_names=folder.class_names, aspect=aspect, interpolation=interpolation
    )
    train_side, _ = load_images(folder, spec)
    edge_side = np.stack([to_model_rgb(read_image_bgr(p, spec), spec) for p in folder.paths])
    np.testing.assert_array_equal(train_side, edge_side)


def test_large_jpegs_decode_at_reduced_scale_and_barely_differ(photo_sizes):
    """A 4000x3000 photo for a 300 px model decodes at 1/4 (1000x750), 1600x1200 at 1/2; the
    model input differs from a full decode's by less than 2 levels on average."""
    from hh.edge.preprocess import jpeg_size, reduced_scale

    spec = PreprocessingSpec(height=300, width=300, class_names=("a", "b"))
    for path in list_image_folder(photo_sizes[1]).paths:
        size = jpeg_size(np.fromfile(path, np.uint8))
        assert reduced_scale(size, spec) == (4 if size == (3000, 4000) else 2)
        reduced = to_model_rgb(read_image_bgr(path, spec), spec).astype(int)
        full = to_model_rgb(read_image_bgr(path), spec).astype(int)
        assert np.abs(reduced - full).mean() < 2.0


def test_colour_order_is_rgb_from_bgr_frames():
    spec = PreprocessingSpec(height=8, width=8, class_names=("a", "b"))
    bgr = np.zeros((20, 30, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's order
    rgb = to_model_rgb(bgr, spec)
    assert rgb.shape == (8, 8, 3) and rgb[..., 2].min() == 200 and rgb[..., 0].max() == 0
    grey = to_model_rgb(np.full((10, 10), 77, np.uint8), spec)
    assert grey.shape == (8, 8, 3) and (grey == 77).all()


@pytest.mark.slow
def test_keras_and_int8_through_the_edge_path_agree(trained_run, int8_model, synth_data):
    import keras

    from hh.trainer.data import load_images

    folder = list_image_folder(synth_data / "validation")
    classifier = Classifier(int8_model)
    model = keras.models.load_model(trained_run / "model.keras")
    images, labels = load_images(folder, classifier.spec)
    keras_top = (model.predict(images.astype(np.float32), verbose=0)[:, 0] > 0.5).astype(int)
    # Read as hh-predict reads a file (a large JPEG at reduced DCT scale, as training read it).
    answers = [classifier.classify(read_image_bgr(p, classifier.spec)) for p in folder.paths]
    # The classes' answers agree; the int8 model also answers "unknown" for about 5% of them
    # (its threshold keeps 95% of these validation images).
    edge_top = np.array([a.probabilities[:2].argmax() for a in answers])
    assert np.mean(keras_top == edge_top) >= MIN_EDGE_AGREEMENT
    assert np.mean(edge_top == labels) >= 0.75
    assert np.mean([a.label == "unknown" for a in answers]) <= 0.1


@pytest.mark.slow
def test_camera_on_a_video_file_labels_frames_and_summarises(int8_model, synth_data, tmp_path):
    folder = list_image_folder(synth_data / "validation")
    video = write_video(folder.paths, tmp_path / "field.avi")
    record = tmp_path / "out" / "frames.csv"
    # --threshold 0: every frame's own answer, the classifier's accuracy (not the uncertainty policy)
    args = [str(int8_model), "--source", str(video), "--json", "--record", str(record), "--threshold", "0"]
    result = runner.invoke(camera_app, args)
    assert result.exit_code == 0, result.output
    objects = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    frames = [o for o in objects if o["type"] == "frame"]
    summary = [o for o in objects if o["type"] == "summary"]
    assert [f["frame"] for f in frames] == list(range(len(folder)))  # files: no frame dropped
    names = folder.class_names
    accuracy = np.mean([f["label"] == names[label] for f, label in zip(frames, folder.labels)])
    assert accuracy >= MIN_VIDEO_ACCURACY, accuracy
    assert set(frames[0]) >= {"time", "frame", "label", "probability", "probabilities", "inference_ms"}
    assert sum(frames[0]["probabilities"].values()) == pytest.approx(1.0, abs=0.02)
    assert summary and summary[0]["frames_classified"] == len(folder) and summary[0]["fps"] > 0
    assert "frames classified" in result.stderr and "latency p50" in result.stderr
    rows = record.read_text().splitlines()
    assert len(rows) == len(folder) + 1 and rows[0].startswith("frame,time,label,retake,probability")
    assert not list(record.parent.glob(".*tmp*"))


@pytest.mark.slow
def test_camera_options_every_max_frames_threshold_smooth(int8_model, synth_data, tmp_path):
    folder = list_image_folder(synth_data / "validation")
    video = write_video(folder.paths[:10], tmp_path / "short.avi", repeat=2)

    def frames(*args):
        result = runner.invoke(camera_app, [str(int8_model), "--source", str(video), "--json", *args])
        assert result.exit_code == 0, result.output
        return [json.loads(x) for x in result.stdout.splitlines() if '"type": "frame"' in x]

    assert [f["frame"] for f in frames("--every", "3")] == [0, 3, 6, 9, 12, 15, 18]
    assert len(frames("--max-frames", "4")) == 4
    # Every class answer is below 1.0; "unknown" is an answer of its own, never "uncertain".
    labels = {f["label"] for f in frames("--threshold", "1.0")}
    assert "uncertain" in labels and labels <= {"uncertain", "unknown"}
    plain, smoothed = frames(), frames("--smooth", "4")
    # Smoothing over 4 frames: the 4th result is the mean of the first 4 raw ones.
    raw = np.array([[f["probabilities"][n] for n in folder.class_names] for f in plain[:4]])
    np.testing.assert_allclose([smoothed[3]["probabilities"][n] for n in folder.class_names], raw.mean(axis=0), atol=2e-5)


def test_a_video_plays_at_its_own_rate_with_realtime_and_a_record_stops_at_its_cap(int8_model, synth_data, tmp_path):
    folder = list_image_folder(synth_data / "validation")
    video = write_video(folder.paths[:10], tmp_path / "ten-fps.avi", fps=10.0, repeat=2)  # 20 frames, 2 s

    def arrivals(*args):
        result = runner.invoke(camera_app, [str(int8_model), "--source", str(video), "--json", *args])
        assert result.exit_code == 0, result.output
        times = [json.loads(x)["time"] for x in result.stdout.splitlines() if '"type": "frame"' in x]
        assert len(times) == 20
        return times[-1] - times[0], result

    fast, _ = arrivals()
    paced, _ = arrivals("--realtime")
    assert fast < 1.0 and 1.8 <= paced < 4.0, (fast, paced)  # 19 intervals of 0.1 s
    record = tmp_path / "frames.csv"
    _, capped = arrivals("--record", str(record), "--record-max-mb", "0.0015")
    rows = record.read_text().splitlines()
    assert 2 <= len(rows) < 21 and record.stat().st_size < 1500 + 200  # stopped at the cap; the camera went on
    assert capped.stderr.count("recording stopped after") == 1 and "at its size cap (0.0015 MB)" in capped.stderr
    bad = runner.invoke(camera_app, [str(int8_model), "--source", str(video), "--record", str(record), "--record-max-mb", "0"])
    assert bad.exit_code == 2 and "--record-max-mb must be a number of megabytes, at least 0.001" in bad.output
    before = record.stat().st_size  # a record over its cap already: not one row more (a restarting service)
    again = runner.invoke(
        camera_app, [str(int8_model), "--source", str(video), "--record", str(record), "--record-max-mb", "0.001"]
    )
    assert again.exit_code == 0 and record.stat().st_size == before and "recording stopped after 0 rows" in again.stderr


def test_camera_headless_fallback_without_display(int8_model, synth_data, tmp_path):
    """opencv-python-headless has no GUI: asking for a window falls back to printed results."""
    folder = list_image_folder(synth_data / "validation")
    video = write_video(folder.paths[:3], tmp_path / "v.avi")
    result = runner.invoke(camera_app, [str(int8_model), "--source", str(video)])
    assert result.exit_code == 0, result.output
    assert "no display available" in result.stderr
    assert len([line for line in result.stdout.splitlines() if line.startswith("frame")]) == 3


@pytest.mark.parametrize(
    "source, fragment",
    [("missing.avi", "no such file"), ("7", "could not be opened"), ("rtsp://user:hunter2@127.0.0.1:9/x", "could not be opened")],
)
def test_camera_source_errors(int8_model, source, fragment, one_line_error):
    result = runner.invoke(camera_app, [str(int8_model), "--source", source, "--json"])
    one_line_error(result, "--source", fragment)
    assert "hunter2" not in result.output


@pytest.mark.slow
def test_predict_on_class_folders_prints_accuracy_and_confusion(int8_model, synth_data):
    result = runner.invoke(predict_app, [str(int8_model), str(synth_data / "validation"), "--json"])
    assert result.exit_code == 0, result.output
    objects = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    summary = objects[-1]
    assert summary["type"] == "summary" and summary["images"] == 40
    assert summary["accuracy"] >= 0.75
    confusion = np.array(summary["confusion"])
    # A row and a column for "unknown": no image is one, a few may be answered so.
    assert confusion.sum() == 40 and confusion.sum(axis=1).tolist() == [20, 20, 0]
    assert summary["accuracy"] == pytest.approx(np.trace(confusion) / 40)
    text = runner.invoke(predict_app, [str(int8_model), str(synth_data / "validation")])
    assert "accuracy" in text.stdout and "true \\ predicted" in text.stdout


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "not a TFLite model"),
        (os.urandom(4096), "not a TFLite model"),
        (b"\0\0\0\0TFL3" + os.urandom(200), "cannot be loaded"),
    ],
)
def test_bad_model_files(tmp_path, synth_data, content, fragment, one_line_error):
    model = tmp_path / "model_int8.tflite"
    model.write_bytes(content)
    result = runner.invoke(predict_app, [str(model), str(synth_data / "validation")])
    one_line_error(result, fragment, str(model))


def test_truncated_model_file(int8_model, tmp_path, one_line_error):
    model = tmp_path / "model_int8.tflite"
    model.write_bytes(int8_model.read_bytes()[: int8_model.stat().st_size // 2])
    one_line_error(runner.invoke(predict_app, [str(model), str(tmp_path)]), str(model))


@pytest.mark.slow
def test_edge_imports_and_classifies_without_tensorflow(int8_model, synth_data):
    """A subprocess in which importing tensorflow or keras fails, as on a Pi."""
    image = list_image_folder(synth_data / "validation").paths[0]
    script = textwrap.dedent(
        f"""
        import sys, importlib.abc

        class NoTensorFlow(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                    raise ImportError("no TensorFlow on this device")

        sys.meta_path.insert(0, NoTensorFlow())
        import hh.edge, hh.edge.camera, hh.edge.cli_camera, hh.edge.cli_predict
        from hh.edge.runtime import Classifier
        from hh.edge.preprocess import read_image_bgr
        clf = Classifier({str(int8_model)!r})
        result = clf.classify(read_image_bgr({image!r}))
        assert not [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")]
        print(clf.runtime, result.label, round(sum(result.probabilities), 3))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    runtime, label, total = done.stdout.split()
    assert runtime == "ai-edge-litert" and label in ("brown_spot", "healthy") and abs(float(total) - 1) < 0.02
