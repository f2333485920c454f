"""The tf.data loader on the formats and sizes users have."""

import numpy as np
import pytest
from PIL import Image

from hh.edge.folders import list_image_folder, split_validation
from hh.edge.spec import PreprocessingSpec
from hh.trainer.data import make_dataset
from hh.trainer.decode import DecodedImages, decode_into_file
from hh.trainer.input_file import ImageVersion, InputFileWriter


def kept_inputs(folder, spec, where, tmp_path):
    """The folder's model inputs decoded once: in RAM, in an inputs file on disk, or not at all."""
    if where == "none":
        return None
    if where == "memory":
        return DecodedImages.of_files(folder.paths, spec)
    writer = InputFileWriter(tmp_path / "inputs", len(folder), spec)
    decode_into_file(folder.paths, spec, writer)
    versions = [ImageVersion(str(p), 0, 0, f"digest{i}") for i, p in enumerate(folder.paths)]
    return DecodedImages(writer.commit(versions), {p: i for i, p in enumerate(folder.paths)})


def write_mixed_folder(root):
    """Two classes, every format and mode the loader promises, all sizes different.

    Class 'bright' images are near-white and class 'dark' near-black, so a label mix-up or a
    channel/scale error shows up in the pixel means.
    """
    rng = np.random.default_rng(0)
    for name, level in (("bright", 230), ("dark", 25)):
        folder = root / name
        folder.mkdir(parents=True)
        for i, (ext, mode, size) in enumerate(
            [
                ("jpg", "RGB", (320, 200)),
                ("png", "RGBA", (250, 410)),
                ("png", "L", (97, 61)),
                ("bmp", "RGB", (500, 300)),
                ("gif", "P", (123, 77)),
                ("jpeg", "L", (64, 64)),
                ("PNG", "I;16", (90, 140)),
            ]
        ):
            pixels = np.clip(level + rng.normal(0, 3, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels).convert("RGB")
            if mode == "I;16":
                image = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
            elif mode != "RGB":
                image = image.convert(mode)
            image.save(folder / f"img{i}.{ext}")
        (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
        (folder / "notes.txt").write_text("not an image")
    return root


@pytest.mark.parametrize("cache", ["memory", "none", "file"])
def test_loader_decodes_every_format_to_rgb_batches(tmp_path, cache):
    folder = list_image_folder(write_mixed_folder(tmp_path / "mixed"))
    assert folder.class_names == ("bright", "dark")
    assert len(folder) == 14  # hidden and non-image files are not listed
    spec = PreprocessingSpec(height=40, width=56, class_names=folder.class_names)
    decoded = kept_inputs(folder, spec, cache, tmp_path)
    batches = list(make_dataset(folder, spec, batch_size=5, shuffle=False, decoded=decoded))
    images = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert [tuple(b[0].shape[1:]) for b in batches] == [(40, 56, 3)] * 3
    assert batches[0][0].dtype.name == "uint8"  # raw pixels: the model scales
    assert labels.shape == (14, 1) and labels.dtype == np.float32
    np.testing.assert_array_equal(labels[:, 0], [0] * 7 + [1] * 7)
    # Raw 0-255 pixels (scaling is the model's job), bright class bright, dark class dark.
    means = images.reshape(14, -1).mean(axis=1)
    assert np.all(means[:7] > 200) and np.all(means[7:] < 50), means


def test_categorical_labels_are_one_hot(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.new("RGB", (30 + i, 20), (i * 100, 0, 0)).save(tmp_path / name / f"{i}.png")
    folder = list_image_folder(tmp_path)
    spec = PreprocessingSpec(height=16, width=16, class_names=folder.class_names, class_mode="categorical")
    ((x, y),) = list(make_dataset(folder, spec, batch_size=6, shuffle=False))
    np.testing.assert_array_equal(y.numpy(), np.repeat(np.eye(3, dtype=np.float32), 2, axis=0))
    assert x.shape == (6, 16, 16, 3)


def test_val_split_is_stratified_and_seeded(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(10):
            Image.new("RGB", (8, 8)).save(tmp_path / name / f"{i}.png")
    folder = list_image_folder(tmp_path)
    train1, val1 = split_validation(folder, 0.3, seed=5)
    train2, val2 = split_validation(folder, 0.3, seed=5)
    _, val3 = split_validation(folder, 0.3, seed=6)
    assert val1.paths == val2.paths and train1.paths == train2.paths
    assert val1.paths != val3.paths
    assert val1.counts() == {"a": 3, "b": 3} and train1.counts() == {"a": 7, "b": 7}
    assert not set(train1.paths) & set(val1.paths)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 0.01])
def test_val_split_refuses_fractions_that_leave_a_side_empty(tmp_path, fraction):
    from hh.edge.errors import UserError

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(4):
            Image.new("RGB", (8, 8)).save(tmp_path / name / f"{i}.png")
    with pytest.raises(UserError):
        split_validation(list_image_folder(tmp_path), fraction, seed=0)


@pytest.mark.parametrize("where", ["memory", "file"])
def test_shuffled_epochs_differ_and_cover_every_image(tmp_path, where):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(10):
            Image.new("RGB", (20, 20), (i * 20 + (name == "b"), 0, 0)).save(tmp_path / name / f"{i}.png")
    folder = list_image_folder(tmp_path)
    spec = PreprocessingSpec(height=16, width=16, class_names=folder.class_names)
    ds = make_dataset(folder, spec, batch_size=4, shuffle=True, seed=1, decoded=kept_inputs(folder, spec, where, tmp_path))
    epochs = [np.concatenate([x.numpy()[:, 0, 0, 0] for x, _ in ds]) for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) and len(epochs[0]) == 20
    assert not np.array_equal(epochs[0], epochs[1])  # a fresh order every epoch
    # Labels travel with their images through the shuffle: class b images have odd red.
    for x, y in ds:
        np.testing.assert_array_equal(x.numpy()[:, 0, 0, 0] % 2, y.numpy()[:, 0])


def test_a_split_trains_on_the_rows_the_scan_decoded(tmp_path):
    """Training gathers from the scan's array: nothing is decoded again. Marking a row in that
    array (and only there) shows up in the batches, and each split gets exactly its files."""
    from hh.trainer.scan import scan_and_decode

    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (24, 24), (i * 10 + (name == "b"), 0, 0)).save(tmp_path / "data" / name / f"{i}.png")
    spec = PreprocessingSpec(height=16, width=16, class_names=("a", "b"))
    folder, _, decoded = scan_and_decode(list_image_folder(tmp_path / "data"), tmp_path / "cache", spec)
    train, val = split_validation(folder, 0.5, seed=0)
    marked = decoded.row_of[val.paths[0]]
    decoded.pixels[marked] = 255
    for split, expect in ((train, 0), (val, 1)):
        ds = make_dataset(split, spec, batch_size=4, shuffle=True, seed=2, decoded=decoded)
        images = np.concatenate([x.numpy() for x, _ in ds])
        assert len(images) == len(split)
        assert int((images == 255).all(axis=(1, 2, 3)).sum()) == expect
        # Labels travel with their rows: class b images have odd red.
        for x, y in ds:
            red = x.numpy()[:, 0, 0, 0]
            np.testing.assert_array_equal(np.where(red == 255, y.numpy()[:, 0], red % 2), y.numpy()[:, 0])
