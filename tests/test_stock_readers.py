"""A stock TFLite reader still loads hh's models unchanged, self-test and all: MediaPipe Tasks'
ImageClassifier, in its own venv (`make test` builds .venv-stock with it)."""

import json
import subprocess
from pathlib import Path

import pytest

from hh.edge.folders import list_image_folder
from hh.edge.preprocess import read_image_bgr
from hh.edge.runtime import Classifier

ROOT = Path(__file__).resolve().parent.parent
STOCK_PYTHON = ROOT / ".venv-stock" / "bin" / "python"


@pytest.mark.slow
@pytest.mark.skipif(not STOCK_PYTHON.exists(), reason="no .venv-stock: `make test` (what CI runs) builds it")
def test_mediapipe_reads_labels_and_agrees_with_hh(int8_model, synth_data):
    paths = list_image_folder(synth_data / "validation").paths[::4]  # 10 images, both classes
    script = Path(__file__).parent / "stock" / "mediapipe_classify.py"
    done = subprocess.run([str(STOCK_PYTHON), str(script), str(int8_model), *paths], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    stock = [json.loads(line) for line in done.stdout.splitlines()]
    classifier = Classifier(int8_model)
    ours = [classifier.classify(read_image_bgr(p)) for p in paths]
    assert len(stock) == len(paths)
    # MediaPipe resizes with its own filter, so scores differ a little; labels come from the
    # model's metadata and the answers agree.
    agree = sum(s["label"] == o.label for s, o in zip(stock, ours))
    assert agree >= len(paths) - 1, (stock, [o.label for o in ours])
    assert {s["label"] for s in stock} <= set(classifier.class_names)
