"""The `whatsapp-api` command."""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.handlers
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from app.config import ConfigError, Settings
from app.permissions import OWNER_ONLY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="whatsapp-api",
        description="WhatsApp Multi-Instance API: many users, many WhatsApp accounts, one server.",
        epilog="Configuration comes from environment variables; see README.md.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server (port from PORT, default 3000)")
    serve.add_argument("--port", type=int, help="override PORT")
    serve.add_argument("--host", help="override HOST")
    events = commands.add_parser(
        "events",
        help="print the event history (for auditing)",
        description="Print stored events in store order. One line each, or JSON lines.",
    )
    events.add_argument("--instance", metavar="ID", help="only this instance's events")
    events.add_argument(
        "--after", metavar="POS", type=int, default=0, help="only events after this position"
    )
    events.add_argument(
        "--since", metavar="TIME", help="only events at or after this ISO 8601 time"
    )
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument("--json", action="store_true", help="print JSON lines")
    rebuild = commands.add_parser(
        "rebuild-projections",
        help="rebuild read models from the event store",
        description="Rebuild read models from the event store alone and swap them in atomically. "
        "Safe while the server runs; an interrupted rebuild leaves the old read models in service.",
    )
    rebuild.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="read models to rebuild (default: all of directory, messages, "
        "activity, usage, deliveries)",
    )
    backup = commands.add_parser(
        "backup",
        help="back up the event store, webhook cursors, JWT secret and sessions (while running)",
        description="Write one .tar.gz with everything needed to come back: the event store, "
        "the webhook cursors, the JWT secret file and the engines' session files under "
        "INSTANCES_DIR (not the read models: a restore rebuilds them), with a manifest and "
        "checksums. Consistent while the server runs. The file is readable by its owner only: "
        "it holds secrets.",
    )
    backup.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        type=Path,
        help="where to write it (default: whatsapp-api-backup-<UTC time>.tar.gz here)",
    )
    restore = commands.add_parser(
        "restore",
        help="restore a backup into an empty data directory, then rebuild the read models",
        description="Check every file of FILE against its manifest, write it into the data "
        "directory, INSTANCES_DIR (and MongoDB database) of this configuration, rebuild the "
        "read models and say what was restored. The target must be empty; the server must "
        "not be running on it.",
    )
    restore.add_argument("file", metavar="FILE", type=Path, help="a file written by backup")
    restore.add_argument(
        "--force",
        action="store_true",
        help="replace what the target holds (its event store, cursors, read models, JWT "
        "secret and instance sessions are deleted first)",
    )
    commands.add_parser(
        "doctor",
        help="check configuration, storage, directories, port, clock and the whatsmeow library",
        description="Check this installation and say how to fix what is wrong. Exit code 1 on failure.",
    )
    args = parser.parse_args(argv)
    # Whatever any command creates (stores, logs, uploads, sessions, backups) is the
    # owner's alone: the data holds messages and sealed secrets.
    os.umask(OWNER_ONLY)
    if args.command == "doctor":
        from app import doctor

        return doctor.run()

    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"whatsapp-api: configuration error: {error}", file=sys.stderr)
        return 2

    if args.command == "serve":
        return serve_command(settings, args.host, args.port)
    if args.command == "rebuild-projections":
        return rebuild_command(settings, args.names)
    if args.command in ("backup", "restore"):
        from app import cli_backup

        if args.command == "backup":
            return cli_backup.backup_command(settings, args.output)
        return cli_backup.restore_command(settings, args.file, args.force)
    if args.command == "events":
        from app import cli_events

        return cli_events.run(
            settings, args.instance, args.after, args.since, args.follow, args.json
        )
    return 1


def serve_command(settings: Settings, host: str | None, port: int | None) -> int:
    from app.server import StartupError, create_app, start

    setup_logging(settings)
    try:
        ctx = start(settings)
    except StartupError as error:  # already logged; one line, no traceback
        print(f"whatsapp-api: cannot start: {error}", file=sys.stderr)
        return 1
    config = uvicorn.Config(
        create_app(settings, ctx),
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
        # X-Forwarded-For names the client only when a proxy we trust says so; uvicorn's
        # own default believes any local process (and so lets it pick its address).
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or "",
    )
    # uvicorn re-raises Ctrl-C once it has shut down cleanly: nothing is left to report.
    with contextlib.suppress(KeyboardInterrupt):
        GracefulServer(config, ctx.cluster).run()
    return 0


class GracefulServer(uvicorn.Server):
    """The first SIGTERM/SIGINT stops taking requests, lets in-flight ones finish, stops the
    actors, stores usage counts and closes the stores; on several nodes it hands this
    node's instances to the others at once, while in-flight requests finish. A second one
    exits at once: every acknowledged event is already durable, and read models resume from
    their positions."""

    def __init__(self, config: uvicorn.Config, cluster: Any = None) -> None:
        super().__init__(config)
        self.cluster = cluster

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.should_exit:
            logging.getLogger(__name__).warning("second signal %s: exiting now", sig)
            os._exit(1)
        logging.getLogger(__name__).info(
            "signal %s: shutting down (send it again to exit at once)", sig
        )
        if self.cluster is not None:
            threading.Thread(target=self.cluster.drain, name="drain", daemon=True).start()
        super().handle_exit(sig, frame)


def rebuild_command(settings: Settings, names: list[str]) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from app.eventstore import open_store
    from app.storage import open_storage
    from projections.rebuild import check_names, rebuild
    from projections.rows import RebuildRunning
    from storage.provider import StoreUnavailable

    try:
        check_names(names)
    except ValueError as error:
        print(f"whatsapp-api: {error}", file=sys.stderr)
        return 2
    storage = open_storage(settings)
    try:
        store = open_store(storage, create=False)
    except StoreUnavailable as error:
        storage.close()
        print(f"whatsapp-api: {error}", file=sys.stderr)
        return 1
    live = storage.read_models()
    columns = (
        TextColumn("rebuilding"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TextColumn("{task.fields[rate]} ev/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    started = time.perf_counter()
    try:
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task("rebuild", total=None, rate="-")

            def advance(position: int, head: int) -> None:
                rate = position / max(time.perf_counter() - started, 1e-6)
                bar.update(task, completed=position, total=head, rate=f"{rate:,.0f}")

            result = rebuild(store, live, names, advance)
    except KeyboardInterrupt:
        print(
            "whatsapp-api: rebuild interrupted; the previous read models stay in service",
            file=sys.stderr,
        )
        return 130
    except RebuildRunning as error:
        print(f"whatsapp-api: {error}", file=sys.stderr)
        return 1
    finally:
        live.close()
        store.close()
        storage.close()
    print(
        f"rebuilt {', '.join(names) or 'all read models'}: {result.events:,} events to "
        f"position {result.position} in {result.seconds:.1f} s; now serving {result.serving}"
    )
    return 0


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5


# Control characters (line breaks above all) a message must not write into a log as they
# are: a client could otherwise end a line and forge the next one.
_ESCAPES = {
    code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, 0x85) if chr(code) not in "\t"
} | {0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"}
MAX_MESSAGE = 4000  # characters of one message; the rest is counted, not written


def loggable(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` on one line (control characters escaped) and at most `limit` characters."""
    text = text.translate(_ESCAPES)
    if len(text) > limit:
        return f"{text[:limit]}…[{len(text) - limit} more characters]"
    return text


class OnceFormatter(logging.Formatter):
    """Formats a record once however many handlers write it (stdout and the log files),
    with its message on one line of bounded length (a traceback keeps its own lines)."""

    def format(self, record: logging.LogRecord) -> str:
        line: str | None = getattr(record, "_formatted", None)
        if line is None:
            line = super().format(record)
            record._formatted = line
        return line

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = loggable(record.message)
        return super().formatMessage(record)


class SizedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Rotates at `maxBytes` like its parent, counting what it writes instead of seeking to
    the end and stat-ing the file for every line (a tenth of a request's CPU under load).
    Non-ASCII characters are counted as one byte, so a file may run a little over."""

    def __init__(self, filename: str | os.PathLike[str], maxBytes: int, backupCount: int) -> None:
        super().__init__(
            filename, maxBytes=maxBytes, backupCount=backupCount
        )  # opens it (OSError here)
        # Only regular files rotate (not /dev/null or a pipe), as in the parent.
        self._rotates = maxBytes > 0 and os.path.isfile(self.baseFilename)
        self._size = os.path.getsize(self.baseFilename) if self._rotates else 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if self._rotates and self._size > 0 and self._size + len(line) + 1 > self.maxBytes:
                self.doRollover()
                self._size = 0
            if self.stream is None:  # closed, then written to again
                self.stream = self._open()
            logging.StreamHandler.emit(self, record)
            self._size += len(line) + 1
        except Exception:
            self.handleError(record)

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        return False  # emit decides; the parent's check is what this class avoids


def setup_logging(settings: Settings) -> None:
    level = {"warn": "WARNING"}.get(settings.log_level, settings.log_level.upper())
    formatter = OnceFormatter(LOG_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    try:
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        combined = SizedRotatingFileHandler(
            settings.logs_dir / "combined.log", LOG_FILE_BYTES, LOG_FILE_BACKUPS
        )
        errors = SizedRotatingFileHandler(
            settings.logs_dir / "error.log", LOG_FILE_BYTES, LOG_FILE_BACKUPS
        )
        errors.setLevel(logging.ERROR)
        handlers += [combined, errors]
    except OSError as error:
        print(f"whatsapp-api: logging to files is off: {error}", file=sys.stderr)
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    quiet_expected_exceptions()


def quiet_expected_exceptions() -> None:
    """Expected refusals (a 4xx) are one access line, without a traceback; the unexpected
    ones are logged once, by the error handler, with the request id."""
    from app.errors import not_logged_yet

    # pykka logs, with its traceback, every exception an actor hands back to its caller
    # (an instance that is not connected, a bad phone number): the caller decides what it is.
    logging.getLogger("pykka").addFilter(_not_handed_to_a_caller)
    logging.getLogger("uvicorn.error").addFilter(not_logged_yet)


def _not_handed_to_a_caller(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Exception returned from")


if __name__ == "__main__":
    sys.exit(main())
