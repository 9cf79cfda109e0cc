"""What several nodes keep in their shared database: members, leases and the fence.

`ClusterStore` is the interface; the MongoDB provider implements it (only MongoDB can hold
several nodes). Times are seconds since the epoch by the writing node's clock: nodes'
clocks must agree within a second (`whatsapp-api doctor` checks it), which the self-fencing
margin covers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.persistence import PersistenceError

#: The lease of the node that runs the singletons (projection writers, scheduled jobs).
LEADER = "leader"


@dataclass(frozen=True)
class NodeRecord:
    """A node as the others see it."""

    node_id: str
    url: str
    signature: str  # over id and URL, by the cluster secret (app.cluster.signing)
    started: float
    heartbeat: float
    expires: float
    draining: bool = False  # handing its instances over before it stops

    def live(self, now: float) -> bool:
        return self.expires > now


@dataclass(frozen=True)
class Lease:
    """Who owns something (an instance, by its id; or LEADER) and since which epoch.

    The epoch grows by one at every acquisition, so an owner that lost a lease and did not
    notice still holds the old epoch, which no append will accept (fencing)."""

    key: str
    owner: str | None
    epoch: int
    expires: float

    def held_by(self, node_id: str, now: float) -> bool:
        return self.owner == node_id and self.expires > now


class LeaseLost(PersistenceError):
    """An append of events whose lease this node no longer holds (or never held): refused,
    nothing of the batch was stored."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = sorted(set(keys))
        super().__init__(f"not the lease holder of {', '.join(self.keys)}")


#: For an event about to be appended (its originator id and topic): the lease and epoch the
#: appender must hold, or None if the event needs no lease. Raises LeaseLost when the
#: appender knows already that it holds no such lease.
FencePolicy = Callable[[UUID | str, str], tuple[str, int] | None]


class ClusterStore(ABC):
    """Membership and leases in the shared database."""

    # -- members -----------------------------------------------------------------------

    @abstractmethod
    def register(self, node: NodeRecord) -> None:
        """Add or replace this node's record."""

    @abstractmethod
    def heartbeat(self, node_id: str, now: float, expires: float, draining: bool) -> bool:
        """Say this node is alive until `expires`; False if its record is gone."""

    @abstractmethod
    def nodes(self) -> list[NodeRecord]:
        """Every node's record, live or not."""

    @abstractmethod
    def leave(self, node_id: str) -> None:
        """Remove this node's record (it stops)."""

    # -- leases ------------------------------------------------------------------------

    @abstractmethod
    def leases(self) -> list[Lease]:
        """Every lease."""

    @abstractmethod
    def acquire(self, key: str, node_id: str, now: float, expires: float) -> Lease | None:
        """Take the lease of `key` if nobody holds it or its holder's has expired (a new
        epoch); None if another node holds it. Appends of the previous holder that are not
        yet committed are refused from then on."""

    @abstractmethod
    def renew(self, node_id: str, keys: Iterable[str], expires: float) -> set[str]:
        """Extend the leases of `keys` this node still holds; return those. (Their epochs
        are those it took them at: only a lease's owner changes it while it owns it.)"""

    @abstractmethod
    def release(self, key: str, node_id: str, epoch: int) -> None:
        """Give the lease up (if this node holds it at this epoch)."""

    @abstractmethod
    def forget(self, key: str) -> None:
        """Remove a lease nobody holds (its instance was deleted)."""

    @abstractmethod
    def fence(
        self, node_id: str, policy: FencePolicy, on_lost: Callable[[list[str]], None]
    ) -> None:
        """From now on, every append checks in its own transaction that this node holds
        (at the epoch `policy` says) the lease of each event `policy` names; a refused
        append calls `on_lost` with the leases it found lost, then raises LeaseLost."""

    @abstractmethod
    def server_time(self) -> float:
        """The database server's clock (doctor compares this node's with it)."""
