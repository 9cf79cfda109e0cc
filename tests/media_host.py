"""A real HTTP server on 127.0.0.1 that serves files to send-media, and records what it served."""

from __future__ import annotations

import threading

from tests.local_http import LocalHttp, QuietHandler


class MediaHost:
    """Serves files on 127.0.0.1: with or without Content-Length, or 404. Paths listed in
    `held` answer only once `release()` is called (a download in progress, on purpose)."""

    def __init__(self, files: dict[str, tuple[bytes, str, bool]]) -> None:
        self.requests: list[str] = []
        self.held: set[str] = set()
        self._release = threading.Event()
        host = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                host.requests.append(self.path)
                if self.path in host.held:
                    host._release.wait(timeout=30)
                item = files.get(self.path)
                if item is None:
                    self.send_error(404)
                    return
                body, content_type, with_length = item
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                if with_length:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.close_connection = True  # HTTP/1.0: the body ends when the line closes
                self.end_headers()
                self.wfile.write(body)

        self.http = LocalHttp(Handler)
        self.url = self.http.url

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self._release.set()
        self.http.close()
