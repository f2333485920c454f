"""Every benchmark script still runs: each at its tiny --smoke size (seconds, not minutes), in
its own temporary folder, its JSON checked for at least one measured number."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("cores", "field", "latency", "loader", "negatives", "real_photos", "resize", "scale", "serve", "train_speed", "web")
CHROMIUM = Path("/usr/bin/chromium")


def positive_numbers(value) -> list[float]:
    """Every number above 0 anywhere in a parsed JSON value (booleans are not numbers here)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value] if value > 0 else []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [n for item in value for n in positive_numbers(item)]
    return []


def skip_reason(name: str) -> str | None:
    if name != "web":
        return None
    if not CHROMIUM.exists():
        return f"no chromium at {CHROMIUM}: .ci/run (or make chromium) installs Debian's chromium"
    if not (ROOT / "web" / "node_modules").is_dir():
        return "no web/node_modules: make web (or make test) runs npm ci"
    return None


# The scripts that measure a given model on a given video get the session's (their own way of
# making one is run by the others): the suite's time goes to what is not tested elsewhere.
GIVEN = {"serve": ("model", "video"), "web": ("model",)}


@pytest.fixture(scope="module")
def model_and_video(int8_model, synth_data, tmp_path_factory):
    from hh.edge.folders import list_image_folder
    from hh.trainer.synth import write_video

    video = write_video(list_image_folder(synth_data / "validation").paths[:6], tmp_path_factory.mktemp("bench") / "v.avi")
    return {"model": int8_model, "video": video}


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_bench_script_runs_at_smoke_size(name, tmp_path, request):
    why = skip_reason(name)
    if why is not None:
        pytest.skip(why)
    out = tmp_path / "x.json"
    given = [str(request.getfixturevalue("model_and_video")[what]) for what in GIVEN.get(name, ())]
    command = [sys.executable, str(ROOT / "bench" / f"{name}.py"), *given, "--smoke", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{name}.py --smoke exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert out.is_file(), f"{name}.py --smoke wrote no {out}"
    result = json.loads(out.read_text())
    assert positive_numbers(result), f"{name}.py --smoke: no number above 0 in {result}"
