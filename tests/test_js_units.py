"""The web app's JavaScript without a browser: its unit tests (node --test web/test/) and its
pure modules against Python's answers on the same inputs (web/test/parity.test.mjs)."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from hh.edge.names import DisplayNames
from hh.edge.preprocess import to_model_rgb
from hh.edge.spec import PreprocessingSpec, RunInfo

ROOT = Path(__file__).resolve().parent.parent
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="no node: the web app's tests need Node.js (make test installs it)")

RESIZE_CASES = [  # (model height, width, interpolation, aspect), (image height, width)
    ((64, 64, "bilinear", "squash"), (97, 131)),
    ((48, 32, "area", "crop"), (480, 640)),
    ((40, 56, "nearest", "crop"), (333, 250)),
    ((64, 48, "bilinear", "crop"), (1080, 1920)),
    ((32, 32, "area", "squash"), (20, 25)),  # smaller than the model: area enlarges
]


def write_parity_cases(folder: Path) -> None:
    rng = np.random.default_rng(7)
    for n, ((height, width, interpolation, aspect), (image_height, image_width)) in enumerate(RESIZE_CASES):
        spec = PreprocessingSpec(height, width, ("a", "b"), interpolation=interpolation, aspect=aspect)
        # Smooth shapes and noise: both the interpolation's weights and its rounding are exercised.
        bgr = cv2.GaussianBlur(rng.integers(0, 256, (image_height, image_width, 3), dtype=np.uint8), (5, 5), 0)
        bgr[::7] = rng.integers(0, 256, bgr[::7].shape, dtype=np.uint8)
        rgba = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA)
        (folder / f"resize_{n}.rgba").write_bytes(rgba.tobytes())
        (folder / f"resize_{n}.expected").write_bytes(np.ascontiguousarray(to_model_rgb(bgr, spec)).tobytes())
        case = {"width": image_width, "height": image_height, "spec": json.loads(spec.to_json())}
        case.update({"rgba": f"resize_{n}.rgba", "expected": f"resize_{n}.expected"})
        (folder / f"resize_{n}.json").write_text(json.dumps(case))


def write_quality_cases(folder: Path) -> None:
    """Model-sized images from sharp to blurred, dark to bright, with hh.edge.quality's measures."""
    from hh.edge.quality import measure

    rng = np.random.default_rng(11)
    cases = []
    for n in range(12):
        height, width = (64, 64) if n % 2 else (48, 80)
        rgb = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 0.5 + n)
        rgb = np.clip(rgb.astype(np.float32) * (0.2 + n / 6), 0, 255).astype(np.uint8)
        name = f"quality_{n}.rgb"
        (folder / name).write_bytes(rgb.tobytes())
        m = measure(rgb)
        cases.append({"rgb": name, "width": width, "height": height, "sharpness": m.sharpness, "brightness": m.brightness,
                      "contrast": m.contrast})  # fmt: skip
    (folder / "quality.json").write_text(json.dumps(cases))


def write_signed_model(folder: Path) -> None:
    """A model-shaped file as hh-convert ends one (a model part, then its packed files), signed."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from hh.edge.trust import key_id, sign_model

    labels = ("brown_spot", "healthy", "mosaic")
    spec = PreprocessingSpec(64, 64, labels, class_mode="categorical", run=RunInfo("run7", "2026-12-02T03:00:00Z"))
    names = DisplayNames(labels, {"sw": ("Madoa ya kahawia", "Mzima", "Batobato"), "hi": ("भूरा धब्बा", "स्वस्थ", "मोज़ेक")})
    path = folder / "model.tflite"
    path.write_bytes(b"\0\0\0\0TFL3" + bytes(200))
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, data in {
            "labels.txt": spec.labels_text().encode(),
            "preprocessing.json": spec.to_json().encode(),
            **names.files(),
        }.items():
            archive.writestr(name, data)
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(sign_model(path.read_bytes(), key))
    (folder / "model.pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    (folder / "other.pub").write_bytes(
        other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    expected = {"labels": list(labels), "names": {k: list(v) for k, v in names.by_language.items()}, "run": spec.run.as_dict(),
                "key_id": key_id(key.public_key()), "other_id": key_id(other)}  # fmt: skip
    (folder / "model.json").write_text(json.dumps(expected))


def write_plant_cases(folder: Path) -> None:
    """Plants of random leaves (some retake, some unknown) with hh.edge.plant's verdict lines."""
    from hh.edge.plant import Leaf, plant_verdict

    rng = np.random.default_rng(5)
    labels = ("brown_spot", "healthy", "mosaic", "unknown")
    cases = []
    for _ in range(40):
        leaves = []
        for k in range(int(rng.integers(1, 8))):
            p = rng.dirichlet(np.ones(len(labels)) * 0.7)
            retake = "too dark" if rng.random() < 0.15 else None
            leaves.append(Leaf(f"leaf {k + 1}", labels[int(p.argmax())], p, retake))
        verdict = plant_verdict(leaves, labels)
        cases.append({
            "leaves": [{"name": x.name, "label": x.label, "probabilities": x.probabilities.tolist(), "retake": x.retake}
                       for x in leaves],
            "line": verdict.line(), "probabilities": verdict.probabilities,
        })  # fmt: skip
    (folder / "plants.json").write_text(json.dumps({"labels": labels, "cases": cases}))


def write_collection_photos(folder: Path) -> None:
    rng = np.random.default_rng(3)
    for name in ("collect_photo.jpg", "collect_other.jpg"):
        image = cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (7, 7), 0)
        cv2.imwrite(str(folder / name), image)


def check_collection_zip(folder: Path) -> None:
    """The page's collection zip: valid for Python's zipfile, and hh-data merge takes it as it is."""
    from hh.trainer.merge import merge

    archive = folder / "collection.zip"
    with zipfile.ZipFile(archive) as opened:
        assert opened.testzip() is None  # every CRC right
        names = opened.namelist()
        assert opened.read("labelled/brown_spot/20261202-080000-005.jpg") == (folder / "collect_photo.jpg").read_bytes()
    assert names == [
        "labelled/brown_spot/20261202-080000-005.jpg", "labelled/healthy/20261202-080000-005.jpg",
        "unsure/healthy/20261202-080000-005_0.41.jpg", "collected.csv",
    ]  # fmt: skip
    train = folder / "train"
    for n, name in enumerate(("brown_spot", "healthy")):
        (train / name).mkdir(parents=True)
        cv2.imwrite(str(train / name / "old.png"), np.full((32, 32, 3), 60 * n, np.uint8))
    report = merge(archive, train)
    assert report.added == {"brown_spot": 1, "healthy": 1} and report.unlabelled == 1 and not report.skipped, report
    assert (train / "brown_spot" / "20261202-080000-005.jpg").read_bytes() == (folder / "collect_photo.jpg").read_bytes()


def test_the_web_apps_unit_tests_pass_and_its_modules_give_pythons_answers(tmp_path):
    write_parity_cases(tmp_path)
    write_quality_cases(tmp_path)
    write_signed_model(tmp_path)
    write_collection_photos(tmp_path)
    write_plant_cases(tmp_path)
    done = subprocess.run(
        [NODE, "--test", "--test-reporter=tap", *sorted(str(p) for p in (ROOT / "web" / "test").glob("*.test.mjs"))],
        capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HH_PARITY_DIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout and "# skipped 0" in done.stdout, done.stdout[-1500:]
    assert int(done.stdout.split("# pass ")[1].split()[0]) >= 29
    check_collection_zip(tmp_path)
