"""Files to send: uploads and URL downloads, size-capped, kept under UPLOADS_DIR."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mimetypes
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

import aiohttp
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from actors.bridge import ActorTimeout
from actors.engines.base import Media
from actors.outbound import OutboundHTTP, refused
from app.errors import ApiError
from app.schemas import content_length, too_large
from domain.instance import SendOutcomeUnknown

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# RFC 6838 §4.2's type and subtype names, then parameters of printable ASCII: a type that
# an answer's Content-Type header can carry.
_MEDIA_TYPE = re.compile(r"[\w!#$&^.+-]+/[\w!#$&^.+-]+( *;[ -~]*)?", re.ASCII)
CHUNK = 64 * 1024
OCTET_STREAM = "application/octet-stream"


def safe_filename(name: str | None, fallback: str = "file") -> str:
    """A name that cannot leave the uploads directory or surprise a shell."""
    base = Path((name or "").replace("\\", "/")).name
    base = _UNSAFE.sub("_", base).strip("._")[:120]
    return base or fallback


def limit_body(request: Request, limit: int) -> Request:
    """The same request, refusing (413) a body that grows past `limit` bytes."""
    declared = content_length(request)
    if declared is not None and declared > limit:
        raise too_large(limit)
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large(limit)
        return message

    return Request(request.scope, receive)


def file_too_large(what: str, limit: int) -> ApiError:
    """413 for a file (not the request body) over MAX_FILE_SIZE."""
    return ApiError(
        413,
        "file_too_large",
        f"{what} is larger than this server's limit of {limit} bytes (MAX_FILE_SIZE)",
    )


def _destination(uploads_dir: Path, filename: str) -> Path:
    uploads_dir.mkdir(parents=True, exist_ok=True)
    return uploads_dir / f"{uuid.uuid4().hex}-{filename}"


def media_type(declared: str | None) -> str | None:
    """`declared` if it is a media type, else None. A file's type is written by whoever
    sent it (a part's Content-Type, a WhatsApp peer's mimetype), and one with a control
    character in it cannot be served: no header may carry it."""
    return declared if declared and _MEDIA_TYPE.fullmatch(declared) else None


def _mimetype(filename: str, declared: str | None) -> str:
    kind = media_type((declared or "").split(";", 1)[0].strip())
    if kind and kind != OCTET_STREAM:
        return kind
    return mimetypes.guess_type(filename)[0] or OCTET_STREAM


async def keep_upload(upload: UploadFile, uploads_dir: Path, max_size: int) -> Media:
    """Move an uploaded file under the uploads directory (with its SHA-256)."""
    filename = safe_filename(upload.filename)
    path = _destination(uploads_dir, filename)
    size = 0
    digest = hashlib.sha256()
    try:
        with path.open("wb") as out:
            while chunk := await upload.read(CHUNK):
                size += len(chunk)
                if size > max_size:
                    raise file_too_large("The uploaded file", max_size)
                digest.update(chunk)
                await asyncio.to_thread(out.write, chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise ApiError(400, "empty_file", "The uploaded file is empty")
    return Media(
        str(path),
        filename,
        _mimetype(filename, upload.content_type),
        size,
        digest=digest.hexdigest(),
    )


@contextlib.contextmanager
def removed_unless_sent(file: Media) -> Iterator[None]:
    """Remove the file if the send it was kept for fails (a 409, a refusal): only a message
    that was sent keeps its file. A send whose outcome is unknown (an instance that did not
    answer in time, an engine that stopped mid-send) may still go out, so then the file
    stays (the cleanup job removes it after UPLOAD_RETENTION_DAYS)."""
    try:
        yield
    except (ActorTimeout, SendOutcomeUnknown):
        raise
    except BaseException:
        Path(file.path).unlink(missing_ok=True)
        raise


def fetchable(url: str) -> SplitResult:
    """The parts of an http(s) URL; 400 for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(400, "invalid_url", f"Only http(s) URLs can be fetched (got '{url}')")
    return parts


async def download(
    url: str,
    filename: str | None,
    uploads_dir: Path,
    max_size: int,
    timeout: float,
    outbound: OutboundHTTP,
) -> Media:
    """Fetch a file by http(s) URL, refusing other schemes, redirects, oversize files and
    addresses the outbound policy does not allow (so the server cannot be aimed at its
    own network, even by a name that resolves differently at the connect)."""
    parts = fetchable(url)
    name = safe_filename(filename or unquote(parts.path.rsplit("/", 1)[-1]), "media")
    path = _destination(uploads_dir, name)
    size = 0
    client_timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10))
    try:
        async with (
            outbound.session(timeout=client_timeout) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise ApiError(
                    400,
                    "media_download_failed",
                    f"Fetching the media URL answered HTTP {response.status}",
                )
            if (response.content_length or 0) > max_size:
                raise file_too_large("The file at the media URL", max_size)
            with path.open("wb") as out:
                async for chunk in response.content.iter_chunked(CHUNK):
                    size += len(chunk)
                    if size > max_size:
                        raise file_too_large("The file at the media URL", max_size)
                    out.write(chunk)
            declared = response.headers.get("content-type")
    except (aiohttp.ClientError, TimeoutError) as error:
        path.unlink(missing_ok=True)
        refusal = refused(error)
        if refusal is not None:
            raise ApiError(400, "url_not_allowed", f"Media URL refused: {refusal}") from None
        raise ApiError(
            400,
            "media_download_failed",
            f"Could not fetch the media URL: {error or type(error).__name__}",
        ) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise ApiError(400, "media_download_failed", "The media URL returned no content")
    return Media(str(path), name, _mimetype(name, declared), size, url=url)
