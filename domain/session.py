"""A sign-in to the web console, kept so that signing out ends it everywhere.

The browser holds only a signed cookie naming the session; the session itself is an
aggregate in the event store, so a sign-out (or an expiry) is known to every server that
reads the store, and survives restarts. Nothing secret is stored here.
"""

from __future__ import annotations

from eventsourcing.domain import Aggregate, event


class Session(Aggregate):
    """One console sign-in of one user, until `expires_at` (epoch seconds) or its end."""

    class Started(Aggregate.Created):
        user_id: str
        expires_at: int
        generation: int

    @event(Started)
    def __init__(self, user_id: str, expires_at: int, generation: int) -> None:
        self.user_id = user_id
        self.expires_at = expires_at
        # The user's password generation when the session started: sessions from before a
        # password change are refused, like tokens.
        self.generation = generation
        self.ended = False

    class Ended(Aggregate.Event):
        reason: str

    @event(Ended)
    def end(self, reason: str) -> None:
        """Signed out (`signed_out`) or replaced after a password change (`password_changed`)."""
        self.ended = True
