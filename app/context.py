"""What a request handler needs, built once at start-up and handed to every route."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar, cast
from uuid import UUID

import pykka
from eventsourcing.application import AggregateNotFoundError
from starlette.requests import Request

from actors.bridge import ActorTimeout, ask
from actors.engines.cloud import CloudDirectory
from actors.engines.sandbox_network import SandboxNetwork
from actors.engines.startgate import StartGate
from actors.engines.whatsmeow import OutdatedMark
from actors.engines.whatsmeow_forkserver import ForkServer
from actors.instance import InstanceProxy, Outcome
from actors.supervisor import SupervisorProxy
from actors.webhooks import WebhookProxy, WebhookService
from app.auth import Authenticator, Principal, api_key_hash, hash_password, new_api_key
from app.cluster.node import ClusterNode
from app.config import Settings
from app.errors import ApiError, not_found
from app.eventstore import EventStore, GroupCommitter
from app.sealing import Sealer, open_webhook
from app.streams import EventStreams
from app.throttle import LoginThrottle
from app.usage import ApiCallCounter
from domain.user import User
from projections.queries.cached import CachedReadModels
from projections.rows import ReadModels
from projections.runner import LiveProjections
from storage.provider import StorageProvider

log = logging.getLogger(__name__)

# How long a command that goes on outside its actor (a Cloud API send: an upload and a
# message, 30 s each at most) may take before the caller gets a 503.
LATER_TIMEOUT = 90.0

T = TypeVar("T")
# Logging out or deleting an instance first tells WhatsApp to unlink the device, which may
# mean connecting first (the whatsmeow engine waits up to 15 s for that).
LOGOUT_TIMEOUT = 45.0
# A number check or a pairing code is a round trip to WhatsApp (the engine waits up to 30 s).
QUERY_TIMEOUT = 35.0


@dataclass
class Context:
    """The running server's parts."""

    settings: Settings
    storage: StorageProvider
    store: EventStore
    committer: GroupCommitter
    read_models: ReadModels
    queries: CachedReadModels
    projections: LiveProjections
    auth: Authenticator
    supervisor: pykka.ActorRef[Any]
    registry: dict[UUID, pykka.ActorRef[Any]]
    network: SandboxNetwork
    cloud: CloudDirectory
    engines: frozenset[str]
    usage: ApiCallCounter
    streams: EventStreams
    sealer: Sealer
    start_gate: StartGate
    fork_server: ForkServer
    outdated: OutdatedMark
    webhooks: pykka.ActorRef[Any] | None = None
    webhook_service: WebhookService | None = None
    last_system_metrics: dict[str, Any] | None = None
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)
    cluster: ClusterNode | None = None  # several nodes (NODE_URL set)
    sandbox_relay: Any = None  # several nodes: sandbox messages between them
    _proxies: dict[UUID, tuple[pykka.ActorRef[Any], InstanceProxy]] = field(default_factory=dict)

    # -- callers and what they may touch --------------------------------------------

    def principal(self, request: Request) -> Principal:
        principal = request.scope.get("principal")
        if principal is None:
            if self.cluster is not None:  # another node's command may have changed users
                self.queries.check_mark()
            principal = self.auth.authenticate(request)
            request.scope["principal"] = principal
            if "instanceId" not in request.path_params:
                self._count(request, principal, None)
        return principal

    def _count(self, request: Request, principal: Principal, instance_id: str | None) -> None:
        """Count the request once: to the caller's instance once it is known to be theirs,
        else to the caller alone (never a raw path segment, never someone else's instance)."""
        if request.scope.get("counted"):
            return
        request.scope["counted"] = True
        if self.usage.count(principal.user_id, instance_id):
            asyncio.get_running_loop().run_in_executor(None, self._flush_usage)

    def _flush_usage(self) -> None:
        try:
            self.usage.flush()
        except Exception:
            log.exception("API call counts could not be stored; kept for the next attempt")

    def admin(self, request: Request) -> Principal:
        principal = self.principal(request)
        if not principal.admin:
            raise ApiError(403, "forbidden", "This needs an administrator")
        return principal

    def own_instance(self, request: Request) -> dict[str, Any]:
        """The caller's instance named by the path; 404 for anyone else's or a bad id."""
        principal = self.principal(request)
        instance_id = self._path_instance(request, principal)
        row = self.queries.own_instance(instance_id, principal.user_id)
        self._count(request, principal, instance_id if row is not None else None)
        if row is None:
            raise not_found()
        return row

    def own_instance_id(self, request: Request) -> str:
        """As `own_instance`, for routes that need only the id: asks the kept ownership."""
        principal = self.principal(request)
        instance_id = self._path_instance(request, principal)
        owned = self.queries.owns(instance_id, principal.user_id)
        self._count(request, principal, instance_id if owned else None)
        if not owned:
            raise not_found()
        return instance_id

    def _path_instance(self, request: Request, principal: Principal) -> str:
        """The instance id of the path, written the one way; 404 (counted to the caller
        alone) when it is not an id."""
        try:
            return str(parse_id(request.path_params["instanceId"]))
        except ApiError:
            self._count(request, principal, None)
            raise

    def check_webhook_backlog(self, instance_id: str) -> None:
        """503 `webhook_backlog` (with Retry-After) for a send of an instance with webhooks
        on while webhook delivery is more than WEBHOOK_BACKLOG_LIMIT events behind."""
        service = self.webhook_service
        wait = service.pressure(instance_id) if service is not None else None
        if service is not None and wait is not None:
            raise ApiError(
                503,
                "webhook_backlog",
                f"Webhook delivery is {service.backlog:,} events behind (the limit is "
                f"{service.defaults.backlog_limit:,}); send again in {wait} s",
                retry_after=wait,
            )

    def leads(self) -> bool:
        """Whether this node runs the singletons (always, on one node)."""
        return self.cluster is None or self.cluster.leader

    def node_of(self, instance_id: str) -> str | None:
        """The node that runs an instance (None on one node, or while it moves)."""
        return None if self.cluster is None else self.cluster.node_of(instance_id)

    def instances_of(self, user_id: str) -> list[dict[str, Any]]:
        return self.queries.instances_of(user_id)

    def user_row(self, user_id: str) -> dict[str, Any]:
        """The read model's row of a user (404 if there is none: deleted meanwhile)."""
        row = self.queries.user(user_id)
        if row is None:
            raise not_found("user")
        return row

    @staticmethod
    def instance_uuid(row: dict[str, Any]) -> UUID:
        return UUID(row["id"])

    # -- actors -----------------------------------------------------------------------

    @cached_property
    def supervisor_proxy(self) -> SupervisorProxy:
        return cast(SupervisorProxy, self.supervisor.proxy())

    @cached_property
    def webhooks_proxy(self) -> WebhookProxy:
        assert self.webhooks is not None
        return cast(WebhookProxy, self.webhooks.proxy())

    def proxy(self, instance_id: str | UUID) -> InstanceProxy:
        """The running actor of an instance, as a typed proxy (cached per actor)."""
        key = instance_id if isinstance(instance_id, UUID) else UUID(instance_id)
        ref = self.registry.get(key)
        if ref is None or not ref.is_alive():
            if self.cluster is not None and not self.cluster.holds(str(key)):
                raise instance_moving()
            raise ApiError(
                503, "instance_unavailable", "The instance is restarting; try again in a moment"
            )
        cached = self._proxies.get(key)
        if cached is None or cached[0] is not ref:
            cached = (ref, cast(InstanceProxy, ref.proxy()))
            self._proxies[key] = cached
        return cached[1]

    async def refresh_webhooks(
        self, instance_id: str, versioned: tuple[int, dict[str, Any]]
    ) -> None:
        """Hand new webhook settings (as a change returned them) to delivery."""
        opened = open_webhook(self.sealer, instance_id, versioned)
        await self.ask(self.webhooks_proxy.refresh(instance_id, opened))

    async def ask(self, future: pykka.Future[T], timeout: float | None = None) -> T:
        return await ask(future, timeout or self.settings.actor_timeout)

    async def command(self, future: pykka.Future[Outcome[T]], timeout: float | None = None) -> T:
        """Await an actor command, then until the read models show its effect."""
        outcome = await self.ask(future, timeout)
        if outcome.later is not None:  # the actor went on while the network answered
            try:
                outcome = await asyncio.wait_for(asyncio.wrap_future(outcome.later), LATER_TIMEOUT)
            except TimeoutError:
                raise ActorTimeout(f"no answer within {LATER_TIMEOUT:g} s") from None
        if outcome.commit is not None:
            positions = await asyncio.wrap_future(outcome.commit)  # durable before we answer
            await self.settle(positions[-1])
        return outcome.value

    async def settle(self, position: int) -> None:
        """Read-your-writes: wait (bounded) until the read models reach `position`."""
        if position and not await self.projections.wait_async(position, timeout=5.0):
            log.warning("read models lag behind position %s", position)

    # -- users --------------------------------------------------------------------------

    async def register_user(
        self, email: str, password: str, first_name: str, last_name: str, role: str
    ) -> tuple[User, str]:
        """Register a user; return it with its API key (shown once, sealed after)."""
        api_key = new_api_key()
        password_hash = await asyncio.to_thread(hash_password, password)
        user = User(
            email=email.strip().lower(),
            password_hash=password_hash,
            first_name=first_name,
            last_name=last_name,
            role=role,
            api_key_hash=api_key_hash(api_key),
            api_key_sealed=self.auth.seal(api_key),
        )
        await self.save(user)
        return user, api_key

    async def change_user(self, user_id: str | UUID, change: Callable[[User], None]) -> User:
        """Load a user, apply `change`, store its events; 404 if there is no such user."""
        user = await asyncio.to_thread(self.get_user, user_id)
        change(user)
        await self.save(user)
        return user

    def get_user(self, user_id: str | UUID) -> User:
        try:
            user: User = self.store.repository.get(
                parse_id(user_id, "user") if isinstance(user_id, str) else user_id
            )
        except AggregateNotFoundError:
            raise not_found("user") from None
        if not isinstance(user, User):
            raise not_found("user")
        return user

    async def save(self, aggregate: Any) -> None:
        events = aggregate.collect_events()
        positions = await asyncio.to_thread(self.committer.commit, events)
        if positions:
            await self.settle(positions[-1])


def instance_moving() -> ApiError:
    """503 while an instance has no owner, or is owned by a node that cannot be reached."""
    return ApiError(
        503,
        "instance_moving",
        "The instance is moving to another node; try again in a moment",
        retry_after=1,
    )


def parse_id(raw: str, what: str = "instance") -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise not_found(what) from None
