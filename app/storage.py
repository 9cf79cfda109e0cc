"""Which storage the server keeps everything in: the one place that knows the providers."""

from __future__ import annotations

from app.config import Settings
from storage.provider import StorageProvider


def open_storage(settings: Settings, *, timeout: float = 10.0) -> StorageProvider:
    """The storage provider the settings name (`timeout`: how long to wait for a server)."""
    if settings.database_provider == "mongodb":
        from storage.mongodb import MongoStorage

        assert settings.database_url is not None  # the settings require it with mongodb
        return MongoStorage(settings.database_url, timeout=timeout)
    from storage.sqlite import SQLiteStorage

    return SQLiteStorage(
        events=settings.sqlite_path,
        read_models=settings.read_models_path,
        cursors=settings.data_dir / "webhooks.db",
    )
