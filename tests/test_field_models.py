"""Field-grade models: augmentation, pretrained backbones (two phases, resume in both),
imbalanced classes, early stopping, the optimizer, and the evaluation people look at."""

import json
import shutil

import numpy as np
import pytest
from makers import COURSE_RECIPE
from PIL import Image

from hh.edge.folders import list_image_folder
from hh.edge.spec import PreprocessingSpec
from hh.trainer.cli_train import app as train_app


def small_dataset(root, counts, size=48, seed=0):
    """Class folders of simple pictures that a network can tell apart: a bright disc on dark
    ('spots') versus stripes ('streaks'), or more classes by hue."""
    rng = np.random.default_rng(seed)
    hues = [(200, 60, 60), (60, 200, 60), (60, 60, 200), (200, 200, 60)]
    for c, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 40, (size, size, 3)).astype(np.uint8)
            pixels[(np.arange(size) // 6 % 2 == c % 2)] += np.array(hues[c], np.uint8) // 2
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


# -- augmentation ---------------------------------------------------------------------------
def test_augmentation_is_seeded_new_every_epoch_and_keeps_labels(synth_data):
    from hh.trainer.data import make_dataset
    from hh.trainer.decode import DecodedImages

    folder = list_image_folder(synth_data / "validation").subset(list(range(16)))
    spec = PreprocessingSpec(height=48, width=48, class_names=folder.class_names)
    decoded = DecodedImages.of_files(folder.paths, spec)

    def epochs(level, seed):
        ds = make_dataset(folder, spec, 8, shuffle=False, seed=seed, augment=level, decoded=decoded)
        return [np.concatenate([x.numpy() for x, _ in ds]) for _ in range(2)], np.concatenate([y.numpy() for _, y in ds])

    plain, labels = epochs("none", 1)
    (first, second), augmented_labels = epochs("light", 1)
    (again, _), _ = epochs("light", 1)
    np.testing.assert_array_equal(first, again)  # the same seed, the same images
    assert not np.array_equal(first, second)  # a new draw every epoch
    assert not np.array_equal(first, plain[0])
    np.testing.assert_array_equal(labels, augmented_labels)  # labels untouched
    assert first.dtype == np.uint8 and first.shape == plain[0].shape
    (strong, _), _ = epochs("strong", 1)
    # Strong changes images more than light (mean absolute pixel change from the originals).
    assert np.abs(strong.astype(int) - plain[0]).mean() > np.abs(first.astype(int) - plain[0]).mean()


def test_augmentation_with_nothing_to_draw_keeps_each_image_or_its_mirror():
    """The affine warp is built from parts (rotation, zoom, shift, mirrors): with every range at
    nothing, each image must come out exactly as it was, or mirrored left-right (always drawn)."""
    from hh.trainer.augment import Augmentation, augment_batch

    still = Augmentation(False, 0.0, (1.0, 1.0), 0.0, 0.0, 0.0, 0.0)
    images = np.random.default_rng(0).integers(0, 256, (24, 20, 20, 3), dtype=np.uint8)
    out = augment_batch(images, 5, still)
    kept = [np.array_equal(a, b) for a, b in zip(out, images)]
    mirrored = [np.array_equal(a, b[:, ::-1]) for a, b in zip(out, images)]
    assert all(k or m for k, m in zip(kept, mirrored))
    assert 4 < sum(mirrored) < 20  # about half
    flips = augment_batch(images, 5, Augmentation(True, 0.0, (1.0, 1.0), 0.0, 0.0, 0.0, 0.0))
    upside_down = [np.array_equal(a, b[::-1]) or np.array_equal(a, b[::-1, ::-1]) for a, b in zip(flips, images)]
    assert 4 < sum(upside_down) < 20


def test_augmentation_light_blur_and_jpeg_keep_shape_colour_order_and_seed():
    from hh.trainer.augment import LEVELS, Augmentation, augment_batch

    red = np.zeros((8, 32, 32, 3), np.uint8)
    red[..., 0] = 200  # RGB: red
    changed = augment_batch(red, 1, Augmentation(False, 0.0, (1.0, 1.0), 0.0, 0.5, 0.0, 0.0, blur=1.0, jpeg=1.0))
    assert changed.dtype == np.uint8 and changed.shape == red.shape
    means = changed.reshape(8, -1, 3).mean(1)
    assert (means[:, 0] > 3 * means[:, 2]).all()  # still red: no BGR swap through the JPEG
    assert len({round(float(m), 1) for m in means[:, 0]}) > 1  # brightness drawn per image
    images = np.random.default_rng(1).integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
    for level in LEVELS:
        np.testing.assert_array_equal(augment_batch(images, 7, level), augment_batch(images, 7, level))
        assert not np.array_equal(augment_batch(images, 7, level), augment_batch(images, 8, level))


@pytest.mark.slow
def test_augmented_training_exports_no_augmentation_and_validates_on_plain_images(tmp_path, cli):
    import keras

    from hh.converters.cli import app as convert_app

    data = small_dataset(tmp_path / "data", {"spots": 30, "streaks": 30})
    out = tmp_path / "run"
    result = cli(
        train_app,
        data,
        "--arch",
        "edge",
        "--image-size",
        32,
        "--epochs",
        2,
        "--batch-size",
        16,
        "--augment",
        "strong",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["config"]["augment"] == "strong"
    model = keras.models.load_model(out / "model.keras")
    assert not [layer for layer in model.layers if "random" in type(layer).__name__.lower()]
    assert cli(convert_app, out, "--min-agreement", 0).exit_code == 0
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(out / "model_float32.tflite"))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not {op for op in ops if "RANDOM" in op or "TRANSFORM" in op}, ops


# -- pretrained backbones -------------------------------------------------------------------
def backbone_of(path):
    import keras

    return keras.models.load_model(path, safe_mode=True, compile=False).get_layer("backbone")


@pytest.mark.slow
def test_a_backbone_trains_from_a_weights_file_in_two_phases_and_resumes_in_each(tmp_path, backbone_weights, interrupt_at_line):
    from hh.trainer.config import TrainConfig
    from hh.trainer.run_folder import RunFolder
    from hh.trainer.train import resume, train

    weights_file, weights = backbone_weights
    data = small_dataset(tmp_path / "data", {"spots": 24, "streaks": 24}, size=64)
    config = TrainConfig(
        data_dir=str(data), out=str(tmp_path / "run"), arch="mobilenetv3small", weights=str(weights_file), image_size=64,
        batch_size=16, epochs=2, fine_tune_epochs=2, fine_tune_layers=10, augment="none",
    )  # fmt: skip
    stop_after = {"epoch 1/4", "epoch 3/4"}

    def interrupt(line):
        if line.split(":")[0] in stop_after:
            stop_after.discard(line.split(":")[0])
            return True
        return False

    with pytest.raises(KeyboardInterrupt), interrupt_at_line(interrupt):  # inside phase 1, the head
        train(config)
    run = RunFolder(tmp_path / "run")
    head_only = backbone_of(run.checkpoint_dir() / run.read_state().last_file)
    assert not head_only.trainable
    for got, want in zip(head_only.get_weights(), weights):  # the file was loaded, and stays frozen
        np.testing.assert_array_equal(got, want)
    with pytest.raises(KeyboardInterrupt), interrupt_at_line(interrupt):  # resumed; stopped again inside phase 2
        resume(run.path)
    assert run.read_state().epochs_done == 3
    fine_tuned = backbone_of(run.checkpoint_dir() / run.read_state().last_file)
    assert fine_tuned.trainable
    trainable = {layer.name for layer in fine_tuned.layers if layer.trainable and layer.weights}
    assert trainable and trainable <= {layer.name for layer in fine_tuned.layers[-10:]}  # only the top 10
    assert not [layer for layer in fine_tuned.layers if layer.trainable and "BatchNormalization" in type(layer).__name__]
    moved = weights_file.rename(weights_file.with_name("moved.weights.h5"))  # its weights are in the checkpoint now
    try:
        result = resume(run.path)  # and finishes
    finally:
        moved.rename(weights_file)
    assert result.epochs_run == 4
    # The last epoch (model.keras is the best one, which may be a head-only epoch).
    final = backbone_of(run.checkpoint_dir() / run.read_state().last_file).get_weights()
    changed = [not np.array_equal(a, b) for a, b in zip(final, weights)]
    assert any(changed) and not all(changed)  # the top fine-tuned, the rest as loaded


@pytest.mark.slow
def test_imagenet_weights_offline_fail_in_one_line(tmp_path, cli, one_line_error, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # an empty cache
    monkeypatch.setenv("HH_WEIGHTS_MIRROR", "http://127.0.0.1:9/weights")  # nothing listens: offline
    data = small_dataset(tmp_path / "data", {"a": 4, "b": 4})
    result = cli(train_app, data, "--arch", "mobilenetv3small", "--image-size", 64, "--out", tmp_path / "run")
    one_line_error(result, "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5", "--weights PATH", str(tmp_path / "keras"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--arch", "edge", "--weights", "imagenet"], "--weights applies to the pretrained backbones"),
        (["--arch", "mobilenetv3small", "--weights", "missing.h5"], "no such weights file"),
        (["--arch", "mobilenetv3small", "--weights", "none", "--fine-tune-epochs", "2"], "needs a pretrained backbone"),
        (["--augment", "heavy"], "--augment must be one of none, light, field, strong"),
        (["--class-weight", "inverse"], "--class-weight must be one of none, balanced"),
        (["--optimizer", "sgd"], "--optimizer must be one of rmsprop, adam"),
        (["--patience", "0"], "--patience must be at least 1"),
        (["--schedule", "step"], "--schedule must be one of cosine, constant"),
        (["--warmup-epochs", "-1"], "--warmup-epochs must be 0 or more"),
        (["--label-smoothing", "1"], "--label-smoothing must be at least 0 and below 1"),
        (["--label-smoothing", "nan"], "--label-smoothing must be at least 0 and below 1"),
    ],
)
def test_bad_field_options(tmp_path, cli, one_line_error, args, fragment):
    data = small_dataset(tmp_path / "data", {"a": 3, "b": 3})
    one_line_error(cli(train_app, data, "--out", tmp_path / "run", *args), fragment)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_trained_backbone_converts_and_passes_the_int8_gate(tmp_path, cli):
    from hh.converters.cli import app as convert_app

    data = small_dataset(tmp_path / "data", {"spots": 40, "streaks": 40}, size=64)
    out = tmp_path / "run"
    options = ["--arch", "mobilenetv3small", "--weights", "none", "--image-size", 64, "--optimizer", "adam"]
    result = cli(train_app, data, "--val-split", 0.2, *options, "--epochs", 10, "--batch-size", 8, "--out", out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["best_val_accuracy"] >= 0.9  # it learned
    # The default gate: the int8 model agrees with Keras on at least 98% of the images. (All
    # four modes of every backbone are converted by bench/field.py; mobilenet is slow to train
    # and convert on 2 cores, so the suite runs the mode that matters on a device.)
    converted = cli(convert_app, out, "--int8")
    assert converted.exit_code == 0, converted.output
    report = json.loads((out / "model_int8.report.json").read_text())
    assert report["eval_images"] == 16 and report["selftest_images"] == 4 and report["agreement"] >= 0.98
    # int8: about a quarter of float32 (its "unknown" answer's whitening matrices included)
    assert report["size_mb"] < 2.5 and report["size_ratio_to_float32"] < 0.35


# -- imbalance, early stopping, optimizer, evaluation ------------------------------------------
def test_balanced_class_weights_are_inverse_shares():
    from hh.trainer.config import TrainConfig
    from hh.trainer.run_data import RunData, class_weights

    folder = type("F", (), {"counts": lambda self: {"a": 400, "b": 100, "c": 50}})()
    data = RunData(train=folder, val=None, spec=None, split=None)
    weights = class_weights(TrainConfig(data_dir="d", out="o", class_weight="balanced"), data)
    assert weights == pytest.approx({0: 550 / 1200, 1: 550 / 300, 2: 550 / 150})
    assert class_weights(TrainConfig(data_dir="d", out="o"), data) is None


@pytest.mark.slow
def test_training_evaluates_per_class_and_draws_the_pictures(tmp_path, cli):
    import cv2

    data = small_dataset(tmp_path / "data", {"spots": 40, "streaks": 20, "third": 10})
    out = tmp_path / "run"
    result = cli(train_app, data, "--arch", "edge", "--image-size", 32, "--epochs", 3, "--batch-size", 16, "--class-weight",
                 "balanced", "--optimizer", "adam", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "training images: spots 32, streaks 16, third 8; balanced class weights spots 0.58, streaks 1.17, third 2.33"
        in result.stderr
    )
    report = json.loads((out / "evaluation.json").read_text())
    confusion = np.array(report["confusion"])
    assert confusion.sum() == report["images"] == 14 and confusion.sum(axis=1).tolist() == [8, 4, 2]
    for i, name in enumerate(report["labels"]):
        assert report["per_class"][name]["support"] == confusion[i].sum()
        assert report["per_class"][name]["recall"] == pytest.approx(confusion[i, i] / confusion[i].sum(), abs=1e-4)
    recalls = [report["per_class"][n]["recall"] for n in report["labels"]]
    assert report["balanced_accuracy"] == pytest.approx(np.mean(recalls), abs=1e-4)
    assert len(report["mistakes"]) == confusion.sum() - np.trace(confusion)
    for picture in ("confusion.png", "mistakes.png"):
        assert cv2.imread(str(out / picture)) is not None
    assert "balanced accuracy" in result.stdout and "precision" in result.stdout
    import keras

    assert type(keras.models.load_model(out / "model.keras").optimizer).__name__ == "Adam"


@pytest.mark.slow
def test_patience_stops_early_and_keeps_the_best_epoch(tmp_path, cli):
    data = small_dataset(tmp_path / "data", {"a": 12, "b": 12})
    out = tmp_path / "run"
    # A learning rate this large blows the loss up: no epoch after the first improves on it.
    result = cli(train_app, data, "--arch", "edge", "--image-size", 32, "--epochs", 20, "--batch-size", 8, "--lr", 1e4,
                 "--patience", 2, "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    assert record["stopped_early"] is True and record["status"] == "complete"
    assert record["epochs_done"] == record["best_epoch"] + 2 < 20
    assert "--patience 2" in result.stderr


@pytest.mark.slow
def test_predict_reports_per_class_and_writes_the_pictures(cli, int8_model, synth_data, tmp_path):
    from hh.edge.cli_predict import app as predict_app

    result = cli(predict_app, int8_model, synth_data / "validation", "--report", tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert "balanced accuracy" in result.stdout and "brown_spot" in result.stdout
    report = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    # "unknown" is a column too: how many leaves the model answered unknown (support 0).
    assert report["images"] == 40 and set(report["per_class"]) == {"brown_spot", "healthy", "unknown"}
    assert report["per_class"]["unknown"]["support"] == 0
    assert (tmp_path / "report" / "mistakes.png").stat().st_size > 0
    shutil.rmtree(tmp_path / "report")


@pytest.mark.slow
def test_balanced_class_weights_raise_balanced_accuracy_on_imbalanced_data(tmp_path):
    """200/50/25 training images: unweighted, the net answers the big class for everything
    (measured: balanced accuracy 0.333); balanced weights make it look at the others (0.513)."""
    from hh.trainer.api import train
    from hh.trainer.synth import write_dataset

    write_dataset(tmp_path / "source", classes=3, per_class=260, seed=12)  # 208 train + 52 validation each
    data = tmp_path / "data"
    for name, n in {"healthy": 200, "brown_spot": 50, "mosaic": 25}.items():
        (data / "train" / name).mkdir(parents=True)
        for path in sorted((tmp_path / "source" / "train" / name).glob("*.jpg"))[:n]:
            shutil.copy(path, data / "train" / name / path.name)
    shutil.copytree(tmp_path / "source" / "validation", data / "validation")
    balanced = {}
    for weight in ("none", "balanced"):
        options = dict(arch="edge", image_size=48, batch_size=32, epochs=12, class_weight=weight, verbose=False, **COURSE_RECIPE)
        train(data / "train", tmp_path / weight, val_dir=data / "validation", **options)
        balanced[weight] = json.loads((tmp_path / weight / "evaluation.json").read_text())["balanced_accuracy"]
    assert balanced["balanced"] >= balanced["none"] + 0.1, balanced


# -- the schedule ---------------------------------------------------------------------------
def test_the_learning_rate_warms_up_then_follows_a_cosine_to_zero():
    from hh.trainer.callbacks import LearningRate, scheduled_rate

    rates = [scheduled_rate("cosine", 0.002, step, 100, 10) for step in range(100)]
    assert rates[0] == pytest.approx(0.0002) and rates[9] == pytest.approx(0.002)  # warm-up: 1/10 ... 10/10
    assert all(a < b for a, b in zip(rates[:10], rates[1:10]))
    assert rates[10] == pytest.approx(0.002) and rates[55] == pytest.approx(0.001, rel=0.02)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:])) and rates[-1] < 0.002 * 0.001
    constant = [scheduled_rate("constant", 0.002, step, 100, 10) for step in range(10, 100)]
    assert constant == [0.002] * 90
    # From the epoch and batch alone: a resumed run is where it would have been.
    schedule = LearningRate("cosine", 0.002, 0, 10, steps_per_epoch=10, warmup_epochs=1)
    assert schedule.rate(5, 5) == pytest.approx(scheduled_rate("cosine", 0.002, 55, 100, 10))
    # A phase that starts later (fine-tuning) has its own warm-up and decay.
    later = LearningRate("cosine", 0.0002, 10, 20, steps_per_epoch=10, warmup_epochs=1)
    assert later.rate(10, 0) == pytest.approx(0.00002) and later.rate(19, 9) < 0.0002 * 0.001


def test_a_run_recorded_before_the_schedule_existed_resumes_as_it_trained():
    """run.json of an older hh has no schedule, warm-up or smoothing: it trained with none."""
    from hh.trainer.config import TrainConfig

    older = {"data_dir": "/d", "out": "/o", "optimizer": "rmsprop"}
    config = TrainConfig.from_dict(older)
    assert (config.schedule, config.warmup_epochs, config.label_smoothing) == ("constant", 0, 0.0)
    assert TrainConfig.from_dict({"data_dir": "/d", "out": "/o"}).optimizer == "rmsprop"
    today = TrainConfig(data_dir="/d", out="/o")
    assert TrainConfig.from_dict(today.as_dict()) == today
    assert (today.schedule, today.optimizer, today.arch, today.augment) == ("cosine", "adam", "sepnet", "field")


@pytest.mark.slow
def test_training_steps_at_the_scheduled_rate(tmp_path):
    """The optimizer in the checkpoint of each epoch holds the rate of that epoch's last step."""
    import keras

    from hh.trainer.api import train
    from hh.trainer.callbacks import scheduled_rate
    from hh.trainer.run_folder import RunFolder

    data = small_dataset(tmp_path / "data", {"spots": 16, "streaks": 16})
    options = dict(arch="edge", image_size=32, batch_size=8, epochs=3, warmup_epochs=1, learning_rate=0.004)
    train(data, tmp_path / "run", val_split=0.25, verbose=False, **options)
    run = RunFolder(tmp_path / "run")
    steps = 3  # 24 training images in batches of 8
    last = keras.models.load_model(run.checkpoint_dir() / run.read_state().last_file, compile=True)
    want = scheduled_rate("cosine", 0.004, 3 * steps - 1, 3 * steps, steps)
    assert float(last.optimizer.learning_rate) == pytest.approx(want, rel=1e-5)
    assert want < 0.001  # far from --lr: the schedule, not the constant
