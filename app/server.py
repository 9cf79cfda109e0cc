"""The ASGI application: built by create_app(settings), started and stopped by its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from importlib.metadata import version
from pathlib import Path
from typing import Any
from uuid import UUID

import pykka
from eventsourcing.application import AggregateNotFoundError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from actors.engines.base import Emit, Engine, EngineError
from actors.engines.cloud import CloudDirectory, CloudEngine
from actors.engines.sandbox import sandbox_engine
from actors.engines.sandbox_network import SandboxGroups, SandboxNetwork
from actors.engines.sandbox_relay import SandboxRelay, paired_sandbox_instances
from actors.engines.startgate import StartGate
from actors.engines.whatsmeow import OutdatedMark, WhatsmeowEngine
from actors.engines.whatsmeow_forkserver import ForkServer
from actors.instance import InstanceActor
from actors.supervisor import CrashReport, Supervisor
from actors.webhooks import VersionedSettings, WebhookActor, WebhookDefaults, WebhookService
from app import jobs, openapi, owners, permissions
from app.access_log import AccessLog
from app.auth import Authenticator, load_jwt_secret
from app.cluster import wiring
from app.cluster.forward import ClusterRouter, ForwardCounts, instance_prefixes
from app.cluster.node import ClusterNode
from app.cluster.signing import Signer
from app.config import Settings
from app.context import Context
from app.errors import EXCEPTION_HANDLERS
from app.eventstore import EventStore, GroupCommitter, open_store
from app.metrics import Metrics
from app.routes import (
    auth,
    cloud,
    cluster,
    events,
    fleet,
    groups,
    health,
    history,
    instances,
    messages,
    sandbox,
    stats,
    ui,
    users,
    webhooks,
    whatsapp,
)
from app.scheduler import Scheduler
from app.sealing import ENGINE_SECRETS, Sealer, Unreadable, open_webhook
from app.sessions import Sessions
from app.storage import open_storage
from app.streams import EventStreams
from app.usage import ApiCallCounter
from domain.instance import Instance
from domain.session import Session
from domain.user import User, user_id_for
from projections import catalog
from projections.queries.cached import CachedReadModels, changes_cached
from projections.rebuild import rebuild
from projections.rows import ReadModels, RebuildRunning
from projections.runner import CACHE_MARK, LiveProjections
from storage.provider import StorageProvider, StoreUnavailable

log = logging.getLogger(__name__)


def create_app(settings: Settings, started: Context | None = None) -> Starlette:
    """The whole server for these settings; nothing starts until the lifespan runs, unless
    the caller has `started` it already (the CLI does, to report a failed start in one line)."""
    routes: list[BaseRoute] = [
        *health.routes,
        *auth.routes,
        *users.routes,
        *instances.routes,
        *fleet.routes,
        *whatsapp.routes,
        *messages.routes,
        *groups.routes,
        *history.routes,
        *stats.routes,
        *events.routes,
        *webhooks.routes,
        *cloud.routes,
        *cluster.routes,
        *ui.routes,
    ]
    if settings.sandbox_enabled:
        routes += sandbox.routes
    # Starlette tries routes in order, a regular expression each: the sending routes (their
    # paths overlap no other's) go first, the documentation keeps the order above.
    dispatch = [*whatsapp.routes, *(r for r in routes if r not in whatsapp.routes)]
    origins = [o.strip() for o in settings.cors_origin.split(",") if o.strip()]
    metrics = Metrics()
    forwards = ForwardCounts()
    state: dict[str, Any] = {}  # the app, once made (the router asks it who owns what)
    middleware = [
        Middleware(
            AccessLog, count=lambda m, r, s: metrics.http_requests.labels(m, r, str(s)).inc()
        ),
    ]
    if settings.cluster is not None:  # a request for another node's instance goes there
        middleware.append(
            Middleware(
                ClusterRouter,
                node_id=settings.cluster.node_id,
                signer=Signer(settings.cluster.secret),
                routing=lambda: getattr(getattr(state["app"].state, "ctx", None), "cluster", None),
                prefixes=instance_prefixes(getattr(r, "path", "") for r in routes),
                counts=forwards,
            )
        )
    middleware += [
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["*"],
            allow_headers=["*"],
            # Never the browser's cookies: API clients send their own credentials in headers,
            # and with cookies an allowed origin on the console's site could read a signed-in
            # console's CSRF token (GET /api/auth/session) and act as its user.
            allow_credentials=False,
        ),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ctx = started if started is not None else await asyncio.to_thread(start, settings)
        app.state.ctx = ctx
        metrics.watch(ctx, forwards)
        scheduler = Scheduler()
        jobs.schedule(scheduler, ctx)
        scheduler.start()
        await owners.reconcile(ctx)  # a crash may have come between a user and their instances
        try:
            yield
        finally:
            await scheduler.stop()
            await asyncio.to_thread(stop, ctx)

    app = Starlette(
        routes=dispatch,
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.openapi = openapi.build(routes, version("whatsapp-api"))
    app.state.metrics = metrics
    app.state.forwards = forwards
    state["app"] = app
    return app


def start(settings: Settings) -> Context:
    """Open the stores, catch the read models up, seed the admin, start every instance."""
    for name, directory in (
        ("data", settings.data_dir),
        ("uploads", settings.uploads_dir),
        ("instances", settings.instances_dir),
    ):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=directory):
                pass
        except OSError as error:
            message = (
                f"cannot use the {name} directory {directory.resolve()}: {error.strerror or error}"
            )
            log.error(
                "%s (check its permissions and free space; `whatsapp-api doctor` helps)", message
            )
            raise StartupError(message) from None
    permissions.tighten(settings)
    storage = open_storage(settings)
    try:
        store = open_store(storage)
    except StoreUnavailable as error:
        storage.close()
        log.error("%s", error)
        raise StartupError(str(error)) from None
    committer = GroupCommitter(store)
    read_models = storage.read_models()
    for name in read_models.remove_leftovers():
        log.info("removed %s, left behind by an interrupted rebuild", name)
    node = wiring.join(settings, storage, store) if settings.cluster is not None else None
    try:
        if (
            node is None
            or node.leader
            or wiring.wait_for_leader(
                node, lambda: read_models.meta("signature") == catalog.SIGNATURE
            )
        ):
            try:
                _check_read_model_shape(store, read_models)
            except RebuildRunning as error:
                for part in (committer, read_models, store, storage):
                    part.close()
                message = f"the read models must be rebuilt first, but {error}"
                log.error("%s", message)
                raise StartupError(message) from None
        projections = LiveProjections(
            store,
            catalog.build(read_models),
            catalog.TRACKING_NAME,
            marks=changes_cached if node is not None else None,
        )
    except BaseException:
        if node is not None:
            node.stop()
        raise
    if node is not None:  # one node writes the read models; the others follow them
        projections.writing = node.leader
    projections.start()
    try:
        return _start_serving(settings, storage, store, committer, read_models, projections, node)
    except BaseException:
        # Leave nothing running (the store's subscription thread would keep the process alive).
        if node is not None:
            node.stop()
        pykka.ActorRegistry.stop_all(block=True, timeout=10)
        projections.stop()
        committer.close()
        read_models.close()
        store.close()
        storage.close()
        raise


class StartupError(RuntimeError):
    """The server cannot start; the message says why in one line."""


def _start_serving(
    settings: Settings,
    storage: StorageProvider,
    store: EventStore,
    committer: GroupCommitter,
    read_models: ReadModels,
    projections: LiveProjections,
    node: ClusterNode | None,
) -> Context:
    head = store.recorder.max_notification_id() or 0
    if head > projections.position:
        log.info("catching read models up from position %s to %s", projections.position, head)
    if node is not None and not projections.writing:
        # The leader writes them; if it is gone, this node takes its place.
        wiring.wait_for_leader(node, lambda: projections.wait(head, timeout=1))
    if not projections.wait(head, timeout=300):
        raise RuntimeError(
            f"read models did not catch up to position {head}: {projections.error or 'too slow'}"
            " (run `whatsapp-api rebuild-projections` to rebuild them from the event store)"
        )

    jwt_secret = load_jwt_secret(settings.jwt_secret, settings.data_dir)
    sealer = Sealer(jwt_secret)
    network = SandboxNetwork(
        SandboxGroups(store.repository.get, committer.commit), settings.uploads_dir
    )
    cloud_directory = CloudDirectory()
    engines = {"cloud", "sandbox"} if settings.sandbox_enabled else {"cloud"}
    if importlib.util.find_spec("neonize") is not None:
        engines.add("whatsmeow")
    fork_server = ForkServer()
    start_gate = StartGate(settings.engine_start_concurrency)
    outdated = OutdatedMark(settings.instances_dir / ".whatsmeow-outdated")

    def engine_for(instance: Instance, emit: Emit) -> Engine:
        if instance.engine == "sandbox" and settings.sandbox_enabled:
            return sandbox_engine(network, instance, emit)
        if instance.engine == "cloud":
            try:
                opened = sealer.open_fields(instance.engine_settings, ENGINE_SECRETS)
            except Unreadable as error:
                raise EngineError(str(error), "secrets_unreadable") from None
            return CloudEngine(
                str(instance.id),
                opened,
                emit,
                directory=cloud_directory,
                allow_private=settings.webhook_allow_private,
                require_https=settings.production,
                default_version=settings.cloud_api_version,
                retry_base=settings.engine_retry_base,
                uploads_dir=settings.uploads_dir,
                max_file_size=settings.max_file_size,
            )
        if instance.engine == "whatsmeow" and "whatsmeow" in engines:
            return WhatsmeowEngine(
                settings.instances_dir / str(instance.id),
                settings.uploads_dir,
                settings.max_file_size,
                instance.engine_settings.get("proxy"),
                emit,
                launcher=fork_server,
                gate=start_gate,
                # Recently active instances start first.
                priority=instance.modified_on.timestamp(),
                retry_base=settings.engine_retry_base,
                outdated=outdated,
            )
        raise EngineError(f"the {instance.engine} engine is not available", "engine_unavailable")

    def spawn(instance_id: UUID, on_crash: CrashReport) -> pykka.ActorRef[Any]:
        return InstanceActor.start(
            instance_id, store.repository.get, committer, engine_for, on_crash
        )

    registry: dict[UUID, pykka.ActorRef[Any]] = {}
    supervisor = Supervisor.start(spawn, registry)

    def webhook_settings(instance_id: str) -> VersionedSettings | None:
        try:
            instance: Instance = store.repository.get(UUID(instance_id))
        except AggregateNotFoundError:
            return None
        if not isinstance(instance, Instance) or instance.deleted:
            return None
        return open_webhook(sealer, instance_id, (instance.version, instance.webhook_delivery()))

    webhook_service = WebhookService(
        store,
        committer,
        webhook_settings,
        storage.cursors(),
        WebhookDefaults(
            settings.webhook_max_retries,
            settings.webhook_retry_interval,
            settings.webhook_allow_private,
            replay_limit=settings.webhook_replay_limit,
            backlog_limit=settings.webhook_backlog_limit,
        ),
    )
    queries = CachedReadModels(storage.queries(read_models))
    projections.observers.append(queries.observe)
    auth = Authenticator(jwt_secret, settings.jwt_expiration, queries)

    def console_session(session_id: UUID) -> Session | None:
        try:
            session: Session = store.repository.get(session_id)
        except AggregateNotFoundError:
            return None
        return session if isinstance(session, Session) else None

    auth.sessions = Sessions(jwt_secret, settings.jwt_expiration, console_session)
    ctx = Context(
        settings=settings,
        storage=storage,
        store=store,
        committer=committer,
        read_models=read_models,
        queries=queries,
        projections=projections,
        auth=auth,
        supervisor=supervisor,
        registry=registry,
        network=network,
        cloud=cloud_directory,
        engines=frozenset(engines),
        usage=ApiCallCounter(store, committer, lambda: projections.position),
        streams=EventStreams(
            store,
            projections,
            settings.max_event_streams_per_user,
            settings.max_event_streams,
        ),
        sealer=sealer,
        start_gate=start_gate,
        fork_server=fork_server,
        outdated=outdated,
    )
    _seed_admin(ctx)
    rows = queries.live_instances()
    remove_deleted_sessions(settings.instances_dir, {row["id"] for row in rows})
    live = [UUID(row["id"]) for row in rows if row["engine"] in engines]
    ctx.webhook_service = webhook_service
    if node is None:
        start_gate.hold()  # every actor queues its start first: the most recent goes first
        try:
            supervisor.proxy().start_all(live).get()
            _wait_for_actors(registry, live, STARTUP_QUEUE_WAIT)
        finally:
            start_gate.release()
        ctx.webhooks = WebhookActor.start(webhook_service, [str(i) for i in live])
    else:  # the node starts what it takes (its webhooks with it), as it takes it
        webhook_service.owns = node.holds
        ctx.webhooks = WebhookActor.start(webhook_service, [])
        wiring.wire(
            node,
            instances=lambda: [
                row["id"] for row in queries.live_instances() if row["engine"] in engines
            ],
            supervisor=supervisor,
            registry=registry,
            webhooks=ctx.webhooks,
            projections=projections,
        )
        queries.follow_mark(lambda: read_models.meta(CACHE_MARK))
        projections.observers.append(node.observe)
        ctx.cluster = node
        if settings.sandbox_enabled:  # sandbox messages between nodes
            ctx.sandbox_relay = _sandbox_relay(store, committer, network, queries)
            ctx.sandbox_relay.start()
        node.start()
        live = []
    log.info(
        "started %d instance(s); event store (%s) at position %s",
        len(live),
        ", ".join(f"{k} {v}" for k, v in storage.details().items()),
        head,
    )
    return ctx


def remove_deleted_sessions(instances_dir: Path, live: set[str]) -> int:
    """Remove the session directories of deleted instances: a crash after an instance's
    `Deleted` was stored and before its files were gone leaves them. Only directories
    named by an instance id are touched; return how many were removed."""
    removed = 0
    for directory in sorted(instances_dir.iterdir()) if instances_dir.is_dir() else ():
        try:
            name = str(UUID(directory.name))
        except ValueError:
            continue
        if name != directory.name or name in live or not directory.is_dir():
            continue
        shutil.rmtree(directory, ignore_errors=True)
        log.info("removed the session files of deleted instance %s", name)
        removed += 1
    return removed


def _sandbox_relay(
    store: EventStore, committer: GroupCommitter, network: SandboxNetwork, queries: Any
) -> SandboxRelay:
    start_at = store.recorder.max_notification_id() or 0  # read first: nothing is missed
    ids = [row["id"] for row in queries.live_instances() if row["engine"] == "sandbox"]
    paired, sandbox = paired_sandbox_instances(ids, store.repository.get)
    return SandboxRelay(store, committer, network, paired, sandbox, start_at)


def stop(ctx: Context) -> None:
    """Hand instances over to the other nodes (if any), stop actors (they may still write),
    then the writers, then the stores."""
    if ctx.cluster is not None:
        try:
            ctx.cluster.stop()
        except Exception:
            log.exception("could not hand every instance over")
    if ctx.sandbox_relay is not None:
        ctx.sandbox_relay.stop()
    try:
        ctx.usage.flush()
    except Exception:
        log.exception("API call counts could not be stored")
    try:
        if ctx.webhooks is not None:
            ctx.webhooks.stop(block=True, timeout=15)
    except Exception:
        log.exception("webhook delivery did not stop cleanly")
    try:
        ctx.supervisor.proxy().stop_all().get(timeout=60)
        ctx.supervisor.stop(block=True, timeout=10)
    except Exception:
        log.exception("actors did not stop cleanly")
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
    ctx.start_gate.close()
    ctx.fork_server.close()
    ctx.committer.close()
    # Leave the read models caught up, so a restart (or a rebuild) starts from the head.
    if ctx.projections.writing:
        ctx.projections.wait(ctx.store.recorder.max_notification_id() or 0, timeout=10)
    ctx.projections.stop()
    ctx.read_models.close()
    ctx.store.close()
    ctx.storage.close()


def _check_read_model_shape(store: EventStore, read_models: ReadModels) -> None:
    """Read models made by another version of the projections are rebuilt first."""
    signature = read_models.meta("signature")
    if signature == catalog.SIGNATURE:
        return
    if signature is None and not read_models.tracked_count():  # new, empty read models
        read_models.atomically(lambda rows: rows.set_meta("signature", catalog.SIGNATURE))
        return
    log.warning("read models were made by other projections (%s); rebuilding them", signature)
    result = rebuild(store, read_models)
    log.info("rebuilt read models: %d events in %.1f s", result.events, result.seconds)


# How long start-up waits for the actors to queue their engine starts (loading each one's
# aggregate) before the start gate serves the queue as it is.
STARTUP_QUEUE_WAIT = 10.0


def _wait_for_actors(registry: dict[UUID, Any], ids: list[UUID], timeout: float) -> None:
    """Wait until these actors have started (an actor answers once its on_start is done:
    any attribute read through its proxy goes through its mailbox)."""
    deadline = time.monotonic() + timeout
    for instance_id in ids:
        ref = registry.get(instance_id)
        left = deadline - time.monotonic()
        if ref is None or left <= 0:
            continue
        with contextlib.suppress(Exception):  # a crashed actor is the supervisor's to restart
            ref.proxy().instance_id.get(timeout=left)


def _seed_admin(ctx: Context) -> None:
    settings = ctx.settings
    admin_id = user_id_for(settings.admin_email)
    if ctx.queries.user(str(admin_id)) is not None:
        return
    from app.auth import api_key_hash, hash_password, new_api_key

    key = new_api_key()
    admin = User(
        email=settings.admin_email,
        password_hash=hash_password(settings.admin_password),
        first_name=settings.admin_first_name,
        last_name=settings.admin_last_name,
        role="admin",
        api_key_hash=api_key_hash(key),
        api_key_sealed=ctx.auth.seal(key),
    )
    positions = ctx.committer.commit(admin.collect_events())
    ctx.projections.wait(positions[-1])
    log.info("created the administrator %s", settings.admin_email)
