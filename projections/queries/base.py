"""The questions the API asks of the read models, the same on every storage provider.

Rows come back as plain dicts with the read-model column names and the values as the
projections store them (0/1 flags, ISO 8601 times, JSON text in `limits`, `details`,
`media`), except instances, whose `webhook` and `engine_settings` come back decoded.
Usage sums are keyed by the usage counter columns (`COUNTERS`) and are 0 when no row
matches. Pages are newest first and count every matching row in `total`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from projections.usage import COUNTERS

Row = dict[str, Any]

# The usage counters a day of an instance shows in its daily statistics.
DAILY = ("messages_sent", "messages_received", "media_sent", "media_received")


@dataclass(frozen=True)
class Page:
    """One page of rows and how many rows match in all."""

    rows: list[Row]
    total: int


@dataclass(frozen=True)
class Window:
    """Paging and an optional time window (ISO 8601 UTC strings, both ends inclusive)."""

    limit: int
    skip: int = 0
    start: str | None = None
    end: str | None = None


@dataclass(frozen=True)
class Counts:
    total: int
    active: int


def zero_usage() -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0)


class ReadModelQueries(Protocol):
    """Every read-model query of the app; one implementation per storage provider."""

    # -- users --------------------------------------------------------------------
    def user(self, user_id: str) -> Row | None:
        """A user's row, active or not."""

    def active_user(self, user_id: str) -> Row | None:
        """A user's row if the user is active."""

    def user_by_email(self, email: str) -> Row | None: ...

    def user_by_api_key_hash(self, key_hash: str) -> Row | None: ...

    def users(self) -> list[Row]:
        """Every user, oldest first."""

    def active_users(self) -> list[Row]:
        """Active users, oldest first."""

    def user_counts(self) -> Counts:
        """All users, and how many are active."""

    # -- instances ----------------------------------------------------------------
    def instances_of(self, user_id: str) -> list[Row]:
        """A user's instances that are not deleted, oldest first."""

    def own_instance(self, instance_id: str, user_id: str) -> Row | None:
        """An instance if it exists, is not deleted and belongs to `user_id`."""

    def instance_engine(self, instance_id: str) -> str | None:
        """The engine of an instance that is not deleted."""

    def live_instances(self) -> list[Row]:
        """`id` and `engine` of every instance that is not deleted (started at start-up)."""

    def instance_counts(self) -> Counts:
        """Instances not deleted, and how many of them are connected."""

    def instances_by_status(self) -> dict[str, int]:
        """How many instances that are not deleted are in each status."""

    # -- contacts, messages, activity, deliveries ---------------------------------
    def contacts(self, instance_id: str) -> list[Row]:
        """An instance's contacts by number (then jid)."""

    def messages(self, instance_id: str, chat_jids: Sequence[str], window: Window) -> Page:
        """A page of one chat's messages, newest first: the chat under any of its names
        (a person's phone JID and LID)."""

    def message(self, instance_id: str, message_id: str) -> Row | None:
        """A message the instance sent or received (its own copy first, if it wrote to
        itself); None if it has none with this id."""

    def identities(self, instance_id: str, jids: Sequence[str]) -> dict[str, Row]:
        """The phone/LID pair known for each of these JIDs, by JID (unknown ones left out)."""

    def chats(self, instance_id: str, window: Window) -> Page:
        """A page of the instance's chats (those not folded into another), most recently
        active first."""

    def groups(self, instance_id: str) -> list[Row]:
        """The groups the instance is in (not those it left), by subject."""

    def group(self, instance_id: str, group_jid: str) -> Row | None:
        """A group the instance is or was in."""

    def contact(self, instance_id: str, jid: str) -> Row | None:
        """The contact row of a JID."""

    def message_statuses(self, instance_id: str, message_ids: Sequence[str]) -> dict[str, str]:
        """The status of each of these messages the instance has (sent or received), by
        message id; ids it does not have are left out."""

    def activity(self, instance_id: str, actions: Sequence[str], window: Window) -> Page:
        """A page of an instance's activity log, newest first; all actions if none given."""

    def deliveries(self, instance_id: str, status: str | None, window: Window) -> Page:
        """A page of an instance's webhook deliveries, newest first; any status if None."""

    def webhook_outcomes(self, instance_id: str, status: str | None, window: Window) -> Page:
        """A page of an instance's deliveries, one row per delivery id with its latest
        outcome, most recent outcome first; `failed` ones are unresolved."""

    def unresolved_webhooks(self, instance_ids: Sequence[str]) -> dict[str, int]:
        """How many deliveries of each of these instances ended failed and stay so
        (instances with none are left out)."""

    # -- usage --------------------------------------------------------------------
    def usage_of_user(self, user_id: str, since: str | None) -> dict[str, int]:
        """A user's usage from day `since` (YYYY-MM-DD, inclusive; None for all time)."""

    def usage_by_instance(self, user_id: str, since: str | None) -> dict[str, dict[str, int]]:
        """A user's usage per instance that has any (calls made without an instance left out)."""

    def usage_of_instance(self, instance_id: str, since: str | None) -> dict[str, int]: ...

    def daily_usage(self, instance_id: str, since: str | None) -> list[Row]:
        """`day` and the `DAILY` counters of an instance, one row per day with usage, by day."""

    def usage_of_system(self) -> dict[str, int]:
        """Everyone's usage, all time."""

    def messages_sent_on(self, user_id: str, day: str) -> int:
        """Messages a user sent on one UTC day (for the daily quota)."""
