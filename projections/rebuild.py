"""`whatsapp-api rebuild-projections`: rebuild read models from the event store alone.

The rebuild writes complete new read models beside the ones in service (a new SQLite
file, or MongoDB collections of a new generation), then, holding the live projection
still, catches up to the store's last event and puts them in service atomically. The
server keeps answering from the old read models until that moment; an interrupted or
failed rebuild removes what it made and changes nothing.

Read models not named on the command line are copied from a consistent snapshot of
the ones in service and kept current through the same pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application

from projections import catalog
from projections.base import Dispatch, ReadModelProjection
from projections.rows import ReadModels, Rows

log = logging.getLogger(__name__)

PAGE = 5000

Progress = Callable[[int, int], None]


@dataclass
class RebuildResult:
    events: int
    position: int
    seconds: float
    serving: str  # what is in service now: a file name, or a generation of collections


def check_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in catalog.NAMES]
    if unknown:
        raise ValueError(
            f"unknown read model(s): {', '.join(unknown)} (known: {', '.join(catalog.NAMES)})"
        )


def rebuild(
    app: Application[Any],
    live: ReadModels,
    names: Sequence[str] = (),
    progress: Progress | None = None,
) -> RebuildResult:
    """Rebuild the named read models (all when none are named) and swap them in."""
    check_names(names)
    # Read models of another shape cannot lend tables: rebuild everything then.
    chosen = (
        set(names or catalog.NAMES)
        if live.meta("signature") == catalog.SIGNATURE
        else set(catalog.NAMES)
    )
    started = time.perf_counter()
    building = live.building()
    try:
        fresh = building.store
        projections = catalog.build(fresh)
        building.fast()
        fresh.ensure(catalog.TABLES)
        fresh.atomically(lambda rows: rows.set_meta("signature", catalog.SIGNATURE))
        kept = [t for p in catalog.PROJECTIONS if p.name not in chosen for t in catalog.tables(p)]
        kept_since = building.copy(kept, catalog.TRACKING_NAME) if kept else 0
        active = [(p, 0 if p.name in chosen else kept_since) for p in projections]
        position, count = 0, 0

        def catch_up() -> None:  # to the event store's head as it is now
            nonlocal position, count
            head = app.recorder.max_notification_id() or 0
            position, more = _catch_up(app, fresh, active, position, head, progress)
            count += more

        catch_up()
        catch_up()  # what arrived during the first pass, so the held window below stays short
        serving = building.swap_in(catch_up)  # with the live projection held still
    except BaseException:
        building.discard()
        raise
    return RebuildResult(count, position, time.perf_counter() - started, serving)


def _catch_up(
    app: Application[Any],
    fresh: ReadModels,
    active: list[tuple[ReadModelProjection, int]],
    position: int,
    head: int,
    progress: Progress | None,
) -> tuple[int, int]:
    """Apply events (position, head] to the new read models; return (position, events)."""
    count = 0
    mapper = app.mapper
    dispatch = Dispatch([p for p, _ in active], [since for _, since in active])
    # Resume from what the new read models have committed (a provider may run the final
    # catch-up again after a conflict).
    position = max(position, fresh.position(catalog.TRACKING_NAME))
    while position < head:
        page = app.recorder.select_notifications(
            start=position, limit=PAGE, stop=head, inclusive_of_start=False
        )
        if not page:
            break

        def work(rows: Rows, page: Sequence[Any] = page) -> None:
            for notification in page:
                dispatch(mapper.to_domain_event(notification), notification.id, rows)
            dispatch.finish(rows)
            rows.track(catalog.TRACKING_NAME, page[-1].id)

        fresh.atomically(work)
        position = page[-1].id
        count += len(page)
        if progress is not None:
            progress(position, head)
    return position, count
