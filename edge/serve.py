"""hh-camera --serve: the live view on a phone in the field, and a small JSON API beside it.

The standard library's ThreadingHTTPServer, not a web framework: a Pi in a field serves one
or a few phones, the edge install stays small (no new dependency), and nothing here needs
more than GET, one POST and a multipart stream.

    /                 the page: live image, the label large, FPS, recent results, outage
                      state, and buttons that file the current frame as "this is <class>"
    /stream.mjpg      the camera image with label and probability drawn on it (MJPEG)
    /api/status       the newest frame (the --json frame schema), FPS, outage, collection
    /api/history?n=N  the last N frames
    /api/label        POST {"label": "<class>"}: file the current frame under that class

Serving must not slow classification: the camera loop only swaps a reference to its newest
frame (LiveState.update), and JPEG encoding happens on the server's threads, only while a
client watches the stream, at most `max_fps` times a second and at most `max_width` pixels wide.

Security: bound to 127.0.0.1 unless told otherwise. Bound to any other address, every request
must carry the access token (?token=..., or an X-HH-Token header), compared in constant time.
Stream URLs are only ever shown redacted (their passwords never reach the page or the API).
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from .collect import FieldCollector
from .errors import ParameterError
from .events import Event, FrameEvent, SourceEvent, StatusEvent

BOUNDARY = "hhframe"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def parse_bind(value: str) -> tuple[str, int]:
    """'8080' -> ('127.0.0.1', 8080); '0.0.0.0:8080' -> ('0.0.0.0', 8080)."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ParameterError("serve", f"{value!r} is not [HOST:]PORT (for example 8080 or 0.0.0.0:8080)")
    return host, int(port)


def needs_token(host: str) -> bool:
    return host not in LOOPBACK


class LiveState:
    """What the camera loop shares with the server. The loop's side is cheap: update() swaps
    references under a lock; the server's threads do the encoding."""

    def __init__(self, class_names, source: str, model: str, history: int = 100, collector: FieldCollector | None = None):
        self.class_names = tuple(class_names)
        self.source, self.model = source, model
        self.lock = threading.Lock()
        self.frame: np.ndarray | None = None
        self.frame_serial = 0  # how many frames the loop has handed over
        self.result = None  # the newest FrameResult
        self.event: dict | None = None  # ... as the --json frame event
        self.history: deque[dict] = deque(maxlen=history)
        self.outage: dict | None = None
        self.fps = 0.0
        self.started = time.time()
        self.viewers = 0  # clients reading the MJPEG stream right now
        self.health: dict = {}
        self.collector = collector  # with --collect: the live view files frames into it

    def on_event(self, event: Event) -> None:
        """The session's events: the newest frame, outages, device health."""
        if isinstance(event, FrameEvent):
            self.update(event.image, event.result, event.json, event.fps)
        elif isinstance(event, SourceEvent):
            self.source_event(event.data)
        elif isinstance(event, StatusEvent):
            with self.lock:
                self.health = event.health

    def update(self, frame: np.ndarray, result, event: dict, fps: float) -> None:
        with self.lock:
            self.frame, self.result, self.event, self.fps = frame, result, event, fps
            self.frame_serial += 1
            self.history.append(event)

    def source_event(self, event: dict) -> None:
        with self.lock:
            self.outage = event if event["type"] == "outage" else None

    def status(self) -> dict:
        with self.lock:
            status = {
                "frame": self.event,
                "fps": round(self.fps, 2),
                "outage": self.outage,
                "uptime_s": round(time.time() - self.started, 1),
                "source": self.source,
                "model": self.model,
                "labels": list(self.class_names),
                "viewers": self.viewers,
                **self.health,
            }
        if self.collector is not None:
            status["collect"] = self.collector.status()
        return status

    def recent(self, n: int) -> list[dict]:
        with self.lock:
            return list(self.history)[-n:]

    def snapshot(self):
        with self.lock:
            return self.frame, self.result, self.frame_serial


def draw_preview(frame: np.ndarray, label: str, probability: float, max_width: int) -> np.ndarray:
    """A small copy of the frame with the label drawn on it, for the stream."""
    height, width = frame.shape[:2]
    if width > max_width:
        frame = cv2.resize(frame, (max_width, round(height * max_width / width)), interpolation=cv2.INTER_AREA)
    else:
        frame = frame.copy()
    cv2.rectangle(frame, (0, 0), (frame.shape[1], 30), (0, 0, 0), -1)
    cv2.putText(frame, f"{label} {probability:.2f}", (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.65, (255, 255, 255), 2, cv2.LINE_AA)
    return frame


class LiveServer:
    def __init__(self, state: LiveState, host: str, port: int, token: str | None, max_fps: float = 5.0, max_width: int = 480):
        self.state, self.host = state, host
        self.token = token
        self.max_fps, self.max_width = max_fps, max_width
        self.stopping = threading.Event()
        server = self

        class Handler(LiveHandler):
            live = server

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise ParameterError("serve", f"cannot listen on {host}:{port} ({exc.strerror})") from None
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="hh-serve", daemon=True)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        query = f"?token={self.token}" if self.token else ""
        return f"http://{host}:{self.port}/{query}"

    def start(self) -> LiveServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def page_html() -> bytes:
    return resources.files("hh.edge").joinpath("live.html").read_bytes()


class LiveHandler(BaseHTTPRequestHandler):
    live: LiveServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # the camera's own lines only on the terminal
        pass

    def _authorised(self, query: dict) -> bool:
        token = self.live.token
        if token is None:
            return True
        given = (query.get("token") or [""])[0] or self.headers.get("X-HH-Token", "")
        return hmac.compare_digest(given.encode(), token.encode())

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, value, status: int = HTTPStatus.OK) -> None:
        self._send(status, (json.dumps(value) + "\n").encode())

    def _route(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self._authorised(query):
            self._json({"error": "a valid token is needed (?token=...)"}, HTTPStatus.UNAUTHORIZED)
            return None, None
        return url.path, query

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path, query = self._route()
        if path is None:
            return
        try:
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, page_html(), "text/html; charset=utf-8")
            elif path == "/api/status":
                self._json(self.live.state.status())
            elif path == "/api/history":
                n = int((query.get("n") or ["20"])[0])
                self._json(self.live.state.recent(max(1, min(n, 1000))))
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self._json({"error": f"no such page: {path}"}, HTTPStatus.NOT_FOUND)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        path, _ = self._route()
        if path is None:
            return
        if path != "/api/label":
            self._json({"error": f"no such endpoint: {path}"}, HTTPStatus.NOT_FOUND)
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            label = json.loads(self.rfile.read(min(length, 10_000)) or b"{}").get("label")
        except (ValueError, AttributeError):
            label = None
        state = self.live.state
        if state.collector is None:
            self._json({"error": "not collecting: start hh-camera with --collect DIR"}, HTTPStatus.CONFLICT)
        elif label not in state.class_names:
            self._json({"error": f"unknown label {label!r}; one of {', '.join(state.class_names)}"}, HTTPStatus.BAD_REQUEST)
        else:
            frame, result, _ = state.snapshot()
            if frame is None:
                self._json({"error": "no frame yet"}, HTTPStatus.CONFLICT)
                return
            saved = state.collector.label(frame, result, label)
            if saved is None:
                self._json({"error": "the collection folder is full (--collect-max-mb)"}, HTTPStatus.INSUFFICIENT_STORAGE)
            else:
                self._json({"saved": saved, "label": label})

    def _stream(self) -> None:
        live, state = self.live, self.live.state
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        with state.lock:
            state.viewers += 1
        try:
            sent_serial = -1
            while not live.stopping.is_set():
                started = time.monotonic()
                frame, result, serial = state.snapshot()
                if frame is not None and serial != sent_serial:
                    label = state.event["label"] if state.event else ""
                    preview = draw_preview(frame, label, result.classification.probability, live.max_width)
                    jpeg = cv2.imencode(".jpg", preview, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
                    self.wfile.write(
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                        + jpeg
                        + b"\r\n"
                    )
                    self.wfile.flush()
                    sent_serial = serial
                live.stopping.wait(max(0.0, 1.0 / live.max_fps - (time.monotonic() - started)))
        finally:
            with state.lock:
                state.viewers -= 1
            self.close_connection = True


def new_token() -> str:
    return secrets.token_urlsafe(16)
