"""What the MongoDB read-model queries expect of the collections: columns and indexes.

Both come from the tables the projections declare (`projections.catalog.TABLES`), which
the read-model store also creates its collections and indexes from, so they cannot drift.
"""

from __future__ import annotations

from projections import catalog

# The columns of each table, so a row read back has every column even where a document
# leaves a null field out.
COLUMNS: dict[str, tuple[str, ...]] = {t.name: tuple(t.columns) for t in catalog.TABLES}
Keys = list[tuple[str, int]]

# Indexes two queries name as hints, so a missing index is a loud error, not a silent
# scan: usage by user (the primary key's fields) and activity by instance and time.
USAGE_KEY: Keys = [("user_id", 1), ("instance_id", 1), ("day", 1)]
ACTIVITY_KEY: Keys = [("instance_id", 1), ("created_at", 1)]
