"""A real HTTP webhook receiver on 127.0.0.1 that records what it gets."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.local_http import LocalHttp, QuietHandler


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def event(self) -> str:
        return self.json["event"]


@dataclass
class Receiver:
    """Answers `status` (or hangs for `hang` seconds); `fail_first` requests get 500."""

    status: int = 200
    fail_first: int = 0
    hang: float = 0.0
    received: list[Received] = field(default_factory=list)
    attempts: list[Received] = field(default_factory=list)
    in_flight: int = 0  # requests being answered now
    most_in_flight: int = 0  # the most at once

    def __post_init__(self) -> None:
        receiver = self
        lock = threading.Lock()

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                item = Received(
                    {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                )
                with lock:
                    receiver.attempts.append(item)
                    receiver.in_flight += 1
                    receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                if receiver.hang:
                    time.sleep(receiver.hang)
                with lock:
                    receiver.in_flight -= 1
                failing = len(receiver.attempts) <= receiver.fail_first or receiver.status >= 300
                self.send_response(500 if failing and receiver.status < 300 else receiver.status)
                self.end_headers()
                if not failing:
                    receiver.received.append(item)

        self.http = LocalHttp(Handler)
        self.url = f"{self.http.url}/hook"

    def events(self) -> list[str]:
        return [r.event for r in self.received]

    def close(self) -> None:
        self.http.close()
