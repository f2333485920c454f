"""Things tests make, shared by several test files (imported like mjpeg_server)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from PIL import Image

# Epochs of the session's trained_run (conftest): at 12 that model was still learning (best
# epoch the last) and its validation accuracy swung from 0.57 to 0.85 with the seed; at 20 it
# is 0.78-0.90.
TRAINED_RUN_EPOCHS = 20
# The classic Keras course's training step (hh's defaults before they were chosen on real
# photos): tests whose bounds were measured with it on synthetic leaves keep it.
COURSE_RECIPE = {
    "optimizer": "rmsprop",
    "learning_rate": 0.001,
    "schedule": "constant",
    "warmup_epochs": 0,
    "label_smoothing": 0.0,
    "augment": "light",
}


def repack(model: Path, tmp_path: Path, change) -> Path:
    """A copy of `model` whose packed files went through change(files) (the model part kept)."""
    from hh.converters.pipeline import model_part_size
    from hh.edge.metadata import read_associated_files

    data = model.read_bytes()
    files = read_associated_files(model)
    change(files)
    out = io.BytesIO()
    out.write(data[: model_part_size(data)])
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    copy = tmp_path / "model_int8.tflite"
    copy.write_bytes(out.getvalue())
    return copy


def grey_classes(root: Path, n: int = 12) -> Path:
    """Two classes, dark and light, of n flat grey 32x32 PNGs each: a model learns them in an epoch."""
    for name in ("dark", "light"):
        (root / name).mkdir(parents=True)
        for i in range(n):
            level = 40 + i if name == "dark" else 200 - i
            Image.new("RGB", (32, 32), (level, level, level)).save(root / name / f"{i}.png")
    return root
