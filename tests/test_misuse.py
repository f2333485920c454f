"""Misuse and faults around training, conversion, reports, model files and data tools: each a
case that once gave a traceback, replaced a user's file, lost work, or let a wrong model ship.

Shared models come from conftest's session fixtures; cases that need no model are fast."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest
from makers import grey_classes, repack
from PIL import Image

from hh.converters.cli import app as convert_app
from hh.edge.cli_predict import app as predict_app
from hh.edge.folders import list_image_folder
from hh.trainer.cli_data import app as data_app
from hh.trainer.cli_train import app as train_app

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0


def fsize_limit(limit: int):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


# -- training ------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["dotdot", "link", "inside"])
def test_validation_that_is_the_training_folder_is_refused(tmp_path, cli, one_line_error, how):
    data = grey_classes(tmp_path / "d" / "train")
    val = {"dotdot": tmp_path / "d" / ".." / "d" / "train", "link": tmp_path / "link", "inside": data / "dark"}[how]
    if how == "link":
        val.symlink_to(data, target_is_directory=True)
    one_line_error(cli(train_app, data, "--val-dir", val, "--out", tmp_path / "r"), "--val-dir is the training folder")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_run_in_use_is_refused_and_a_dead_one_is_not(tmp_path, cli, one_line_error):
    data, out = grey_classes(tmp_path / "data", n=40), tmp_path / "run"
    command = [sys.executable, "-m", "hh.trainer.cli_train", str(data), "--out", str(out), "--arch", "edge",
               "--image-size", "32", "--batch-size", "4", "--epochs", "40"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint" / "state.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        one_line_error(cli(train_app, "--resume", out, "--epochs", 41), "is being trained by another hh-train")
    finally:
        process.kill()  # a SIGKILL: the dead process holds no lock
        process.wait()
    result = cli(train_app, "--resume", out, "--epochs", 2)
    # Two epochs may already be done by the killed process; either way nothing hangs or crashes.
    assert result.exit_code in (0, 2) and "Traceback" not in result.output, result.output
    assert "being trained" not in result.output


@pytest.mark.slow
def test_a_run_stopped_during_its_final_evaluation_resumes_to_complete(tmp_path, cli):
    data, out = grey_classes(tmp_path / "data"), tmp_path / "my run"
    first = cli(train_app, data, "--out", out, "--arch", "edge", "--image-size", 32, "--batch-size", 4, "--epochs", 3,
                "--lr", 0.01, "--augment", "none")  # learns dark from light: a model worth converting  # fmt: skip
    assert first.exit_code == 0 and f"next: hh-convert '{out}' --int8" in first.output  # a path a shell can take
    record = json.loads((out / "run.json").read_text())
    # What a kill (or a full disk) in the evaluation leaves: every epoch committed, no outcome.
    record["status"] = "training"
    record.pop("evaluation")
    (out / "run.json").write_text(json.dumps(record))
    (out / "evaluation.json").unlink()
    result = cli(train_app, "--resume", out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["status"] == "complete" and (out / "evaluation.json").exists()
    again = cli(train_app, "--resume", out)  # complete now: nothing more to do is said so
    assert again.exit_code == 2 and "already done" in again.output


@pytest.mark.slow
def test_a_touched_training_file_is_not_changed_and_a_rewritten_one_is(tmp_path, cli):
    from hh.trainer.run_folder import RunFolder

    data, out = grey_classes(tmp_path / "data"), tmp_path / "run"
    assert (
        cli(train_app, data, "--out", out, "--arch", "edge", "--image-size", 32, "--batch-size", 8, "--epochs", 1).exit_code == 0
    )
    split = RunFolder(out).read_split()
    first, second = split.train[0].file, split.train[1].file
    os.utime(first, (time.time() + 100, time.time() + 100))  # touch: same bytes, new time
    data = bytearray(Path(second).read_bytes())
    data[-3] ^= 0xFF  # same size, other bytes
    Path(second).write_bytes(bytes(data))
    os.utime(second, (time.time() + 100, time.time() + 100))
    assert [path for path, why in split.drift()] == [second]
    assert cli(train_app, "--resume", out, "--epochs", 2).exit_code == 2  # the rewritten one still blocks a resume


@pytest.mark.slow
def test_no_room_for_the_inputs_file_decodes_every_epoch_and_says_so(tmp_path, cli):
    """A file-size limit below the model inputs (983 KB) but above a checkpoint (about 190 KB):
    the inputs file is refused at once, nothing half-written is left, and training goes on."""
    data, out, cache = grey_classes(tmp_path / "data", n=40), tmp_path / "run", tmp_path / "cache"
    command = [sys.executable, "-m", "hh.trainer.cli_train", str(data), "--out", str(out), "--arch", "edge",
               "--image-size", "64", "--batch-size", "8", "--epochs", "2", "--cache", str(cache)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, preexec_fn=fsize_limit(400_000), timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"note: no room for 983 KB of model inputs in {cache} (File too large); every epoch decodes" in done.stderr
    assert "decoded once into" not in done.stderr  # nothing said of a file that was not written
    assert list(cache.iterdir()) == []
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


# -- conversion -------------------------------------------------------------------------------------
@pytest.fixture
def run_copy(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    for old in run.glob("model_*"):
        old.unlink()
    return run


@pytest.mark.slow
def test_every_file_a_conversion_writes_obeys_the_overwrite_rule(run_copy, tmp_path, cli, one_line_error):
    other = tmp_path / "other"
    other.mkdir()
    (other / "m.report.json").write_text("the user's own")
    (other / "m.unverified.tflite").write_text("the user's own too")
    one_line_error(cli(convert_app, run_copy, "--dynamic", "--out", other / "m.tflite"), "m.report.json already exists")
    assert (other / "m.report.json").read_text() == "the user's own"
    (other / "m.report.json").unlink()
    assert cli(convert_app, run_copy, "--dynamic", "--out", other / "m.tflite").exit_code == 0
    assert (other / "m.unverified.tflite").read_text() == "the user's own too"  # never ours to remove
    assert not [p for p in other.iterdir() if ".tmp-" in p.name]


@pytest.mark.slow
def test_a_float32_name_taken_by_a_folder_is_no_traceback(run_copy, cli):
    (run_copy / "model_float32.tflite").mkdir()
    result = cli(convert_app, run_copy, "--dynamic")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output


@pytest.mark.slow
def test_probabilities_far_from_keras_refuse_the_model_even_when_top1_agrees(run_copy, cli):
    result = cli(convert_app, run_copy, "--int8", "--max-prob-diff", "0.0001")
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert "gives probabilities up to" in errors[0] and "more than --max-prob-diff" in errors[0]
    assert "(the top-1 answers agree on 1.000, keras accuracy " in errors[0] and ", converted " in errors[0]
    assert not (run_copy / "model_int8.tflite").exists() and (run_copy / "model_int8.rejected.tflite").exists()


@pytest.mark.slow
def test_a_changed_training_file_refuses_instead_of_shipping_without_a_quality_gate(run_copy, cli, one_line_error):
    from hh.trainer.run_folder import RunFolder

    entry = RunFolder(run_copy).read_split().train[0]
    original = Path(entry.file).read_bytes()
    try:
        Path(entry.file).write_bytes(original[:-10] + b"0123456789")
        one_line_error(cli(convert_app, run_copy, "--dynamic"), "not as they were")
    finally:
        Path(entry.file).write_bytes(original)


@pytest.mark.slow
def test_a_file_size_limit_is_not_blamed_on_the_model(run_copy):
    done = subprocess.run(
        [sys.executable, "-m", "hh.converters.cli", str(run_copy), "--int8"],
        capture_output=True, text=True, timeout=300, preexec_fn=fsize_limit(20_000),
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "error: no space left to load" in done.stderr and "not a loadable" not in done.stderr


def test_a_run_stopped_before_its_first_epoch_says_so(tmp_path, cli, one_line_error):
    run = tmp_path / "my run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"config": {"data_dir": "d", "out": str(run)}, "status": "scanning"}))
    one_line_error(cli(convert_app, run, "--int8"), "no trained epoch yet", f"hh-train --resume '{run}'")


# -- reports --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_report_refuses_to_replace_or_land_among_the_images(int8_model, trained_run, synth_data, tmp_path, cli, one_line_error):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = (run / "evaluation.json").read_bytes()
    validation = synth_data / "validation"
    one_line_error(cli(predict_app, int8_model, validation, "--report", run), "evaluation.json already exists")
    assert (run / "evaluation.json").read_bytes() == before
    class_folder = validation / list_image_folder(validation).class_names[0]
    one_line_error(cli(predict_app, int8_model, validation, "--report", class_folder), "inside the image folder")
    one_line_error(cli(predict_app, int8_model, validation, "--report", validation), "inside the image folder")
    assert not (class_folder / "confusion.png").exists()
    assert cli(predict_app, int8_model, validation, "--report", run, "--overwrite").exit_code == 0
    assert (run / "evaluation.json").read_bytes() != before
    # Another data set's class folder, or a new folder beside its class folders: the report's
    # PNGs would be trained on there (they were: 3 PNGs in the class).
    other = tmp_path / "other"
    shutil.copytree(synth_data / "train", other)
    other_class = other / list_image_folder(other).class_names[0]
    one_line_error(cli(predict_app, int8_model, validation, "--report", other_class), "holds images (a class folder?)")
    one_line_error(cli(predict_app, int8_model, validation, "--report", other / "report"), "beside class folders of images")
    assert not (other / "report").exists() and not (other_class / "confusion.png").exists()


# -- model files -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_video(synth_data, tmp_path_factory):
    from hh.trainer.synth import write_video

    return write_video(list_image_folder(synth_data / "validation").paths[:4], tmp_path_factory.mktemp("video") / "v.avi")


def with_manifest(value):
    def change(files):
        files["selftest.json"] = value if isinstance(value, bytes) else json.dumps(value).encode()

    return change


def manifest_edit(edit):
    def change(files):
        manifest = json.loads(files["selftest.json"])
        edit(manifest)
        files["selftest.json"] = json.dumps(manifest).encode()

    return change


@pytest.mark.slow
@pytest.mark.parametrize(
    "change, fragment",
    [
        (with_manifest([1, 2]), "not a JSON object"),
        (with_manifest("text"), "not a JSON object"),
        (with_manifest(b"{not json"), "damaged"),
        (manifest_edit(lambda m: m.update(cases=[])), "holds no images"),
        (manifest_edit(lambda m: m["cases"][0].update(expected=[0.5])), "probabilities for 3 classes"),
        (manifest_edit(lambda m: m["cases"][0].update(keras=[])), "not a list of probabilities"),
        (manifest_edit(lambda m: m["cases"][0].update(expected=[float("nan"), 0.5])), "not a list of probabilities"),
        (manifest_edit(lambda m: m["cases"][0].update(file="missing.jpg")), "is not in the model"),
        (manifest_edit(lambda m: m.update(tolerance=-1)), "tolerance"),
        (manifest_edit(lambda m: m["cases"].__setitem__(0, "x")), "not an object"),
    ],
    ids=["list", "string", "bad-json", "empty", "short", "no-probs", "nan", "missing-image", "tolerance", "case-string"],
)
def test_a_damaged_self_test_is_one_line_everywhere(int8_model, tiny_video, tmp_path, cli, one_line_error, change, fragment):
    import hh
    from hh.edge.cli_camera import app as camera_app

    damaged = repack(int8_model, tmp_path, change)
    one_line_error(cli(predict_app, damaged, "--selftest"), "self-test", fragment)
    one_line_error(cli(camera_app, damaged, "--source", tiny_video), "self-test", fragment)
    with pytest.raises(hh.UserError, match="self-test"):
        from hh.edge.selftest import model_selftest

        model_selftest(hh.Classifier(damaged))


@pytest.mark.slow
@pytest.mark.parametrize("key, value", [("min_sharpness", float("nan")), ("min_contrast", -1.0), ("max_brightness", 400.0)])
def test_quality_thresholds_that_would_turn_the_gate_off_are_refused(int8_model, tmp_path, cli, one_line_error, key, value):
    def change(files):
        spec = json.loads(files["preprocessing.json"])
        spec["quality"][key] = value
        files["preprocessing.json"] = json.dumps(spec).encode()

    one_line_error(cli(predict_app, repack(int8_model, tmp_path, change), "--selftest"), "quality")


@pytest.mark.slow
def test_a_label_that_is_a_path_is_refused_before_anything_is_written(int8_model, tiny_video, tmp_path, cli, one_line_error):
    from hh.edge.cli_camera import app as camera_app

    def change(files):
        spec = json.loads(files["preprocessing.json"])
        spec["class_names"] = ["../../escaped", spec["class_names"][1]]
        files["preprocessing.json"] = json.dumps(spec).encode()
        files["labels.txt"] = "\n".join(spec["class_names"]).encode() + b"\n"

    crafted = repack(int8_model, tmp_path, change)
    field = tmp_path / "deep" / "field"
    one_line_error(
        cli(camera_app, crafted, "--source", tiny_video, "--collect", field), "../../escaped", "not a plain folder name"
    )
    assert not (tmp_path / "escaped").exists() and not field.exists()


def bomb_png(path: Path, side: int = 30000) -> None:
    """A PNG that claims side x side pixels in a few hundred kilobytes."""
    row = b"\x00" + b"\x00" * (side * 3)
    compressed = zlib.compress(row * 64, 9)  # only the first rows: enough for a header and a start

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", compressed) + chunk(b"IEND", b""))


@pytest.mark.slow
def test_a_decompression_bomb_is_refused_by_every_reader(int8_model, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    bomb_png(images / "bomb.png")
    Image.new("RGB", (64, 64), (90, 140, 60)).save(images / "ok.png")
    done = subprocess.run(
        [sys.executable, "-c", "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000,) * 2); "
         "sys.argv = ['hh-predict', *sys.argv[1:]]; runpy.run_module('hh.edge.cli_predict', run_name='__main__')",
         str(int8_model), str(images)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "too large to decode safely (30000x30000 px)" in done.stderr and "ok.png" in done.stdout


# -- data tools -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_synth_cut_short_can_be_overwritten(tmp_path, cli):
    out = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from hh.trainer.synth import write_dataset\n"
         "def stop(done, total):\n    if done == 7: sys.exit(3)\n"
         f"write_dataset({str(out)!r}, per_class=20, progress=stop)"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 3 and len(list(out.rglob("*.jpg"))) == 7
    result = cli(data_app, "synth", out, "--per-class", 5, "--overwrite")
    assert result.exit_code == 0, result.output
    assert len(list(out.rglob("*.jpg"))) == 10


@pytest.mark.parametrize(
    "flags, fragment",
    [(["--width", "100000"], "--width must be from 8 to 8192"), (["--fps", "nan"], "--fps must be a number"),
     (["--fps", "0"], "--fps must be a number"), (["--height", "4"], "--height must be from 8")],
)  # fmt: skip
def test_video_values_are_one_line(synth_data, tmp_path, cli, one_line_error, flags, fragment):
    one_line_error(cli(data_app, "video", synth_data / "validation", tmp_path / "v.avi", *flags), fragment)
    assert not (tmp_path / "v.avi").exists()


@pytest.mark.slow
def test_video_on_a_full_disk_says_so(synth_data, tmp_path):
    out = tmp_path / "v.avi"
    done = subprocess.run(
        [sys.executable, "-m", "hh.trainer.cli_data", "video", str(synth_data / "validation"), str(out), "--repeat", "3"],
        capture_output=True, text=True, timeout=120, preexec_fn=fsize_limit(200_000),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "frames could be written" in done.stderr and "Traceback" not in done.stderr and not out.exists()


def test_merge_never_replaces_follows_links_out_or_copies_non_images(synth_data, tmp_path, cli):
    data = tmp_path / "train"
    shutil.copytree(synth_data / "train", data)
    names = list_image_folder(data).class_names
    source = tmp_path / "labelled" / names[0]
    source.mkdir(parents=True)
    picture = list_image_folder(synth_data / "validation").paths[0]
    shutil.copy(picture, source / "a.jpg")
    (data / names[0] / "a.jpg").symlink_to(tmp_path / "nowhere.jpg")  # a dangling link where a.jpg would go
    (source / "fake.jpg").write_text("<html>not an image</html>")
    outside = tmp_path / "secret.jpg"
    shutil.copy(list_image_folder(synth_data / "validation").paths[1], outside)
    (source / "link.jpg").symlink_to(outside)
    result = cli(data_app, "merge", tmp_path / "labelled", data)
    assert result.exit_code == 0, result.output
    assert "merged 1 new images" in result.output and "2 not images or links, skipped" in result.output
    assert (data / names[0] / "a.jpg").is_symlink()  # the user's link is left alone
    assert (data / names[0] / "a-1.jpg").read_bytes() == Path(picture).read_bytes()
    assert not list(data.rglob("*.merging")) and not [p for p in data.rglob("*") if ".tmp-" in p.name]


def collection_zip(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    """A zip as the phone exports a collection, with any members a hostile one could hold."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def test_a_collection_zip_merges_its_labelled_frames_and_nothing_else(synth_data, tmp_path, cli, monkeypatch):
    from hh.trainer import merge as merge_module

    data = tmp_path / "train"
    shutil.copytree(synth_data / "train", data)
    before = {p for p in tmp_path.rglob("*")}
    names = list_image_folder(data).class_names
    photos = [Path(p).read_bytes() for p in list_image_folder(synth_data / "validation").paths[:6]]
    members = {
        f"labelled/{names[0]}/20261202-080000-000.jpg": photos[0],
        f"labelled/{names[1]}/20261202-080001-000.jpg": photos[1],
        f"labelled/{names[1]}/20261202-080002-000.jpg": photos[1],  # filed twice: one copy
        f"unsure/{names[0]}/20261202-080003-000_0.41.jpg": photos[2],
        "collected.csv": b"time,kind,file\n",
        "../escape.jpg": photos[3],
        "/tmp/absolute.jpg": photos[3],
        f"labelled/{names[0]}/../../../up.jpg": photos[3],
        f"labelled/{names[0]}/deeper/x.jpg": photos[3],
        f"labelled/{names[0]}/notes.txt": b"hello",
        f"labelled/{names[0]}/fake.jpg": b"<html>not an image</html>",
        f"labelled/{names[0]}/huge.jpg": photos[4] + bytes(max(map(len, photos)) + 5000),  # beyond the (lowered) bound
        f"labelled/{names[0]}/bomb.jpg": bytes(10_000_000),  # deflates to a few KB, unpacks to 10 MB
    }
    monkeypatch.setattr(merge_module, "MAX_MEMBER_BYTES", max(map(len, photos)) + 1000)
    archive = collection_zip(tmp_path / "phone.zip", members, links=(f"labelled/{names[0]}/link.jpg",))
    result = cli(data_app, "merge", archive, data)
    assert result.exit_code == 0, result.output
    assert f"merged 2 new images into {data} ({names[0]} 1, {names[1]} 1); 1 duplicates skipped" in result.output
    assert "9 not images or links, skipped" in result.output and "1 unsure frames not merged" in result.output
    assert (data / names[0] / "20261202-080000-000.jpg").read_bytes() == photos[0]
    assert (data / names[1] / "20261202-080001-000.jpg").read_bytes() == photos[1]
    made = {p for p in tmp_path.rglob("*")} - before - {archive}
    assert made == {data / names[0] / "20261202-080000-000.jpg", data / names[1] / "20261202-080001-000.jpg"}, made


def test_a_bad_collection_zip_is_one_line(synth_data, tmp_path, cli, one_line_error):
    data = tmp_path / "train"
    shutil.copytree(synth_data / "train", data)
    names = list_image_folder(data).class_names
    photo = Path(list_image_folder(synth_data / "validation").paths[0]).read_bytes()
    only_unsure = collection_zip(tmp_path / "unsure.zip", {f"unsure/{names[0]}/a.jpg": photo})
    one_line_error(cli(data_app, "merge", only_unsure, data), "holds no labelled images", "label frames on the phone")
    new_class = collection_zip(tmp_path / "new.zip", {"labelled/cassava_mosaic/a.jpg": photo})
    one_line_error(cli(data_app, "merge", new_class, data), "classes the training folder", "cassava_mosaic")
    truncated = tmp_path / "cut.zip"
    truncated.write_bytes(collection_zip(tmp_path / "whole.zip", {f"labelled/{names[0]}/a.jpg": photo}).read_bytes()[:300])
    one_line_error(cli(data_app, "merge", truncated, data), "cannot be read as a zip")
    assert sum(1 for _ in data.rglob("*.jpg")) == len(list_image_folder(synth_data / "train").paths)


def test_merging_the_models_own_guesses_warns(synth_data, tmp_path, cli):
    data = tmp_path / "train"
    shutil.copytree(synth_data / "train", data)
    name = list_image_folder(data).class_names[0]
    (tmp_path / "field" / "unsure" / name).mkdir(parents=True)
    shutil.copy(list_image_folder(synth_data / "validation").paths[0], tmp_path / "field" / "unsure" / name / "x.jpg")
    result = cli(data_app, "merge", tmp_path / "field" / "unsure", data)
    assert result.exit_code == 0 and "warning:" in result.output and "nobody checked" in result.output


@pytest.mark.skipif(IS_ROOT, reason="root writes anywhere: a read-only folder needs another user")
def test_merge_into_a_read_only_folder_is_one_line(synth_data, tmp_path, cli, one_line_error):
    data = tmp_path / "train"
    shutil.copytree(synth_data / "train", data)
    name = list_image_folder(data).class_names[0]
    (tmp_path / "labelled" / name).mkdir(parents=True)
    shutil.copy(list_image_folder(synth_data / "validation").paths[0], tmp_path / "labelled" / name / "x.jpg")
    (data / name).chmod(0o555)
    try:
        one_line_error(cli(data_app, "merge", tmp_path / "labelled", data), "cannot write", "merged 0 new images")
    finally:
        (data / name).chmod(0o755)


def _patch(data: bytearray, at: int, new: bytes) -> None:
    data[at : at + len(new)] = new


def test_damaged_members_and_a_bomb_of_shared_members_are_skipped_in_one_pass(synth_data, tmp_path, cli):
    """Bad deflate data (zlib.error), an encryption flag (RuntimeError) and bad LZMA data were
    tracebacks; 2,000 entries pointing at one member were each decompressed again. Each is a
    skipped member now, named, and the good ones merge."""
    import copy

    data = tmp_path / "train"
    shutil.copytree(synth_data / "train", data)
    names = list_image_folder(data).class_names
    photos = [Path(p).read_bytes() for p in list_image_folder(synth_data / "validation").paths[:5]]
    path = tmp_path / "damaged.zip"
    members = {
        "good": (f"labelled/{names[0]}/good.jpg", zipfile.ZIP_DEFLATED, photos[0]),
        "deflate": (f"labelled/{names[0]}/deflate.jpg", zipfile.ZIP_DEFLATED, photos[1]),
        "encrypted": (f"labelled/{names[1]}/encrypted.jpg", zipfile.ZIP_STORED, photos[2]),
        "lzma": (f"labelled/{names[1]}/lzma.jpg", zipfile.ZIP_LZMA, photos[3]),
        "bomb": (f"labelled/{names[1]}/bomb.jpg", zipfile.ZIP_DEFLATED, photos[4]),
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, kind, payload in members.values():
            archive.writestr(name, payload, compress_type=kind)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = {key: archive.getinfo(members[key][0]) for key in members}
    for key in ("deflate", "lzma"):
        start = info[key].header_offset + 30 + len(info[key].filename) + 40  # inside the compressed data
        _patch(raw, start, b"\xff" * 24)
    _patch(raw, info["encrypted"].header_offset + 6, struct.pack("<H", 1))  # local header's flags
    central = raw.find(b"PK\x01\x02")
    while central >= 0:  # the central directory's entry for it: its flags at +8
        entry_name = raw[central + 46 : central + 46 + struct.unpack_from("<H", raw, central + 28)[0]].decode()
        if entry_name == members["encrypted"][0]:
            _patch(raw, central + 8, struct.pack("<H", 1))
        central = raw.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(raw))
    # 2,000 more central directory entries, all pointing at the bomb's bytes.
    with zipfile.ZipFile(path, "a") as archive:
        for _ in range(2000):
            archive.filelist.append(copy.copy(info["bomb"]))
        archive._didModify = True
    started = time.monotonic()
    result = cli(data_app, "merge", path, data)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert time.monotonic() - started < 60
    assert f"merged 2 new images into {data} ({names[0]} 1, {names[1]} 1)" in result.output, result.output
    # The 3 damaged members and the 2,000 that share the bomb's bytes (its own entry merges).
    assert "; 2003 not images or links, skipped" in result.output


def test_a_merge_into_a_full_disk_is_exit_1_and_says_how_far_it_got(synth_data, tmp_path):
    """A full disk is exit 1 for every command (a mistake of the user's is 2): merge said 2."""
    data = tmp_path / "train"
    shutil.copytree(synth_data / "train", data)
    incoming = tmp_path / "incoming"
    names = list_image_folder(data).class_names
    (incoming / names[0]).mkdir(parents=True)
    for i in range(3):  # noise: each PNG ~480 KB, over the limit below
        Image.frombytes("RGB", (400, 400), os.urandom(400 * 400 * 3)).save(incoming / names[0] / f"new{i}.png")
    done = subprocess.run(
        [sys.executable, "-m", "hh.trainer.cli_data", "merge", str(incoming), str(data)],
        capture_output=True, text=True, timeout=120, preexec_fn=fsize_limit(100_000),
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "no space left" in done.stderr and "stopped after" in done.stderr, done.stderr
    assert not [p for p in data.rglob("*") if ".tmp-" in p.name]  # nothing half-written left
