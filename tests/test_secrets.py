"""Stream credentials never reach any output: stdout, stderr, JSON events, the CSV record."""

import json
import subprocess
import sys

import cv2
import pytest
from mjpeg_server import FlakyMjpegServer

from hh.edge.folders import list_image_folder
from hh.edge.redact import redact_url


@pytest.mark.parametrize(
    "url, redacted",
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/live", "rtsp://***@10.0.0.5:554/live"),
        ("rtsp://user:se/cret@host/x", "rtsp://***@host/x"),
        ("rtsp://:secret@host/x", "rtsp://***@host/x"),
        ("rtsp://user:se@cret@host/x", "rtsp://***@host/x"),
        ("rtsp://onlyauser@host/x", "rtsp://***@host/x"),
        ("http://u:p%40ss@cam.local:8080/video.mjpg", "http://***@cam.local:8080/video.mjpg"),
        ("http://cam/stream?user=admin&password=secret", "http://cam/stream?user=admin&password=***"),
        ("http://cam/stream?pwd=secret&res=high", "http://cam/stream?pwd=***&res=high"),
        ("http://cam/s?token=abc123", "http://cam/s?token=***"),
        ("http://cam/s?api_key=abc&x=1", "http://cam/s?api_key=***&x=1"),
        ("https://cam/s?X-Amz-Signature=abc&X-Amz-Credential=def", "https://cam/s?X-Amz-Signature=***&X-Amz-Credential=***"),
        ("http://cam/s?Auth=abc", "http://cam/s?Auth=***"),
        ("http://cam/s#access_token=abc", "http://cam/s#access_token=***"),
        ("rtsp://a:b@host/x?passwd=c", "rtsp://***@host/x?passwd=***"),
        ("http://cam.local/stream", "http://cam.local/stream"),
        ("http://cam/s?channel=2&fps=10", "http://cam/s?channel=2&fps=10"),
        ("0", "0"),
        ("videos/field.avi", "videos/field.avi"),
    ],
)
def test_redaction_table(url, redacted):
    assert redact_url(url) == redacted


SECRETS = ("hunter2", "tok3n", "k3yvalue")


@pytest.mark.slow
def test_no_output_channel_shows_the_secret(int8_model, synth_data, tmp_path):
    frames = [cv2.resize(cv2.imread(p), (160, 120)) for p in list_image_folder(synth_data / "validation").paths[:6]]
    record = tmp_path / "field.csv"
    with FlakyMjpegServer(frames, frames_per_connection=30, drops=1) as server:
        url = server.url.replace("http://", "http://admin:hunter2@") + "?token=tok3n&api_key=k3yvalue&channel=1"
        command = [
            sys.executable,
            "-m",
            "hh.edge.cli_camera",
            str(int8_model),
            "--source",
            url,
            "--json",
            "--record",
            str(record),
            "--max-frames",
            "60",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert {"outage", "reconnected", "frame", "summary"} <= {e["type"] for e in events}  # every channel was used
    assert "***@127.0.0.1" in done.stderr and "token=***" in done.stderr  # the source is shown, redacted
    for channel in (done.stdout, done.stderr, record.read_text()):
        for secret in SECRETS:
            assert secret not in channel
