"""SQLite read models (through sqlite-utils) and their tracking positions, in one file.

Rows and the position of the last event they reflect are committed in one
transaction, so a projection applies each event exactly once and resumes after a
crash from the position it last committed.

The file in service is named by a pointer file beside it (`<name>.current`), so that
`rebuild-projections` can build a complete new file and swap it in atomically while
the server runs. Every connection notices a swap at its next use and reopens.

One rebuild runs at a time: it holds an exclusive lock on `<name>.rebuild-lock` from the
moment it starts until its file is in service (or discarded), and starts by removing every
read-model file the pointer does not name, which is what a rebuild killed outright leaves
(its complete new file, if killed before the switch; the previous file, if killed after
it). The server removes the same at start, unless a rebuild holds the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import glob
import itertools
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils
from eventsourcing.persistence import IntegrityError

from projections.rows import Building, ReadModels, RebuildRunning, Rows, Table
from storage.sqlite.errors import translated, translated_errors

T = TypeVar("T")


class ReadModelStore(ReadModels):
    """The read models in service; a connection per thread."""

    def __init__(self, path: str | Path, *, follow_pointer: bool = True) -> None:
        self.base = Path(path)
        self.pointer = self.base.with_name(self.base.name + ".current")
        self._follow = follow_pointer
        self._local = threading.local()
        self.tables: dict[str, Table] = {}
        with translated_errors(), self.transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS tracking (name TEXT PRIMARY KEY, position INTEGER)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")

    # -- which file -----------------------------------------------------------------

    def current_file(self) -> Path:
        if self._follow:
            try:
                return self.base.with_name(self.pointer.read_text().strip())
            except FileNotFoundError:
                pass
        return self.base

    def _generation(self) -> tuple[int, int] | None:
        if not self._follow:
            return None
        try:
            stat = os.stat(self.pointer)
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    def switch_to(self, file: Path) -> None:
        """Put `file` (beside the base file) in service, atomically."""
        staging = self.pointer.with_name(self.pointer.name + ".new")
        staging.write_text(file.name)
        os.replace(staging, self.pointer)

    # -- connections ------------------------------------------------------------------

    @property
    def db(self) -> sqlite_utils.Database:
        generation = self._generation()
        db = getattr(self._local, "db", None)
        if db is None or self._local.generation != generation:
            if db is not None:
                db.conn.close()
            conn = sqlite3.connect(self.current_file(), isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            db = sqlite_utils.Database(conn)
            self._local.db = db
            self._local.generation = generation
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction on the file in service (re-checked once the lock is held)."""
        while True:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            if self._generation() == self._local.generation:
                break
            db.execute("ROLLBACK")  # swapped while we waited for the lock
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- the provider-neutral interface ---------------------------------------------------

    @translated
    def ensure(self, tables: Iterable[Table]) -> None:
        with self.transaction() as db:
            for table in tables:
                self.tables[table.name] = table
                db.table(table.name).create(
                    dict(table.columns),
                    pk=table.pk[0] if len(table.pk) == 1 else table.pk,
                    not_null=set(table.counters) or None,
                    defaults=dict.fromkeys(table.counters, 0) or None,
                    if_not_exists=True,
                )
                for columns, unique in table.indexes:
                    db.table(table.name).create_index(
                        list(columns), unique=unique, if_not_exists=True
                    )

    @translated
    def atomically(self, work: Callable[[Rows], T]) -> T:
        with self.transaction() as db:
            rows = SQLiteRows(db.conn, self.tables)
            result = work(rows)
            rows.flush()
        return result

    @translated
    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", [key]).fetchone()
        return row[0] if row else None

    @translated
    def position(self, name: str) -> int:
        row = self.db.execute("SELECT position FROM tracking WHERE name=?", [name]).fetchone()
        return row[0] if row else 0

    @translated
    def tracked_count(self) -> int:
        (count,) = self.db.execute("SELECT COUNT(*) FROM tracking").fetchone()
        return int(count)

    @translated
    def building(self) -> SQLiteBuilding:
        lock = self._lock_rebuilds()
        if lock is None:
            raise RebuildRunning(
                "another rebuild of these read models is running "
                f"(it holds {self._lock_file().name}); wait for it to finish"
            )
        try:
            self._remove_unnamed()
            return SQLiteBuilding(self, lock)
        except BaseException:
            lock.close()
            raise

    @translated
    def remove_leftovers(self) -> list[str]:
        lock = self._lock_rebuilds()
        if lock is None:
            return []  # a rebuild runs: what is beside these is its work
        with lock:
            return self._remove_unnamed()

    # -- one rebuild at a time, and what killed ones left --------------------------------

    def _lock_file(self) -> Path:
        return self.base.with_name(self.base.name + ".rebuild-lock")

    def _lock_rebuilds(self) -> Any:
        """The rebuild lock, held (closing the file releases it); None if another holds it."""
        handle = open(self._lock_file(), "ab")  # noqa: SIM115 - held until the rebuild ends
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        except BaseException:
            handle.close()
            raise
        return handle

    def _remove_unnamed(self) -> list[str]:
        """Remove every read-model file beside these that the pointer does not name (with
        the lock held); their names."""
        if not self._follow:
            return []
        current = self.current_file().name
        base = self.base
        keep = {current, f"{current}-wal", f"{current}-shm"}
        candidates = [
            *base.parent.glob(f"{glob.escape(base.name)}*"),
            *base.parent.glob(f"{glob.escape(base.stem)}.*.db*"),
        ]
        removed = []
        for path in sorted(set(candidates)):
            name = path.name
            if name in keep or name in (self.pointer.name, self._lock_file().name):
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(name)
        return removed

    @translated
    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None


class SQLiteRows(Rows):
    """Writes buffered per table, then sent as one `executemany` per run of one statement.

    Tables are independent, so each is flushed on its own. Within a table, changes to
    existing rows (`update`, `advance`) run before the rows inserted in this batch, and
    are applied in memory to the earlier inserted rows they match: the same result as in
    event order, with every kind of statement in one run (a message history alternates
    inserts and status changes, which would otherwise be runs of one). `get` flushes
    its table first, so reads see every earlier write.
    """

    def __init__(self, conn: sqlite3.Connection, tables: Mapping[str, Table]) -> None:
        self.conn = conn
        self.tables = tables
        self._pending: dict[str, _Pending] = {}

    def _table(self, table: str) -> _Pending:
        pending = self._pending.get(table)
        if pending is None:
            pending = self._pending[table] = _Pending()
        return pending

    def insert(self, table: str, row: dict[str, Any]) -> None:
        pending = self._table(table)
        if pending.sums:
            self.flush(table)
            pending = self._table(table)
        pending.insert(row)

    def update(self, table: str, key: Any, values: dict[str, Any]) -> None:
        pk = self.tables[table].pk
        match = _key_values(pk, key)
        pending = self._change(table, tuple(values), pk)
        if pending.inserts:
            for row in pending.matching(pk, match):
                row.update(values)
        pending.changes.append((_update_sql(table, tuple(values), pk), (*values.values(), *match)))

    def advance(
        self,
        table: str,
        where: dict[str, Any],
        column: str,
        value: str,
        rank: Mapping[str, int],
        also: dict[str, Any] | None = None,
    ) -> None:
        shape = tuple(where)
        match = tuple(where.values())
        wanted = rank.get(value, 0)
        extra = also or {}
        pending = self._change(table, (column, *extra), shape)
        if pending.inserts:
            for row in pending.matching(shape, match):
                if rank.get(row[column], 0) < wanted:  # as the CASE below: unranked is 0
                    row[column] = value
                    row.update(extra)
        sql = _advance_sql(table, shape, column, tuple(rank.items()), tuple(extra))
        pending.changes.append((sql, (value, *extra.values(), *match, wanted)))

    def _change(self, table: str, columns: tuple[str, ...], shape: tuple[str, ...]) -> _Pending:
        """The table's buffer, flushed first where a change cannot be applied in memory
        (after upserts, or when it changes the columns it is matched on)."""
        pending = self._table(table)
        if pending.upserts or pending.sums or not pending.can_match(columns, shape):
            self.flush(table)
            pending = self._table(table)
        return pending

    def add(self, table: str, key: dict[str, Any], counts: dict[str, int]) -> None:
        spec = self.tables[table]
        pending = self._table(table)
        if pending.order or pending.changes:  # other writes first: only adds are summed
            self.flush(table)
            pending = self._table(table)
        # Adds to one row commute: a batch sends each row's sums once.
        row = tuple([key[k] for k in spec.pk])
        total = pending.sums.get(row)
        if total is None:
            pending.sums[row] = dict(counts)
        else:
            for column, n in counts.items():
                total[column] = total.get(column, 0) + n

    def merge(self, table: str, row: dict[str, Any], keep: tuple[str, ...]) -> None:
        sql = _merge_sql(table, tuple(row), self.tables[table].pk, keep)
        pending = self._table(table)
        if pending.sums:
            self.flush(table)
            pending = self._table(table)
        pending.upsert(sql, tuple(row.values()))

    def get(self, table: str, key: Any) -> dict[str, Any] | None:
        self.flush(table)
        pk = self.tables[table].pk
        where = " AND ".join(f"{k} = ?" for k in pk)
        cursor = self.conn.execute(f"SELECT * FROM {table} WHERE {where}", _key_values(pk, key))
        found = cursor.fetchone()
        if found is None:
            return None
        return dict(zip([d[0] for d in cursor.description], found, strict=True))

    def find(self, table: str, where: dict[str, Any]) -> list[dict[str, Any]]:
        self.flush(table)
        conditions = " AND ".join(f"{k} = ?" for k in where)
        cursor = self.conn.execute(
            f"SELECT * FROM {table} WHERE {conditions}", tuple(where.values())
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, found, strict=True)) for found in cursor.fetchall()]

    def position(self, name: str) -> int:
        row = self.conn.execute("SELECT position FROM tracking WHERE name=?", [name]).fetchone()
        return row[0] if row else 0

    def track(self, name: str, position: int) -> None:
        if self.position(name) >= position:
            raise IntegrityError(f"{name} already processed position {position}")
        self.conn.execute(
            "INSERT INTO tracking (name, position) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET position=excluded.position",
            [name, position],
        )

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            [key, value],
        )

    def flush(self, table: str | None = None) -> None:
        for name in [table] if table is not None else list(self._pending):
            pending = self._pending.pop(name, None)
            if pending is None:
                continue
            for sql, run in itertools.groupby(pending.changes, key=operator.itemgetter(0)):
                self.conn.executemany(sql, [params for _, params in run])
            pending.send_tail(self.conn, name)
            if pending.sums:
                spec = self.tables[name]
                counters = _sorted(spec.counters)
                # Every counter in every row (zeros added): one statement for all of them.
                self.conn.executemany(
                    _add_sql(name, spec.pk, counters),
                    [
                        (*row, *[sums.get(c, 0) for c in counters])
                        for row, sums in pending.sums.items()
                    ],
                )


class _Pending:
    """One table's buffered writes: changes to existing rows, then new rows and upserts."""

    __slots__ = ("changes", "index", "inserts", "order", "sums", "upserts")

    def __init__(self) -> None:
        self.sums: dict[tuple[Any, ...], dict[str, int]] = {}  # counters to add, by key
        self.changes: list[tuple[str, Sequence[Any]]] = []
        self.inserts: list[dict[str, Any]] = []
        self.upserts = 0
        self.order: list[dict[str, Any] | tuple[str, Sequence[Any]]] = []
        # Inserted rows by the values of the columns changes match them on, per shape.
        self.index: dict[tuple[str, ...], tuple[Callable[[Any], Any], dict[Any, list[Any]]]] = {}

    def insert(self, row: dict[str, Any]) -> None:
        self.inserts.append(row)
        self.order.append(row)
        for values, rows in self.index.values():
            rows.setdefault(values(row), []).append(row)

    def upsert(self, sql: str, params: Sequence[Any]) -> None:
        self.upserts += 1
        self.order.append((sql, params))

    def can_match(self, columns: tuple[str, ...], shape: tuple[str, ...]) -> bool:
        matched_on = {c for s in self.index for c in s} | set(shape)
        return not matched_on.intersection(columns)

    def matching(self, shape: tuple[str, ...], values: tuple[Any, ...]) -> list[dict[str, Any]]:
        found = self.index.get(shape)
        if found is None:
            # One column gives a bare value, several a tuple: keys made the same way.
            getter = operator.itemgetter(*shape)
            found = self.index[shape] = (getter, {})
            for row in self.inserts:
                found[1].setdefault(getter(row), []).append(row)
        return found[1].get(values if len(values) > 1 else values[0], [])

    def send_tail(self, conn: sqlite3.Connection, table: str) -> None:
        """The new rows and upserts, in order, one executemany per run of one statement."""
        sql, run = "", list[Sequence[Any]]()
        statement: str
        params: Sequence[Any]
        for item in self.order:
            if type(item) is dict:
                statement, params = _insert_sql(table, tuple(item)), tuple(item.values())
            else:
                statement, params = item
            if statement != sql:
                if run:
                    conn.executemany(sql, run)
                sql, run = statement, []
            run.append(params)
        if run:
            conn.executemany(sql, run)


@functools.cache
def _sorted(names: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(names))


def _key_values(pk: tuple[str, ...], key: Any) -> tuple[Any, ...]:
    return (key,) if len(pk) == 1 else tuple(key[k] for k in pk)


@functools.cache
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


@functools.cache
def _update_sql(table: str, columns: tuple[str, ...], pk: tuple[str, ...]) -> str:
    sets = ", ".join(f"{c} = ?" for c in columns)
    return f"UPDATE {table} SET {sets} WHERE {' AND '.join(f'{k} = ?' for k in pk)}"


@functools.cache
def _advance_sql(
    table: str,
    where: tuple[str, ...],
    column: str,
    rank: tuple[tuple[str, int], ...],
    also: tuple[str, ...] = (),
) -> str:
    cases = " ".join(f"WHEN '{s}' THEN {r}" for s, r in rank)
    conditions = " AND ".join(f"{c} = ?" for c in where)
    sets = ", ".join(f"{c} = ?" for c in (column, *also))
    return (
        f"UPDATE {table} SET {sets} WHERE {conditions} AND (CASE {column} {cases} ELSE 0 END) < ?"
    )


@functools.cache
def _add_sql(table: str, pk: tuple[str, ...], counters: tuple[str, ...]) -> str:
    columns = (*pk, *counters)
    updates = ", ".join(f"{c} = {c} + excluded.{c}" for c in counters)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(pk)}) DO UPDATE SET {updates}"
    )


@functools.cache
def _merge_sql(
    table: str, columns: tuple[str, ...], pk: tuple[str, ...], keep: tuple[str, ...]
) -> str:
    updates = ", ".join(f"{c} = COALESCE(excluded.{c}, {table}.{c})" for c in keep)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(pk)}) DO UPDATE SET {updates}"
    )


class SQLiteBuilding(Building):
    """A new read-model file beside the one in service (`<stem>.<ns>.db`, `.building` until
    it is complete), swapped in through the pointer file."""

    store: ReadModelStore  # the new read models

    def __init__(self, live: ReadModelStore, lock: Any) -> None:
        self.live = live
        self._lock = lock  # the rebuild lock, released once in service or discarded
        base = live.base
        self.target = base.with_name(f"{base.stem}.{time.time_ns()}.db")
        self.file = self.target.with_name(self.target.name + ".building")
        self.store = ReadModelStore(self.file, follow_pointer=False)

    @translated
    def fast(self) -> None:
        # No journal (each page written once, not to a WAL and then again), a big cache,
        # no fsync until the file is made durable once, before the swap: a failed or
        # interrupted rebuild deletes it anyway.
        for pragma in (
            "journal_mode=OFF",
            "synchronous=OFF",
            "cache_size=-262144",
            "temp_store=MEMORY",
        ):
            self.store.db.execute(f"PRAGMA {pragma}")

    @translated
    def copy(self, tables: Sequence[str], tracking_name: str) -> int:
        source = self.live.current_file()
        conn = sqlite3.connect(self.file, isolation_level=None, timeout=30)
        try:
            conn.execute("ATTACH DATABASE ? AS live", [str(source)])
            conn.execute("BEGIN")  # one snapshot of the live file for every table and the position
            row = conn.execute(
                "SELECT position FROM live.tracking WHERE name=?", [tracking_name]
            ).fetchone()
            for table in tables:
                conn.execute(f"INSERT INTO main.{table} SELECT * FROM live.{table}")
            conn.execute("COMMIT")
            conn.execute("DETACH DATABASE live")
        finally:
            conn.close()
        return row[0] if row else 0

    @translated
    def swap_in(self, catch_up: Callable[[], None]) -> str:
        live = self.live
        # Hold the old file's write lock: the live projection waits, nothing is missed.
        old = live.db
        old.execute("BEGIN IMMEDIATE")
        try:
            catch_up()
            # In service as every read-model file is: WAL. Then durable, before the swap.
            self.store.db.execute("PRAGMA synchronous=FULL")
            self.store.db.execute("PRAGMA journal_mode=WAL")
            self.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.store.close()
            descriptor = os.open(self.file, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            self.file.rename(self.target)
            _remove(self.file, journal_only=True)  # the checkpointed WAL's leftovers
            previous = live.current_file()
            live.switch_to(self.target)
        finally:
            old.execute("ROLLBACK")
        live.close()
        try:
            if previous != self.target:
                _remove(previous)
        finally:
            self._lock.close()
        return self.target.name

    @translated
    def discard(self) -> None:
        try:
            self.store.close()
            _remove(self.file)
        finally:
            self._lock.close()


def _remove(path: Path, journal_only: bool = False) -> None:
    """Delete a SQLite file and its WAL and shared-memory files (or only those two)."""
    for suffix in ("-wal", "-shm") if journal_only else ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
