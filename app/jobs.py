"""The scheduled jobs (the seed's *_CRON settings), each a plain function of the running server.

They run in the server's scheduler (app/scheduler.py): never twice at once, and a job
that fails is logged and runs again at its next time. On several nodes, what concerns the
whole cluster (the shared uploads directory, the quota report) runs on the leader only;
what concerns this node's instances (QR expiry, socket and session checks), its API call
counts and its memory runs on every node.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

from app import owners, quotas
from app.scheduler import Scheduler
from domain.timestamps import iso_ms

log = logging.getLogger(__name__)

QR_MAX_AGE = 300.0  # a QR code not scanned in 5 minutes is dropped


def cleanup_uploads(uploads_dir: Any, retention_days: int, now: datetime | None = None) -> int:
    """Delete uploaded and downloaded files older than the retention; return how many."""
    cutoff = (now or datetime.now(UTC)).timestamp() - retention_days * 86400
    removed = 0
    for path in uploads_dir.glob("*"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


async def _each_instance(ctx: Any, call: Any) -> dict[str, Any]:
    """Ask every running instance actor; answers by instance id (errors logged)."""
    answers: dict[str, Any] = {}
    for instance_id, ref in list(ctx.registry.items()):
        if not ref.is_alive():
            continue
        try:
            answers[str(instance_id)] = await ctx.ask(call(ctx.proxy(instance_id)))
        except Exception as error:
            log.warning("instance %s did not answer a scheduled check: %s", instance_id, error)
    return answers


async def cleanup(ctx: Any) -> dict[str, int]:
    removed = 0
    if ctx.leads():  # the uploads directory is shared by every node: one cleans it
        removed = await asyncio.to_thread(
            cleanup_uploads, ctx.settings.uploads_dir, ctx.settings.upload_retention_days
        )
    expired = await _each_instance(ctx, lambda p: p.expire_qr(QR_MAX_AGE))
    result = {"uploadsRemoved": removed, "qrExpired": sum(1 for v in expired.values() if v)}
    log.info("cleanup: %s", result)
    return result


async def socket_check(ctx: Any) -> list[str]:
    await owners.reconcile(ctx)  # no deactivated user's instance runs, none of the others stops
    answers = await _each_instance(ctx, lambda p: p.check_connection())
    reconnected = [i for i, done in answers.items() if done]
    if reconnected:
        log.warning("socket check: reconnected dead sessions %s", reconnected)
    return reconnected


async def auth_check(ctx: Any) -> dict[str, str]:
    answers = await _each_instance(ctx, lambda p: p.check_session())
    changed = {i: what for i, what in answers.items() if what}
    if changed:
        log.warning("session check: %s", changed)
    return changed


def over_quota(ctx: Any, day: str | None = None) -> list[dict[str, Any]]:
    """Users at or over a quota right now (for operators; requests are refused as they come)."""
    day = day or datetime.now(UTC).date().isoformat()
    found = []
    for row in ctx.queries.active_users():
        limits = {
            **json.loads(row["limits"] or "{}"),
            "maxInstances": quotas.instance_limit(ctx, row["id"]),
        }
        instances = len(ctx.instances_of(row["id"]))
        sent = ctx.queries.messages_sent_on(row["id"], day)
        for quota, used in (("maxInstances", instances), ("maxMessagesPerDay", sent)):
            if limits.get(quota) is not None and used >= limits[quota]:
                found.append(
                    {"user": row["email"], "quota": quota, "limit": limits[quota], "used": used}
                )
    return found


async def usage_limits(ctx: Any) -> list[dict[str, Any]]:
    if not ctx.leads():  # one node reports for the whole cluster
        return []
    found = await asyncio.to_thread(over_quota, ctx)
    for item in found:
        log.info("usage limits: %(user)s is at %(used)s of %(quota)s=%(limit)s", item)
    return found


async def system_metrics(ctx: Any) -> dict[str, Any]:
    statuses = ctx.queries.instances_by_status()
    head = ctx.store.recorder.max_notification_id() or 0
    snapshot = {
        "at": iso_ms(datetime.now(UTC)),
        "instances": statuses,
        "eventStorePosition": head,
        "projectionLag": max(0, head - ctx.projections.position),
        "rssBytes": _rss(),
    }
    ctx.last_system_metrics = snapshot
    log.info("system metrics: %s", json.dumps(snapshot))
    return snapshot


def _rss() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096
    except OSError:
        return 0


def schedule(scheduler: Scheduler, ctx: Any) -> None:
    s = ctx.settings.schedules
    scheduler.add("cleanup", s.cleanup, lambda: cleanup(ctx))
    scheduler.add("socket-check", s.socket_check, lambda: socket_check(ctx))
    scheduler.add("auth-check", s.auth_check, lambda: auth_check(ctx))
    scheduler.add("usage-save", s.usage_save, lambda: asyncio.to_thread(ctx.usage.flush))
    scheduler.add("usage-limits", s.usage_limits, lambda: usage_limits(ctx))
    scheduler.add("system-metrics", s.system_metrics, lambda: system_metrics(ctx))
