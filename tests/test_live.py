"""The field device: hh-camera --serve's live view (in a real browser), its API under load and
behind a token, the collection loop from camera to the next training, and the boot unit."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import pytest

from hh.edge.folders import list_image_folder
from hh.edge.preprocess import read_image_bgr

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.slow


def class_video(synth_data, path: Path, per_image: int = 10) -> tuple[Path, tuple[str, ...]]:
    """An MJPEG .avi: three images of the first class, then three of the second."""
    folder = list_image_folder(synth_data / "validation")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for label in range(2):
        for image in [p for p, lab in zip(folder.paths, folder.labels) if lab == label][:3]:
            frame = cv2.resize(read_image_bgr(image), (640, 480))
            for _ in range(per_image):
                writer.write(frame)
    writer.release()
    return path, folder.class_names


class Camera:
    """hh-camera in its own process, as on a device; its live-view URL read from stderr."""

    def __init__(self, model, *args):
        command = [sys.executable, "-m", "hh.edge.cli_camera", str(model), "--headless", *map(str, args)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.url = None
        deadline = time.monotonic() + 60
        while self.url is None and time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                raise AssertionError("hh-camera ended: " + "".join(self.lines))
            self.lines.append(line)
            match = re.search(r"live view: (\S+)", line)
            if match:
                self.url = match.group(1)
        threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True).start()

    def api(self, path, token=True, data=None):
        base, _, query = self.url.partition("?")
        url = base + path + (("?" + query) if token and query else "")
        request = urllib.request.Request(
            url,
            data=json.dumps(data).encode() if data is not None else None,
            method="POST" if data is not None else "GET",
            headers={"Content-Type": "application/json"} if data is not None else {},  # as the page sends it
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium: .ci/run installs Debian's chromium")
def test_the_live_view_in_a_browser_follows_the_camera(int8_model, synth_data, tmp_path):
    from playwright.sync_api import sync_playwright
    from test_web import BROWSER_FLAGS

    video, names = class_video(synth_data, tmp_path / "field.avi")
    camera = Camera(int8_model, "--source", video, "--loop", "--serve", free_port(), "--every", 4)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_FLAGS)
            page = browser.new_page()
            page.goto(camera.url)
            page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=30_000)
            seen, matched = set(), 0
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and (len(seen) < 2 or matched < 3):
                shown = page.inner_text("#label")
                status = camera.api("api/status")["frame"]["label"]
                if shown == status:  # the page shows what the API says (both may move on between reads)
                    matched += 1
                    seen.add(shown)
                seen -= {"uncertain", "unknown"}  # frames between the classes' pictures may be either
                time.sleep(0.3)
            shots = []
            for _ in range(6):  # the video repeats six pictures: the image must not stand still
                shots.append(page.locator("#stream").screenshot())
                time.sleep(0.5)
            # One plant, three leaves, each the frame on screen when tapped, and its verdict.
            page.click("#plant-new")
            page.wait_for_function("document.getElementById('plant-line').textContent.startsWith('Plant 2: 0 leaves')")
            deadline = time.monotonic() + 60
            for n in (1, 2, 3):
                # A tap on a frame that is a leaf already is refused (said under the line): tap again later.
                while f"{n} lea" not in page.inner_text("#plant-line") and time.monotonic() < deadline:
                    page.click("#plant-leaf")
                    page.wait_for_function(
                        f"document.getElementById('plant-line').textContent.includes('{n} lea') ||"
                        " document.getElementById('plant-note').textContent.includes('already')"
                    )
                    page.evaluate("document.getElementById('plant-note').textContent = ''")
                    time.sleep(0.2)
            page.click("#plant-verdict")
            page.wait_for_function("document.getElementById('plant-line').textContent.includes('verdict')")
            plant_line = page.inner_text("#plant-line")
            page.screenshot(path=str(tmp_path / "live-view.png"))
            viewers = camera.api("api/status")["viewers"]
            browser.close()
    finally:
        assert camera.stop() == 0
    verdicts = f"({'|'.join(names)}) \\d+%|unknown: no usable leaf"
    assert re.fullmatch(rf"Plant 2: 3 leaves \u2014 verdict ({verdicts}).*", plant_line), plant_line
    assert re.search(r"plant 2: \S+ .* from \d leaves|plant 2: unknown", "".join(camera.lines)), camera.lines[-5:]
    assert seen == set(names), seen  # the label on the page changed with the video's class
    assert len(set(shots)) >= 2  # the image updates
    assert viewers >= 1 and (tmp_path / "live-view.png").stat().st_size > 0


def test_a_non_loopback_bind_needs_the_token_and_the_api_takes_20_clients(int8_model, synth_data, tmp_path):
    video, _ = class_video(synth_data, tmp_path / "field.avi", per_image=2)
    camera = Camera(int8_model, "--source", video, "--loop", "--serve", f"0.0.0.0:{free_port()}")
    errors, answers = [], []
    try:
        assert "token=" in camera.url  # generated and printed once at start
        with pytest.raises(urllib.error.HTTPError) as refused:
            camera.api("api/status", token=False)
        assert refused.value.code == 401
        wrong = camera.url.split("?")[0] + "api/status?token=not-it"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(wrong, timeout=5)

        def client(n):
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                try:
                    answer = camera.api("api/status" if n % 2 else "api/history")
                    answers.append(answer["fps"] if n % 2 else len(answer))
                except Exception as exc:  # noqa: BLE001 - every failure counts
                    errors.append(repr(exc))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        status = camera.api("api/status")
    finally:
        assert camera.stop() == 0
    assert not errors, errors[:3]
    assert len(answers) > 100 and status["frame"]["frame"] > 0 and status["fps"] > 0
    assert "source" in status and "hunter2" not in json.dumps(status)


def test_the_collection_loop_from_field_to_the_next_training(int8_model, synth_data, tmp_path, cli):
    from hh.trainer.cli_data import app as data_app
    from hh.trainer.train import train

    video, names = class_video(synth_data, tmp_path / "field.avi", per_image=3)
    field = tmp_path / "field"
    camera = Camera(int8_model, "--source", video, "--loop", "--serve", free_port(), "--collect", field,
                    "--collect-below", 1.0, "--collect-every", 0.3, "--collect-max-mb", 0.4)  # fmt: skip
    try:
        while camera.api("api/status")["frame"] is None:
            time.sleep(0.1)
        saved = camera.api("api/label", data={"label": names[1]})  # one tap on the page
        refused = None
        try:
            camera.api("api/label", data={"label": "weeds"})
        except urllib.error.HTTPError as exc:
            refused = exc.code
        deadline = time.monotonic() + 20
        while not camera.api("api/status")["collect"]["full"] and time.monotonic() < deadline:
            time.sleep(0.2)
        status = camera.api("api/status")["collect"]
    finally:
        assert camera.stop() == 0
    log = "".join(camera.lines)
    unsure = list((field / "unsure").rglob("*.jpg"))
    # Every frame is "unsure" below 1.0: the rate limit spaces them (one per 0.3 s at most) and
    # the size bound stops them (0.4 MB).
    rows = (field / "collected.csv").read_text().splitlines()
    times = [float(row.split(",")[0]) for row in rows[1:] if ",unsure," in row]
    assert len(times) == len(unsure) >= 2
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.29, times
    assert sum(p.stat().st_size for p in field.rglob("*.jpg")) <= 0.4e6
    assert status["full"] and log.count("collecting stopped") == 1
    assert refused == 400 and saved["label"] == names[1]
    labelled = field / saved["saved"]
    assert labelled.exists() and cv2.imread(str(labelled)).shape == (480, 640, 3)  # full resolution
    assert rows[0].startswith("time,kind,file,predicted,label,probability")
    assert any(",labelled," in row and row.split(",")[4] == names[1] for row in rows)

    # Back on the workstation: merge, and the next training counts the new image.
    data = tmp_path / "train"
    shutil.copytree(synth_data / "train", data)
    merged = cli(data_app, "merge", field / "labelled", data)
    assert merged.exit_code == 0, merged.output
    assert "merged 1 new images" in merged.stdout and "0 duplicates" in merged.stdout
    again = cli(data_app, "merge", field / "labelled", data)
    assert "merged 0 new images" in again.stdout and "1 duplicates skipped" in again.stdout
    from hh.trainer.config import TrainConfig

    config = TrainConfig(data_dir=str(data), out=str(tmp_path / "run"), val_dir=str(synth_data / "validation"),
                         arch="edge", image_size=32, batch_size=32, epochs=1)  # fmt: skip
    train(config)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["train_images"][names[1]] == 81  # 80 from before, 1 from the field
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert any(Path(e["file"]).name == labelled.name for e in split["train"])


def test_merge_refuses_a_class_the_training_folder_lacks(tmp_path, cli, one_line_error, synth_data):
    from hh.trainer.cli_data import app as data_app

    (tmp_path / "labelled" / "weeds").mkdir(parents=True)
    shutil.copy(list_image_folder(synth_data / "validation").paths[0], tmp_path / "labelled" / "weeds" / "a.jpg")
    (tmp_path / "labelled" / "healthy").mkdir()
    shutil.copy(list_image_folder(synth_data / "validation").paths[1], tmp_path / "labelled" / "healthy" / "b.jpg")
    one_line_error(cli(data_app, "merge", tmp_path / "labelled", synth_data / "train"), "weeds", "create its folder")


def test_the_boot_unit_runs_and_stops_cleanly(int8_model, synth_data, tmp_path):
    """The shipped unit's own command line (the camera swapped for a video, the paths for
    temporary ones) runs, serves, collects and records, and SIGTERM (systemctl stop) ends it
    cleanly with the record on disk."""
    unit = (ROOT / "deploy" / "hh-camera.service").read_text()
    assert "Restart=on-failure" in unit and "KillSignal=SIGTERM" in unit
    exec_start = shlex.split(re.search(r"^ExecStart=(.+)$", unit, re.M).group(1))
    assert Path(exec_start[0]).name == "hh-camera"
    args = exec_start[2:]
    video, _ = class_video(synth_data, tmp_path / "field.avi", per_image=2)
    field = tmp_path / "field"
    args[args.index("--source") + 1] = str(video)
    args[args.index("--serve") + 1] = f"127.0.0.1:{free_port()}"
    args[args.index("--collect") + 1] = str(field)
    args[args.index("--record") + 1] = str(field / "frames.csv")
    camera = Camera(int8_model, *[a for a in args if a != "--headless"], "--loop")
    time.sleep(3)
    assert camera.api("api/status")["frame"]["frame"] > 0
    assert camera.stop() == 0
    log = "".join(camera.lines)
    assert "frames classified" in log and "Traceback" not in log
    assert len((field / "frames.csv").read_text().splitlines()) > 10
