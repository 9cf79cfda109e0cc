"""`whatsapp-api backup` and `restore`: everything needed to come back, in one .tar.gz.

A backup holds the event store (the one source of truth), the webhook delivery cursors,
the JWT secret file and the engines' session files under INSTANCES_DIR. Not the read
models: a restore rebuilds them from the event store. It is taken while the server runs,
and is consistent: the storage provider writes the cursors, then the event store as of
one moment (`StorageProvider.backup`), so no cursor is ahead of the events it points into
(after a restore an event may be delivered twice, never skipped). The engines' session
files may be live SQLite databases (whatsmeow's): they are copied with SQLite's backup
API (`storage.files`), not as raw bytes.

The archive, written under a temporary name and renamed when complete, readable by its
owner only (it holds the JWT secret and the WhatsApp sessions):

    manifest.json         what is inside: counts, and each file's size and SHA-256
    store/...             the storage provider's files (see its `backup`)
    secrets/jwt-secret    when the server generated its secret (not when JWT_SECRET is set)
    instances/<id>/...    each instance's engine session files (logs are left out)

A restore reads the manifest, checks every file against it while unpacking into a
staging directory beside the data, and writes nothing before all of it has checked out.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import socket
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import IO, Literal

import msgspec

from app.config import Settings
from app.storage import open_storage
from storage.files import copy_live_file
from storage.provider import BackedUp, Step, StorageProvider

FORMAT: Literal["whatsapp-api-backup"] = "whatsapp-api-backup"
MANIFEST = "manifest.json"
SECRET_FILES = ("jwt-secret",)
# Engine logs are not needed to come back; SQLite's side files are folded into the copy.
SKIPPED = re.compile(r"(\.log(\.\d+)?|-wal|-shm|-journal)$")
# What a member of the archive may be called: nothing absolute, no "..", no odd characters.
SAFE_PATH = re.compile(r"(store|secrets|instances)(/[A-Za-z0-9_][A-Za-z0-9._-]{0,200}){1,2}")
MAX_MANIFEST = 16 * 1024 * 1024
CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or restore cannot go on; the message says why in one line."""


class DamagedBackup(BackupError):
    """The archive is not a complete, unchanged backup."""


class FileEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str
    size: int
    sha256: str


class Manifest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a backup holds. `position` and `events` describe the event store in it."""

    format: Literal["whatsapp-api-backup"] = FORMAT
    version: Literal[1] = 1
    created: str
    serverVersion: str
    provider: Literal["sqlite", "mongodb"]
    position: int
    events: int
    webhookCursors: int
    jwtSecret: bool
    instances: int
    files: list[FileEntry]


# -- backup ---------------------------------------------------------------------------


def backup(settings: Settings, output: Path, step: Step) -> Manifest:
    """Write a backup of the installation `settings` describe to `output`."""
    output = output.resolve()
    if output.exists():
        raise BackupError(f"{output} exists already; choose another --output")
    if any(parent.exists() and not parent.is_dir() for parent in output.parents):
        raise BackupError(f"cannot write {output}: a file stands where its directory would be")
    output.parent.mkdir(parents=True, exist_ok=True)
    with _staging(output.parent, ".backup-") as staging, _opened(settings) as storage:
        dumped = storage.backup(staging / "store", step)
        secret = _copy_secrets(settings, staging / "secrets")
        instances = _copy_instances(settings.instances_dir, staging / "instances", step)
        files = [_entry(staging, path) for path in sorted(_files(staging))]
        manifest = Manifest(
            created=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            serverVersion=version("whatsapp-api"),
            provider=storage.name,  # type: ignore[arg-type]  # "sqlite" or "mongodb"
            position=dumped.position,
            events=dumped.events,
            webhookCursors=dumped.cursors,
            jwtSecret=secret,
            instances=instances,
            files=files,
        )
        _write_archive(output, staging, manifest, step)
    return manifest


def default_output(now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path(f"whatsapp-api-backup-{stamp}.tar.gz")


def _copy_secrets(settings: Settings, into: Path) -> bool:
    copied = False
    for name in SECRET_FILES:
        source = settings.data_dir / name
        if source.is_file():
            into.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, into / name)
            copied = True
    return copied


def _copy_instances(instances_dir: Path, into: Path, step: Step) -> int:
    """Each instance's files; live SQLite databases through SQLite's backup API."""
    if not instances_dir.is_dir():
        return 0
    directories = sorted(d for d in instances_dir.iterdir() if d.is_dir())
    copied = 0
    for n, directory in enumerate(directories, 1):
        files = [
            f for f in sorted(directory.iterdir()) if f.is_file() and not SKIPPED.search(f.name)
        ]
        if files:
            copied += 1
            for source in files:
                copy_live_file(source, into / directory.name / source.name)
        step("instance sessions", n, len(directories))
    return copied


def _files(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file():
            yield path


def _entry(root: Path, path: Path) -> FileEntry:
    name = path.relative_to(root).as_posix()
    if not SAFE_PATH.fullmatch(name):  # an instance's engine named a file oddly
        raise BackupError(f"cannot back up {path}: its name is not one a restore accepts")
    return FileEntry(name, path.stat().st_size, _sha256(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_archive(output: Path, staging: Path, manifest: Manifest, step: Step) -> None:
    """manifest.json first, then the files; under a temporary name until complete."""
    partial = output.with_name(f".{output.name}.partial")
    total = sum(entry.size for entry in manifest.files)
    done = 0

    def counted(data: bytes) -> None:
        nonlocal done
        done += len(data)
        step("compressing", done, total)

    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
                body = msgspec.json.format(msgspec.json.encode(manifest))
                tar.addfile(_member(MANIFEST, len(body)), io.BytesIO(body))
                for entry in manifest.files:
                    with (staging / entry.path).open("rb") as file:
                        tar.addfile(_member(entry.path, entry.size), _Counting(file, counted))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _fsync_directory(output.parent)


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(time.time())
    return info


class _Counting(io.RawIOBase):
    """A file whose reads are reported (for the progress bar)."""

    def __init__(self, file: IO[bytes], note: Callable[[bytes], None]) -> None:
        self._file = file
        self._note = note

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._note(data)
        return data


# -- restore --------------------------------------------------------------------------


def restore(settings: Settings, archive: Path, force: bool, step: Step) -> Manifest:
    """Restore `archive` into the installation `settings` describe, which must be empty
    unless `force` (then what is there is deleted first); the read models are rebuilt
    by the caller."""
    if not archive.is_file():
        raise BackupError(f"no backup at {archive}")
    with _opened(settings) as storage:
        found = _occupied(settings, storage)
        if found and not force:
            raise BackupError(
                f"the target is not empty ({'; '.join(found)}): restore into an empty data "
                "directory, or add --force to replace what is there"
            )
        if found:
            _refuse_if_serving(settings)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with _staging(settings.data_dir, ".restore-") as staging:
            manifest = unpack(archive, staging, step)
            if manifest.provider != storage.name:
                raise BackupError(
                    f"this is a backup of a {manifest.provider} event store, and "
                    f"DATABASE_PROVIDER is {storage.name}: restore it with "
                    f"DATABASE_PROVIDER={manifest.provider}"
                )
            if found:
                _erase(settings, storage)
            storage.restore(
                staging / "store",
                BackedUp(manifest.position, manifest.events, manifest.webhookCursors),
                step,
            )
            _place_files(settings, staging)
    return manifest


def _erase(settings: Settings, storage: StorageProvider) -> None:
    """What a forced restore replaces."""
    storage.erase()
    for name in SECRET_FILES:
        (settings.data_dir / name).unlink(missing_ok=True)
    if settings.instances_dir.is_dir():
        shutil.rmtree(settings.instances_dir)


def _place_files(settings: Settings, staging: Path) -> None:
    """The secrets and the engines' session files, from the checked staging directory."""
    for name in SECRET_FILES:
        source = staging / "secrets" / name
        if source.is_file():
            _place(source, settings.data_dir / name)
            (settings.data_dir / name).chmod(0o600)
    instances = staging / "instances"
    if instances.is_dir():
        for source in sorted(_files(instances)):
            _place(source, settings.instances_dir / source.relative_to(instances))


@contextlib.contextmanager
def _opened(settings: Settings) -> Iterator[StorageProvider]:
    storage = open_storage(settings)
    try:
        yield storage
    finally:
        storage.close()


def unpack(archive: Path, into: Path, step: Step) -> Manifest:
    """Unpack `archive` into `into`, checking each file against the manifest; DamagedBackup
    (and nothing trusted) if anything is missing, extra, changed or unreadable."""
    total = archive.stat().st_size
    try:
        with archive.open("rb") as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile():
                raise DamagedBackup("it does not start with a manifest: not a whatsapp-api backup")
            manifest = _manifest(_read_all(tar, first, MAX_MANIFEST))
            expected = {entry.path: entry for entry in manifest.files}
            if len(expected) != len(manifest.files) or not all(map(SAFE_PATH.fullmatch, expected)):
                raise DamagedBackup("its manifest lists files a backup cannot hold")
            while (member := tar.next()) is not None:
                entry = expected.pop(member.name, None)
                if entry is None or not member.isfile():
                    raise DamagedBackup(
                        f"it holds {member.name!r}, which its manifest does not list"
                    )
                _unpack_file(tar, member, entry, into / entry.path)
                step("checking", raw.tell(), total)
            if expected:
                raise DamagedBackup(f"{sorted(expected)[0]} is missing")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        if isinstance(error, OSError) and not _is_read_error(error):
            raise
        raise DamagedBackup(f"it cannot be read to its end ({_reason(error)})") from None
    return manifest


def _manifest(body: bytes) -> Manifest:
    try:
        return msgspec.json.decode(body, type=Manifest)
    except msgspec.DecodeError as error:
        raise DamagedBackup(f"its manifest is not one this version reads ({error})") from None


def _read_all(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise DamagedBackup(f"{member.name} is larger than a manifest can be")
    file = tar.extractfile(member)
    assert file is not None  # a regular file
    return file.read()


def _unpack_file(
    tar: tarfile.TarFile, member: tarfile.TarInfo, entry: FileEntry, target: Path
) -> None:
    if member.size != entry.size:
        raise DamagedBackup(f"{entry.path} has {member.size} bytes, its manifest says {entry.size}")
    source = tar.extractfile(member)
    assert source is not None  # a regular file
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with target.open("wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != entry.sha256:
        raise DamagedBackup(f"{entry.path} does not match its checksum")


def _is_read_error(error: OSError) -> bool:
    """gzip's own errors are OSErrors too; a full disk while unpacking is not damage."""
    import gzip

    return isinstance(error, gzip.BadGzipFile) or error.errno is None


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0]


def _occupied(settings: Settings, storage: StorageProvider) -> list[str]:
    """What is in the way of a restore (empty when the target is empty)."""
    found = storage.held()
    found += [
        f"{settings.data_dir / name} exists"
        for name in SECRET_FILES
        if (settings.data_dir / name).exists()
    ]
    if settings.instances_dir.is_dir() and any(settings.instances_dir.iterdir()):
        found.append(f"{settings.instances_dir} is not empty")
    return found


def _refuse_if_serving(settings: Settings) -> None:
    """Replacing the data under a running server would corrupt what it holds."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", settings.port), 1):
        raise BackupError(
            f"something answers on port {settings.port}: stop the server before replacing "
            "its data (or set PORT to the port of the installation being restored)"
        )


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, target)


@contextlib.contextmanager
def _staging(beside: Path, prefix: str) -> Iterator[Path]:
    """A private directory beside the data, removed afterwards, whatever happens."""
    beside.mkdir(parents=True, exist_ok=True)
    path = beside / f"{prefix}{os.getpid()}-{int(time.time() * 1000)}"
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
