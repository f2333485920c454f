"""The web app in a real browser: Debian's chromium driven by Playwright (no browser download).

`make test` builds web/node_modules (npm ci) and .ci/run installs chromium; run alone, these
tests are skipped when either is missing.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from hh.edge.folders import list_image_folder
from hh.edge.preprocess import read_image_bgr, to_model_rgb
from hh.edge.runtime import Classifier
from hh.edge.spec import PreprocessingSpec

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (WEB / "node_modules").is_dir(), reason="no web/node_modules: `make test` runs npm ci"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium: .ci/run installs Debian's chromium"),
]


class Server:
    """A static server on loopback for a folder (http://127.0.0.1 counts as a secure origin,
    which service workers and the camera need)."""

    def __init__(self, folder: Path):
        handler = functools.partial(QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
    }

    def log_message(self, *args):
        pass


def write_y4m(frames_bgr, path: Path, fps: int = 10) -> Path:
    """A YUV4MPEG2 video, what Chromium's fake camera plays (looping)."""
    height, width = frames_bgr[0].shape[:2]
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames_bgr:
            handle.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


@pytest.fixture(scope="module")
def site(int8_model, synth_data, tmp_path_factory):
    """The web app built with the test's int8 model, the validation images beside it."""
    out = tmp_path_factory.mktemp("web") / "site"
    done = subprocess.run(
        ["node", str(WEB / "build.mjs"), str(out), str(int8_model)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    shutil.copytree(synth_data / "validation", out / "images")
    server = Server(out)
    yield out, server.url
    server.close()


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def open_page(playwright, url, extra_flags=(), **context_options):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*BROWSER_FLAGS, *extra_flags])
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("window.hhReady === true", timeout=60_000)
    return browser, context, page


def camera_flags(video: Path):
    return ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"]


def js_fit_to_spec(page, bgr, spec):
    rgba = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA)
    js = page.evaluate(
        """([b64, w, h, spec]) => {
            const rgba = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const out = window.hh.fitToSpec(rgba, w, h, spec);
            let s = ""; for (const v of out) s += String.fromCharCode(v); return btoa(s);
        }""",
        [base64.b64encode(rgba.tobytes()).decode(), bgr.shape[1], bgr.shape[0],
         {"height": spec.height, "width": spec.width, "interpolation": spec.interpolation, "aspect": spec.aspect,
          "resize": spec.resize}],
    )  # fmt: skip
    return np.frombuffer(base64.b64decode(js), np.uint8).reshape(spec.height, spec.width, 3)


def test_js_preprocessing_gives_pythons_model_input_byte_for_byte(site, playwright, synth_data):
    _, url = site
    browser, _, page = open_page(playwright, url)
    photos = [read_image_bgr(p) for p in list_image_folder(synth_data / "validation").paths[::8]]  # 200-500 px
    photos.append(cv2.resize(photos[0], (1600, 1200), interpolation=cv2.INTER_CUBIC))  # a phone-sized frame
    compared = 0
    for interpolation in ("bilinear", "area", "nearest"):
        for aspect in ("squash", "crop"):
            for size in ((64, 64), (96, 72), (600, 600)):  # shrink, other aspect, enlarge
                spec = PreprocessingSpec(
                    height=size[0], width=size[1], class_names=("a", "b"), interpolation=interpolation, aspect=aspect
                )
                for bgr in photos:
                    ours = js_fit_to_spec(page, bgr, spec)
                    assert np.array_equal(ours, to_model_rgb(bgr, spec)), (interpolation, aspect, size, bgr.shape)
                    compared += 1
    browser.close()
    print(f"{compared} model inputs identical to Python's")


def test_js_preprocessing_of_older_models_stays_within_one_level_of_opencv(site, playwright, synth_data):
    """Models of spec version 2 or less were trained with OpenCV's own resizes: the page follows
    their arithmetic as closely as JavaScript can."""
    _, url = site
    browser, _, page = open_page(playwright, url)
    paths = list_image_folder(synth_data / "validation").paths[::8]
    worst, off = 0, {}
    for interpolation in ("bilinear", "area", "nearest"):
        for aspect in ("squash", "crop"):
            for size in ((64, 64), (96, 72), (600, 600)):
                spec = PreprocessingSpec(
                    height=size[0], width=size[1], class_names=("a", "b"), interpolation=interpolation, aspect=aspect,
                    resize="opencv",
                )  # fmt: skip
                for path in paths:
                    bgr = read_image_bgr(path)
                    difference = np.abs(js_fit_to_spec(page, bgr, spec).astype(int) - to_model_rgb(bgr, spec).astype(int))
                    if interpolation == "nearest":
                        # OpenCV 5's nearest-exact breaks exact half-way ties between two source
                        # pixels its own way on some rows (not by its documented 16.16 formula,
                        # which the page follows): a few whole rows or columns, under 1% of the pixels.
                        off[size] = max(off.get(size, 0.0), float(np.mean(difference.max(axis=2) > 1)))
                        assert np.mean(difference.max(axis=2) > 1) <= 0.01, (path, aspect, size)
                    else:
                        worst = max(worst, int(difference.max()))
                        assert difference.max() <= 1, (path, interpolation, aspect, size, difference.max())
    browser.close()
    print(f"older models: bilinear and area within {worst} level(s) of OpenCV; nearest: pixels off by >1 {off}")


def test_web_labels_agree_with_hh_predict(site, playwright, int8_model, synth_data):
    out, url = site
    browser, _, page = open_page(playwright, url)
    page.wait_for_function("window.hh.state.model !== null", timeout=60_000)
    classifier = Classifier(int8_model)
    assert classifier.spec.quality is not None  # hh-convert calibrated the quality gate
    folder = list_image_folder(synth_data / "validation")
    agree, worst, same_gate = 0, 0.0, 0
    for path in folder.paths:
        relative = Path(path).relative_to(synth_data / "validation").as_posix()
        web = page.evaluate("(u) => window.hh.classifyImageUrl(u)", f"images/{relative}")
        ours = classifier.classify_frame(read_image_bgr(path), quality=classifier.spec.quality)
        agree += web["label"] == ours.classification.label
        worst = max(worst, float(np.abs(np.array(web["probabilities"]) - ours.classification.probabilities).max()))
        same_gate += web["retake"] == ours.retake
    browser.close()
    print(f"web vs hh-predict: {agree}/{len(folder)} labels agree, largest probability difference {worst:.4f}")
    assert agree >= 0.99 * len(folder), agree
    assert worst <= 0.02, worst
    assert same_gate == len(folder), same_gate  # the quality gate's verdict, image by image


def with_changed_selftest(model: Path, out: Path, change) -> Path:
    """A copy of an hh .tflite whose packed self-test manifest went through `change`."""
    from hh.converters.pipeline import model_part_size
    from hh.edge.metadata import read_associated_files

    data = model.read_bytes()
    files = read_associated_files(model, data)
    files["selftest.json"] = json.dumps(change(json.loads(files["selftest.json"]))).encode()
    out.write_bytes(data[: model_part_size(data)])
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out


def test_the_self_test_passes_in_the_browser_and_altered_answers_refuse_the_model(site, playwright, int8_model, tmp_path):
    _, url = site
    browser, _, page = open_page(playwright, url)
    page.wait_for_function("window.hh.state.model !== null", timeout=60_000)
    verdict = page.evaluate("window.hh.state.selfTest")
    assert verdict["passed"] and verdict["images"] >= 4 and verdict["steps"] <= verdict["maxSteps"], verdict
    assert "self-test passed" in page.inner_text("#model-name")
    print(f"self-test in chromium: {verdict['images']} images, {verdict['steps']} output steps from the workstation")

    def altered(manifest):  # one image's packed answer moved by 4 output steps
        manifest["cases"][0]["raw"] = [v + 4 for v in manifest["cases"][0]["raw"]]
        return manifest

    page.set_input_files("#model-file", str(with_changed_selftest(int8_model, tmp_path / "altered.tflite", altered)))
    page.wait_for_function("document.getElementById('error').textContent.includes('altered.tflite') || window.hh.state.refused")
    error = page.inner_text("#error")
    assert "does not give this model's answers" in error and "use another phone" in error, error
    assert page.evaluate("window.hh.state.refused") and page.inner_text("#label") == "not checked"
    assert "self-test FAILED" in page.inner_text("#model-name")
    # The good model again: diagnosing resumes.
    page.set_input_files("#model-file", str(int8_model))
    page.wait_for_function("window.hh.state.trusted && window.hh.state.selfTest !== null && window.hh.state.selfTest.passed")
    assert "does not give" not in page.inner_text("#error")  # (this browser has no camera: that is said instead)
    assert "self-test passed" in page.inner_text("#model-name")
    browser.close()


def test_the_last_model_loaded_decides_and_a_damaged_self_test_leaves_the_model_in_use(site, playwright, int8_model):
    out, url = site

    def altered(manifest):
        manifest["cases"][0]["raw"] = [v + 4 for v in manifest["cases"][0]["raw"]]
        return manifest

    def undecodable(manifest):  # its first image named as another packed file that is no JPEG
        manifest["cases"][0]["file"] = "labels.txt"
        return manifest

    with_changed_selftest(int8_model, out / "altered.tflite", altered)
    with_changed_selftest(int8_model, out / "undecodable.tflite", undecodable)
    errors: list[str] = []
    browser, _, page = open_page(playwright, url)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.wait_for_function("window.hh.state.trusted", timeout=60_000)
    good = page.evaluate("window.hh.state.identity")
    load = """async ([first, second]) => {
        const bytes = async (u) => (await fetch(u)).arrayBuffer();
        const [a, b] = [await bytes(first), await bytes(second)];
        await Promise.allSettled([window.hh.loadModel(a, first), window.hh.loadModel(b, second)]);
        const s = window.hh.state;
        return [s.identity, s.trusted, s.refused];
    }"""
    # Loaded one right after the other, each slower one finishing first or last: the later wins.
    after_good = page.evaluate(load, ["altered.tflite", "model.tflite"])
    after_altered = page.evaluate(load, ["model.tflite", "altered.tflite"])
    assert after_good == [good, True, False], after_good
    assert after_altered[0] != good and after_altered[1:] == [False, True], after_altered
    page.evaluate(load, ["altered.tflite", "model.tflite"])
    page.set_input_files("#model-file", str(out / "undecodable.tflite"))
    page.wait_for_function("document.getElementById('error').textContent.includes('undecodable.tflite')")
    assert "self-test is damaged (image labels.txt cannot be decoded)" in page.inner_text("#error")
    state = page.evaluate("[window.hh.state.identity, window.hh.state.trusted, window.hh.state.refused]")
    browser.close()
    assert state == [good, True, False], state  # the model in use goes on
    assert not errors, errors


def test_without_a_survey_log_the_page_says_so_and_keeps_working(site, playwright):
    _, url = site
    errors: list[str] = []
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_FLAGS)
    context = browser.new_context()
    context.add_init_script("Object.defineProperty(window, 'indexedDB', { get() { throw new Error('storage blocked'); } })")
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_function("window.hhReady === true && window.hh.state.model !== null", timeout=60_000)
    shown_after_load = page.inner_text("#error")  # loading the model clears its own messages, not this one
    page.click("#show-log")
    page.click("#export-csv")
    page.click("#diagnose")  # no camera here either: said, nothing thrown
    browser.close()
    assert "survey log cannot be opened" in shown_after_load and "storage blocked" in shown_after_load
    assert not errors, errors


def test_a_dark_camera_frame_shows_retake_and_why(site, playwright, synth_data, tmp_path):
    out, url = site
    paths = list_image_folder(synth_data / "validation").paths[:4]
    dark = [(cv2.resize(read_image_bgr(p), (640, 480)) * 0.08).astype(np.uint8) for p in paths]
    video = write_y4m(dark, tmp_path / "dusk.y4m")
    blurred = cv2.GaussianBlur(read_image_bgr(paths[0]), (0, 0), 12)
    cv2.imwrite(str(out / "images" / "blurred.png"), blurred)
    browser, _, page = open_page(playwright, url, camera_flags(video))
    page.wait_for_function("window.hhLast !== undefined", timeout=60_000)
    page.wait_for_function("document.getElementById('label').textContent.startsWith('retake')", timeout=30_000)
    shown = page.inner_text("#label")
    answer = page.evaluate("window.hhLast.answer")
    blurry = page.evaluate("window.hh.classifyImageUrl('images/blurred.png')")
    browser.close()
    assert shown == "retake: too dark" and answer["label"] == "retake" and answer["retake"] == "too dark", (shown, answer)
    quality = Classifier(out / "model.tflite").spec.quality
    python_says = Classifier(out / "model.tflite").classify_frame(blurred, quality=quality).retake
    assert python_says in ("blurry", "low contrast") and blurry["retake"] == python_says, (blurry["retake"], python_says)


MEDIAPIPE = WEB / "node_modules" / "@mediapipe" / "tasks-vision"


def test_the_phone_names_labels_in_its_language_and_the_model_and_mediapipe_reads_the_same_names(site, playwright, int8_model):
    out, url = site
    # MediaPipe's web classifier beside the app: it reads display names by the TFLite-metadata standard.
    (out / "mediapipe" / "wasm").mkdir(parents=True, exist_ok=True)
    shutil.copy(MEDIAPIPE / "vision_bundle.mjs", out / "mediapipe")
    for wasm in (MEDIAPIPE / "wasm").glob("vision_wasm_internal.*"):
        shutil.copy(wasm, out / "mediapipe" / "wasm")
    browser, _, page = open_page(playwright, url, locale="sw-KE")
    page.wait_for_function("window.hh.state.model !== null", timeout=60_000)
    classifier = Classifier(int8_model)
    swahili = classifier.display_names.of("sw")
    model_line = page.inner_text("#model-name")
    assert all(name in model_line for name in swahili.values()), model_line
    # The model named as everywhere else: its identity and training run.
    assert f"model {classifier.identity}, run {classifier.spec.run.id}" in model_line, model_line
    assert page.evaluate("document.documentElement.lang") == "sw"
    categories = page.evaluate(
        """async () => {
            const vision = await import(new URL("mediapipe/vision_bundle.mjs", document.baseURI).href);
            const fileset = await vision.FilesetResolver.forVisionTasks(new URL("mediapipe/wasm", document.baseURI).href);
            const model = new Uint8Array(await (await fetch("model.tflite")).arrayBuffer());
            const classifier = await vision.ImageClassifier.createFromOptions(fileset, {
                baseOptions: { modelAssetBuffer: model, delegate: "CPU" }, runningMode: "IMAGE", maxResults: -1,
                displayNamesLocale: "sw" });
            const image = new ImageData(new Uint8ClampedArray(64 * 64 * 4).fill(128), 64, 64);
            const found = classifier.classify(image).classifications[0].categories;
            classifier.close();
            return found.map((c) => [c.categoryName, c.displayName]);
        }"""
    )
    browser.close()
    assert dict(categories) == swahili, categories


def test_live_camera_labels_change_with_the_class(site, playwright, synth_data, tmp_path):
    _, url = site
    folder = list_image_folder(synth_data / "validation")
    by_class = {
        name: [p for p, label in zip(folder.paths, folder.labels) if label == i][:3] for i, name in enumerate(folder.class_names)
    }
    frames = [cv2.resize(read_image_bgr(p), (640, 480)) for paths in by_class.values() for p in paths for _ in range(8)]
    video = write_y4m(frames, tmp_path / "field.y4m")
    browser, _, page = open_page(playwright, url, camera_flags(video))
    seen = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(seen) < 2:
        last = page.evaluate("window.hhLast ? window.hhLast.label : null")
        if last:
            seen.add(last)
        time.sleep(0.1)
    shown = page.inner_text("#label")
    # One frame in flight, only new camera frames: never more classified than the camera gave
    # (10 a second), though the page repaints far more often; the frame's own time is shown.
    counts = page.evaluate("[window.hh.state.classified, window.hh.state.presented, window.hhLast.frameMs]")
    fps_line = page.inner_text("#fps")
    page.screenshot(path=str(tmp_path / "live.png"))
    browser.close()
    assert seen == set(folder.class_names), seen
    assert shown in (*folder.class_names, "uncertain")
    classified, presented, frame_ms = counts
    assert 10 <= classified <= presented, counts
    assert frame_ms > 0 and fps_line.endswith("ms a frame"), fps_line


def test_it_works_offline_after_the_first_visit(site, playwright, synth_data, tmp_path):
    _, url = site
    frames = [cv2.resize(read_image_bgr(p), (640, 480)) for p in list_image_folder(synth_data / "validation").paths[:4]]
    video = write_y4m(frames, tmp_path / "field.y4m")
    browser, context, page = open_page(playwright, url, camera_flags(video))
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=30_000)  # it claims the page
    page.wait_for_function(
        "caches.keys().then(async (keys) => { for (const k of keys) { const c = await caches.open(k);"
        " if (await c.match('model.tflite') && await c.match('wasm/litert_wasm_internal.wasm')) return true; } return false; })",
        timeout=60_000,
    )
    context.set_offline(True)
    page.reload()
    page.wait_for_function("window.hhReady === true && window.hhLast !== undefined", timeout=60_000)
    label = page.evaluate("window.hhLast.label")
    browser.close()
    assert label in list_image_folder(synth_data / "validation").class_names


def test_photo_diagnoses_are_logged_with_their_position_survive_offline_and_export(site, playwright, synth_data, tmp_path):
    _, url = site
    folder = list_image_folder(synth_data / "validation")
    frames = [cv2.resize(read_image_bgr(p), (1280, 960)) for p in folder.paths[:4]]
    video = write_y4m(frames, tmp_path / "field.y4m")
    place = {"latitude": -6.7924, "longitude": 39.2083, "accuracy": 15}
    browser, context, page = open_page(
        playwright, url, camera_flags(video), geolocation=place, permissions=["geolocation", "camera"]
    )
    page.wait_for_function("window.hh.state.trusted && window.hhLast !== undefined", timeout=60_000)
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=30_000)
    page.click("#diagnose")
    page.wait_for_function("document.getElementById('log-count').textContent === '1'", timeout=30_000)
    second = page.evaluate("window.hh.diagnose()")  # the same as a tap, returning what it logged
    assert second["width"] >= 1280 and second["height"] >= 960  # the photo at the camera's resolution
    answers = {*folder.class_names, "uncertain", "unknown", "retake"}
    assert second["label"] in answers and second["model"] == page.evaluate("window.hh.state.identity")
    assert (second["latitude"], second["longitude"], second["accuracy_m"]) == (-6.7924, 39.2083, 15)
    assert abs(sum(second["probabilities"].values()) - 1) < 1e-3  # every class's, by name
    assert set(second["probabilities"]) - {"unknown"} == set(folder.class_names)
    # Both photos are leaves of plant 1: its verdict is shown, as hh-predict --plant words it.
    assert second["plant"] == 1 and second["leaf"] == 2
    assert page.inner_text("#plant").startswith("plant 1: "), page.inner_text("#plant")
    assert "from 2 leaves" in page.inner_text("#plant") or "no usable leaf of 2" in page.inner_text("#plant")
    # Offline, after a reload: the log is still there, the plant goes on, and the log exports.
    context.set_offline(True)
    page.reload()
    page.wait_for_function("window.hhReady === true && window.hh.state.model !== null", timeout=60_000)
    assert page.inner_text("#log-count") == "2"
    plant = page.inner_text("#plant")
    assert plant.startswith("plant 1: ") and ("from 2 leaves" in plant or "no usable leaf of 2" in plant), plant
    page.click("#new-plant")
    assert page.inner_text("#plant") == "plant 2: no leaf yet (Diagnose adds one)"
    page.click("#show-log")
    with page.expect_download() as download:
        page.click("#export-csv")
    csv_text = Path(download.value.path()).read_text()
    with page.expect_download() as download:
        page.click("#export-geojson")
    geojson = json.loads(Path(download.value.path()).read_text())
    history = page.inner_text("#history")
    browser.close()
    rows = csv_text.strip().splitlines()
    assert len(rows) == 3 and rows[0].startswith(
        "time,plant,leaf,model,run,label,top,probability,retake,latitude,longitude,accuracy_m"
    )
    assert all("-6.7924,39.2083,15" in row for row in rows[1:]), rows
    assert len(geojson["features"]) == 2
    assert geojson["features"][1]["geometry"] == {"type": "Point", "coordinates": [39.2083, -6.7924]}
    assert geojson["features"][1]["properties"]["label"] == second["label"]
    assert history.count("-6.79240, 39.20830") == 2, history


def test_a_full_store_refuses_the_new_diagnosis_in_words_and_the_page_goes_on(site, playwright, synth_data, tmp_path):
    """The phone's storage, full: the origin's quota brought to 1 byte through Chromium's DevTools
    protocol before the page first stores anything (Chromium grants a store room ahead, so a
    quota lowered later is not seen at once)."""
    _, url = site
    frames = [cv2.resize(read_image_bgr(p), (640, 480)) for p in list_image_folder(synth_data / "validation").paths[:4]]
    video = write_y4m(frames, tmp_path / "field.y4m")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*BROWSER_FLAGS, *camera_flags(video)])
    page = browser.new_context().new_page()
    page.context.new_cdp_session(page).send("Storage.overrideQuotaForOrigin", {"origin": url.rstrip("/"), "quotaSize": 1})
    page.goto(url)
    page.wait_for_function("window.hh.state.trusted && window.hhLast !== undefined", timeout=60_000)
    refused = page.evaluate("window.hh.diagnose()")
    error = page.inner_text("#error")
    kept = page.evaluate("window.hh.showLog().then((records) => records.length)")
    filed = page.evaluate("window.hh.fileFrameAs(window.hh.state.labels[0])")
    frame_error = page.inner_text("#error")
    classified = page.evaluate("window.hh.state.classified")
    page.wait_for_function(f"window.hh.state.classified > {classified}")  # the live answers go on
    browser.close()
    assert refused is None, (error, refused)
    assert "storage is full: this diagnosis was not saved" in error and "nothing saved before is lost" in error, error
    assert kept == 0
    assert filed is False and "storage is full: this frame was not saved" in frame_error, frame_error


def test_frames_labelled_on_the_phone_merge_into_the_training_folder_and_train(site, playwright, synth_data, tmp_path, cli):
    from hh.trainer.cli_data import app as data_app
    from hh.trainer.cli_train import app as train_app

    _, url = site
    folder = list_image_folder(synth_data / "validation")
    frames = []
    for n, path in enumerate(folder.paths[:6]):
        frame = cv2.resize(read_image_bgr(path), (640, 480))
        for k in range(5):  # every camera frame different: no two taps file the same bytes
            frames.append(cv2.putText(frame.copy(), f"{n}.{k}", (10, 470), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1))
    video = write_y4m(frames, tmp_path / "field.y4m")
    names = folder.class_names
    browser, _, page = open_page(playwright, url, camera_flags(video))
    page.wait_for_function("window.hh.state.trusted && window.hhLast !== undefined", timeout=60_000)
    page.click("#show-log")
    page.check("#collect")  # unsure frames too (not merged: nobody labelled them)
    for label in (names[0], names[1], names[0]):
        page.click(f"#label-buttons button[data-label='{label}']")
        page.wait_for_timeout(400)  # the next tap files another camera frame
    page.wait_for_function("document.getElementById('collect-status').textContent.startsWith('3 labelled')")
    with page.expect_download() as download:
        page.click("#export-collection")
    archive = tmp_path / "phone-collection.zip"
    download.value.save_as(archive)
    browser.close()
    with zipfile.ZipFile(archive) as opened:
        assert opened.testzip() is None
        labelled = [n for n in opened.namelist() if n.startswith("labelled/")]
        journal = opened.read("collected.csv").decode()
    assert sorted(n.split("/")[1] for n in labelled) == sorted([names[0], names[0], names[1]]), labelled
    assert journal.startswith("time,kind,file,predicted,label,probability,")
    assert sum(",labelled," in line for line in journal.splitlines()) == 3
    train = tmp_path / "train"
    shutil.copytree(synth_data / "train", train)
    before = list_image_folder(train)
    per_class = {name: before.labels.count(i) for i, name in enumerate(before.class_names)}
    merged = cli(data_app, "merge", archive, train)
    assert merged.exit_code == 0, merged.output
    assert f"merged 3 new images into {train} ({names[0]} 2, {names[1]} 1)" in merged.output, merged.output
    run = tmp_path / "run"
    trained = cli(train_app, train, "--val-split", "0.2", "--image-size", "32", "--epochs", "1", "--out", run)
    assert trained.exit_code == 0, trained.output
    record = json.loads((run / "run.json").read_text())
    seen = {name: record["train_images"].get(name, 0) + record["val_images"].get(name, 0) for name in names}
    assert seen == {names[0]: per_class[names[0]] + 2, names[1]: per_class[names[1]] + 1}, (seen, per_class)


def test_a_page_built_with_a_trusted_key_runs_only_models_signed_with_it(int8_model, playwright, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from hh.edge.trust import key_id, sign_model

    key = ed25519.Ed25519PrivateKey.generate()
    public = tmp_path / "field.pub"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    signed = tmp_path / "signed.tflite"
    signed.write_bytes(sign_model(int8_model.read_bytes(), key))
    out = tmp_path / "site"
    done = subprocess.run(
        ["node", str(WEB / "build.mjs"), str(out), str(signed), "--trust", str(public)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    server = Server(out)
    try:
        browser, _, page = open_page(playwright, server.url)
        page.wait_for_function("window.hh.state.trusted", timeout=60_000)  # the built-in model: signed, checked
        assert f"signed by key {key_id(key.public_key())}" in page.inner_text("#model-name")
        altered = tmp_path / "altered.tflite"
        data = bytearray(signed.read_bytes())
        data[len(data) // 3] ^= 1
        altered.write_bytes(bytes(data))
        for model, says in (
            (int8_model, "not signed, and this page runs signed models only"),
            (altered, "does not match its bytes"),
        ):
            page.set_input_files("#model-file", str(model))
            page.wait_for_function(f"document.getElementById('error').textContent.includes('{model.name}')")
            assert says in page.inner_text("#error"), page.inner_text("#error")
        # The refused models did not replace the signed one.
        assert page.evaluate("window.hh.state.trusted") and "signed by key" in page.inner_text("#model-name")
        browser.close()
    finally:
        server.close()


def test_installable_and_made_for_one_hand_on_a_phone_screen(site, playwright, tmp_path):
    """Chromium's own installability check (a persistent profile: incognito never installs), and
    the field buttons on a 390x844 phone screen: large targets in the thumb's reach."""
    _, url = site
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=BROWSER_FLAGS,
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
    )  # fmt: skip
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("window.hhReady === true", timeout=60_000)
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=30_000)
    cdp = context.new_cdp_session(page)
    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    manifest = cdp.send("Page.getAppManifest")
    boxes = {name: page.locator(name).bounding_box() for name in ("#diagnose", "#new-plant", "#show-log", "label.file")}
    label_size = page.evaluate("parseFloat(getComputedStyle(document.getElementById('label')).fontSize)")
    context.close()
    assert errors == [] and manifest["errors"] == [], (errors, manifest["errors"])
    for name, box in boxes.items():
        assert box["height"] >= 48 and box["width"] >= 48, (name, box)  # a thumb's target (Android: 48 dp)
        assert box["y"] > 844 / 2, (name, box)  # in the lower half, where the thumb reaches
    assert label_size >= 40, label_size  # the answer, readable at arm's length


def test_bad_inputs_get_a_message_not_a_blank_screen(site, playwright, tmp_path, converted_run):
    from hh.converters.pipeline import model_part_size

    _, url = site
    browser, _, page = open_page(playwright, url, ["--use-fake-device-for-media-stream", "--deny-permission-prompts"])
    # The built-in model loaded, and the camera was denied: said on the page.
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert "camera was denied" in page.inner_text("#error")
    not_a_model = tmp_path / "notes.tflite"
    not_a_model.write_text("field notes, not a model")
    page.set_input_files("#model-file", str(not_a_model))
    page.wait_for_function("document.getElementById('error').textContent.includes('notes.tflite')")
    assert "not a TFLite model" in page.inner_text("#error")
    data = (converted_run[0] / "model_float32.tflite").read_bytes()
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(data[: model_part_size(data)])  # the model without its packed files
    page.set_input_files("#model-file", str(bare))
    page.wait_for_function("document.getElementById('error').textContent.includes('bare.tflite')")
    assert "carries no hh labels" in page.inner_text("#error")
    assert page.inner_text("#label")  # the page is still there
    browser.close()
