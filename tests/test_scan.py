"""Bad training data: skipped and reported exactly; odd-but-real images load as upright RGB."""

import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from hh.edge.folders import list_image_folder
from hh.edge.preprocess import read_image_bgr, to_model_rgb
from hh.edge.spec import PreprocessingSpec
from hh.trainer.cli_train import app
from hh.trainer.data import load_images
from hh.trainer.scan import inspect_file, scan_and_decode, scan_folder

runner = CliRunner()


def seed_bad_files(class_dir, good_jpeg):
    """One of each kind of unusable file; returns {path: expected problem fragment}."""
    data = good_jpeg.read_bytes()
    bad = {
        class_dir / "empty.jpg": b"",
        class_dir / "truncated.jpg": data[: len(data) // 2],
        class_dir / "page.jpg": b"<html><body>404 Not Found</body></html>" * 5,
        class_dir / "noise.png": np.random.default_rng(0).bytes(3000),
    }
    for path, content in bad.items():
        path.write_bytes(content)
    Image.new("RGB", (1, 1)).save(class_dir / "pixel.png")
    (class_dir / ".DS_Store").write_bytes(b"\0\0\0\1Bud1\0")
    (class_dir / "notes.txt").write_text("field notes")
    return {
        "empty.jpg": "empty file",
        "truncated.jpg": "damaged image",
        "page.jpg": "not an image",
        "noise.png": "not an image",
        "pixel.png": "too small (1x1 px)",
        ".DS_Store": "hidden file",
        "notes.txt": "not an image file type",
    }


@pytest.mark.slow
def test_training_skips_exactly_the_bad_files_and_reports_them(synth_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_data / "train", data)
    class_dir = data / "healthy"
    expected = seed_bad_files(class_dir, next(class_dir.glob("*.jpg")))
    out = tmp_path / "run"
    result = runner.invoke(
        app, [str(data), "--val-split", "0.2", "--image-size", "32", "--epochs", "2", "--batch-size", "32", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "5 unusable" in result.stderr and "ignored 2 other files" in result.stderr
    listed = dict(line.split("\t") for line in (out / "bad_files.txt").read_text().splitlines())
    assert {name.split("/")[-1] for name in listed} == set(expected)
    for path, problem in listed.items():
        assert expected[path.split("/")[-1]] in problem, (path, problem)
    assert (out / "model.keras").exists()
    # Every good image was used: 80 per class, split 64/16.
    import json

    record = json.loads((out / "run.json").read_text())
    assert record["train_images"] == {"brown_spot": 64, "healthy": 64} and record["skipped_files"] == 7

    strict = runner.invoke(app, [str(data), "--strict", "--image-size", "32", "--epochs", "1", "--out", str(tmp_path / "strict")])
    assert strict.exit_code == 2
    errors = [line for line in strict.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "5 unusable image(s)" in errors[0] and "--strict" in errors[0]
    assert not (tmp_path / "strict" / "model.keras").exists()


def upright_test_image():
    """60 high x 40 wide: top half red, bottom half blue. Rotation or colour errors show."""
    pixels = np.zeros((60, 40, 3), np.uint8)
    pixels[:30] = (220, 30, 30)
    pixels[30:] = (30, 30, 220)
    return Image.fromarray(pixels)


def write_odd_but_real(folder):
    upright = upright_test_image()
    # EXIF orientation 6 means "rotate 90 degrees clockwise to display": store it turned back.
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(folder / "exif_rotated.jpg", exif=exif, quality=95)
    upright.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    upright.convert("P").save(folder / "palette.png")
    upright.convert("P").save(folder / "palette.bmp")
    upright.convert("RGBA").save(folder / "rgba.png")
    upright.save(folder / "actually_webp.jpg", format="WEBP", lossless=True)
    upright.save(folder / "actually_tiff.png", format="TIFF")
    grey16 = np.asarray(upright.convert("L")).astype(np.uint16) * 257
    Image.fromarray(grey16).save(folder / "grey16.png")
    upright.save(folder / "actually_pcx.jpg", format="PCX")  # Pillow reads PCX, OpenCV does not


def test_odd_formats_load_as_upright_rgb_on_both_sides(tmp_path):
    root = tmp_path / "odd"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    write_odd_but_real(root / "a")
    upright_test_image().save(root / "b" / "plain.png")
    spec = PreprocessingSpec(height=60, width=40, class_names=("a", "b"))
    folder, report, decoded = scan_and_decode(list_image_folder(root), tmp_path / "cache", spec)
    assert not report.bad
    # Everything OpenCV reads is trained on as the device reads it; only the PCX needs a copy.
    normalized = {v.path.split("/")[-1]: v.normalize for v in report.normalized}
    assert normalized == {"actually_pcx.jpg": "PCX format, which OpenCV cannot read"}
    images, _ = load_images(folder, spec)
    # What the scan kept is what a separate decode gives, row for row.
    assert np.array_equal(decoded.pixels[decoded.rows(folder.paths)], images)
    for name, image in zip(folder.paths, images):
        top, bottom = image[:25].reshape(-1, 3).mean(0), image[35:].reshape(-1, 3).mean(0)
        grey = name.endswith("grey16.png")
        if grey:  # greyscale: top and bottom differ in brightness only
            assert abs(top[0] - top[2]) < 3 and abs(top[0] - bottom[0]) > 20, name
        else:
            assert top[0] > 180 and top[2] < 80 and bottom[2] > 180 and bottom[0] < 80, (name, top, bottom)
    # The device reads the original files (OpenCV applies EXIF orientation) the same way.
    for original in ("exif_rotated.jpg", "cmyk.jpg", "palette.png", "actually_webp.jpg", "actually_tiff.png"):
        rgb = to_model_rgb(read_image_bgr(str(root / "a" / original)), spec)
        assert rgb[:25, :, 0].mean() > 180 and rgb[35:, :, 2].mean() > 180, original
    # Nothing on disk was changed; copies live only in the cache.
    assert sorted(p.name for p in (root / "a").iterdir()) == sorted(
        [
            "exif_rotated.jpg",
            "cmyk.jpg",
            "palette.png",
            "palette.bmp",
            "rgba.png",
            "actually_webp.jpg",
            "actually_tiff.png",
            "grey16.png",
            "actually_pcx.jpg",
        ]
    )
    assert len(list((tmp_path / "cache").glob("*.png"))) == 1


def test_inspect_file_verdicts(tmp_path):
    good = tmp_path / "good.jpg"
    upright_test_image().save(good)
    verdict = inspect_file(str(good))
    assert verdict.problem is None and verdict.normalize is None
    assert "cannot read" in inspect_file(str(tmp_path / "missing.jpg")).problem


def png_claiming_size(width, height) -> bytes:
    """A valid tiny PNG whose header claims width x height: a decompression bomb to a decoder."""
    import io
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = 8 + 8  # signature, then length + "IHDR"
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    return bytes(data)


def test_a_decompression_bomb_is_skipped_not_fatal(tmp_path):
    root = tmp_path / "data"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        upright_test_image().save(root / name / "ok.png")
    (root / "a" / "bomb.png").write_bytes(png_claiming_size(30000, 30000))
    folder, report = scan_folder(list_image_folder(root), tmp_path / "cache")
    assert [v.path.split("/")[-1] for v in report.bad] == ["bomb.png"]
    assert "too large to decode safely" in report.bad[0].problem
    assert len(folder) == 2


def test_broken_links_and_stray_images_are_reported(tmp_path):
    import os

    root = tmp_path / "data"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        upright_test_image().save(root / name / "ok.png")
    os.symlink(tmp_path / "gone.jpg", root / "a" / "link.jpg")
    upright_test_image().save(root / "stray.png")  # beside the class folders, in no class
    _, report = scan_folder(list_image_folder(root), tmp_path / "cache")
    ignored = {v.path.split("/")[-1]: v.problem for v in report.ignored}
    assert ignored == {"link.jpg": "broken link (points to nothing)", "stray.png": "image beside the class folders, not in one"}
    summary = report.summary()
    assert "ignored 2 other files" in summary and "stray.png" in summary and "link.jpg" in summary


def test_jpeg_completeness_is_judged_by_the_image_not_the_file_end(tmp_path):
    """A phone's motion photo carries a video after the JPEG's end: a good image. A truncated
    photo whose EXIF thumbnail ends early in the file is still truncated: a bad one."""
    import io

    photo = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    thumbnail = io.BytesIO()
    Image.fromarray(pixels[::4, ::4]).save(thumbnail, format="JPEG")
    exif = Image.Exif()
    exif[0x010F] = "phone"
    Image.fromarray(pixels).save(photo, format="JPEG", exif=exif.tobytes() + thumbnail.getvalue())
    data = photo.getvalue()
    (tmp_path / "motion.jpg").write_bytes(data + b"\0\0\0\x18ftypmp42" + bytes(4000))
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 3 // 4])
    assert inspect_file(str(tmp_path / "motion.jpg")).problem is None
    assert "damaged image" in inspect_file(str(tmp_path / "cut.jpg")).problem
