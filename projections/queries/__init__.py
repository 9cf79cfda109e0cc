"""Read-model queries: the interface the app asks (`ReadModels`) and one implementation
per storage provider (`sqlite.SqliteReadModels`, `mongo.MongoReadModels`)."""

from projections.queries.base import (
    Collections,
    Counts,
    Page,
    ReadModels,
    Row,
    Window,
    zero_usage,
)

__all__ = ["Collections", "Counts", "Page", "ReadModels", "Row", "Window", "zero_usage"]
