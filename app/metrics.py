"""Prometheus metrics: read from the running server's parts when scraped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class Metrics:
    """One registry per server, so tests and several apps in a process do not mix."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # resident memory, CPU, open files
        self.http_requests = Counter(
            "whatsapp_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )

    def watch(self, ctx: Any) -> None:
        self.registry.register(_ServerCollector(ctx))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ServerCollector(Collector):
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ctx = self.ctx
        by_status = GaugeMetricFamily(
            "whatsapp_instances", "Instances by status", labels=["status"]
        )
        for status, count in sorted(ctx.queries.instances_by_status().items()):
            by_status.add_metric([status], count)
        yield by_status
        usage = ctx.queries.usage_of_system()
        sums = [
            usage[c]
            for c in ("messages_sent", "messages_received", "webhook_sent", "webhook_failed")
        ]
        for name, text, value in zip(
            ("messages_sent", "messages_received", "webhook_deliveries", "webhook_failures"),
            (
                "Messages sent",
                "Messages received",
                "Webhook deliveries",
                "Webhook deliveries given up",
            ),
            sums,
            strict=True,
        ):
            yield GaugeMetricFamily(f"whatsapp_{name}_total", f"{text}, all time", value=value)
        head = ctx.store.recorder.max_notification_id() or 0
        yield GaugeMetricFamily(
            "whatsapp_event_store_position", "Last stored event position", value=head
        )
        yield GaugeMetricFamily(
            "whatsapp_projection_lag_events",
            "Events stored but not yet in the read models",
            value=max(0, head - ctx.projections.position),
        )
        streams = ctx.streams
        yield GaugeMetricFamily(
            "whatsapp_event_streams", "Open live audit streams", value=len(streams.streams)
        )
        yield GaugeMetricFamily(
            "whatsapp_event_stream_store_reads_total",
            "Store reads made for live audit streams (catching up), all time",
            value=streams.store_reads,
        )
        yield GaugeMetricFamily(
            "whatsapp_event_stream_decoded_total",
            "Events decoded for live audit streams (once each, however many streams)",
            value=streams.decoded,
        )
        mailboxes = GaugeMetricFamily(
            "whatsapp_actor_mailbox", "Messages waiting per actor kind", labels=["actor"]
        )
        waiting = sum(
            ref.actor_inbox.qsize() for ref in list(ctx.registry.values()) if ref.is_alive()
        )
        mailboxes.add_metric(["instance"], waiting)
        mailboxes.add_metric(["supervisor"], ctx.supervisor.actor_inbox.qsize())
        if ctx.webhooks is not None:
            mailboxes.add_metric(["webhooks"], ctx.webhooks.actor_inbox.qsize())
        yield mailboxes
        yield GaugeMetricFamily(
            "whatsapp_instance_actors",
            "Running instance actors",
            value=sum(1 for ref in list(ctx.registry.values()) if ref.is_alive()),
        )
