"""Read-model queries: the interface the app asks (`ReadModelQueries`); each storage provider
implements it (`storage.sqlite.queries`, `storage.mongodb.queries`)."""

from projections.queries.base import (
    Counts,
    Page,
    ReadModelQueries,
    Row,
    Window,
    zero_usage,
)

__all__ = ["Counts", "Page", "ReadModelQueries", "Row", "Window", "zero_usage"]
