"""The live view's server under misuse and attack, without a model: a LiveServer over a
LiveState fed with made-up frames, a FieldCollector writing to a temporary folder.

Every case here failed before (a traceback, an empty reply, a lost label, a crash): bad
numbers and lengths, clients that vanish, idle and slow connections, another site's page,
IPv6, a custom token, concurrent taps."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from hh.edge import serve
from hh.edge.collect import FieldCollector
from hh.edge.events import FrameEvent, FrameResult
from hh.edge.record import read_journal
from hh.edge.runtime import Classification
from hh.edge.serve import LiveServer, LiveState

NAMES = ("brown_spot", "healthy")


def frame_event(n: int, probability: float = 0.9) -> FrameEvent:
    probabilities = np.array([probability, 1 - probability], np.float32)
    result = FrameResult(n, time.time(), Classification(NAMES[0], probability, 0, probabilities), NAMES[0], None, 1.0, 1.0, 2.0)
    image = np.full((48, 64, 3), n % 255, np.uint8)
    return FrameEvent(result, image, 30.0, NAMES)


@pytest.fixture
def live(tmp_path, caplog):
    """A serving LiveServer on loopback with a collector and 200 frames of history."""
    caplog.set_level(logging.WARNING, logger="hh")
    collector = FieldCollector(tmp_path / "field", NAMES, "m.tflite", "camera 0", every_s=0)
    state = LiveState(NAMES, "camera 0", "m.tflite", collector=collector)
    for n in range(200):
        state.on_event(frame_event(n))
    server = LiveServer(state, "127.0.0.1", 0, None).start()
    yield server
    server.stop()
    collector.close()


def request(server: LiveServer, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, json.loads(data) if data else None


def label_post(server: LiveServer, label: str = NAMES[1], **headers):
    body = json.dumps({"label": label}).encode()
    return request(server, "POST", "/api/label", body, {"Content-Type": "application/json", **headers})


def still_serving(server: LiveServer) -> bool:
    status, answer = request(server, "GET", "/api/status")
    return status == 200 and answer["labels"] == list(NAMES)


@pytest.mark.parametrize("n", ["abc", "1e3", "-1", "0", "1001", "%00", "%E2%85%A0"])
def test_a_bad_history_count_is_a_json_error(live, n, caplog):
    status, answer = request(live, "GET", f"/api/history?n={n}")
    assert status == 400 and "n must be a whole number" in answer["error"]
    assert still_serving(live) and not caplog.records


def test_history_in_range_answers(live):
    status, answer = request(live, "GET", "/api/history?n=150")
    assert status == 200 and len(answer) == 100  # the history keeps the last 100


@pytest.mark.parametrize("length, code", [("abc", 400), ("-1", 400), ("1e3", 400), (None, 411), (str(10**9), 413)], ids=str)
def test_a_bad_content_length_is_refused_in_json(live, length, code, caplog):
    connection = socket.create_connection(("127.0.0.1", live.port), timeout=10)
    head = f"POST /api/label HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\nContent-Type: application/json\r\n"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    connection.sendall((head + "\r\n").encode())
    reply = b""
    while chunk := connection.recv(4096):  # the server closes after an error
        reply += chunk
    reply = reply.decode()
    connection.close()
    assert reply.startswith(f"HTTP/1.1 {code}"), reply
    assert '"error"' in reply and still_serving(live) and not caplog.records


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\n\r\n", 505),
        (b"PUT /api/label HTTP/1.1\r\n\r\n", 501),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"POST /api/label HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nContent-Length: \xc2\xb2\r\n\r\n", 400),
        (b"GET /api/history?n=" + b"9" * 5000 + b" HTTP/1.1\r\nHost: HOST\r\n\r\n", 400),
        (
            b"POST /api/plant HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nContent-Length: 16\r\n"
            b'Content-Length: 99999\r\n\r\n{"action":"new"}',
            400,
        ),
    ],
    ids=["garbage", "version", "method", "long-url", "superscript-length", "huge-n", "two-lengths"],
)
def test_a_malformed_request_gets_one_json_error(live, raw, code, caplog):
    connection = socket.create_connection(("127.0.0.1", live.port), timeout=10)
    connection.sendall(raw.replace(b"HOST", f"127.0.0.1:{live.port}".encode()))
    reply = b""
    while chunk := connection.recv(65536):
        reply += chunk
    connection.close()
    assert reply.startswith(f"HTTP/1.1 {code}".encode()) or reply.startswith(f"HTTP/1.0 {code}".encode()), reply[:200]
    assert b'"error"' in reply and b"BaseHTTP" not in reply and b"<html" not in reply.lower()
    assert still_serving(live) and not caplog.records


def test_a_tap_is_not_saved_when_its_journal_was_moved_away(live, tmp_path):
    status, _ = label_post(live)
    assert status == 200
    (tmp_path / "field" / "collected.csv").rename(tmp_path / "moved.csv")  # someone tidies the card
    status, answer = label_post(live)
    assert status == 507 and "not saved" in answer["error"]


def test_a_client_that_vanishes_mid_reply_leaves_no_trace(live, caplog, capfd):
    for _ in range(30):
        connection = socket.create_connection(("127.0.0.1", live.port), timeout=10)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset on close
        connection.sendall(f"GET /api/history?n=1000 HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\n\r\n".encode())
        connection.close()
        connection = socket.create_connection(("127.0.0.1", live.port), timeout=10)
        body = json.dumps({"label": NAMES[1]}).encode()
        head = (
            f"POST /api/label HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        connection.sendall(head.encode() + body)
        connection.close()  # a phone that lost its Wi-Fi right after the tap
    time.sleep(0.5)
    assert still_serving(live)
    assert "Traceback" not in capfd.readouterr().err and not caplog.records


@pytest.mark.slow
def test_idle_and_slow_connections_cost_nothing_lasting(live):
    idle = []
    for _ in range(3 * serve.MAX_CONNECTIONS):  # far more than the server keeps
        try:
            idle.append(socket.create_connection(("127.0.0.1", live.port), timeout=5))
        except OSError:
            break
    slow = socket.create_connection(("127.0.0.1", live.port), timeout=10)
    slow.sendall(b"GET /api/status HTTP/1.1\r\n")  # ... and the rest never comes
    drip = socket.create_connection(("127.0.0.1", live.port), timeout=10)
    drip.sendall(b"GET /api/status HTTP/1.1\r\nX: ")

    def drip_headers():  # a header byte every 1.5 s: each read is quick, the request never ends
        try:
            for _ in range(8):
                time.sleep(1.5)
                drip.sendall(b"a")
        except OSError:
            pass

    dripping = threading.Thread(target=drip_headers)
    dripping.start()
    # The idle and the slow are cut off within the first request's deadline, a slot-full at a
    # time (the rest wait in the kernel's backlog); then a phone gets in.
    rounds = len(idle) // serve.MAX_CONNECTIONS + 2
    deadline = time.monotonic() + rounds * serve.FIRST_REQUEST_SECONDS + 10
    answered = False
    while time.monotonic() < deadline and not answered:
        try:
            answered = still_serving(live)
        except OSError:
            time.sleep(0.2)
    assert answered
    assert slow.recv(100) == b""  # the server closed the slow request
    dripping.join()
    assert drip.recv(100) == b""  # and the dripping one, within its deadline
    assert threading.active_count() < 3 * serve.MAX_CONNECTIONS
    for connection in idle:
        connection.close()
    slow.close()


def test_another_sites_page_cannot_file_labels_or_read_the_api(live, tmp_path):
    assert label_post(live, Origin="http://evil.example")[0] == 403
    assert label_post(live, Host="evil.example:80")[0] == 403  # DNS rebinding to 127.0.0.1
    assert request(live, "GET", "/api/status", headers={"Host": "evil.example"})[0] == 403
    text = request(live, "POST", "/api/label", b'{"label": "healthy"}', {"Content-Type": "text/plain"})
    assert text[0] == 415  # a cross-site form or fetch without preflight
    assert not list((tmp_path / "field").rglob("*.jpg"))
    status, answer = label_post(live, Origin=f"http://127.0.0.1:{live.port}")  # the page itself
    assert status == 200 and (tmp_path / "field" / answer["saved"]).is_file()


def test_sixty_taps_at_once_are_sixty_files_and_sixty_rows(live, tmp_path):
    answers = []

    def tap(label):
        answers.append(label_post(live, label))

    threads = [threading.Thread(target=tap, args=(NAMES[n % 2],)) for n in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    live.state.collector.journal.sync()
    saved = [answer["saved"] for status, answer in answers if status == 200]
    assert len(saved) == 60 and len(set(saved)) == 60
    assert all((tmp_path / "field" / name).is_file() for name in saved)
    assert len(list((tmp_path / "field" / "labelled").rglob("*.jpg"))) == 60
    _, rows = read_journal(tmp_path / "field" / "collected.csv")
    assert sorted(row[2] for row in rows) == sorted(saved)


def test_ipv6_loopback_serves_and_prints_a_bracketed_address(tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    state = LiveState(NAMES, "camera 0", "m.tflite")
    try:
        server = LiveServer(state, "::1", 0, None).start()
    except Exception as exc:  # noqa: BLE001 - a machine without ::1 configured
        pytest.skip(f"::1 not available: {exc}")
    try:
        assert server.url == f"http://[::1]:{server.port}/"
        with urllib.request.urlopen(server.url + "api/status", timeout=10) as response:
            assert json.loads(response.read())["labels"] == list(NAMES)
    finally:
        server.stop()


def test_a_custom_token_is_encoded_in_the_printed_address():
    state = LiveState(NAMES, "camera 0", "m.tflite")
    token = "tok&en#1/é+?="
    server = LiveServer(state, "0.0.0.0", 0, token).start()
    try:
        base, _, query = server.url.partition("?")
        with urllib.request.urlopen(f"{base}api/status?{query}", timeout=10) as response:
            assert response.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}api/status?token=my", timeout=10)
        assert refused.value.code == 401
    finally:
        server.stop()


@pytest.mark.parametrize("value", ["8080", "0.0.0.0:8080", "[::1]:8080", "[::]:8080", "pi.local:8080", "localhost:1"])
def test_bind_addresses_parse(value):
    host, port = serve.parse_bind(value)
    assert port in (8080, 1) and host


@pytest.mark.parametrize("value", ["::1", "::1:8080", "host:-1", "host:99999", "a b:80", "[x]:80", "http://h:80", ""])
def test_bad_bind_addresses_are_refused(value):
    from hh.edge.errors import ParameterError

    with pytest.raises(ParameterError, match="serve"):
        serve.parse_bind(value)


def plant_post(server: LiveServer, action, **headers):
    body = json.dumps({"action": action}).encode()
    return request(server, "POST", "/api/plant", body, {"Content-Type": "application/json", **headers})


def test_the_plant_buttons_add_the_frame_on_screen_and_refuse_what_they_cannot_do(live, caplog):
    caplog.set_level(logging.INFO, logger="hh")
    assert plant_post(live, "verdict") == (409, {"error": "this plant has no leaves yet: add its leaves first"})
    status, plant = plant_post(live, "leaf")
    assert status == 200 and plant["leaves"] == 1 and plant["verdict"]["used"] == ["leaf 1 (frame 199)"]
    live.state.on_event(frame_event(200, probability=0.2))  # the next frame answers healthy
    status, plant = plant_post(live, "leaf")
    assert plant["verdict"]["votes"] == {"brown_spot": 1, "healthy": 1}
    assert request(live, "GET", "/api/status")[1]["plant"] == plant
    assert plant_post(live, "leaf")[0] == 409  # the same frame again: the camera has not moved on
    status, plant = plant_post(live, "verdict")
    assert status == 200 and "plant 1: brown_spot 0.550 from 2 leaves" in caplog.text
    assert plant_post(live, "verdict")[0] == 200 and caplog.text.count("plant 1:") == 1  # a repeated tap logs nothing new
    assert plant_post(live, "new")[1] == {"plant": 2, "leaves": 0, "verdict": None}
    for bad in ("delete", None, ["leaf"], "leaf" * 100):
        status, answer = plant_post(live, bad)
        assert status == 400 and answer["error"].startswith("action must be new, leaf or verdict"), answer
    for body in (b'"leaf"', b"42", b'["leaf"]', b"leaf"):
        status, answer = request(live, "POST", "/api/plant", body, {"Content-Type": "application/json"})
        assert status == 400 and answer["error"].startswith("send a JSON object"), (body, answer)
    assert plant_post(live, "leaf", Origin="http://evil.example")[0] == 403
    assert request(live, "POST", "/api/plant", b'{"action": "leaf"}', {"Content-Type": "text/plain"})[0] == 415
    assert request(live, "GET", "/api/status")[1]["plant"]["leaves"] == 0


def test_taps_at_once_on_add_leaf_count_each_frame_once_up_to_the_bound(live):
    from hh.edge.plant import MAX_LEAVES

    answers = []

    def tap(n):
        live.state.on_event(frame_event(1000 + n))  # a new frame, though another tap may see a later one
        answers.append(plant_post(live, "leaf"))

    threads = [threading.Thread(target=tap, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    plant = request(live, "GET", "/api/status")[1]["plant"]
    accepted = [answer for status, answer in answers if status == 200]
    frames = [leaf.split("frame ")[1] for leaf in plant["verdict"]["used"]]
    assert plant["leaves"] == len(accepted) == len(set(frames)) >= 1  # every leaf a different frame
    assert all("is a leaf of plant 1 already" in answer["error"] for status, answer in answers if status != 200)
    for n in range(MAX_LEAVES - plant["leaves"]):  # one tap a frame fills the plant to the bound
        live.state.on_event(frame_event(2000 + n))
        assert plant_post(live, "leaf")[0] == 200
    live.state.on_event(frame_event(3000))
    status, answer = plant_post(live, "leaf")
    assert status == 409 and "start a new plant" in answer["error"]
    assert request(live, "GET", "/api/status")[1]["plant"]["leaves"] == MAX_LEAVES
