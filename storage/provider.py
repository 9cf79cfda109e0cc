"""The one interface every storage provider implements, and what it raises.

A provider holds everything kept on one kind of storage: the event store (as eventsourcing
infrastructure for the application), the read models and their queries, the webhook
delivery cursors, and what `/health` and `whatsapp-api doctor` say about it. `app/` builds
one from the settings (`app.storage.open_storage`) and hands its parts down.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from projections.queries import ReadModelQueries
from projections.rows import ReadModels
from storage.cluster import ClusterStore
from storage.recorder import EventRecorder


class StoreUnavailable(Exception):
    """The event store cannot be opened; the message says why in one line."""


@dataclass(frozen=True)
class Diagnosis:
    """What `whatsapp-api doctor` says about the event store: a level, a message, a fix."""

    level: Literal["ok", "warn", "fail"]
    message: str
    fix: str = ""


class WebhookCursors(ABC):
    """How far each instance's webhook delivery got past events it had nothing to send for."""

    @abstractmethod
    def get(self, instance_id: str) -> int:
        """The stored position, 0 if none."""

    @abstractmethod
    def set(self, instance_id: str, position: int) -> None:
        """Store `position` unless a higher one is stored already."""

    @abstractmethod
    def close(self) -> None:
        """Release what the cursors hold."""


@dataclass(frozen=True)
class BackedUp:
    """The event store in a backup: its last position, its events, its webhook cursors."""

    position: int
    events: int
    cursors: int


Step = Callable[[str, int, "int | None"], None]
"""Progress of a long task: (what, done, total or None when not known)."""


class StorageProvider(ABC):
    """Where everything is kept. Errors of the driver never leave a provider: they are
    eventsourcing's persistence errors (`PersistenceError` and its PEP 249 subclasses)."""

    name: str  # what /health and the logs call it

    @abstractmethod
    def infrastructure(self, env: Environment, *, create: bool) -> InfrastructureFactory[Any]:
        """eventsourcing's infrastructure for an application over the event store
        (`env` is the application's; the provider adds its keys). Without `create`, a
        missing event store is StoreUnavailable, and nothing is created."""

    @abstractmethod
    def read_models(self) -> ReadModels:
        """The read models in service (a new store object at each call)."""

    @abstractmethod
    def queries(self, read_models: ReadModels) -> ReadModelQueries:
        """The read-model queries over `read_models`, made by `read_models()`."""

    @abstractmethod
    def cursors(self) -> WebhookCursors:
        """Where webhook delivery keeps its positions, beside the event store."""

    @abstractmethod
    def details(self) -> dict[str, str]:
        """What /health and the start-up log say about this storage (may ask the server)."""

    @abstractmethod
    def diagnose(self) -> Diagnosis:
        """Is the event store there, reachable and sound (for `whatsapp-api doctor`)."""

    @abstractmethod
    def unavailable(self, error: BaseException) -> StoreUnavailable:
        """`error`, met while opening the event store, as one line that says where."""

    def cluster(self, recorder: EventRecorder) -> ClusterStore:
        """Membership and leases of several nodes sharing this storage, over the event
        store of `recorder` (made by `infrastructure`). Only a provider whose storage
        several servers can share has them."""
        raise NotImplementedError(f"{self.name} storage runs one node")

    @abstractmethod
    def backup(self, into: Path, step: Step) -> BackedUp:
        """Write the webhook cursors, then the event store as of one moment, as files under
        `into`, while a server may be writing: no cursor ahead of the events (`whatsapp-api
        backup`; the read models are left out, a restore rebuilds them)."""

    @abstractmethod
    def held(self) -> list[str]:
        """What the event store and the cursors hold, said for a person (empty: nothing)."""

    @abstractmethod
    def erase(self) -> None:
        """Delete the event store, the cursors and the read models (`restore --force`)."""

    @abstractmethod
    def restore(self, source: Path, backed_up: BackedUp, step: Step) -> None:
        """Write what `backup` wrote under `source` into this empty storage."""

    @abstractmethod
    def close(self) -> None:
        """Release what the provider holds (after everything built from it is closed)."""


def one_line(error: BaseException) -> str:
    """A driver's error message on one line, without pymongo's topology dump."""
    text = str(error) or type(error).__name__
    return text.split(", Timeout:")[0].splitlines()[0]
