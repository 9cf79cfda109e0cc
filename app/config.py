"""Configuration: read once from the environment into a typed, checked Settings."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from croniter import croniter

ENGINES = ("whatsmeow", "cloud", "sandbox")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_API_VERSION = re.compile(r"v[0-9]{1,3}\.[0-9]{1,2}", re.ASCII)
# The Graph API version of Cloud API instances that chose none: Meta's changelog lists
# v26.0 from 29 July 2026 with no end date yet (v21.0 ends on 21 January 2027).
CLOUD_API_VERSION = "v26.0"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")
_NODE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MIN_CLUSTER_SECRET = 32


class ConfigError(Exception):
    """A setting has a wrong value; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Schedules:
    cleanup: str = "0 0 * * *"
    socket_check: str = "*/5 * * * *"
    auth_check: str = "0 12 * * *"
    usage_save: str = "*/15 * * * *"
    usage_limits: str = "0 * * * *"
    system_metrics: str = "*/5 * * * *"


@dataclass(frozen=True)
class Cluster:
    """Several nodes on one MongoDB (NODE_URL set); README *Running several nodes*."""

    node_url: str
    node_id: str
    secret: str
    lease_ttl: float = 10.0
    # A node whose lease renewals fail stops its engines once its last renewal is older
    # than lease_ttl - fence_margin: the margin covers clock differences between nodes
    # (doctor checks they agree within a second) and the time engines take to stop.
    fence_margin: float = 3.0

    @property
    def renew_interval(self) -> float:
        """How often leases are renewed: three tries before they would expire."""
        return self.lease_ttl / 3

    def __repr__(self) -> str:  # the secret never reaches a log line or a traceback
        return f"Cluster(node_id={self.node_id!r}, node_url={self.node_url!r}, ...)"


@dataclass(frozen=True)
class Settings:
    """Every setting of the server; tests build their own."""

    port: int = 3000
    host: str = "0.0.0.0"
    env: str = "development"
    database_provider: str = "sqlite"
    database_url: str | None = None
    sqlite_path: Path = Path("data/whatsapp-api.db")
    jwt_secret: str | None = None
    jwt_expiration: int = 24 * 3600
    admin_email: str = "admin@example.com"
    admin_password: str = "admin123"
    admin_first_name: str = "Admin"
    admin_last_name: str = "User"
    log_level: str = "info"
    max_file_size: int = 10 * 1024 * 1024
    uploads_dir: Path = Path("uploads")
    instances_dir: Path = Path("instances")
    logs_dir: Path = Path("logs")
    cors_origin: str = "*"
    webhook_retry_interval: int = 60_000
    webhook_max_retries: int = 3
    webhook_replay_limit: int = 1000
    webhook_backlog_limit: int = 10_000
    webhook_allow_private: bool = True
    metrics_token: str | None = None
    default_engine: str = "whatsmeow"
    sandbox_enabled: bool = True
    schedules: Schedules = field(default_factory=Schedules)
    engine_retry_base: float = 1.0
    engine_start_concurrency: int = 8
    upload_retention_days: int = 30
    actor_timeout: float = 10.0
    cloud_api_version: str = CLOUD_API_VERSION
    media_download_timeout: float = 30.0
    max_event_streams_per_user: int = 5
    max_event_streams: int = 200
    forwarded_allow_ips: str = ""  # proxies whose X-Forwarded-For is believed ("": none)
    max_instances_per_user: int = 100  # unless the user's own limit says otherwise; 0: none
    cluster: Cluster | None = None  # one node unless NODE_URL is set

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def data_dir(self) -> Path:
        return self.sqlite_path.parent

    @property
    def read_models_path(self) -> Path:
        return self.sqlite_path.with_name(self.sqlite_path.stem + "-read.db")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every variable; raise ConfigError naming the first bad one."""
        e = dict(os.environ if environ is None else environ)
        env = e.get("APP_ENV") or e.get("NODE_ENV") or "development"
        if env not in ("development", "production", "test"):
            name = "APP_ENV" if "APP_ENV" in e else "NODE_ENV"
            raise ConfigError(name, f"must be development or production (got '{env}')")
        production = env == "production"

        provider = e.get("DATABASE_PROVIDER", "sqlite")
        if provider not in ("sqlite", "mongodb"):
            raise ConfigError("DATABASE_PROVIDER", f"must be sqlite or mongodb (got '{provider}')")
        database_url = e.get("DATABASE_URL") or None
        if provider == "mongodb":
            if not database_url:
                raise ConfigError("DATABASE_URL", "is required when DATABASE_PROVIDER=mongodb")
            if not database_url.startswith(("mongodb://", "mongodb+srv://")):
                raise ConfigError("DATABASE_URL", "must be a mongodb:// or mongodb+srv:// URI")

        jwt_secret = e.get("JWT_SECRET") or None
        if production and not jwt_secret:
            raise ConfigError("JWT_SECRET", "is required in production")
        admin_password = e.get("ADMIN_PASSWORD", "admin123")
        if production and admin_password == "admin123":
            raise ConfigError("ADMIN_PASSWORD", "the default password is refused in production")

        port = _int(e, "PORT", 3000, 1, 65535)
        cluster = _cluster(e, provider, port)

        default_engine = e.get("DEFAULT_ENGINE", "whatsmeow")
        if default_engine not in ENGINES:
            raise ConfigError("DEFAULT_ENGINE", f"must be one of {', '.join(ENGINES)}")
        cloud_api_version = e.get("CLOUD_API_VERSION", "").strip() or CLOUD_API_VERSION
        if not _API_VERSION.fullmatch(cloud_api_version):
            raise ConfigError(
                "CLOUD_API_VERSION",
                f"must be a Graph API version like v26.0 (got '{cloud_api_version}')",
            )
        log_level = e.get("LOG_LEVEL", "info").lower()
        if log_level not in LOG_LEVELS:
            raise ConfigError("LOG_LEVEL", "must be one of debug, info, warn, error")

        return cls(
            port=port,
            host=e.get("HOST", "0.0.0.0"),
            env=env,
            database_provider=provider,
            database_url=database_url,
            sqlite_path=_sqlite_path(e.get("SQLITE_DATABASE_URL", "file:./data/whatsapp-api.db")),
            jwt_secret=jwt_secret,
            jwt_expiration=_duration(e.get("JWT_EXPIRATION", "24h")),
            admin_email=e.get("ADMIN_EMAIL", "admin@example.com").strip().lower(),
            admin_password=admin_password,
            admin_first_name=e.get("ADMIN_FIRST_NAME", "Admin"),
            admin_last_name=e.get("ADMIN_LAST_NAME", "User"),
            log_level=log_level,
            max_file_size=_int(e, "MAX_FILE_SIZE", 10 * 1024 * 1024, 1, 2**40),
            uploads_dir=Path(e.get("UPLOADS_DIR", "./uploads")),
            instances_dir=Path(e.get("INSTANCES_DIR", "./instances")),
            logs_dir=Path(e.get("LOGS_DIR", "./logs")),
            cors_origin=e.get("CORS_ORIGIN", "*"),
            webhook_retry_interval=_int(e, "WEBHOOK_RETRY_INTERVAL", 60_000, 0, 86_400_000),
            webhook_max_retries=_int(e, "WEBHOOK_MAX_RETRIES", 3, 0, 100),
            webhook_replay_limit=_int(e, "WEBHOOK_REPLAY_LIMIT", 1000, 1, 1_000_000),
            webhook_backlog_limit=_int(e, "WEBHOOK_BACKLOG_LIMIT", 10_000, 100, 10_000_000),
            webhook_allow_private=_bool(e, "WEBHOOK_ALLOW_PRIVATE", not production),
            metrics_token=e.get("METRICS_TOKEN") or None,
            default_engine=default_engine,
            upload_retention_days=_int(e, "UPLOAD_RETENTION_DAYS", 30, 1, 36500),
            engine_retry_base=_int(e, "ENGINE_RETRY_BASE_MS", 1000, 10, 600_000) / 1000,
            engine_start_concurrency=_int(e, "ENGINE_START_CONCURRENCY", 8, 1, 1000),
            sandbox_enabled=_bool(e, "SANDBOX_ENABLED", not production),
            max_event_streams_per_user=_int(e, "MAX_EVENT_STREAMS_PER_USER", 5, 1, 1000),
            max_event_streams=_int(e, "MAX_EVENT_STREAMS", 200, 1, 100_000),
            forwarded_allow_ips=_addresses(e, "FORWARDED_ALLOW_IPS"),
            max_instances_per_user=_int(e, "MAX_INSTANCES_PER_USER", 100, 0, 1_000_000),
            cloud_api_version=cloud_api_version,
            schedules=Schedules(
                cleanup=_cron(e, "CLEANUP_CRON", Schedules.cleanup),
                socket_check=_cron(e, "SOCKET_CHECK_CRON", Schedules.socket_check),
                auth_check=_cron(e, "AUTH_CHECK_CRON", Schedules.auth_check),
                usage_save=_cron(e, "USAGE_SAVE_CRON", Schedules.usage_save),
                usage_limits=_cron(e, "USAGE_LIMITS_CRON", Schedules.usage_limits),
                system_metrics=_cron(e, "SYSTEM_METRICS_CRON", Schedules.system_metrics),
            ),
            cluster=cluster,
        )


def _int(e: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = e.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(name, f"must be a whole number (got '{raw}')") from None
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low} and {high} (got {value})")
    return value


def _bool(e: Mapping[str, str], name: str, default: bool) -> bool:
    raw = e.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"must be true or false (got '{raw}')")


def _addresses(e: Mapping[str, str], name: str) -> str:
    """A comma-separated list of IP addresses or networks, or `*` (any)."""
    raw = e.get(name, "").strip()
    if raw == "*":
        return raw
    entries = [part.strip() for part in raw.split(",") if part.strip()]
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(
                name,
                f"must be * or list IP addresses or networks, like 10.0.0.5,10.1.0.0/16 (got '{entry}')",
            ) from None
    return ",".join(entries)


def _duration(raw: str) -> int:
    match = _DURATION.match(raw.strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError("JWT_EXPIRATION", f"must look like 30m, 24h or 7d (got '{raw}')")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _cron(e: Mapping[str, str], name: str, default: str) -> str:
    raw = e.get(name, default).strip()
    if len(raw.split()) != 5 or not croniter.is_valid(raw):
        raise ConfigError(
            name, f"must be a 5-field cron expression like '*/5 * * * *' (got '{raw}')"
        )
    return raw


def _sqlite_path(url: str) -> Path:
    path = url[len("file:") :] if url.startswith("file:") else url
    if not path or path.endswith("/"):
        raise ConfigError(
            "SQLITE_DATABASE_URL", f"must name a file, like file:./data/app.db (got '{url}')"
        )
    return Path(path)


def _cluster(e: Mapping[str, str], provider: str, port: int) -> Cluster | None:
    """The cluster settings, or None (one node) when NODE_URL is not set."""
    url = (e.get("NODE_URL") or "").strip()
    if not url:
        for name in ("NODE_ID", "CLUSTER_SECRET", "LEASE_TTL", "LEASE_FENCE_MARGIN"):
            if (e.get(name) or "").strip():
                raise ConfigError(name, "applies to several nodes only: set NODE_URL too")
        return None
    if provider != "mongodb":
        raise ConfigError(
            "NODE_URL",
            "several nodes share one MongoDB: it needs DATABASE_PROVIDER=mongodb "
            "(SQLite runs one node; unset NODE_URL)",
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ConfigError(
            "NODE_URL",
            f"must be how the other nodes reach this one, like http://10.0.0.5:3000 (got '{url}')",
        )
    node_id = (e.get("NODE_ID") or "").strip() or f"{socket.gethostname()}:{port}"
    if not _NODE_ID.match(node_id):
        raise ConfigError(
            "NODE_ID", f"must be 1 to 64 letters, digits or ._:- (got '{node_id[:80]}')"
        )
    secret = e.get("CLUSTER_SECRET") or ""
    if len(secret) < MIN_CLUSTER_SECRET:
        raise ConfigError(
            "CLUSTER_SECRET",
            f"is required with NODE_URL: at least {MIN_CLUSTER_SECRET} characters, the same "
            "on every node (openssl rand -hex 32)",
        )
    ttl = _seconds(e, "LEASE_TTL", 10.0, 1.0, 300.0)
    margin = _seconds(e, "LEASE_FENCE_MARGIN", round(ttl * 0.3, 3), 0.1, ttl)
    if margin >= ttl * 2 / 3:
        raise ConfigError(
            "LEASE_FENCE_MARGIN",
            f"must be under two thirds of LEASE_TTL ({ttl:g}s), or a node would stop its "
            f"engines between two renewals (got {margin:g}s)",
        )
    return Cluster(url.rstrip("/"), node_id, secret, ttl, margin)


def _seconds(e: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A duration like `10s`, `2.5s`, `1500ms` or a plain number of seconds."""
    raw = (e.get(name) or "").strip()
    if not raw:
        return default
    match = _SECONDS.match(raw)
    if not match:
        raise ConfigError(name, f"must be a duration like 10s or 1500ms (got '{raw}')")
    value = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low:g}s and {high:g}s (got '{raw}')")
    return value
