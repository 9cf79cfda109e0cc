"""`whatsapp-api rebuild-projections`: rebuild read models from the event store alone.

The rebuild writes a complete new read-model file beside the one in service, then,
holding the old file's write lock (so the live projection cannot move on), catches up
to the store's last event and switches the pointer file atomically. The server keeps
answering from the old file until that moment; an interrupted or failed rebuild
deletes its unfinished file and changes nothing.

Read models not named on the command line are copied from a consistent snapshot of
the file in service and kept current through the same pass.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventsourcing.application import Application

from projections import catalog
from projections.base import Dispatch, ReadModelProjection
from projections.store import ReadModelStore

log = logging.getLogger(__name__)

PAGE = 5000

Progress = Callable[[int, int], None]


@dataclass
class RebuildResult:
    events: int
    position: int
    seconds: float
    file: Path


def check_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in catalog.NAMES]
    if unknown:
        raise ValueError(f"unknown read model(s): {', '.join(unknown)} "
                         f"(known: {', '.join(catalog.NAMES)})")


def rebuild(
    app: Application[Any], live: ReadModelStore, names: Sequence[str] = (),
    progress: Progress | None = None,
) -> RebuildResult:
    """Rebuild the named read models (all when none are named) and swap them in."""
    check_names(names)
    # A file of another shape cannot lend tables: rebuild everything then.
    chosen = set(names or catalog.NAMES) if live.meta("signature") == catalog.SIGNATURE else set(catalog.NAMES)
    started = time.perf_counter()
    target = live.base.with_name(f"{live.base.stem}.{time.time_ns()}.db")
    for stale in live.base.parent.glob(f"{live.base.stem}.*.db.building*"):
        stale.unlink(missing_ok=True)
    building = target.with_name(target.name + ".building")
    fresh = ReadModelStore(building, follow_pointer=False)
    try:
        projections = catalog.build(fresh)
        # Nobody reads this file until the swap, and a crash deletes it: no journal, a big
        # cache, no fsync until it is made durable once, before the swap.
        for pragma in ("synchronous=OFF", "cache_size=-262144", "temp_store=MEMORY"):
            fresh.db.execute(f"PRAGMA {pragma}")
        with fresh.transaction() as db:
            for projection in projections:
                projection.create_tables(db)
            fresh.set_meta(db, "signature", catalog.SIGNATURE)
        kept_since = _copy_kept(live, fresh, [p for p in catalog.PROJECTIONS if p.name not in chosen])
        active = [
            (p, 0 if p.name in chosen else kept_since) for p in projections
        ]
        head = app.recorder.max_notification_id() or 0
        position, count = _catch_up(app, fresh, active, 0, head, progress)
        # Hold the old file's write lock: the live projection waits, nothing is missed.
        old = live.db
        old.execute("BEGIN IMMEDIATE")
        try:
            head = app.recorder.max_notification_id() or 0
            position, more = _catch_up(app, fresh, active, position, head, progress)
            count += more
            fresh.db.execute("PRAGMA synchronous=FULL")
            fresh.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            fresh.close()
            building.rename(target)
            for suffix in ("-wal", "-shm"):
                Path(str(building) + suffix).unlink(missing_ok=True)
            previous = live.current_file()
            live.switch_to(target)
        finally:
            old.execute("ROLLBACK")
    except BaseException:
        fresh.close()
        for leftover in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
            leftover.unlink(missing_ok=True)
        raise
    live.close()
    if previous != target:
        for old_file in (previous, Path(f"{previous}-wal"), Path(f"{previous}-shm")):
            old_file.unlink(missing_ok=True)
    return RebuildResult(count, position, time.perf_counter() - started, target)


def _copy_kept(
    live: ReadModelStore, fresh: ReadModelStore, kept: list[type[ReadModelProjection]]
) -> int:
    """Copy the tables of read models not being rebuilt; return their position."""
    if not kept:
        return 0
    source = live.current_file()
    conn = sqlite3.connect(fresh.base, isolation_level=None, timeout=30)
    try:
        conn.execute("ATTACH DATABASE ? AS live", [str(source)])
        conn.execute("BEGIN")  # one snapshot of the live file for every table and the position
        row = conn.execute(
            "SELECT position FROM live.tracking WHERE name=?", [catalog.TRACKING_NAME]
        ).fetchone()
        for projection in kept:
            for table in catalog.tables(projection):
                conn.execute(f"INSERT INTO main.{table} SELECT * FROM live.{table}")
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE live")
    finally:
        conn.close()
    return row[0] if row else 0


def _catch_up(
    app: Application[Any], fresh: ReadModelStore,
    active: list[tuple[ReadModelProjection, int]], position: int, head: int,
    progress: Progress | None,
) -> tuple[int, int]:
    """Apply events (position, head] to the new file; return (position, events)."""
    count = 0
    mapper = app.mapper
    dispatch = Dispatch([p for p, _ in active], [since for _, since in active])
    while position < head:
        page = app.recorder.select_notifications(
            start=position, limit=PAGE, stop=head, inclusive_of_start=False
        )
        if not page:
            break
        with fresh.transaction() as db:
            for notification in page:
                dispatch(mapper.to_domain_event(notification), notification.id, db)
            fresh.track(db, catalog.TRACKING_NAME, page[-1].id)
        position = page[-1].id
        count += len(page)
        if progress is not None:
            progress(position, head)
    return position, count
