"""The `whatsapp-api` command."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import sys

from app.config import ConfigError, Settings


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
        "events", help="print the event history (for auditing)",
        description="Print stored events in store order. One line each, or JSON lines.",
    )
    events.add_argument("--instance", metavar="ID", help="only this instance's events")
    events.add_argument("--after", metavar="POS", type=int, default=0,
                        help="only events after this position")
    events.add_argument("--since", metavar="TIME", help="only events at or after this ISO 8601 time")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument("--json", action="store_true", help="print JSON lines")
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"whatsapp-api: configuration error: {error}", file=sys.stderr)
        return 2

    if args.command == "serve":
        return serve_command(settings, args.host, args.port)
    if args.command == "events":
        from app import cli_events

        return cli_events.run(settings, args.instance, args.after, args.since, args.follow, args.json)
    return 1


def serve_command(settings: Settings, host: str | None, port: int | None) -> int:
    import uvicorn

    from app.server import create_app

    setup_logging(settings)
    uvicorn.run(
        create_app(settings), host=host or settings.host, port=port or settings.port,
        log_config=None, access_log=False, timeout_graceful_shutdown=20,
    )
    return 0


def setup_logging(settings: Settings) -> None:
    level = {"warn": "WARNING"}.get(settings.log_level, settings.log_level.upper())
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    try:
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        combined = logging.handlers.RotatingFileHandler(
            settings.logs_dir / "combined.log", maxBytes=10 * 1024 * 1024, backupCount=5
        )
        errors = logging.handlers.RotatingFileHandler(
            settings.logs_dir / "error.log", maxBytes=10 * 1024 * 1024, backupCount=5
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


if __name__ == "__main__":
    sys.exit(main())
