"""Stream credentials never reach any output: stdout, stderr, JSON events, the CSV record."""

import json
import subprocess
import sys

import cv2
import pytest
from mjpeg_server import FlakyMjpegServer

from hh.edge.folders import list_image_folder
from hh.edge.redact import describe_source


@pytest.mark.parametrize(
    "url, redacted",
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/live", "rtsp://***@10.0.0.5:554/live"),
        ("rtsp://user:se/cret@host/x", "rtsp://***"),
        ("rtsp://:secret@host/x", "rtsp://***@host/x"),
        ("rtsp://user:se@cret@host/x", "rtsp://***@host/x"),
        ("rtsp://onlyauser@host/x", "rtsp://***@host/x"),
        ("http://u:p%40ss@cam.local:8080/video.mjpg", "http://***@cam.local:8080/video.mjpg"),
        ("http://admin:ab#PW@host/x", "http://***"),
        ("http://admin:ab?PW@host/x", "http://***"),
        ("http://admin:a/b?c#d@e@host:81/x?y=1", "http://***"),
        ("http://cam/s?psw=p@ss/w?rd&ch=1", "http://***"),
        ("http://cam/stream?user=admin&password=secret", "http://cam/stream?user=***&password=***"),
        ("http://cam/stream?pwd=secret&res=high", "http://cam/stream?pwd=***&res=***"),
        ("http://HOST/videostream.cgi?loginuse=admin&loginpas=PW", "http://HOST/videostream.cgi?loginuse=***&loginpas=***"),
        ("http://cam/s?psw=PW", "http://cam/s?psw=***"),
        ("http://cam/s?token=abc123", "http://cam/s?token=***"),
        ("http://cam/s?api_key=abc&x=1", "http://cam/s?api_key=***&x=***"),
        ("https://cam/s?X-Amz-Signature=abc&X-Amz-Credential=def", "https://cam/s?X-Amz-Signature=***&X-Amz-Credential=***"),
        ("http://cam/s?Auth=abc;sid=42", "http://cam/s?Auth=***;sid=***"),
        ("http://cam/s#access_token=abc", "http://cam/s#access_token=***"),
        ("rtsp://a:b@host/x?passwd=c", "rtsp://***@host/x?passwd=***"),
        ("rtsp://192.168.1.10:554/user=admin&password=PW&channel=1", "rtsp://192.168.1.10:554/user=***&password=***&channel=***"),
        ("rtsp://cam/live;user=admin;pass=PW", "rtsp://cam/***;user=***;pass=***"),
        ("http://cam/snapshot.cgi?Zz9KEY1234", "http://cam/snapshot.cgi?***"),
        ("http://cam/s?a=1&&Zz9pw", "http://cam/s?a=***&&***"),
        ("http://cam/v#Zz9frag", "http://cam/v#***"),
        ("rtsp://h/api/Zz9pwabcdefghij/", "rtsp://h/api/***/"),
        ("rtsps://host:7441/ZzQwErTyUiOpAsDf?enableSrtp", "rtsps://host:7441/***?***"),
        ("rtsp://h/api/5500123456789012345/", "rtsp://h/api/***/"),
        ("127.0.0.1:9/video?user=admin&pwd=Zz9pw", "127.0.0.1:9/video?user=***&pwd=***"),
        ("cam.local/video.cgi?password=Zz9pw", "cam.local/video.cgi?password=***"),
        ("rtsp://127.0.0.1:9/live\n/ch1", "rtsp://127.0.0.1:9/***/ch1"),
        ("rtsp://h/" + "a" * 300 + "/x?pwd=Zz9pw", "rtsp://h/***/x?pwd=***"),
        ("http://cam/s?AKIAIOSFODNN7EXAMPLE", "http://cam/s?***"),
        ("https://x/hls/5f2b9c0a1d2e3f4a5b6c/index.m3u8", "https://x/hls/***/index.m3u8"),
        ("http://cam/a%20b/x", "http://cam/***/x"),
        ("http://cam/s?na%6De=v", "http://cam/s?***=***"),
        ("rtsp://[fe80::1]:554/live", "rtsp://[fe80::1]:554/live"),
        ("http://bad host/x", "http://***/x"),
        ("rtsp://cám/x", "rtsp://***/x"),
        ("ht tp://h/x", "***://h/x"),
        ("http://cam.local/stream", "http://cam.local/stream"),
        # Secrets in pieces of 12 or fewer: judged as a whole, by how often the characters change class.
        ("http://h/stream/550e8400-e29b-41d4-a716-446655440000/video.mjpg", "http://h/stream/***/video.mjpg"),
        ("http://h/sk-Zx81Qp02Lm77-Ab3dEf9hIj0K/live", "http://h/***/live"),
        ("http://h/v/9f86d081884c7d65/x", "http://h/v/***/x"),
        ("http://h/s?key.Ab3dEf9hIj0K=1", "http://h/s?***=***"),
        ("rtsp://h:554/h264Preview_01_main", "rtsp://h:554/h264Preview_01_main"),
        ("rtsp://h/Streaming/Channels/101", "rtsp://h/Streaming/Channels/101"),
        ("rtsp://h/cam-2/MediaInput/h264/stream_1", "rtsp://h/cam-2/MediaInput/h264/stream_1"),
        ("http://cam/s?channel=2&fps=10", "http://cam/s?channel=***&fps=***"),
        ("admin:PW@host/live", "***@host/live"),
        ("admin:p@ss@host", "***@host"),
        ("0", "camera 0"),
        ("picamera2", "Raspberry Pi camera (picamera2)"),
        ("videos/field.avi", "videos/field.avi"),
        ("field\nvideo.avi", "field?video.avi"),
    ],
)
def test_redaction_table(url, redacted):
    assert describe_source(url) == redacted


PASSWORDS = ("PW", "hunter2", "s3cr3t#x", "p@ss/w?rd", "a:b", "tok%40en", "Zm9vYmFy==", "ключ", "x y")
TEMPLATES = (
    "rtsp://admin:{pw}@10.0.0.5:554/live",
    "rtsp://{pw}@cam/x",
    "http://cam/videostream.cgi?loginuse=admin&loginpas={pw}",
    "http://cam/s?psw={pw}&ch=1",
    "http://cam/s?anything={pw}",
    "http://cam/s#access_token={pw}",
    "rtsp://cam:554/user=admin&password={pw}&channel=1",
    "http://admin:{pw}@cam:8080/x?pwd={pw}",
    "admin:{pw}@host/live",
)


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("password", PASSWORDS)
def test_no_form_shows_the_password(template, password):
    """A table far larger than the forms known to leak: the password never shows, nor does
    any part of it two characters long or more, and scrub() takes it out of any text."""
    from hh.edge.redact import scrub, secrets_of

    source = template.format(pw=password)
    shown = describe_source(source)
    assert password not in shown
    assert not any(len(part) > 2 and part in shown for part in password.replace("@", "/").split("/"))
    native = f"[tcp @ 0x1] Opening '{source}' failed: {password}?"
    assert source not in scrub(native, secrets_of(source))


@pytest.mark.slow
def test_a_url_given_as_an_extra_argument_is_one_line_without_its_secret(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "hh.edge.cli_camera", str(tmp_path / "m.tflite"), "rtsp://admin:Zz9pw@127.0.0.1:9/live"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "Zz9pw" not in done.stderr + done.stdout
    assert done.stderr.strip().splitlines() == ["error: Got unexpected extra argument(s) (rtsp://***@127.0.0.1:9/live)"]


def test_a_forgotten_scheme_is_not_shown_in_the_error(tmp_path, cli, one_line_error):
    from hh.edge.cli_camera import app as camera_app

    model = tmp_path / "m.tflite"
    model.write_bytes(b"x" * 64)
    line = one_line_error(cli(camera_app, model, "--source", "admin:hunter2@cam/live"), "no such file")
    assert "hunter2" not in line and "***@cam/live" in line


SECRETS = ("hunter2", "tok3n", "k3yvalue", "l0ginpas", "psw0rd")


@pytest.mark.slow
def test_no_output_channel_shows_the_secret(int8_model, synth_data, tmp_path):
    """Terminal (with --verbose, so FFmpeg's and OpenCV's own lines too), --json, the record,
    the collection journal, the live view's page and API: none shows a secret of the URL."""
    import time
    import urllib.request

    frames = [cv2.resize(cv2.imread(p), (160, 120)) for p in list_image_folder(synth_data / "validation").paths[:6]]
    record, field = tmp_path / "field.csv", tmp_path / "field"
    with FlakyMjpegServer(frames, frames_per_connection=120, drops=1) as server:
        url = server.url.replace("http://", "http://admin:hunter2@") + (
            "?token=tok3n&api_key=k3yvalue&loginuse=admin&loginpas=l0ginpas&psw=psw0rd&channel=1"
        )
        command = [
            sys.executable, "-m", "hh.edge.cli_camera", str(int8_model), "--source", url, "--json", "--verbose",
            "--record", str(record), "--max-frames", "200", "--collect", str(field), "--collect-below", "1.0",
            "--collect-every", "0", "--serve", "0",
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        served = []
        live = None
        for line in process.stderr:
            served.append(line)
            if "live view: " in line:
                live = line.split("live view: ")[1].strip()
                break
        assert live, "".join(served)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with urllib.request.urlopen(live + "api/status", timeout=10) as response:
                status = response.read().decode()
            if json.loads(status)["frame"] is not None:
                break
            time.sleep(0.1)
        with urllib.request.urlopen(live, timeout=10) as response:
            page = response.read().decode()
        with urllib.request.urlopen(live + "api/history?n=50", timeout=10) as response:
            history = response.read().decode()
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    assert {"outage", "reconnected", "frame", "summary"} <= {e["type"] for e in events}  # every channel was used
    stderr = "".join(served) + stderr
    assert "***@127.0.0.1" in stderr and "loginpas=***" in stderr  # the source is shown, rebuilt without secrets
    assert "***@127.0.0.1" in json.loads(status)["source"]
    journal = (field / "collected.csv").read_text()
    assert len(journal.splitlines()) > 2 and "***@127.0.0.1" in journal
    for channel in (stdout, stderr, record.read_text(), journal, status, page, history):
        for secret in SECRETS:
            assert secret not in channel


def test_a_token_in_the_path_is_scrubbed_from_text_hh_did_not_write():
    from hh.edge.redact import scrub, secrets_of

    source = "http://127.0.0.1:9/stream/550e8400-e29b-41d4-a716-446655440000/video.mjpg"
    native = f"[tcp @ 0x55] Connection to {source.split('/stream')[0]} failed; opening 550e8400-e29b-41d4-a716-446655440000"
    assert "550e8400" not in scrub(native, secrets_of(source))
    assert "127.0.0.1:9" in scrub(native, secrets_of(source))  # what is shown anyway stays
