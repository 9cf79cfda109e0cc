"""`whatsapp-api doctor`: what is wrong with this installation, and how to fix it."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from app.config import ConfigError, Settings
from app.storage import open_storage

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Finding:
    level: str
    check: str
    message: str
    fix: str = ""


def run(environ: Mapping[str, str] | None = None, out: Callable[[str], None] = print) -> int:
    """Print every finding; return 1 if any check failed."""
    failed = False
    for finding in diagnose(environ):
        mark = {OK: "ok  ", WARN: "warn", FAIL: "FAIL"}[finding.level]
        line = f"[{mark}] {finding.check}: {finding.message}"
        if finding.fix and finding.level != OK:
            line += f"\n         fix: {finding.fix}"
        out(line)
        failed |= finding.level == FAIL
    out("doctor: problems found" if failed else "doctor: all checks passed")
    return 1 if failed else 0


def diagnose(environ: Mapping[str, str] | None = None) -> Iterator[Finding]:
    try:
        settings = Settings.from_env(environ)
    except ConfigError as error:
        yield Finding(FAIL, "configuration", str(error), f"set {error.variable} to a valid value")
        return
    yield Finding(
        OK, "configuration", f"{settings.env}, {settings.database_provider}, port {settings.port}"
    )
    yield from _secret(settings)
    for name, directory in (
        ("data", settings.data_dir),
        ("uploads", settings.uploads_dir),
        ("instances", settings.instances_dir),
        ("logs", settings.logs_dir),
    ):
        yield _directory(name, directory)
    yield from _storage(settings)
    if settings.cluster is not None:
        yield from _cluster(settings)
    yield _port(settings)
    yield _clock(settings)
    yield from _whatsmeow(settings)


def _secret(settings: Settings) -> Iterator[Finding]:
    secret = settings.jwt_secret
    if secret is None:
        level = FAIL if settings.production else WARN
        yield Finding(
            level,
            "jwt secret",
            "JWT_SECRET is not set (a generated one is kept in the data directory)",
            "set JWT_SECRET to 32+ random characters, e.g. `openssl rand -hex 32`",
        )
    elif len(secret) < 32:
        yield Finding(
            WARN,
            "jwt secret",
            f"JWT_SECRET has only {len(secret)} characters",
            "use 32 or more random characters",
        )
    else:
        yield Finding(OK, "jwt secret", f"{len(secret)} characters")


def _directory(name: str, directory: Path) -> Finding:
    check = f"{name} directory"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory):
            pass
    except OSError as error:
        owner = _owner(directory)
        return Finding(
            FAIL,
            check,
            f"{directory} is not writable ({error.strerror}; owner {owner})",
            f"chown {_me()} {directory} (the server runs as {_me()})",
        )
    return Finding(OK, check, f"{directory.resolve()} (owner {_owner(directory)})")


def _owner(path: Path) -> str:
    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (OSError, KeyError):
        return "?"


def _me() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _storage(settings: Settings) -> Iterator[Finding]:
    storage = open_storage(settings, timeout=5)
    try:
        diagnosis = storage.diagnose()
    finally:
        storage.close()
    yield Finding(diagnosis.level, "event store", diagnosis.message, diagnosis.fix)


def _cluster(settings: Settings) -> Iterator[Finding]:
    """Several nodes: the database's clock against this one's, the other nodes (live, with
    the same CLUSTER_SECRET, reachable, clocks within a second), and the shared volume."""
    from app.cluster.doctor import diagnose_cluster

    for level, check, message, fix in diagnose_cluster(settings):
        yield Finding(level, check, message, fix)


def _port(settings: Settings) -> Finding:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((settings.host, settings.port))
        except OSError as error:
            return Finding(
                WARN,
                "port",
                f"{settings.host}:{settings.port} is in use or not allowed ({error.strerror})",
                "stop what uses it, or set PORT (it may be this server)",
            )
    return Finding(OK, "port", f"{settings.host}:{settings.port} is free")


def _clock(settings: Settings) -> Finding:
    now = time.time()
    if now < 1_700_000_000:
        return Finding(
            FAIL, "clock", f"the system clock says {time.ctime(now)}", "set the clock (NTP)"
        )
    path = settings.sqlite_path
    if path.exists() and path.stat().st_mtime > now + 300:
        return Finding(
            WARN,
            "clock",
            "the event store was written in the future by this clock",
            "check the system clock (NTP)",
        )
    return Finding(OK, "clock", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now)))


def _whatsmeow(settings: Settings) -> Iterator[Finding]:
    try:
        import importlib.util

        if importlib.util.find_spec("neonize") is None:
            yield Finding(
                WARN if settings.default_engine != "whatsmeow" else FAIL,
                "whatsmeow",
                "neonize is not installed",
                "pip install neonize==0.5.2",
            )
            return
        from actors.engines.whatsmeow import OutdatedMark, WhatsmeowEngine
        from actors.engines.whatsmeow_forkserver import ForkServer

        fork_server = ForkServer()
        try:
            with tempfile.TemporaryDirectory() as scratch:
                engine = WhatsmeowEngine(
                    Path(scratch) / "doctor",
                    Path(scratch),
                    1,
                    None,
                    lambda _: None,
                    launcher=fork_server,
                )
                try:
                    answer = engine.ping()
                finally:
                    engine.disconnect()
        finally:
            fork_server.close()
        yield Finding(OK, "whatsmeow", f"neonize {answer['neonize']} loads in a child process")
        refused = OutdatedMark(settings.instances_dir / ".whatsmeow-outdated").refused()
        if refused is not None:
            yield Finding(
                FAIL,
                "whatsmeow",
                f"WhatsApp refuses neonize {refused} (405, client outdated): "
                "no whatsmeow instance connects",
                "pip install -U neonize, then restart the server",
            )
    except Exception as error:
        yield Finding(
            FAIL,
            "whatsmeow",
            f"the library does not load: {error}",
            "use Linux x86_64/aarch64 with glibc >= 2.34, and install libmagic",
        )
        return
    if shutil.which("ffmpeg") is None:
        yield Finding(
            WARN,
            "ffmpeg",
            "not found: whatsmeow audio and video sends will fail",
            "install ffmpeg (apt-get install ffmpeg)",
        )


if __name__ == "__main__":
    sys.exit(run())
