"""A second process for the MongoDB concurrency tests: appends events, prints a summary.

python -m tests.mongo_appender URL DATABASE OWN_ID SHARED_ID COUNT

Appends COUNT single-event saves to its own aggregate OWN_ID and COUNT to SHARED_ID, which
other writers append to as well: on a version conflict it reads the last version again and
retries, as an application reloading its aggregate would.
"""

from __future__ import annotations

import sys
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent

from storage.mongodb.datastore import MongoDatastore
from storage.mongodb.events import MongoApplicationRecorder

MAX_CONFLICTS = 1000  # each conflict means another appender got in: bounded, never endless


def append_to_shared(recorder: MongoApplicationRecorder, shared: UUID, label: str) -> int:
    """Append one event to the shared aggregate; return how many conflicts it took."""
    conflicts = 0
    while conflicts < MAX_CONFLICTS:
        last = recorder.select_events(shared, desc=True, limit=1)
        version = last[0].originator_version + 1 if last else 1
        try:
            recorder.insert_events([StoredEvent(shared, version, "shared", label.encode())])
            return conflicts
        except IntegrityError:
            conflicts += 1
    raise RuntimeError(f"{label}: no append to the shared aggregate after {conflicts} conflicts")


def main(url: str, database: str, own: str, shared: str, count: int) -> None:
    datastore = MongoDatastore(url, database)
    recorder = MongoApplicationRecorder(datastore, "stored_events")
    conflicts = 0
    for i in range(1, count + 1):
        recorder.insert_events([StoredEvent(UUID(own), i, "own", b"own")])
        conflicts += append_to_shared(recorder, UUID(shared), own)
    datastore.close()
    print(f"appended {2 * count} events, {conflicts} conflicts", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
