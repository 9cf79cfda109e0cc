"""Length-prefixed msgpack frames between the server and an engine child process."""

from __future__ import annotations

import struct
import threading
from typing import IO, Any

import msgspec

_HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


class Channel:
    """Send and receive dict frames over a pair of binary streams (thread-safe sends)."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes]) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = threading.Lock()

    def send(self, frame: dict[str, Any]) -> None:
        data = _encoder.encode(frame)
        with self._lock:
            self._writer.write(_HEADER.pack(len(data)) + data)
            self._writer.flush()

    def receive(self) -> dict[str, Any] | None:
        """The next frame, or None at end of stream."""
        header = self._reader.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack(header)
        if size > MAX_FRAME:
            raise ValueError(f"frame of {size} bytes is too large")
        data = self._reader.read(size)
        if len(data) < size:
            return None
        return _decoder.decode(data)
