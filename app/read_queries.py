"""Which read-model queries the server asks: chosen by DATABASE_PROVIDER, here only."""

from __future__ import annotations

from typing import Any

from app.config import Settings
from projections.queries import ReadModelQueries
from projections.queries.mongo import MongoReadModels
from projections.queries.sqlite import SqliteReadModels


def open_read_models(settings: Settings, store: Any) -> ReadModelQueries:
    """The queries over `store`, the read-model store in service for the provider.

    On SQLite the store gives the file in service as `store.db`; on MongoDB it gives the
    collections in service as `store.collection(name)` (see `projections.queries.Collections`).
    """
    if settings.database_provider == "mongodb":
        if not callable(getattr(store, "collection", None)):
            raise TypeError("the MongoDB read-model queries need a store with collection(name)")
        return MongoReadModels(store)
    return SqliteReadModels(store)
