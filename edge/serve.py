"""hh-camera --serve: the live view on a phone in the field, and a small JSON API beside it.

The standard library's ThreadingHTTPServer, not a web framework: a Pi in a field serves one
or a few phones, the edge install stays small (no new dependency), and nothing here needs
more than GET, two POSTs and a multipart stream.

    /                 the page: live image, the label large, FPS, recent results, outage
                      state, and buttons that file the current frame as "this is <class>"
    /stream.mjpg      the camera image with label and probability drawn on it (MJPEG)
    /api/status       the newest frame (the --json frame schema), FPS, outage, collection
    /api/history?n=N  the last N frames
    /api/label        POST {"label": "<class>"}: file the current frame under that class
    /api/plant        POST {"action": "new" | "leaf" | "verdict"}: the plant being scanned
                      (hh.edge.plant.PlantSurvey): start the next, add the current frame as
                      one of its leaves, or log its verdict; its state is in /api/status

Serving must not slow classification: the camera loop only swaps a reference to its newest
frame (LiveState.update), and JPEG encoding happens on the server's threads, only while a
client watches the stream, at most `max_fps` times a second and at most `max_width` pixels wide.

Security, for a device on a shared Wi-Fi:

- Bound to 127.0.0.1 unless told otherwise (IPv4 or IPv6, `[::1]:8080`). Bound to any other
  address, every request must carry the access token (?token=..., or an X-HH-Token header),
  checked first, in constant time.
- Nobody can exhaust the device: at most MAX_CONNECTIONS connections at once (more wait in
  the kernel's backlog until one ends), MAX_VIEWERS streams, a request's line and headers must arrive within
  REQUEST_SECONDS, a body is at most MAX_BODY bytes, and a client that stops reading is
  dropped after SEND_SECONDS. A malformed request gets one JSON error; a client that vanishes
  mid-reply is simply gone: no traceback, ever.
- Another web page open in the phone's browser cannot file labels or read the API: every
  request to a server without a token must name this server as its Host (no DNS rebinding),
  and a POST must be JSON from this server's own origin.
- Stream URLs are only ever shown redacted (their passwords never reach the page or the API).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import secrets
import socket
import socketserver
import threading
import time
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, quote, urlsplit

import cv2
import numpy as np

from .collect import FieldCollector
from .errors import ParameterError, first_line
from .events import Event, FrameEvent, ModelEvent, SourceEvent, StatusEvent
from .names import DisplayNames, accepted_languages, drawable_names, pick_language
from .plant import LeafRefused, PlantSurvey

log = logging.getLogger("hh.camera")
BOUNDARY = "hhframe"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_CONNECTIONS = 16  # a Pi serves one or a few phones; each connection holds a thread and a file
MAX_VIEWERS = 4  # MJPEG streams at once (each encodes JPEGs)
REQUEST_SECONDS = 5.0  # to send a request's line and headers, its body, or the next request on one connection
FIRST_REQUEST_SECONDS = 2.0  # a browser asks the moment it connects: a silent connection is dropped sooner
SEND_SECONDS = 10.0  # a client that reads nothing for this long is dropped
MAX_BODY = 10_000  # bytes of a POST body
MIN_TOKEN_LENGTH = 8
HISTORY_MAX = 1000
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")


def parse_bind(value: str) -> tuple[str, int]:
    """'8080' -> ('127.0.0.1', 8080); '0.0.0.0:8080' -> ('0.0.0.0', 8080); '[::1]:8080' -> ('::1', 8080)."""
    host, _, port = value.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if bracketed:  # [::1]: an IPv6 address, and only that
        try:
            valid_host = ipaddress.ip_address(host).version == 6
        except ValueError:
            valid_host = False
    else:
        valid_host = not host or _HOSTNAME.match(host) is not None
    if not (valid_host and port.isdigit() and 0 <= int(port) < 65536):  # 0: any free port
        raise ParameterError("serve", f"{value!r} is not [HOST:]PORT (for example 8080, 0.0.0.0:8080 or [::1]:8080)")
    return host or "127.0.0.1", int(port)


def needs_token(host: str) -> bool:
    return host not in LOOPBACK


def check_token(token: str) -> None:
    """A token the user chose: long enough not to be guessed, and one word of printable text."""
    if len(token) < MIN_TOKEN_LENGTH or any(not c.isprintable() or c.isspace() for c in token):
        raise ParameterError("token", f"must be at least {MIN_TOKEN_LENGTH} printable characters without spaces")


class LiveState:
    """What the camera loop shares with the server. The loop's side is cheap: update() swaps
    references under a lock; the server's threads do the encoding."""

    def __init__(
        self,
        class_names,
        source: str,
        model: dict | str,
        history: int = 100,
        collector: FieldCollector | None = None,
        display_names: DisplayNames | None = None,
        language: str | None = None,
    ):
        self.class_names = tuple(class_names)
        self.source, self.model = source, model
        self.display_names = display_names or DisplayNames(self.class_names)
        self.language = language  # hh-camera --lang: for a browser whose languages the model has no names in
        # What the stream's picture says: OpenCV's font draws ASCII only (hh.edge.names.window_text).
        self.picture_names = drawable_names(self.display_names.of(language))
        self.lock = threading.Lock()
        self.frame: np.ndarray | None = None
        self.frame_serial = 0  # how many frames the loop has handed over
        self.result = None  # the newest FrameResult
        self.event: dict | None = None  # ... as the --json frame event
        self.history: deque[dict] = deque(maxlen=history)
        self.outage: dict | None = None
        self.model_update: dict | None = None  # the last replacement of the model: switched, or refused and why
        self.fps = 0.0
        self.started = time.time()
        self.viewers = 0  # clients reading the MJPEG stream right now
        self.health: dict = {}
        self.collector = collector  # with --collect: the live view files frames into it
        self.plant = PlantSurvey(self.class_names)  # the plant whose leaves the page adds

    def on_event(self, event: Event) -> None:
        """The session's events: the newest frame, outages, device health."""
        if isinstance(event, FrameEvent):
            self.update(event.image, event.result, event.json, event.fps)
        elif isinstance(event, SourceEvent):
            self.source_event(event.data)
        elif isinstance(event, StatusEvent):
            with self.lock:
                self.health = event.health
        elif isinstance(event, ModelEvent):
            self.model_event(event)

    def update(self, frame: np.ndarray, result, event: dict, fps: float) -> None:
        with self.lock:
            self.frame, self.result, self.event, self.fps = frame, result, event, fps
            self.frame_serial += 1
            self.history.append(event)

    def model_event(self, event: ModelEvent) -> None:
        """A replaced model: the page names the model answering now, and the last update's fate."""
        with self.lock:
            # "current": the file at the path is the running model again; an old refusal no longer applies.
            self.model_update = None if event.data["action"] == "current" else event.data
            if event.classifier is not None and isinstance(self.model, dict):
                self.model = {**self.model, **event.classifier.model_id, "selftest": event.data["selftest"]}
                self.display_names = event.classifier.display_names
                self.picture_names = drawable_names(self.display_names.of(self.language))

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
                "model_update": self.model_update,
                "labels": list(self.class_names),
                "viewers": self.viewers,
                **self.health,
            }
        if self.collector is not None:
            status["collect"] = self.collector.status()
        status["plant"] = self.plant.status()
        return status

    def names_for(self, accept_language: str | None) -> dict:
        """The display names for a browser: its own languages first (Accept-Language), then --lang,
        else none (the page shows labels)."""
        available = self.display_names.by_language
        language = pick_language(available, accepted_languages(accept_language)) or self.language
        return {"language": language, "names": self.display_names.of(language)}

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


class BoundedHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a cap on connections, IPv6, and no reverse DNS lookup at start
    (a device in a field may have no name server to wait for)."""

    daemon_threads = True
    # Connections beyond MAX_CONNECTIONS wait here, in the kernel, costing the process nothing.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler, max_connections: int = MAX_CONNECTIONS):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            try:  # "::" serves IPv4 clients too, where the system allows
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except (AttributeError, OSError):
                pass
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self):
        """Accept a connection only when a slot is free; until then it waits in the backlog.
        (Not blocking for long, so shutdown() still gets through.)"""
        if not self._slots.acquire(timeout=0.5):
            raise OSError("all connection slots are taken")  # serve_forever tries again
        try:
            return super().get_request()
        except BaseException:
            self._slots.release()
            raise

    def process_request(self, request, client_address) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        """What a handler raised: a client that went away is nothing; anything else is one line."""
        import sys

        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, OSError):
            log.warning(f"live view: a request from {client_address[0]} failed ({type(exc).__name__}: {first_line(exc)})")


class LiveServer:
    def __init__(self, state: LiveState, host: str, port: int, token: str | None, max_fps: float = 5.0, max_width: int = 480):
        self.state, self.host = state, host
        self.token = token
        self.max_fps, self.max_width = max_fps, max_width
        self.stopping = threading.Event()
        self.viewer_slots = threading.BoundedSemaphore(MAX_VIEWERS)
        server = self

        class Handler(LiveHandler):
            live = server

        try:
            self.httpd = BoundedHTTPServer((host, port), Handler)
        except OSError as exc:
            raise ParameterError("serve", f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        self.port = self.httpd.server_address[1]
        # A short poll: stop() waits for it, and a camera session ends promptly.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.1,), name="hh-serve", daemon=True)

    @property
    def url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        query = f"?token={quote(self.token, safe='')}" if self.token else ""
        return f"http://{host}:{self.port}/{query}"

    def own_hosts(self) -> set[str]:
        """Host headers that name this server when it is reached on this machine."""
        names = {"127.0.0.1", "localhost", "[::1]", self.host, f"[{self.host}]"}
        return {f"{name}:{self.port}" for name in names}

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
    _served = False  # a request came on this connection already
    timeout = REQUEST_SECONDS  # per read: an idle connection is closed after this

    def log_message(self, format, *args) -> None:  # noqa: A002 - http.server's signature
        pass  # the camera's own lines only on the terminal

    def handle_one_request(self) -> None:
        """One request, with a deadline for its line and headers: a client that sends them a
        byte at a time is cut off, and one that vanishes mid-reply ends quietly."""
        deadline = self._deadline(REQUEST_SECONDS if self._served else FIRST_REQUEST_SECONDS)
        try:
            super().handle_one_request()
        except OSError:  # reset, broken pipe, timed out, or cut off: the client is gone
            self.close_connection = True
        finally:
            deadline.cancel()

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # reads the headers: still under the deadline
        self._waiting = False  # the line and headers are in: the deadline is met
        self._served = True
        return parsed

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A malformed request (a bad line, too long a header, a method we do not serve) gets
        one JSON error like any other, and the connection closes."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":  # an unreadable line: answer as HTTP/1.0
            self.request_version = "HTTP/1.0"
        try:
            self._error(code, message or HTTPStatus(code).phrase)
        except OSError:
            pass

    def version_string(self) -> str:
        return "hh"

    def _deadline(self, seconds: float = REQUEST_SECONDS) -> threading.Timer:
        """Cut the connection off unless what is awaited arrives within `seconds`."""
        self._waiting = True
        timer = threading.Timer(seconds, self._cut_off)
        timer.daemon = True
        timer.start()
        return timer

    def _cut_off(self) -> None:
        if self._waiting:
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- answers ---------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _json(self, value, status: int = HTTPStatus.OK) -> None:
        self._send(status, (json.dumps(value) + "\n").encode())

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    # -- who may ask -------------------------------------------------------------------------
    def _authorised(self, query: dict) -> bool:
        token = self.live.token
        if token is None:
            return True
        given = (query.get("token") or [""])[0] or self.headers.get("X-HH-Token", "")
        return hmac.compare_digest(given.encode(), token.encode())

    def _from_this_server(self) -> bool:
        """Without a token, only a request that names this server may be answered: a page of
        another site (or a DNS name rebound to 127.0.0.1) names its own host."""
        return self.live.token is not None or self.headers.get("Host", "") in self.live.own_hosts()

    def _same_origin(self) -> bool:
        """A POST must come from this server's own page (or from no browser page at all)."""
        origin = self.headers.get("Origin")
        return origin is None or origin == f"http://{self.headers.get('Host', '')}"

    def _route(self) -> tuple[str | None, dict]:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self._authorised(query):
            self._error(HTTPStatus.UNAUTHORIZED, "a valid token is needed (?token=...)")
            return None, {}
        if not self._from_this_server():
            self._error(HTTPStatus.FORBIDDEN, "this server answers requests addressed to it only (Host)")
            return None, {}
        return url.path, query

    # -- GET ------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path, query = self._route()
        if path is None:
            return
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, page_html(), "text/html; charset=utf-8")
        elif path == "/api/status":
            self._json({**self.live.state.status(), **self.live.state.names_for(self.headers.get("Accept-Language"))})
        elif path == "/api/history":
            given = (query.get("n") or ["20"])[0]
            if not (given.isascii() and given.isdigit() and len(given) <= 4 and 1 <= int(given) <= HISTORY_MAX):
                self._error(HTTPStatus.BAD_REQUEST, f"n must be a whole number from 1 to {HISTORY_MAX}, got {given[:20]!r}")
                return
            self._json(self.live.state.recent(int(given)))
        elif path == "/stream.mjpg":
            self._stream()
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such page: {path[:100]}")

    # -- POST -----------------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        path, _ = self._route()
        if path is None:
            return
        handlers = {"/api/label": ("label", self._file_label), "/api/plant": ("action", self._plant)}
        if path not in handlers:
            self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: {path[:100]}")
            return
        if not self._same_origin():
            self._error(HTTPStatus.FORBIDDEN, "this server takes POSTs from its own page only (Origin)")
            return
        field, handle = handlers[path]
        if self.headers.get_content_type() != "application/json":
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"send the {field} as JSON (Content-Type: application/json)")
            return
        body = self._body()
        if body is None:
            return
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            self._error(HTTPStatus.BAD_REQUEST, f'send a JSON object, for example {{"{field}": ...}}')
            return
        handle(data.get(field))

    def _body(self) -> bytes | None:
        """The request body, at most MAX_BODY bytes, or None after answering why not."""
        lengths = self.headers.get_all("Content-Length") or []
        if len(set(lengths)) > 1:  # which one a proxy on the way believed is anyone's guess
            self._error(HTTPStatus.BAD_REQUEST, "one Content-Length, please")
            return None
        length = lengths[0] if lengths else None
        if length is None:
            self._error(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is needed")
            return None
        if not (length.strip().isascii() and length.strip().isdigit()):
            self._error(HTTPStatus.BAD_REQUEST, "Content-Length must be a whole number of bytes")
            return None
        if int(length) > MAX_BODY:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a body of at most {MAX_BODY} bytes")
            return None
        deadline = self._deadline()
        try:
            body = self.rfile.read(int(length))
        finally:
            self._waiting = False
            deadline.cancel()
        if len(body) < int(length):
            self.close_connection = True
            return None  # the client stopped sending: nobody is left to answer
        return body

    def _file_label(self, label) -> None:
        state = self.live.state
        if state.collector is None:
            self._error(HTTPStatus.CONFLICT, "not collecting: start hh-camera with --collect DIR")
        elif not isinstance(label, str) or label not in state.class_names:
            shown = repr(label)[:60]
            self._error(HTTPStatus.BAD_REQUEST, f"unknown label {shown}; one of {', '.join(state.class_names)}")
        else:
            frame, result, _ = state.snapshot()
            if frame is None:
                self._error(HTTPStatus.CONFLICT, "no frame yet")
                return
            saved = state.collector.label(frame, result, label)
            if saved is None:
                why = state.collector.stopped or "the collection folder is full (--collect-max-mb)"
                self._error(HTTPStatus.INSUFFICIENT_STORAGE, f"not saved: {why}")
            else:
                self._json({"saved": saved, "label": label})

    def _plant(self, action) -> None:
        plant = self.live.state.plant
        if action == "new":
            plant.new_plant()
        elif action == "leaf":
            _, result, _ = self.live.state.snapshot()
            if result is None:
                self._error(HTTPStatus.CONFLICT, "no frame yet")
                return
            top = result.classification
            try:
                plant.add_leaf(top.label, top.probabilities, result.retake, result.frame_index)
            except LeafRefused as exc:
                self._error(HTTPStatus.CONFLICT, str(exc))
                return
        elif action == "verdict":
            has_leaves, line = plant.verdict_to_log()
            if not has_leaves:
                self._error(HTTPStatus.CONFLICT, "this plant has no leaves yet: add its leaves first")
                return
            if line is not None:
                log.info(line)  # the device's log keeps every plant's verdict (once per change)
        else:
            self._error(HTTPStatus.BAD_REQUEST, f"action must be new, leaf or verdict, got {repr(action)[:60]}")
            return
        self._json(plant.status())

    # -- the stream -------------------------------------------------------------------------------
    def _stream(self) -> None:
        live, state = self.live, self.live.state
        if not live.viewer_slots.acquire(blocking=False):
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"at most {MAX_VIEWERS} viewers at once")
            return
        self.connection.settimeout(SEND_SECONDS)  # a viewer that stops reading is dropped
        try:
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
                        label = state.picture_names.get(label, label)
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
        finally:
            live.viewer_slots.release()
            self.close_connection = True


def new_token() -> str:
    return secrets.token_urlsafe(16)
