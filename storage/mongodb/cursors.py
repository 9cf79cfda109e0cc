"""Webhook delivery cursors in the `webhook_cursors` collection of the event store's database."""

from __future__ import annotations

from typing import Any

from pymongo.database import Database

from storage.mongodb.datastore import translated_errors
from storage.provider import WebhookCursors

COLLECTION = "webhook_cursors"


class MongoCursors(WebhookCursors):
    """How far each instance's webhook delivery got.

    On the event store's database (majority writes), through the process's one client:
    closing them closes nothing (the storage provider owns the client).
    """

    def __init__(self, database: Database[dict[str, Any]]) -> None:
        self._cursors = database[COLLECTION]

    def get(self, instance_id: str) -> int:
        with translated_errors():
            document = self._cursors.find_one({"_id": instance_id})
        return int(document["position"]) if document else 0

    def set(self, instance_id: str, position: int) -> None:
        # $max: a slower writer never moves a cursor back.
        with translated_errors():
            self._cursors.update_one(
                {"_id": instance_id}, {"$max": {"position": position}}, upsert=True
            )

    def close(self) -> None:
        """Nothing to release: the client is the storage provider's."""
