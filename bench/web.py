"""The web app's frame path in headless Chromium next to its peer, MediaPipe Tasks for web's
ImageClassifier, and next to LiteRT in Python: one page, the same int8 model, the same 640x480
frames, alternating rounds, side by side.

    python bench/web.py [MODEL.tflite] [--frames 200] [--rounds 3] [--out bench/results/web.json] [--smoke]

Each side takes twenty 640x480 RGBA frames (the synthetic leaves) through its whole path:
hh's `classifyRgba` (the JavaScript port of fit_to_spec read from the RGBA frame in place,
LiteRT.js wasm, its softmax) and MediaPipe's `ImageClassifier.classify` on the same pixels as
ImageData (its own resize, its CPU delegate, every category's score). Rounds alternate hh and
MediaPipe, `--frames` classifications each, after 20 warm-up frames; the ratio is hh's time over
MediaPipe's. Both are also compared with hh-predict (hh's Python Classifier) on the same frames:
the largest difference of any probability (MediaPipe's scores are the int8 model's logits, so
its probabilities are their softmax). MediaPipe is served from web/node_modules with the page;
any request that would leave the machine is blocked and counted (MediaPipe sends usage logs).

Chromium is Debian's, driven by Playwright; web/ must have its node_modules (make web, or make
test, installs them); without either the script says so in one line and exits with code 2.
Without MODEL: latency.py's edge int8 model (128 px), made in bench/results when missing.
--smoke: 20 frames a round, 1 round, a tiny model made in a temporary folder (CI); JSON to
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
MEDIAPIPE = ROOT / "web" / "node_modules" / "@mediapipe" / "tasks-vision"
FULL = {"frames": 200, "rounds": 3}
SMOKE = {"frames": 20, "rounds": 1}
FRAME_SIZE = (640, 480)


def leaf_frames(count: int = 20) -> list[np.ndarray]:
    """`count` BGR frames of 640x480: the synthetic leaves of both classes, enlarged."""
    import cv2

    from hh.edge.folders import list_image_folder
    from hh.trainer.synth import write_dataset

    with tempfile.TemporaryDirectory(prefix="hh-bench-frames-") as folder:
        write_dataset(Path(folder) / "data", classes=2, per_class=count, seed=5)
        paths = list_image_folder(Path(folder) / "data" / "train").paths
        return [cv2.resize(cv2.imread(p), FRAME_SIZE, interpolation=cv2.INTER_CUBIC) for p in paths[:count]]


def python_ms(model: Path, frames: list[np.ndarray], count: int, threads: int) -> float:
    from hh.edge.runtime import Classifier

    classifier = Classifier(model, num_threads=threads)
    for i in range(20):
        classifier.classify(frames[i % len(frames)])
    started = time.perf_counter()
    for i in range(count):
        classifier.classify(frames[i % len(frames)])
    return (time.perf_counter() - started) * 1000 / count


def python_probabilities(model: Path, frames: list[np.ndarray]) -> np.ndarray:
    from hh.edge.runtime import Classifier

    classifier = Classifier(model, num_threads=1)
    return np.stack([classifier.classify(frame).probabilities for frame in frames])


PAGE_SCRIPT = """async ([frames, width, height, count, rounds]) => {
    const rgbas = frames.map((b64) => Uint8ClampedArray.from(atob(b64), (c) => c.charCodeAt(0)));
    const images = rgbas.map((rgba) => new ImageData(rgba, width, height));
    const vision = await import(new URL("mediapipe/vision_bundle.mjs", document.baseURI).href);
    const fileset = await vision.FilesetResolver.forVisionTasks(new URL("mediapipe/wasm", document.baseURI).href);
    const model = new Uint8Array(await (await fetch("model.tflite")).arrayBuffer());
    const mediapipe = await vision.ImageClassifier.createFromOptions(fileset, {
        baseOptions: { modelAssetBuffer: model, delegate: "CPU" }, runningMode: "IMAGE", maxResults: -1 });
    const labels = window.hh.state.labels;
    const mediapipeScores = (image) => {
        const scores = new Array(labels.length).fill(NaN);
        for (const c of mediapipe.classify(image).classifications[0].categories) scores[c.index] = c.score;
        return scores;
    };
    const hhAnswers = [], mediapipeAnswers = [];
    for (let i = 0; i < rgbas.length; i++) {
        hhAnswers.push((await window.hh.classifyRgba(rgbas[i], width, height)).probabilities);
        mediapipeAnswers.push(mediapipeScores(images[i]));
    }
    for (let i = 0; i < 20; i++) {
        await window.hh.classifyRgba(rgbas[i % rgbas.length], width, height);
        mediapipe.classify(images[i % images.length]);
    }
    const hhMs = [], mediapipeMs = [], preprocessMs = [];
    for (let round = 0; round < rounds; round++) {
        let t0 = performance.now();
        for (let i = 0; i < count; i++) await window.hh.classifyRgba(rgbas[i % rgbas.length], width, height);
        hhMs.push((performance.now() - t0) / count);
        t0 = performance.now();
        for (let i = 0; i < count; i++) mediapipe.classify(images[i % images.length]);
        mediapipeMs.push((performance.now() - t0) / count);
        const spec = window.hh.state.spec;
        t0 = performance.now();
        for (let i = 0; i < count; i++) window.hh.fitToSpec(rgbas[i % rgbas.length], width, height, spec);
        preprocessMs.push((performance.now() - t0) / count);
    }
    mediapipe.close();
    return { hhMs, mediapipeMs, preprocessMs, hhAnswers, mediapipeAnswers, cores: navigator.hardwareConcurrency };
}"""


def browser_side(model: Path, frames: list[np.ndarray], count: int, rounds: int) -> dict:
    """hh's web path and MediaPipe's, alternating in one page; requests leaving the machine blocked."""
    import cv2
    from playwright.sync_api import sync_playwright
    from test_web import BROWSER_FLAGS, Server

    site = Path(tempfile.mkdtemp()) / "site"
    subprocess.run(["node", str(ROOT / "web" / "build.mjs"), str(site), str(model)], check=True, capture_output=True)
    (site / "mediapipe" / "wasm").mkdir(parents=True)
    shutil.copy(MEDIAPIPE / "vision_bundle.mjs", site / "mediapipe")
    for wasm in (MEDIAPIPE / "wasm").glob("vision_wasm_*internal.*"):
        shutil.copy(wasm, site / "mediapipe" / "wasm")
    server = Server(site)
    blocked: list[str] = []

    def only_this_machine(route):
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    encoded = [base64.b64encode(cv2.cvtColor(f, cv2.COLOR_BGR2RGBA).tobytes()).decode() for f in frames]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_FLAGS)
            page = browser.new_page()
            page.route("**/*", only_this_machine)
            page.goto(server.url)
            page.wait_for_function("window.hh && window.hh.state.model !== null", timeout=60_000)
            result = page.evaluate(PAGE_SCRIPT, [encoded, *FRAME_SIZE, count, rounds])
            browser.close()
    finally:
        server.close()
        shutil.rmtree(site.parent, ignore_errors=True)
    return {**result, "blocked": blocked}


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


def missing_browser() -> str | None:
    """Why the browser side cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM}: install Debian's chromium (make chromium)"
    if not MEDIAPIPE.is_dir():
        return f"no {MEDIAPIPE}: make web (or make test) runs npm ci"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, nargs="?", default=None)
    parser.add_argument("--frames", type=int, default=None, help=f"per round and side (default {FULL['frames']})")
    parser.add_argument("--rounds", type=int, default=None, help=f"alternating rounds (default {FULL['rounds']})")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/web.json")
    parser.add_argument("--smoke", action="store_true", help="tiny, in a temporary folder (CI); JSON to bench/results/smoke/")
    args = parser.parse_args()
    why = missing_browser()
    if why is not None:
        print(f"error: {why}", file=sys.stderr)
        sys.exit(2)
    size = SMOKE if args.smoke else FULL
    args.frames = args.frames or size["frames"]
    args.rounds = args.rounds or size["rounds"]
    args.out = args.out or (SMOKE_RESULTS if args.smoke else RESULTS) / "web.json"
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="hh-bench-web-") as tmp:
            measure(args, args.model or edge_model(Path(tmp), smoke=True))
    else:
        measure(args, args.model or edge_model(RESULTS, smoke=False))


def measure(args: argparse.Namespace, model: Path) -> None:
    frames = leaf_frames()
    web = browser_side(model, frames, args.frames, args.rounds)
    reference = python_probabilities(model, frames)
    hh_diff = float(np.abs(np.array(web["hhAnswers"]) - reference).max())
    mediapipe_probabilities = softmax(np.array(web["mediapipeAnswers"], np.float64))
    mediapipe_diff = float(np.abs(mediapipe_probabilities - reference).max())
    one_thread = python_ms(model, frames, args.frames, 1)
    ratios = [h / m for h, m in zip(web["hhMs"], web["mediapipeMs"])]
    result = {
        "model": str(model), "frames": args.frames, "rounds": args.rounds, "cpus": os.cpu_count(),
        "frame_size": list(FRAME_SIZE), "distinct_frames": len(frames),
        "web_ms": web["hhMs"], "web_preprocess_ms": web["preprocessMs"], "mediapipe_ms": web["mediapipeMs"],
        "web_over_mediapipe": ratios, "mediapipe_over_web": [1 / r for r in ratios],
        "web_max_prob_diff_vs_hh_predict": hh_diff, "mediapipe_max_prob_diff_vs_hh_predict": mediapipe_diff,
        "requests_blocked": len(web["blocked"]), "blocked_hosts": sorted({u.split("/")[2] for u in web["blocked"] if "//" in u}),
        "python_litert_ms_1_thread": one_thread,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{model}: {len(frames)} different 640x480 frames -> label, ms per frame "
        f"({args.rounds} alternating rounds of {args.frames})"
    )
    print("  hh web (classifyRgba, LiteRT.js wasm)   " + "  ".join(f"{v:6.2f}" for v in web["hhMs"]))
    print("    of which JS preprocessing             " + "  ".join(f"{v:6.2f}" for v in web["preprocessMs"]))
    print("  MediaPipe ImageClassifier (CPU)         " + "  ".join(f"{v:6.2f}" for v in web["mediapipeMs"]))
    print("  MediaPipe / hh (how many times faster)  " + "  ".join(f"{1 / r:6.2f}" for r in ratios))
    print(f"  Python, LiteRT, 1 thread                {one_thread:6.2f}")
    print(f"  largest probability difference from hh-predict: hh web {hh_diff:.2g}, MediaPipe {mediapipe_diff:.3f}")
    hosts = ", ".join(result["blocked_hosts"]) or "none"
    print(f"  requests that would have left the machine (blocked): {len(web['blocked'])} ({hosts})")


if __name__ == "__main__":
    main()
