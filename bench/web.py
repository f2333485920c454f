"""The web app's per-frame time in headless Chromium (LiteRT.js, wasm CPU) next to LiteRT in
Python on the same machine, model and frame. One run, side by side.

    python bench/web.py [MODEL.tflite] [--frames 200] [--out bench/results/web.json] [--smoke]

Both sides take the same 640x480 camera-sized frame through their whole path: crop/resize to
the model's input (the page's JavaScript port of fit_to_spec; OpenCV in Python), colour order,
quantization, invoke, dequantize. Chromium is Debian's, driven by Playwright; web/ must have
its node_modules (make web, or make test, installs them); without either the script says so in
one line and exits with code 2.

Without MODEL: latency.py's edge int8 model (128 px), made in bench/results when missing.
--smoke: 20 frames with a tiny model made in a temporary folder (CI); JSON to
bench/results/smoke/web.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from latency import RESULTS, SMOKE_RESULTS, edge_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # what tests/test_web.py drives
FULL = {"frames": 200}
SMOKE = {"frames": 20}


def python_ms(model: Path, frame: np.ndarray, frames: int, threads: int) -> float:
    from hh.edge.runtime import Classifier

    classifier = Classifier(model, num_threads=threads)
    for _ in range(20):
        classifier.classify(frame)
    started = time.perf_counter()
    for _ in range(frames):
        classifier.classify(frame)
    return (time.perf_counter() - started) * 1000 / frames


def browser_ms(model: Path, frame: np.ndarray, frames: int) -> dict:
    import cv2
    from playwright.sync_api import sync_playwright
    from test_web import BROWSER_FLAGS, Server

    site = Path(tempfile.mkdtemp()) / "site"
    subprocess.run(["node", str(ROOT / "web" / "build.mjs"), str(site), str(model)], check=True, capture_output=True)
    server = Server(site)
    rgba = cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_FLAGS)
            page = browser.new_page()
            page.goto(server.url)
            page.wait_for_function("window.hh && window.hh.state.model !== null", timeout=60_000)
            result = page.evaluate(
                """async ([b64, w, h, n]) => {
                    const rgba = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                    for (let i = 0; i < 20; i++) await window.hh.classifyRgba(rgba, w, h);
                    let t0 = performance.now();
                    for (let i = 0; i < n; i++) await window.hh.classifyRgba(rgba, w, h);
                    const total = (performance.now() - t0) / n;
                    const spec = window.hh.state.spec;
                    t0 = performance.now();
                    for (let i = 0; i < n; i++) window.hh.fitToSpec(rgba, w, h, spec);
                    return { total_ms: total, preprocess_ms: (performance.now() - t0) / n,
                             cores: navigator.hardwareConcurrency };
                }""",
                [base64.b64encode(rgba.tobytes()).decode(), frame.shape[1], frame.shape[0], frames],
            )
            browser.close()
    finally:
        server.close()
        shutil.rmtree(site.parent, ignore_errors=True)
    return result


def missing_browser() -> str | None:
    """Why the browser side cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM}: install Debian's chromium (make chromium)"
    if not (ROOT / "web" / "node_modules").is_dir():
        return f"no {ROOT / 'web' / 'node_modules'}: make web (or make test) runs npm ci"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, nargs="?", default=None)
    parser.add_argument("--frames", type=int, default=None, help=f"default: {FULL['frames']} ({SMOKE['frames']} with --smoke)")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/web.json")
    parser.add_argument("--smoke", action="store_true", help="tiny, in a temporary folder (CI); JSON to bench/results/smoke/")
    args = parser.parse_args()
    why = missing_browser()
    if why is not None:
        print(f"error: {why}", file=sys.stderr)
        sys.exit(2)
    args.frames = args.frames or (SMOKE if args.smoke else FULL)["frames"]
    args.out = args.out or (SMOKE_RESULTS if args.smoke else RESULTS) / "web.json"
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="hh-bench-web-") as tmp:
            measure(args, args.model or edge_model(Path(tmp), smoke=True))
    else:
        measure(args, args.model or edge_model(RESULTS, smoke=False))


def measure(args: argparse.Namespace, model: Path) -> None:
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    web = browser_ms(model, frame, args.frames)
    one_thread = python_ms(model, frame, args.frames, 1)
    two_threads = python_ms(model, frame, args.frames, 2)
    result = {
        "model": str(model), "frames": args.frames, "cpus": os.cpu_count(),
        "web_total_ms": web["total_ms"], "web_preprocess_ms": web["preprocess_ms"],
        "python_litert_ms_1_thread": one_thread, "python_litert_ms_2_threads": two_threads,
        "web_vs_python_1_thread": web["total_ms"] / one_thread,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{model}: 640x480 frame -> label, ms per frame (mean of {args.frames})")
    print(f"  Chromium, LiteRT.js wasm (1 thread)   {web['total_ms']:.2f}  (JS preprocessing {web['preprocess_ms']:.2f})")
    print(f"  Python, LiteRT, 1 thread              {one_thread:.2f}")
    print(f"  Python, LiteRT, 2 threads             {two_threads:.2f}")
    print(f"  web / Python (1 thread)               {result['web_vs_python_1_thread']:.2f}x")


if __name__ == "__main__":
    main()
