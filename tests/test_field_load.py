"""hh-camera as a device in a field meets it: a stranger's connections on the Wi-Fi, a phone
that loses its signal mid-reply, two people tapping labels at once, a full SD card. It must go
on serving, keep every label it said it saved, and never print a traceback."""

from __future__ import annotations

import json
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hh.edge.folders import list_image_folder
from hh.edge.record import read_journal
from hh.trainer.synth import write_video

pytestmark = pytest.mark.slow


def start_camera(model, video, field, *extra, limits=()):
    def apply_limits():
        for which, value in limits:
            resource.setrlimit(which, (value, value))

    command = [sys.executable, "-m", "hh.edge.cli_camera", str(model), "--source", str(video), "--loop", "--headless",
               "--serve", "127.0.0.1:0", "--collect", str(field), *map(str, extra)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=apply_limits)
    lines = []
    for line in process.stderr:
        lines.append(line)
        match = re.search(r"live view: http://127\.0\.0\.1:(\d+)/", line)
        if match:
            threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True).start()
            return process, int(match.group(1)), lines
    raise AssertionError("hh-camera did not start: " + "".join(lines))


def post_label(port: int, label: str, vanish: bool = False) -> tuple[int | None, dict | None]:
    body = json.dumps({"label": label}).encode()
    head = (
        f"POST /api/label HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(head + body)
            if vanish:
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return None, None
            reply = b""
            while chunk := connection.recv(65536):
                reply += chunk
    except OSError:
        return None, None
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else None
    body_text = reply.partition(b"\r\n\r\n")[2]
    return status, json.loads(body_text) if body_text else None


def status_of(port: int) -> dict:
    request = f"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    return json.loads(reply.partition(b"\r\n\r\n")[2])


@pytest.fixture(scope="module")
def field_video(synth_data, tmp_path_factory):
    return write_video(list_image_folder(synth_data / "validation").paths[:8], tmp_path_factory.mktemp("v") / "field.avi")


def test_a_stranger_and_a_crowd_of_taps_leave_it_serving_with_every_label_kept(int8_model, field_video, synth_data, tmp_path):
    names = list_image_folder(synth_data / "validation").class_names
    field = tmp_path / "field"
    # 100 file handles, as an attacker would wish; a Pi's service has 1024.
    process, port, lines = start_camera(
        int8_model, field_video, field, "--collect-below", 0, limits=[(resource.RLIMIT_NOFILE, 100)]
    )
    try:
        while status_of(port)["frame"] is None:
            time.sleep(0.1)
        idle = []
        for _ in range(150):  # a stranger's connections that never send a byte (beyond the backlog, refused)
            try:
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=0.2))
            except OSError:
                break
        slow = []
        for _ in range(10):  # ... and requests that never end
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            connection.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(connection)
        answers: list[tuple[int | None, dict | None]] = []

        def tap(n: int) -> None:
            answers.append(post_label(port, names[n % 2], vanish=n % 5 == 4))  # every fifth phone loses its Wi-Fi

        taps = [threading.Thread(target=tap, args=(n,)) for n in range(60)]
        for thread in taps:
            thread.start()
        for thread in taps:
            thread.join(timeout=120)
        for connection in idle + slow:
            connection.close()
        time.sleep(1)
        after = status_of(port)  # still serving, and still classifying
        frames_later = status_of(port)["frame"]["frame"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    log = "".join(lines)
    assert "Traceback" not in log and "frames classified" in log, log
    assert frames_later > after["frame"]["frame"] or frames_later > 0
    saved = [answer["saved"] for status, answer in answers if status == 200]
    assert len(saved) >= 40, answers  # the taps that kept their connection (48) are served
    assert len(set(saved)) == len(saved)
    assert all((field / name).is_file() for name in saved)
    _, rows = read_journal(field / "collected.csv")
    filed = {row[2] for row in rows if row[1] == "labelled"}
    assert set(saved) <= filed  # every "saved" is a file and a row
    assert filed == {p.relative_to(field).as_posix() for p in (field / "labelled").rglob("*.jpg")}


def test_a_full_disk_stops_the_collection_not_the_session(int8_model, field_video, tmp_path):
    field = tmp_path / "field"
    # No file may grow past 15 KB: the journal fits, a 640x480 frame does not: the "card" is full.
    process, port, lines = start_camera(
        int8_model, field_video, field, "--collect-below", 1.0, "--collect-every", 0, "--max-frames", 400,
        limits=[(resource.RLIMIT_FSIZE, 15_000)],
    )  # fmt: skip
    assert process.wait(timeout=120) == 0
    log = "".join(lines)
    assert "Traceback" not in log and "400 frames classified" in log, log
    assert log.count("collecting stopped") == 1 and "cannot write" in log
    _, rows = read_journal(field / "collected.csv")
    assert all((field / row[2]).is_file() for row in rows)
    assert not [p for p in field.rglob("*") if ".tmp-" in p.name]  # nothing half-written left


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--collect-max-mb", "nan"], "--collect-max-mb must be a number of megabytes"),
        (["--collect-max-mb", "inf"], "--collect-max-mb must be a number of megabytes"),
        (["--collect-max-mb", "1e308"], "--collect-max-mb must be a number of megabytes"),
        (["--collect-every", "nan"], "--collect-every must be a number of seconds"),
        (["--collect-below", "nan"], "--collect-below must be between 0 and 1"),
        (["--token", "short"], "--token must be at least 8"),
        (["--serve", "[x]:80"], "is not [HOST:]PORT"),
    ],
)
def test_bad_field_values_are_one_line(int8_model, field_video, tmp_path, cli, one_line_error, flags, fragment):
    from hh.edge.cli_camera import app

    one_line_error(cli(app, int8_model, "--source", field_video, "--collect", tmp_path / "f", *flags), fragment)


def test_collecting_into_a_training_folder_is_refused(int8_model, field_video, synth_data, tmp_path, cli, one_line_error):
    import shutil

    from hh.edge.cli_camera import app

    data = tmp_path / "train"
    shutil.copytree(synth_data / "train", data)
    one_line_error(cli(app, int8_model, "--source", field_video, "--collect", data), "is a training folder or inside one")
    one_line_error(cli(app, int8_model, "--source", field_video, "--collect", data / "healthy" / "x"), "training folder")
    one_line_error(cli(app, int8_model, "--source", field_video, "--collect", data / "healthy" / "x" / "y"), "training folder")
    other = tmp_path / "other"  # another model's classes: still a training folder
    for name in ("cat", "dog"):
        shutil.copytree(data / "healthy", other / name)
    one_line_error(cli(app, int8_model, "--source", field_video, "--collect", other), "training folder")
    assert not (data / "unsure").exists() and not (data / "collected.csv").exists()
    # models/ beside run folders (whose plots are PNGs) is no training folder: it was refused.
    models = tmp_path / "models"
    for run in ("run1", "run2"):
        (models / run).mkdir(parents=True)
        for picture in ("curves.png", "confusion.png", "mistakes.png", "reliability.png"):
            shutil.copyfile(next((data / "healthy").iterdir()), models / run / picture)
    done = cli(app, int8_model, "--source", field_video, "--collect", models / "field", "--max-frames", 2, "--headless")
    assert done.exit_code == 0, done.output


def test_black_frames_are_not_collected(int8_model, tmp_path):
    import cv2
    import numpy as np

    video = tmp_path / "black.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(30):
        writer.write(np.zeros((120, 160, 3), np.uint8))
    writer.release()
    field = tmp_path / "field"
    done = subprocess.run(
        [sys.executable, "-m", "hh.edge.cli_camera", str(int8_model), "--source", str(video), "--headless", "--collect",
         str(field), "--collect-below", "1.0", "--collect-every", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "retake" in done.stdout and not list(Path(field).rglob("*.jpg"))


def test_a_refused_start_leaves_no_new_record_and_keeps_an_old_one(int8_model, field_video, tmp_path, cli, one_line_error):
    """--serve on a port in use is refused after the record was opened: a record this start made
    is removed again (its header, this model's labels, blocked a later command with another
    model); a record from before stays as it was."""
    from hh.edge.cli_camera import app

    record = tmp_path / "field.csv"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = ("--source", field_video, "--headless", "--record", record, "--serve", port)
        one_line_error(cli(app, int8_model, *busy), "cannot listen")
        assert not record.exists()
        assert cli(app, int8_model, "--source", field_video, "--headless", "--max-frames", 3, "--record", record).exit_code == 0
        before = record.read_bytes()
        one_line_error(cli(app, int8_model, *busy), "cannot listen")
        assert record.read_bytes() == before
