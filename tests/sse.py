"""Reading server-sent events from an open httpx response, as a browser's EventSource would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx


class SseReader:
    """The events of one stream, in order: `{"id", "event", "data"}` (data decoded as JSON)."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        self._lines: Iterator[str] = response.iter_lines()
        self.ended = False  # the server closed the stream

    def next(self) -> dict[str, Any] | None:
        """The next event (comments and the retry hint skipped); None once the stream ends."""
        current: dict[str, Any] = {}
        for line in self._lines:
            if line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and "data" in current:
                return current
        self.ended = True
        return None

    def read(self, count: int) -> list[dict[str, Any]]:
        """The next `count` events (fewer if the stream ends first)."""
        found = []
        while len(found) < count and (event := self.next()) is not None:
            found.append(event)
        return found

    def until(self, position: int) -> list[dict[str, Any]]:
        """Events up to and including the one at `position`."""
        found = []
        while (event := self.next()) is not None:
            found.append(event)
            if event.get("id", 0) >= position:
                break
        return found

    def rest(self) -> list[dict[str, Any]]:
        """Every event until the server ends the stream."""
        found = []
        while (event := self.next()) is not None:
            found.append(event)
        return found
