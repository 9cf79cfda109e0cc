"""Which running Cloud API instance answers for which phone number, in memory.

Meta's webhook is verified and parsed by the HTTP route, before anything reaches an
instance's actor (so that a broadcast's sends never make Meta's calls wait): the
route finds here the app secret and verify token of the instance a delivery is for,
and, for the app-level callback (`/api/cloud/webhook`), the instances of the phone
number ids a delivery names. Each engine registers its instance when it is made and
forgets it when the instance is deleted; nothing here is stored.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CloudEndpoint:
    """What Meta's webhook for one instance is checked and routed with."""

    instance_id: str
    phone_number_id: str
    app_secret: str
    verify_token: str
    waba_id: str | None = None  # the business account, when set or learnt from a delivery


class CloudDirectory:
    """The running Cloud API instances by id and by phone number id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_instance: dict[str, CloudEndpoint] = {}

    def register(self, endpoint: CloudEndpoint) -> None:
        with self._lock:
            known = self._by_instance.get(endpoint.instance_id)
            if (
                known is not None
                and endpoint.waba_id is None
                and (known.phone_number_id == endpoint.phone_number_id)
            ):
                endpoint = replace(endpoint, waba_id=known.waba_id)
            self._by_instance[endpoint.instance_id] = endpoint

    def forget(self, instance_id: str) -> None:
        with self._lock:
            self._by_instance.pop(instance_id, None)

    def get(self, instance_id: str) -> CloudEndpoint | None:
        with self._lock:
            return self._by_instance.get(instance_id)

    def for_number(self, phone_number_id: str) -> list[CloudEndpoint]:
        """The instances on this phone number id (usually one)."""
        with self._lock:
            return [e for e in self._by_instance.values() if e.phone_number_id == phone_number_id]

    def for_account(self, waba_id: str) -> list[CloudEndpoint]:
        """The instances known to be on this business account."""
        with self._lock:
            return [e for e in self._by_instance.values() if waba_id and e.waba_id == waba_id]

    def everyone(self) -> list[CloudEndpoint]:
        with self._lock:
            return list(self._by_instance.values())

    def learn_account(self, instance_id: str, waba_id: str) -> None:
        """A verified delivery for this instance came from this business account."""
        with self._lock:
            known = self._by_instance.get(instance_id)
            if known is not None and waba_id and known.waba_id != waba_id:
                self._by_instance[instance_id] = replace(known, waba_id=waba_id)
