"""The process's one MongoDB client, and pymongo's errors as eventsourcing's.

`MongoDatastore` owns the client (thread-safe, pooled) and the event store's database; the
recorders, the read models and the webhook cursors of one process all use it. Transactions
retry what MongoDB says may be retried; every error that leaves is one of eventsourcing's
persistence errors (the PEP 249 names), never pymongo's.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from time import monotonic, sleep
from types import TracebackType
from typing import Any, Self, TypeVar

from eventsourcing.persistence import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from pymongo import MongoClient, uri_parser
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from storage.errors import all_within, within

T = TypeVar("T")
DUPLICATE_KEY = 11000
DEFAULT_DATABASE = "whatsapp-api"


class StandaloneServerError(OperationalError):
    """The server is not a replica set member: no transactions, no change streams."""


class MongoDatastore:
    """One pymongo client (thread-safe, pooled) and the event store's database."""

    def __init__(self, url: str, database: str, timeout: float = 10.0) -> None:
        self.client: MongoClient[dict[str, Any]] = MongoClient(
            url,
            uuidRepresentation="standard",
            tz_aware=True,
            serverSelectionTimeoutMS=int(timeout * 1000),
            connectTimeoutMS=int(timeout * 1000),
            appname="whatsapp-api",
        )
        self.db: Database[dict[str, Any]] = self.client.get_database(
            database,
            write_concern=WriteConcern("majority"),
            read_concern=ReadConcern("majority"),
        )
        self.timeout = timeout
        self._closed = False

    def replica_set(self) -> str:
        """The replica set's name; StandaloneServerError if the server is not in one."""
        with translated_errors():
            hello = self.client.admin.command("hello")
        name = hello.get("setName")
        if not name:
            host, port = self.client.address or ("?", "?")
            raise StandaloneServerError(
                f"MongoDB at {host}:{port} is a standalone server, not a replica set: "
                "transactions and change streams need one (start mongod with --replSet and "
                "run rs.initiate())"
            )
        return str(name)

    def transaction(self, body: Callable[[ClientSession], T]) -> T:
        """Run `body` in a multi-document transaction, retrying transient failures.

        A conflict (another appender holds the counter) clears as soon as that one commits,
        so conflicts are retried for up to six times the timeout. A lost server is retried
        for up to twice the timeout (20 s by default): inside the 30 s a caller of the group
        commit waits, so a save reported failed is not committed later.
        """
        started = monotonic()
        backoff = 0.001

        def may_retry(error: BaseException) -> bool:
            if not _transient(error):
                return False
            patience = self.timeout * (2 if isinstance(error, ConnectionFailure) else 6)
            return monotonic() - started < patience

        with translated_errors(), self.client.start_session() as session:
            while True:
                session.start_transaction(
                    read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
                )
                try:
                    result = body(session)
                except BaseException as error:
                    if session.in_transaction:
                        with contextlib.suppress(PyMongoError):
                            session.abort_transaction()
                    if may_retry(error):
                        backoff = _pause(backoff)
                        continue
                    raise
                if self._commit(session, started + self.timeout * 2):
                    return result
                backoff = _pause(backoff)

    @staticmethod
    def _commit(session: ClientSession, deadline: float) -> bool:
        """Commit; False if the whole transaction must run again."""
        while True:
            try:
                session.commit_transaction()
                return True
            except PyMongoError as error:
                if monotonic() >= deadline:
                    raise
                if error.has_error_label("UnknownTransactionCommitResult"):
                    continue  # committing again is safe: the server knows the outcome
                if error.has_error_label("TransientTransactionError"):
                    return False
                raise

    def read(self, body: Callable[[ClientSession], T]) -> T:
        """Run reads on one snapshot (a read-only transaction), so they see whole commits."""
        attempts = 0
        with translated_errors(), self.client.start_session() as session:
            while True:
                try:
                    with session.start_transaction(read_concern=ReadConcern("snapshot")):
                        return body(session)
                except PyMongoError as error:
                    attempts += 1
                    if not error.has_error_label("TransientTransactionError") or attempts == 5:
                        raise

    def close(self) -> None:
        # Called again by Application.__del__ after an explicit close: only once.
        if not self._closed:
            self._closed = True
            with contextlib.suppress(PyMongoError):
                self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _transient(error: BaseException) -> bool:
    return isinstance(error, PyMongoError) and error.has_error_label("TransientTransactionError")


def _pause(backoff: float) -> float:
    sleep(backoff * random.random())
    return min(backoff * 2, 0.05)


def _is_duplicate(error: PyMongoError) -> bool:
    if isinstance(error, DuplicateKeyError):
        return True
    if isinstance(error, BulkWriteError):
        return any(e.get("code") == DUPLICATE_KEY for e in error.details.get("writeErrors", []))
    return isinstance(error, OperationFailure) and error.code == DUPLICATE_KEY


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """pymongo's exceptions as the library's (PEP 249 named) persistence errors."""
    try:
        yield
    except PyMongoError as error:
        if _is_duplicate(error):
            raise IntegrityError(str(error)) from error
        if isinstance(error, ConnectionFailure):
            raise OperationalError(str(error)) from error
        if isinstance(error, OperationFailure):
            raise DatabaseError(str(error)) from error
        raise InterfaceError(str(error)) from error


# Decorators: a function, or every public method of a class, inside `translated_errors`.
translated = within(translated_errors)
translating = all_within(translated_errors)


def database_in(url: str) -> str | None:
    """The database named in a MongoDB URI's path, if any."""
    try:
        return uri_parser.parse_uri(url).get("database") or None
    except (PyMongoError, ValueError):
        return None
