"""`whatsapp-api events`: print the event history, optionally following it live."""

from __future__ import annotations

import json
import sys
from typing import Any
from uuid import UUID

from app import history
from app.config import Settings
from app.eventstore import EventStore, open_store
from app.storage import open_storage
from domain import timestamps
from storage.provider import StoreUnavailable

PAGE = 1000


def run(
    settings: Settings,
    instance: str | None,
    after: int,
    since: str | None,
    follow: bool,
    as_json: bool,
) -> int:
    originator = None
    if instance:
        try:
            originator = UUID(instance)
        except ValueError:
            print(f"whatsapp-api: '{instance}' is not an instance id", file=sys.stderr)
            return 2
    not_before = None
    if since:
        try:
            not_before = timestamps.parse(since)
        except timestamps.InvalidTime as error:
            print(f"whatsapp-api: --since {error} (got '{since}')", file=sys.stderr)
            return 2
        not_before_text = timestamps.iso_us(not_before)
    storage = open_storage(settings)
    try:
        store = open_store(storage, create=False)
    except StoreUnavailable as error:
        storage.close()
        print(f"whatsapp-api: {error}", file=sys.stderr)
        return 1
    try:
        while True:
            events = history.read(store, originator, after, PAGE)
            for event in events:
                after = event["position"]
                if not_before is not None and event["timestamp"] < not_before_text:
                    continue
                print(history.to_json(event) if as_json else line(event), flush=True)
            if len(events) == PAGE:
                continue
            if not follow:
                return 0
            _wait_for_more(store, after)
    except (KeyboardInterrupt, BrokenPipeError):
        return 0
    finally:
        store.close()
        storage.close()


def _wait_for_more(store: EventStore, after: int) -> None:
    subscription = store.recorder.subscribe(gt=after)
    with subscription:
        next(subscription)


def line(event: dict[str, Any]) -> str:
    details = " ".join(
        f"{k}={json.dumps(v, ensure_ascii=False)}"
        for k, v in event["data"].items()
        if v not in (None, "", {}, [])
    )
    return (
        f"{event['position']:>8}  {event['timestamp'][:23]}  {event['aggregateId'][:8]}  "
        f"{event['type']:<22} {details}"
    )
