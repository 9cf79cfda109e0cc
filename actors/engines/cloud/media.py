"""Which message type a file goes out as on the Cloud API, and how large it may be.

Meta's supported media types
(https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media/#supported-media-types;
the same table in AWS End User Messaging's WhatsApp guide): JPEG and PNG images up to
5 MB; MP4 and 3GPP video and AAC, AMR, MP3, M4A and OGG (Opus) audio up to 16 MB;
WebP only as a sticker (100 KB static, 500 KB animated); anything else as a document,
up to 100 MB. A file that goes out as another type than its MIME family fails later,
by webhook, so the type is chosen here, and a file too large for it is refused first.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actors.engines.base import EngineError, Media
from actors.engines.cloud.errors import bad_answer
from domain.messages import MessageRef

if TYPE_CHECKING:
    from actors.engines.cloud.graph import GraphClient

KB, MB = 1024, 1024 * 1024
IMAGE = {"image/jpeg": "image/jpeg", "image/jpg": "image/jpeg", "image/png": "image/png"}
VIDEO = {"video/mp4": "video/mp4", "video/3gpp": "video/3gpp", "video/3gp": "video/3gpp"}
AUDIO = {
    "audio/aac": "audio/aac",
    "audio/amr": "audio/amr",
    "audio/mpeg": "audio/mpeg",
    "audio/mp3": "audio/mpeg",
    "audio/mp4": "audio/mp4",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/ogg": "audio/ogg",
}
LIMITS = {"image": 5 * MB, "video": 16 * MB, "audio": 16 * MB, "document": 100 * MB}
STICKER_LIMIT = {False: 100 * KB, True: 500 * KB}  # static, animated
DOWNLOAD_LIMIT = LIMITS["document"]  # the largest file Meta carries
_MEDIA_ID = re.compile(r"[0-9A-Za-z_-]{1,128}", re.ASCII)
_SAFE = re.compile(r"[^0-9A-Za-z._-]+")


@dataclass(frozen=True)
class CloudMedia:
    """How a file goes out: the message `kind`, the MIME type to upload it as."""

    kind: str  # image, video, audio, sticker or document
    mimetype: str


def choose(path: str, mimetype: str, size: int) -> CloudMedia:
    """The type Meta accepts for this file; 413 when it is larger than that type allows."""
    declared = mimetype.split(";", 1)[0].strip().lower()
    if declared in IMAGE:
        return _within(CloudMedia("image", IMAGE[declared]), size, LIMITS["image"], "images")
    if declared in VIDEO:
        return _within(CloudMedia("video", VIDEO[declared]), size, LIMITS["video"], "videos")
    if declared in AUDIO:
        return _within(CloudMedia("audio", AUDIO[declared]), size, LIMITS["audio"], "audio")
    if declared == "image/webp" and size <= STICKER_LIMIT[_animated_webp(path)]:
        return CloudMedia("sticker", "image/webp")
    # WebP too large for a sticker, GIF, HEIC, WebM, MOV, WAV...: Meta takes them only
    # as documents.
    return _within(
        CloudMedia("document", declared or "application/octet-stream"),
        size,
        LIMITS["document"],
        "documents",
    )


def _within(media: CloudMedia, size: int, limit: int, what: str) -> CloudMedia:
    if size > limit:
        raise EngineError(
            f"The Cloud API takes {what} ({media.mimetype}) of at most {limit // MB} MB; "
            f"this file is {size / MB:.1f} MB",
            "media_too_large",
            413,
            {"kind": media.kind, "limit": limit, "size": size},
        )
    return media


def _animated_webp(path: str) -> bool:
    """Whether a WebP file is animated (its VP8X header's animation flag)."""
    try:
        with Path(path).open("rb") as file:
            head = file.read(21)
    except OSError:
        return False
    return (
        len(head) == 21
        and head[:4] == b"RIFF"
        and head[8:16] == b"WEBPVP8X"
        and bool(head[20] & 0x02)
    )


def media_id(message: MessageRef) -> str | None:
    """The Graph media id of a received message's file (a path segment: checked)."""
    found = (message.media or {}).get("id")
    return found if isinstance(found, str) and _MEDIA_ID.fullmatch(found) else None


async def download(
    graph: GraphClient,
    call: Callable[..., Coroutine[Any, Any, dict[str, Any]]],
    found: str,
    number: str,
    message: MessageRef,
    uploads_dir: Path,
    limit: int,
) -> Media:
    """Retrieve the media URL (`GET /{media-id}?phone_number_id=`: `{url, mime_type,
    file_size}`), then the bytes (Meta's "Download media" guide)."""
    answer = await call("GET", f"/{found}", params={"phone_number_id": number})
    url, mimetype = answer.get("url"), answer.get("mime_type")
    if not isinstance(url, str) or not url:
        raise bad_answer()
    size = answer.get("file_size")  # a number, or its digits (Meta's reference shows both)
    size = int(size) if isinstance(size, str) and size.isascii() and size.isdigit() else size
    if isinstance(size, int) and size > limit:
        raise EngineError(
            f"The media is {size} bytes, more than this server keeps ({limit})",
            "media_too_large",
            413,
        )
    recorded = message.media or {}
    if not isinstance(mimetype, str) or not re.fullmatch(r"[\w.+-]+/[\w.+-]+", mimetype):
        mimetype = str(recorded.get("mimetype") or "application/octet-stream")
    filename = _SAFE.sub("_", str(recorded.get("filename") or f"{found}"))[:100] or found
    uploads_dir.mkdir(parents=True, exist_ok=True)
    destination = uploads_dir / f"{uuid.uuid4().hex}-{filename}"
    stored = await graph.fetch(url, destination, limit)
    return Media(str(destination), filename, mimetype, stored)
