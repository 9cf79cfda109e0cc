"""The user aggregate: someone who signs in and owns instances."""

from __future__ import annotations

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

ROLES = ("user", "admin")

# User ids derive from the e-mail address, so a second registration of the same
# address collides in the event store itself: uniqueness without a lock or a read.
USER_NAMESPACE = UUID("6f1c7d5e-8a47-4d1f-9a0b-6b9d2f1e4c3a")


def user_id_for(email: str) -> UUID:
    return uuid5(USER_NAMESPACE, email.strip().lower())


class UserError(Exception):
    """Base of the errors a user command can raise."""


class UserDeactivated(UserError):
    pass


class User(Aggregate):
    """A person with a password, an API key and a role.

    Only hashes of the password and of the API key are kept; `api_key_sealed` is
    the key encrypted by the server so that login can hand it back.
    """

    @staticmethod
    def create_id(email: str) -> UUID:
        return user_id_for(email)

    class Registered(Aggregate.Created):
        email: str
        password_hash: str
        first_name: str
        last_name: str
        role: str
        api_key_hash: str
        api_key_sealed: str

    @event(Registered)
    def __init__(
        self,
        email: str,
        password_hash: str,
        first_name: str,
        last_name: str,
        role: str,
        api_key_hash: str,
        api_key_sealed: str,
    ) -> None:
        self.email = email
        self.password_hash = password_hash
        self.first_name = first_name
        self.last_name = last_name
        self.role = role
        self.api_key_hash = api_key_hash
        self.api_key_sealed = api_key_sealed
        self.active = True
        self.limits: dict[str, int | None] = {}

    def check_active(self) -> None:
        if not self.active:
            raise UserDeactivated(f"user {self.id} is deactivated")

    @property
    def token_generation(self) -> int:
        """How many times the password changed: tokens carry the number they were issued
        under, and those issued before the latest change are refused."""
        return getattr(self, "_token_generation", 0)

    class PasswordChanged(Aggregate.Event):
        password_hash: str

    @event(PasswordChanged)
    def change_password(self, password_hash: str) -> None:
        self.password_hash = password_hash
        self._token_generation = self.token_generation + 1

    class ApiKeyRotated(Aggregate.Event):
        api_key_hash: str
        api_key_sealed: str

    @event(ApiKeyRotated)
    def rotate_api_key(self, api_key_hash: str, api_key_sealed: str) -> None:
        self.api_key_hash = api_key_hash
        self.api_key_sealed = api_key_sealed

    class ProfileUpdated(Aggregate.Event):
        first_name: str
        last_name: str

    @event(ProfileUpdated)
    def update_profile(self, first_name: str, last_name: str) -> None:
        self.first_name = first_name
        self.last_name = last_name

    class RoleChanged(Aggregate.Event):
        role: str

    @event(RoleChanged)
    def change_role(self, role: str) -> None:
        self.role = role

    class LimitsChanged(Aggregate.Event):
        limits: dict[str, int | None]

    @event(LimitsChanged)
    def change_limits(self, limits: dict[str, int | None]) -> None:
        """Quotas set by an administrator: maxInstances, maxMessagesPerDay (None: none)."""
        self.limits = {**getattr(self, "limits", {}), **limits}

    class QuotaExceeded(Aggregate.Event):
        quota: str
        limit: int
        instance_id: str | None

    @event(QuotaExceeded)
    def exceed_quota(self, quota: str, limit: int, instance_id: str | None) -> None:
        """A request was refused for going over a quota."""

    class Deactivated(Aggregate.Event):
        pass

    @event(Deactivated)
    def deactivate(self) -> None:
        self.active = False

    class Reactivated(Aggregate.Event):
        pass

    @event(Reactivated)
    def reactivate(self) -> None:
        self.active = True
