"""Storage on SQLite files: the event store (eventsourcing's SQLite persistence with live
subscriptions), the read models and their queries, the webhook cursors, the doctor check."""

from storage.sqlite.provider import SQLiteStorage

__all__ = ["SQLiteStorage"]
