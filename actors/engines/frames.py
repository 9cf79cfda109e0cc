"""Length-prefixed msgpack frames between the server and an engine child process.

Each side decodes the frames it reads into one tagged union of msgspec Structs (see
`whatsmeow_frames`), in one call: a frame that is not one of them is an error, never a
dict read with `.get`.
"""

from __future__ import annotations

import struct
import threading
from typing import IO, Any, Generic, TypeVar

import msgspec

_HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
_encoder = msgspec.msgpack.Encoder()

T = TypeVar("T")


def encode(frame: msgspec.Struct) -> bytes:
    """A frame's bytes with their length in front (also the spool's record format)."""
    data = _encoder.encode(frame)
    return _HEADER.pack(len(data)) + data


def read_record(reader: IO[bytes]) -> bytes | None:
    """The body of the next length-prefixed record, or None at the end (or a torn end)."""
    header = reader.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes is too large")
    data = reader.read(size)
    return data if len(data) == size else None


class Channel(Generic[T]):
    """Send Structs and receive `T`s over a pair of binary streams (thread-safe sends)."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes], receives: Any) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = threading.Lock()
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(receives)

    def send(self, frame: msgspec.Struct) -> None:
        data = encode(frame)
        with self._lock:
            self._writer.write(data)
            self._writer.flush()

    def receive(self) -> T | None:
        """The next frame, or None at end of stream; ValueError for a frame of another shape."""
        data = read_record(self._reader)
        if data is None:
            return None
        try:
            return self._decoder.decode(data)
        except msgspec.ValidationError as error:
            raise ValueError(f"unexpected frame: {error}") from None

    def decode(self, data: bytes) -> T:
        return self._decoder.decode(data)
