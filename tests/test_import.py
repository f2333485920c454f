"""hh-data import: class folders from a labels CSV, on a layout shaped like the public cassava set."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from hh.edge.folders import list_image_folder
from hh.trainer.cli_data import app as data_app

DISEASES = {"0": "bacterial blight", "1": "brown streak", "2": "green mottle", "3": "mosaic", "4": "healthy"}


def cassava_layout(root: Path, per_label: int = 4) -> tuple[Path, Path, Path]:
    """train_images/*.jpg, train.csv (image_id,label with numbers) and the numbers' names, as Kaggle ships them."""
    images = root / "train_images"
    images.mkdir(parents=True)
    rows = ["image_id,label"]
    rng = np.random.default_rng(0)
    for label in DISEASES:
        for i in range(per_label):
            name = f"{1000 + int(label) * 100 + i}.jpg"
            cv2.imwrite(str(images / name), rng.integers(0, 256, (24, 32, 3)).astype(np.uint8))
            rows.append(f"{name},{label}")
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    (root / "label_num_to_disease_map.json").write_text(json.dumps(DISEASES))
    return root / "train.csv", images, root / "label_num_to_disease_map.json"


def test_a_cassava_shaped_layout_becomes_class_folders_of_hard_links(tmp_path, cli):
    labels, images, names = cassava_layout(tmp_path / "cassava")
    with open(labels, "a") as handle:  # what real label files hold besides good rows
        handle.write("1000.jpg,0\n")  # listed twice, same label: kept once
        handle.write("1101.jpg,3\n")  # listed again with another label: left out
        handle.write("gone.jpg,2\n")  # not in the folder
        handle.write("../../etc/passwd,1\n")  # outside the folder
        handle.write("1001.jpg\n")  # no label
        handle.write("1002.jpg,9\n")  # a label the names file does not know
    (images / "extra.jpg").write_bytes((images / "1000.jpg").read_bytes())  # in the folder, not listed
    before = sorted((p.name, p.stat().st_mtime_ns) for p in images.iterdir())
    out = tmp_path / "data" / "train"
    result = cli(data_app, "import", labels, images, out, "--names", names)
    assert result.exit_code == 0, result.output
    folder = list_image_folder(out)  # what hh-train reads
    assert folder.class_names == tuple(sorted(DISEASES.values()))
    counts = folder.counts()
    assert counts["brown streak"] == 3 and counts["bacterial blight"] == 4 and sum(counts.values()) == 19
    linked = out / "bacterial blight" / "1000.jpg"
    assert os.path.samefile(linked, images / "1000.jpg")  # a hard link: no copy
    assert sorted((p.name, p.stat().st_mtime_ns) for p in images.iterdir()) == before  # the source untouched
    text = result.stdout
    assert "imported 19 images" in text and "(hard links)" in text
    assert "1 listed but not found: gone.jpg" in text
    assert "1 listed twice with the same label (kept once): 1000.jpg" in text
    assert "1 listed with two labels (left out): 1101.jpg (brown streak, mosaic)" in text
    assert "3 rows not read" in text and "'../../etc/passwd' is outside" in text
    assert "1 photos in the folder are not in the labels file" in text
    assert f"next: hh-train {out} --val-split 0.2" in text


def test_a_name_no_file_system_takes_is_a_row_not_read(tmp_path, cli):
    """A labels file naming a file of over 255 bytes (or a path of over 4096): stat() fails with
    'File name too long', which was a traceback; it is a row not read, the rest imported."""
    labels, images, _ = cassava_layout(tmp_path / "c", per_label=2)
    with open(labels, "a") as handle:
        handle.write("x" * 300 + ".jpg,1\n")
        handle.write("/".join(["d" * 200] * 20) + "/a.jpg,2\n")  # 4,026 bytes: over 4,096 below the folder
    result = cli(data_app, "import", labels, images, tmp_path / "out")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "2 rows not read" in result.stdout and "has a name longer than 255 bytes" in result.stdout
    assert "makes a path longer than 4096 bytes" in result.stdout
    assert "x" * 61 not in result.stdout  # the name is cut, not printed whole
    assert sum(list_image_folder(tmp_path / "out").counts().values()) == 10


def test_without_a_header_or_names_the_first_two_columns_are_image_and_label(tmp_path, cli):
    labels, images, _ = cassava_layout(tmp_path / "c", per_label=2)
    lines = labels.read_text().splitlines()[1:]
    labels.write_text("\n".join(lines) + "\n")
    result = cli(data_app, "import", labels, images, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert list_image_folder(tmp_path / "out").class_names == tuple(sorted(DISEASES))


@pytest.mark.parametrize(
    "case, message",
    [
        ("no-csv", "LABELS_FILE {root}/none.csv: no such file"),
        ("not-a-folder", "IMAGES {root}/train.csv: not a folder"),
        ("out-not-empty", "OUT_DIR {root}/train_images exists and is not an empty folder"),
        ("bad-header", "needs an image column"),
        ("nothing-found", "none of its rows names a photo found"),
        ("binary", "not UTF-8 text; save it as CSV UTF-8"),
        ("bad-names", "--names {root}/train.csv: not JSON"),
        ("labels-a-folder", "LABELS_FILE {root}/train_images: is a folder, not a file"),
        ("labels-a-fifo", "LABELS_FILE {root}/pipe: not a file (a device or a pipe)"),
        ("names-a-fifo", "--names {root}/pipe: not a file (a device or a pipe)"),
        ("names-dev-zero", "--names /dev/zero: not a file (a device or a pipe)"),
        ("names-too-large", "--names {root}/big.json: 2.0 MB, more than a file may be (1 MB at most)"),
        ("names-nested", "--names {root}/nested.json: not JSON"),
    ],
)
def test_what_cannot_be_imported_is_one_line_and_writes_nothing(tmp_path, cli, one_line_error, case, message):
    labels, images, names = cassava_layout(tmp_path / "c", per_label=1)
    root = tmp_path / "c"
    args = [labels, images, tmp_path / "out"]
    if case == "no-csv":
        args[0] = root / "none.csv"
    elif case == "not-a-folder":
        args[1] = labels
    elif case == "out-not-empty":
        args[2] = images
    elif case == "bad-header":
        labels.write_text("photo,disease_name\n1000.jpg,0\n")
    elif case == "nothing-found":
        labels.write_text("image_id,label\nnope.jpg,0\n")
    elif case == "binary":
        labels.write_bytes(b"\xff\xfe\x00\x00" * 20)
    elif case == "labels-a-folder":
        args[0] = images
    elif case.endswith("fifo"):  # opened, it would wait for a writer for ever
        os.mkfifo(root / "pipe")
        args[0] = root / "pipe" if case.startswith("labels") else labels
    (root / "big.json").write_text('{"0": "' + "x" * 2_000_000 + '"}')
    (root / "nested.json").write_text("[" * 100_000 + "]" * 100_000)
    names_given = {
        "bad-names": labels,
        "names-a-fifo": root / "pipe",
        "names-dev-zero": "/dev/zero",
        "names-too-large": root / "big.json",
        "names-nested": root / "nested.json",
    }
    extra = ["--names", names_given[case]] if case in names_given else []
    one_line_error(cli(data_app, "import", *args, *extra), message.format(root=root))
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.importing")]


def test_what_spreadsheets_and_people_write_is_read_or_named(tmp_path, cli):
    images = tmp_path / "photos"
    images.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        cv2.imwrite(str(images / name), np.zeros((8, 8, 3), np.uint8))
    (images / "notes.txt").write_text("not a photo")
    (images / "empty.jpg").write_bytes(b"")
    labels = tmp_path / "labels.csv"  # a European spreadsheet's CSV: semicolons
    long_label = "x" * 300  # longer than any folder name may be
    labels.write_text(f"image;label\na.jpg;Healthy\nb.jpg;healthy\nc.jpg;{long_label}\nnotes.txt;sick\nempty.jpg;sick\n")
    names = tmp_path / "names.json"
    names.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps({"Healthy": "Healthy", "healthy": "healthy", long_label: long_label, "sick": "sick"}).encode()
    )
    stale = tmp_path / ".out.importing-999999999"  # what a killed import (kill -9) left
    stale.mkdir()
    result = cli(data_app, "import", labels, images, tmp_path / "out", "--names", names)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Healthy", "healthy"]
    assert "note: classes Healthy / healthy differ only in case" in result.stdout
    assert "is longer than a folder name may be" in result.stdout and "'notes.txt' is not an image file" in result.stdout
    assert "'empty.jpg' is not an image file" in result.stdout and not stale.exists()
    labels.write_text("image;label\na.jpg;healthy\n")  # one class only
    one = cli(data_app, "import", labels, images, tmp_path / "one")
    assert one.exit_code == 0 and one.stdout.splitlines()[-1].startswith("next: a classifier needs 2 classes")


@pytest.mark.slow
def test_hh_train_takes_the_imported_folders(tmp_path, cli):
    from hh.trainer.cli_train import app as train_app

    labels, images, names = cassava_layout(tmp_path / "cassava")
    assert cli(data_app, "import", labels, images, tmp_path / "train", "--names", names).exit_code == 0
    run = tmp_path / "run"
    result = cli(train_app, tmp_path / "train", "--val-split", 0.25, "--arch", "edge", "--image-size", 32, "--epochs", 1,
                 "--batch-size", 4, "--out", run)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (run / "labels.txt").read_text().splitlines() == sorted(DISEASES.values())
    assert json.loads((run / "evaluation.json").read_text())["per_class"]["mosaic"]["support"] == 1


def test_what_a_killed_import_left_is_cleared_whatever_the_folders_name(tmp_path, cli):
    """The staging folder of an import killed with -9 is removed by the next import into the same
    folder; a name with [ in it was read as a glob pattern and the leftover stayed."""
    labels, images, _ = cassava_layout(tmp_path / "c", per_label=1)
    out = tmp_path / "data[1]"
    stale = tmp_path / ".data[1].importing-999999999"  # no process has that id
    stale.mkdir()
    (stale / "half.jpg").write_bytes(b"x")
    result = cli(data_app, "import", labels, images, out)
    assert result.exit_code == 0, result.output
    assert not stale.exists() and sum(list_image_folder(out).counts().values()) == 5
