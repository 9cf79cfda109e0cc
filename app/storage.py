"""Where the read models live: the one place that turns settings into a read-model store."""

from __future__ import annotations

from app.config import Settings
from projections.rows import ReadModels


def read_model_store(settings: Settings) -> ReadModels:
    """The read models in service for these settings (SQLite file, or MongoDB collections)."""
    if settings.database_provider == "mongodb":
        from app.eventstore import DEFAULT_MONGODB_DATABASE
        from app.mongodb import database_in
        from projections.mongo import MongoReadModelStore

        assert settings.database_url is not None  # the settings check it
        # Beside the event store's database, so their tracking and meta cannot clash.
        name = database_in(settings.database_url) or DEFAULT_MONGODB_DATABASE
        return MongoReadModelStore.from_url(settings.database_url, f"{name}_read")
    from projections.store import ReadModelStore

    return ReadModelStore(settings.read_models_path)
