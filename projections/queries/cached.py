"""The read-model queries every request asks, answered from memory until an event changes them.

Each authenticated request looks up its user (by id or API key hash) and most ask
whether the instance in the path is the caller's (`owns`; the instance's row itself,
whose status changes all the time, is not kept). Those rows change only with a user's
events and with an instance's creation, update or deletion, which are rare. So the
answers are kept here, and the live projections call `observe` with each batch of
events after committing it and before anyone waiting for those positions is woken:
a deactivation, a key rotation or a deletion is answered only once the cache has
forgotten what it changes, so the next request reads the new rows.

A lookup that raced an invalidation (read the old row, stores it after the clear) is
not kept: every clear moves a generation, and a row is stored only under the
generation it was read in. Only found rows are kept (an unknown API key is asked of the
read models every time), and at most `limit` of each kind.

On several nodes a command answered by one node must be seen by the next request on any
other, whose own projections may not have told it yet. There the node that writes the
read models stores, in the same transaction, the position of each batch that changes
kept rows (`cache_mark`, projections/runner.py), and `check_mark` (once per request)
forgets everything when that mark moved since the last look.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from domain import events
from domain.instance import Instance
from domain.user import User
from projections.queries.base import ReadModelQueries, Row

USER_TOPICS = events.topics_of(User)
# The instance events that change who owns an instance, or whether it exists.
OWNERSHIP_TOPICS = frozenset(
    events.topic(cls) for cls in (Instance.Created, Instance.Updated, Instance.Deleted)
)


class CachedReadModels:
    """`ReadModelQueries` with the per-request lookups kept in memory (see the module)."""

    def __init__(self, queries: ReadModelQueries, limit: int = 10_000) -> None:
        self._queries = queries
        self._limit = limit
        self._lock = threading.Lock()
        self._generation = 0
        self._users: dict[tuple[str, str], Row] = {}
        self._owned: dict[tuple[str, str], Row] = {}  # {} for each instance a user owns
        self._mark: Callable[[], str | None] | None = None
        self._seen_mark: str | None = None

    def follow_mark(self, mark: Callable[[], str | None]) -> None:
        """Several nodes: `mark` reads the read models' cache mark (see the module)."""
        self._mark = mark
        self._seen_mark = mark()

    def check_mark(self) -> None:
        """Forget everything if another node's command changed kept rows since the last
        look (several nodes only; one database read)."""
        if self._mark is None:
            return
        mark = self._mark()
        if mark != self._seen_mark:
            self.clear()
            self._seen_mark = mark

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queries, name)

    # -- invalidation (the projection writer's thread) ------------------------------

    def observe(self, topics: Iterable[str]) -> None:
        """Forget what events with these topics may have changed."""
        users = owners = False
        for topic in topics:
            if topic in USER_TOPICS:
                users = True
            elif topic in OWNERSHIP_TOPICS:
                owners = True
        if users or owners:
            with self._lock:
                self._generation += 1
                if users:
                    self._users.clear()
                if owners:
                    self._owned.clear()

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._users.clear()
            self._owned.clear()

    # -- the cached questions -------------------------------------------------------

    def user(self, user_id: str) -> Row | None:
        return self._kept(self._users, ("id", user_id), lambda: self._queries.user(user_id))

    def user_by_api_key_hash(self, key_hash: str) -> Row | None:
        return self._kept(
            self._users, ("key", key_hash), lambda: self._queries.user_by_api_key_hash(key_hash)
        )

    def owns(self, instance_id: str, user_id: str) -> bool:
        """Whether the instance exists, is not deleted and is `user_id`'s."""
        return (
            self._kept(
                self._owned,
                (instance_id, user_id),
                lambda: (
                    {} if self._queries.own_instance(instance_id, user_id) is not None else None
                ),
            )
            is not None
        )

    def _kept(self, kept: dict[Any, Row], key: Any, load: Any) -> Row | None:
        with self._lock:
            row = kept.get(key)
            generation = self._generation
        if row is not None:
            return dict(row)
        row = load()
        if row is not None:
            with self._lock:
                if self._generation == generation:
                    if len(kept) >= self._limit:
                        kept.clear()
                    kept[key] = dict(row)
        return row


def changes_cached(topics: Iterable[str]) -> bool:
    """Whether events with these topics change what `CachedReadModels` keeps."""
    return any(t in USER_TOPICS or t in OWNERSHIP_TOPICS for t in topics)
