"""The provider-neutral write side of the read models.

A projection's handlers describe what an event does to the rows through `Rows`, a unit
of work that one transaction applies together with the tracking position. Each
storage provider implements `Rows` and `ReadModels`; projections never learn which
one they run on. The handful of operations are the ones the read models need:

- `insert`: a new row (its key must be new);
- `update`: set columns of the row with this primary key (none: nothing happens);
- `advance`: set a column on the rows matching `where`, only where that moves the
  column forwards in a ranking (a message status never goes backwards), and with it
  the columns of `also` (a failure's error);
- `add`: add to counters of the row with this key, creating it with zeros first;
- `merge`: insert a row, or, if its key exists, overwrite only the `keep` columns whose
  new value is not None (a contact's name, once known, is kept);
- `get`: the row with this key, as it is in this unit of work (earlier writes included);
- `find`: the rows whose columns equal `where`, likewise (for changes that read a row
  they find by other columns than its key: a reaction names a message by its id).

Writes may be buffered and sent in groups; a provider must keep, per table, the order
in which writes were made, and make every earlier write visible to `get`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Table:
    """A read-model table: columns (name -> Python type), primary key, indexes."""

    name: str
    columns: Mapping[str, type]
    pk: tuple[str, ...]
    indexes: Sequence[tuple[tuple[str, ...], bool]] = ()  # (columns, unique)
    counters: frozenset[str] = field(default_factory=frozenset)  # NOT NULL DEFAULT 0


class Rows(ABC):
    """The writes of one transaction (see the module docstring for each operation)."""

    @abstractmethod
    def insert(self, table: str, row: dict[str, Any]) -> None: ...

    @abstractmethod
    def update(self, table: str, key: Any, values: dict[str, Any]) -> None: ...

    @abstractmethod
    def advance(
        self,
        table: str,
        where: dict[str, Any],
        column: str,
        value: str,
        rank: Mapping[str, int],
        also: dict[str, Any] | None = None,
    ) -> None: ...

    @abstractmethod
    def add(self, table: str, key: dict[str, Any], counts: dict[str, int]) -> None: ...

    @abstractmethod
    def merge(self, table: str, row: dict[str, Any], keep: tuple[str, ...]) -> None: ...

    @abstractmethod
    def get(self, table: str, key: Any) -> dict[str, Any] | None: ...

    @abstractmethod
    def find(self, table: str, where: dict[str, Any]) -> list[dict[str, Any]]: ...

    @abstractmethod
    def position(self, name: str) -> int:
        """The tracking position of `name` as this transaction sees it (0 if none)."""

    @abstractmethod
    def track(self, name: str, position: int) -> None:
        """Record `position` for `name`; IntegrityError if it is not beyond the last one."""

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...


class ReadModels(ABC):
    """A read-model store in service: its tables, transactions, positions and rebuilds."""

    @abstractmethod
    def ensure(self, tables: Iterable[Table]) -> None:
        """Create these tables and their indexes if they do not exist."""

    @abstractmethod
    def atomically(self, work: Callable[[Rows], T]) -> T:
        """Run `work` in one transaction and commit its writes (a provider may run it again
        after a conflict, so `work` must do nothing outside `Rows` it cannot repeat)."""

    @abstractmethod
    def position(self, name: str) -> int: ...

    @abstractmethod
    def meta(self, key: str) -> str | None: ...

    @abstractmethod
    def tracked_count(self) -> int:
        """How many projections have a tracking position here (0 for new read models)."""

    @abstractmethod
    def building(self) -> Building:
        """Empty read models beside these, for a rebuild; nobody reads them until `swap_in`."""

    def remove_leftovers(self) -> list[str]:
        """Remove what a killed rebuild left beside these, unless a rebuild runs now (every
        rebuild does it when it starts too); the names of what was removed."""
        return []

    @abstractmethod
    def close(self) -> None: ...


class RebuildRunning(RuntimeError):
    """Another rebuild of the same read models is running."""


class Building(ABC):
    """Read models under construction by a rebuild."""

    store: ReadModels

    @abstractmethod
    def fast(self) -> None:
        """Nothing reads these until the swap: trade durability for speed until `swap_in`."""

    @abstractmethod
    def copy(self, tables: Sequence[str], tracking_name: str) -> int:
        """Copy `tables` from the read models in service, from one consistent snapshot;
        return the tracking position of that snapshot."""

    @abstractmethod
    def swap_in(self, catch_up: Callable[[], None]) -> str:
        """With the live projection held still, run `catch_up` (which brings these read
        models to the event store's head) and put them in service atomically; the old
        ones are dropped. Returns a name for what is now in service."""

    @abstractmethod
    def discard(self) -> None:
        """Remove everything a failed or interrupted rebuild made."""
