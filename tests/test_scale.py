"""Training at field scale: memory from the machine, model inputs on disk beyond it, read
every epoch instead of decoding, keyed by the images' contents."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from makers import grey_classes
from PIL import Image

from hh.edge.folders import list_image_folder
from hh.edge.machine import memory_limit
from hh.edge.spec import PreprocessingSpec
from hh.trainer.decode import read_model_input


def photo_classes(root, n=10, size=(96, 72)):
    """Two classes of noisy JPEGs (every image different), red or blue."""
    rng = np.random.default_rng(0)
    for name in ("blue", "red"):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 120, (size[1], size[0], 3), dtype=np.uint8)
            pixels[..., 2 if name == "blue" else 0] += 120  # RGB
            Image.fromarray(pixels).save(root / name / f"{i}.jpg", quality=90)
    return root


# -- the budget from the machine --------------------------------------------------------------
def fake_machine(tmp_path, cgroup_line, limits, mem_total_kb=8 * 1024 * 1024):
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal:       {mem_total_kb} kB\nMemFree:  100 kB\n")
    (proc / "self" / "cgroup").write_text(cgroup_line + "\n")
    for relative, (name, value) in limits.items():
        (root / relative).mkdir(parents=True, exist_ok=True)
        (root / relative / name).write_text(f"{value}\n")
    return str(proc), str(root)


def test_memory_limit_is_the_machine_or_a_tighter_cgroup(tmp_path):
    gb = 1024**3
    # No limit anywhere: the machine's RAM.
    proc, root = fake_machine(tmp_path / "a", "0::/user.slice/job", {"user.slice/job": ("memory.max", "max")})
    assert memory_limit(proc, root) == 8 * gb
    # cgroup v2: a limit on a group above the process's own counts too.
    proc, root = fake_machine(
        tmp_path / "b", "0::/user.slice/job", {"user.slice": ("memory.max", 3 * gb), "user.slice/job": ("memory.max", "max")}
    )
    assert memory_limit(proc, root) == 3 * gb
    # cgroup v1 (docker --memory on an older host): memory.limit_in_bytes, "unlimited" as a huge number.
    proc, root = fake_machine(
        tmp_path / "c",
        "4:memory:/docker/abc\n3:cpu:/docker/abc",
        {"memory/docker/abc": ("memory.limit_in_bytes", 2 * gb), "memory": ("memory.limit_in_bytes", 9223372036854771712)},
    )
    assert memory_limit(proc, root) == 2 * gb
    # A limit above the RAM does not raise it.
    proc, root = fake_machine(tmp_path / "d", "0::/", {"": ("memory.max", 64 * gb)})
    assert memory_limit(proc, root) == 8 * gb
    # And this machine's own answer is a real amount of memory.
    assert 256 * 1024**2 < memory_limit() < 1 << 50


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "lots"])
def test_a_bad_ram_budget_is_one_line(tmp_path, cli, value):
    from hh.trainer.cli_train import app

    result = cli(app, grey_classes(tmp_path / "data"), "--out", tmp_path / "r", "--ram-budget", value)
    assert result.exit_code == 2, result.output
    assert "--ram-budget" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


# -- model inputs on disk ---------------------------------------------------------------------
def test_epochs_read_the_inputs_file_and_no_image_is_decoded_again(tmp_path):
    """The scan writes each model input to the file once; then the images can go: every epoch
    still gets every image, exactly as the device would make it, shuffled anew."""
    from hh.trainer.data import make_dataset
    from hh.trainer.input_file import InputFile, InputFileWriter
    from hh.trainer.scan import scan_and_decode

    data = photo_classes(tmp_path / "data")
    (data / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    spec = PreprocessingSpec(height=24, width=32, class_names=("blue", "red"))
    listing = list_image_folder(data)
    writer = InputFileWriter(tmp_path / "inputs", len(listing), spec)
    folder, report, decoded = scan_and_decode(listing, tmp_path / "normalized", spec, writer=writer)
    assert len(report.bad) == 1 and len(folder) == 20
    assert isinstance(decoded.pixels, InputFile)
    expected = {path: read_model_input(path, spec) for path in folder.paths}
    inputs = sorted((tmp_path / "inputs").iterdir())
    assert [p.suffix for p in inputs] == [".json", ".u8"]  # the file and its index, nothing half-written
    assert inputs[1].stat().st_size == len(listing) * 24 * 32 * 3

    ds = make_dataset(folder, spec, batch_size=6, shuffle=True, seed=3, decoded=decoded)
    first = np.concatenate([x.numpy() for x, _ in ds])
    for path in folder.paths:
        (tmp_path / path).unlink()  # the images are gone: nothing can decode them now
    epochs = [list(ds) for _ in range(2)]
    for batches in epochs:
        images = np.concatenate([x.numpy() for x, _ in batches])
        labels = np.concatenate([y.numpy()[:, 0] for _, y in batches])
        assert images.shape == (20, 24, 32, 3)
        # Every image once, its label with it (red images are red), as the device makes it.
        assert sorted(map(bytes, images)) == sorted(bytes(a) for a in expected.values())
        red = images[..., 0].mean(axis=(1, 2)) > images[..., 2].mean(axis=(1, 2))
        np.testing.assert_array_equal(red, labels == 1)
    assert not np.array_equal(np.concatenate([x.numpy() for x, _ in epochs[0]]), first)  # reshuffled


def test_a_full_disk_for_the_inputs_file_is_refused_at_once_and_leaves_nothing(tmp_path):
    """posix_fallocate reserves the whole file first: no room shows before any decoding."""
    script = f"""
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
from pathlib import Path
from hh.trainer.input_file import InputFileFailed
from hh.edge.spec import PreprocessingSpec
from hh.trainer.input_file import InputFileWriter
try:
    InputFileWriter(Path({str(tmp_path / "inputs")!r}), 100, PreprocessingSpec(height=32, width=32, class_names=("a", "b")))
except InputFileFailed as exc:
    print(exc)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"no room for 307 KB of model inputs in {tmp_path / 'inputs'} (File too large)"), done.stdout
    assert list((tmp_path / "inputs").iterdir()) == []


@pytest.mark.slow
def test_hh_train_beyond_the_ram_budget_trains_from_the_inputs_file_keyed_by_content(tmp_path, caplog):
    from hh.trainer.config import TrainConfig
    from hh.trainer.input_file import read_index
    from hh.trainer.train import resume, train

    data, cache = photo_classes(tmp_path / "data", n=12), tmp_path / "cache"
    caplog.set_level(logging.INFO, logger="hh.train")

    def run(out, **options):
        caplog.clear()
        config = TrainConfig(data_dir=str(data), out=str(tmp_path / out), arch="edge", image_size=32, batch_size=8, epochs=1)
        result = train(config.__class__(**{**config.__dict__, **options}))
        return result, caplog.text

    # Beyond the budget, without --cache: the run's own inputs file, removed once complete.
    result, log = run("r1", ram_budget=0)
    assert "model inputs of the training folder: 74 KB, more than the RAM budget of 0 KB (--ram-budget): decoded once" in log
    assert result.epochs_run == 1 and (tmp_path / "r1" / "evaluation.json").is_file()
    assert not (tmp_path / "r1" / "inputs").exists()
    # Trained longer (a resume): decoded once again, into the run folder, and removed again.
    caplog.clear()
    resume(tmp_path / "r1", epochs=2)
    assert "decoded once into" in caplog.text and not (tmp_path / "r1" / "inputs").exists()

    # --cache: kept for the next run, which reads it instead of decoding.
    run("r2", cache=str(cache))
    indexes = sorted(cache.glob("inputs-*.json"))
    assert len(indexes) == 1
    _, log = run("r3", cache=str(cache))
    assert f"model inputs of the training folder: read from {indexes[0].with_suffix('.u8')} (decoded by an earlier run)" in log
    assert sorted(cache.glob("inputs-*.json")) == indexes

    # One image changed (same name): another digest, so a new file, holding the new pixels.
    changed = data / "red" / "3.jpg"
    Image.fromarray(np.full((72, 96, 3), (250, 250, 250), np.uint8)).save(changed, quality=90)
    _, log = run("r4", cache=str(cache))
    assert "decoded by an earlier run" not in log and "decoded once into" in log
    new = sorted(set(cache.glob("inputs-*.json")) - set(indexes))
    assert len(new) == 1
    _, rows = read_index(new[0])
    row = [i for i, v in enumerate(rows) if v is not None and v.file == str(changed)]
    pixels = np.fromfile(new[0].with_suffix(".u8"), np.uint8).reshape(len(rows), 32, 32, 3)[row[0]]
    spec = PreprocessingSpec(height=32, width=32, class_names=("blue", "red"))
    np.testing.assert_array_equal(pixels, read_model_input(str(changed), spec))
    assert pixels.min() > 200  # the new, white image: not the old red one
    assert json.loads((tmp_path / "r4" / "run.json").read_text())["status"] == "complete"

    # With --val-dir each folder has a file; a resume (training longer) reads both, writes none.
    val = photo_classes(tmp_path / "val", n=4)
    run("r5", cache=str(tmp_path / "cache2"), val_dir=str(val))
    written = sorted((tmp_path / "cache2").iterdir())
    assert len(written) == 4  # two inputs files and their indexes
    caplog.clear()
    resume(tmp_path / "r5", epochs=2)
    assert caplog.text.count("model inputs of the ") == 2 and caplog.text.count(": read from ") == 2, caplog.text
    assert sorted((tmp_path / "cache2").iterdir()) == written


def test_an_inputs_file_a_killed_run_left_half_written_is_removed_by_the_next(tmp_path):
    """A writer killed mid-scan leaves its temporary file (gigabytes at field scale); the next
    writer in that folder removes it, but never one another process is still writing."""
    import os

    folder = tmp_path / "inputs"
    script = f"""
import os
from pathlib import Path
from hh.edge.spec import PreprocessingSpec
from hh.trainer.input_file import InputFileWriter
live = InputFileWriter(Path({str(folder)!r}), 10, PreprocessingSpec(height=16, width=16, class_names=("a", "b")))
print(live.tmp, flush=True)
if os.environ.get("HOLD"):
    input()
os._exit(9)
"""
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    abandoned = Path(killed.stdout.strip())
    holder = subprocess.Popen(
        [sys.executable, "-c", script], env={**os.environ, "HOLD": "1"}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    held = Path(holder.stdout.readline().strip())
    try:
        old = time.time() - 3600
        for path in (abandoned, held):
            os.utime(path, (old, old))
        from hh.trainer.input_file import InputFileWriter

        writer = InputFileWriter(folder, 4, PreprocessingSpec(height=16, width=16, class_names=("a", "b")))
        assert not abandoned.exists() and held.exists()
        writer.discard()
    finally:
        holder.communicate("\n", timeout=60)
    assert not writer.tmp.exists()


def test_an_inputs_file_whose_index_was_damaged_or_edited_is_never_read(tmp_path):
    """Only an index hh wrote for the file of its name is trusted: edited rows (which would
    give images another image's pixels), other JSON shapes, a FIFO or a folder in the file's
    place are passed over without an error, and the images are decoded again."""
    import os

    from hh.trainer.decode import decode_into_file
    from hh.trainer.input_file import ImageVersion, InputFileWriter, find_input_file

    data = photo_classes(tmp_path / "data", n=3)
    paths = sorted(str(p) for p in data.rglob("*.jpg"))
    spec = PreprocessingSpec(height=16, width=16, class_names=("blue", "red"))
    versions = [ImageVersion(p, os.stat(p).st_size, os.stat(p).st_mtime_ns, f"d{i}") for i, p in enumerate(paths)]
    folder = tmp_path / "cache"
    writer = InputFileWriter(folder, len(paths), spec)
    decode_into_file(paths, spec, writer)
    inputs = writer.commit(versions)
    index, data_file = inputs.path.with_suffix(".json"), inputs.path
    found = find_input_file(folder, spec, versions)
    assert found is not None and list(found[1]) == list(range(6))
    np.testing.assert_array_equal(found[0][[2]][0], read_model_input(paths[2], spec))
    good = index.read_text()

    rows = json.loads(good)
    rows["rows"][0], rows["rows"][5] = rows["rows"][5], rows["rows"][0]  # a blue and a red image swapped
    for damaged in (json.dumps(rows), "[]", "null", '{"version": 1}', "[" * 100000 + "]" * 100000, "", "\x00garbage"):
        index.write_text(damaged)
        assert find_input_file(folder, spec, versions) is None, damaged[:40]
    index.write_text(good.replace('"version":1', '"version":1,"x":1e999'))
    assert find_input_file(folder, spec, versions) is not None  # valid, its key unchanged
    index.write_text(good)
    data_file.unlink()
    os.mkfifo(data_file)  # would block a plain open for ever
    assert find_input_file(folder, spec, versions) is None
    data_file.unlink()
    data_file.mkdir()
    assert find_input_file(folder, spec, versions) is None


def test_a_cache_that_is_a_broken_link_or_inside_the_run_is_one_line(tmp_path, cli):
    from hh.trainer.cli_train import app

    data = grey_classes(tmp_path / "data")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    result = cli(app, data, "--out", tmp_path / "r", "--cache", tmp_path / "dangling")
    assert result.exit_code == 2 and "is a broken link" in result.output, result.output
    result = cli(app, data, "--out", tmp_path / "r", "--cache", tmp_path / "r" / "inputs")
    assert result.exit_code == 2 and "is inside the run folder" in result.output, result.output
    assert not (tmp_path / "r").exists() and not (tmp_path / "nowhere").exists()
