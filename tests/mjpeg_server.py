"""A real MJPEG-over-HTTP camera stream on loopback that drops its connection on purpose.

IP cameras serve exactly this (multipart/x-mixed-replace JPEG frames); OpenCV reads it through
FFmpeg like any stream URL. Each of the first `drops` connections is closed after
`frames_per_connection` frames, as a flaky Wi-Fi camera in a field would.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "hhframe"


class FlakyMjpegServer:
    def __init__(self, frames: list[np.ndarray], frames_per_connection: int, drops: int, interval: float = 0.002):
        self.jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in frames]
        self.frames_per_connection = frames_per_connection
        self.drops = drops
        self.interval = interval
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                server.connections += 1
                dropping = server.connections <= server.drops
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace;boundary={BOUNDARY}")
                self.end_headers()
                sent = 0
                try:
                    while not server.stopping.is_set():
                        jpeg = server.jpegs[sent % len(server.jpegs)]
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                            + jpeg
                            + b"\r\n"
                        )
                        sent += 1
                        if dropping and sent >= server.frames_per_connection:
                            return  # the connection drops mid-stream
                        if server.interval:
                            server.stopping.wait(server.interval)
                except (BrokenPipeError, ConnectionResetError):
                    return

        self.stopping = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FlakyMjpegServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
