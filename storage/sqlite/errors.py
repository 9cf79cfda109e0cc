"""sqlite3's exceptions as eventsourcing's persistence errors (the PEP 249 names), so
nothing above `storage/` needs to know them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from eventsourcing import persistence

from storage.errors import all_within, within

# Most specific first: the library's own SQLite datastore translates in the same order.
_TRANSLATIONS: tuple[tuple[type[sqlite3.Error], type[persistence.PersistenceError]], ...] = (
    (sqlite3.InterfaceError, persistence.InterfaceError),
    (sqlite3.DataError, persistence.DataError),
    (sqlite3.OperationalError, persistence.OperationalError),
    (sqlite3.IntegrityError, persistence.IntegrityError),
    (sqlite3.InternalError, persistence.InternalError),
    (sqlite3.ProgrammingError, persistence.ProgrammingError),
    (sqlite3.NotSupportedError, persistence.NotSupportedError),
    (sqlite3.DatabaseError, persistence.DatabaseError),
    (sqlite3.Error, persistence.PersistenceError),
)


@contextmanager
def translated_errors() -> Iterator[None]:
    """Raise sqlite3's errors as eventsourcing's persistence errors."""
    try:
        yield
    except sqlite3.Error as error:
        for theirs, ours in _TRANSLATIONS:
            if isinstance(error, theirs):
                raise ours(str(error)) from error
        raise  # not reached: sqlite3.Error is the last entry


# Decorators: a function, or every public method of a class, inside `translated_errors`.
translated = within(translated_errors)
translating = all_within(translated_errors)
