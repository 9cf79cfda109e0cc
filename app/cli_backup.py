"""`whatsapp-api backup` and `whatsapp-api restore`, with progress bars (see app/backup.py)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eventsourcing.persistence import PersistenceError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from app import backup as backups
from app.config import Settings
from storage.provider import Step, StoreUnavailable, one_line


@contextmanager
def progress_bars() -> Iterator[Step]:
    """One bar per kind of work, made the first time it is reported. On stderr, and only on
    a terminal, and gone when done: what stays is the one line that says what happened."""
    from rich.console import Console

    columns = (
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    console = Console(stderr=True)
    with Progress(
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def step(what: str, done: int, total: int | None) -> None:
            if what not in tasks:
                tasks[what] = bars.add_task(what, total=total)
            bars.update(tasks[what], completed=done, total=total)

        yield step


def backup_command(settings: Settings, output: Path | None) -> int:
    target = output or backups.default_output()
    started = time.perf_counter()
    try:
        with progress_bars() as step:
            manifest = backups.backup(settings, target, step)
    except (backups.BackupError, StoreUnavailable, PersistenceError, OSError) as error:
        # OSError: no such directory for --output, a full disk, no permission.
        print(f"whatsapp-api: backup failed: {one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("whatsapp-api: backup interrupted; nothing was written", file=sys.stderr)
        return 130
    size = target.stat().st_size
    secret = (
        "the JWT secret"
        if manifest.jwtSecret
        else "no JWT secret (JWT_SECRET is set: keep it with the backup)"
    )
    print(
        f"backed up to {target} ({size / 1e6:,.1f} MB) in {time.perf_counter() - started:.1f} s: "
        f"the {manifest.provider} event store to position {manifest.position} "
        f"({manifest.events:,} events), {manifest.webhookCursors} webhook cursor(s), {secret}, "
        f"the session files of {manifest.instances} instance(s)"
    )
    return 0


def restore_command(settings: Settings, archive: Path, force: bool) -> int:
    from app.cli import rebuild_command

    try:
        with progress_bars() as step:
            manifest = backups.restore(settings, archive, force, step)
    except backups.DamagedBackup as error:
        print(f"whatsapp-api: {archive} is damaged: {error}; nothing was restored", file=sys.stderr)
        return 1
    except (backups.BackupError, StoreUnavailable, PersistenceError, OSError) as error:
        # OSError: a full disk or no permission while unpacking (the staging directory
        # is removed; what was there before is untouched unless --force had erased it).
        print(f"whatsapp-api: restore failed: {one_line(error)}", file=sys.stderr)
        return 1
    # The read models are not in a backup: rebuild them all from the restored events.
    rebuilt = rebuild_command(settings, [])
    if rebuilt != 0:
        return rebuilt
    users, instances, messages = _counts(settings)
    print(
        f"restored {archive} (taken {manifest.created} by version {manifest.serverVersion}): "
        f"the {manifest.provider} event store to position {manifest.position} "
        f"({manifest.events:,} events): {users} user(s), {instances} instance(s), "
        f"{messages:,} message(s) sent; {manifest.webhookCursors} webhook cursor(s); "
        f"{'the JWT secret' if manifest.jwtSecret else 'no JWT secret (set JWT_SECRET as before)'}; "
        f"the session files of {manifest.instances} instance(s)"
    )
    return 0


def _counts(settings: Settings) -> tuple[int, int, int]:
    """Users, live instances and messages sent, from the rebuilt read models."""
    from app.storage import open_storage

    storage = open_storage(settings)
    read_models = storage.read_models()
    try:
        queries = storage.queries(read_models)
        usage = queries.usage_of_system()
        return (
            queries.user_counts().total,
            queries.instance_counts().total,
            usage.get("messages_sent", 0),
        )
    finally:
        read_models.close()
        storage.close()
