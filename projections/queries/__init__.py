"""Read-model queries: the interface the app asks (`ReadModelQueries`) and one implementation
per storage provider (`sqlite.SqliteReadModels`, `mongo.MongoReadModels`)."""

from projections.queries.base import (
    Collections,
    Counts,
    Page,
    ReadModelQueries,
    Row,
    Window,
    zero_usage,
)

__all__ = ["Collections", "Counts", "Page", "ReadModelQueries", "Row", "Window", "zero_usage"]
