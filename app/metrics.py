"""Prometheus metrics: read from the running server's parts when scraped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
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

    def watch(self, ctx: Any, forwards: Any = None) -> None:
        self.registry.register(_ServerCollector(ctx))
        if ctx.cluster is not None:
            self.registry.register(_ClusterCollector(ctx.cluster, forwards))

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
            "whatsapp_engine_starts_pending",
            "Engine starts waiting for their turn or under way (ENGINE_START_CONCURRENCY)",
            value=ctx.start_gate.starting,
        )
        refused = ctx.outdated.refused()
        outdated = GaugeMetricFamily(
            "whatsapp_whatsmeow_client_outdated",
            "1 when WhatsApp refuses this neonize version (405): upgrade neonize",
            labels=["neonize"],
        )
        outdated.add_metric([refused or ""], 1 if refused else 0)
        yield outdated
        yield GaugeMetricFamily(
            "whatsapp_instance_actors",
            "Running instance actors",
            value=sum(1 for ref in list(ctx.registry.values()) if ref.is_alive()),
        )


class _ClusterCollector(Collector):
    """Several nodes: this node's leases, forwards, takeovers and lease renewals."""

    def __init__(self, node: Any, forwards: Any) -> None:
        self.node = node
        self.forwards = forwards

    def collect(self) -> Iterator[Metric]:
        node, counts = self.node, self.node.counts
        yield GaugeMetricFamily(
            "whatsapp_cluster_leases_held", "Instance leases this node holds", len(node.held())
        )
        yield GaugeMetricFamily(
            "whatsapp_cluster_leader", "1 if this node runs the singletons", int(node.leader)
        )
        yield GaugeMetricFamily(
            "whatsapp_cluster_nodes", "Live nodes this node sees", len(node.view.nodes)
        )
        for name, text, value in (
            ("takeovers", "Leases taken after their holder let them expire", counts.takeovers),
            ("leases_acquired", "Leases taken", counts.acquired),
            ("leases_released", "Leases handed over", counts.released),
            ("leases_lost", "Leases found taken by another node", counts.lost),
            (
                "self_fenced",
                "Times this node stopped its engines for lack of renewals",
                counts.self_fenced,
            ),
            ("lease_renewal_failures", "Lease renewals that failed", counts.renewal_failures),
        ):
            yield CounterMetricFamily(f"whatsapp_cluster_{name}", text, value=value)
        forwards = CounterMetricFamily(
            "whatsapp_cluster_forwards", "Requests forwarded between nodes", labels=["outcome"]
        )
        if self.forwards is not None:
            for outcome in ("sent", "failed", "received", "refused"):
                forwards.add_metric([outcome], getattr(self.forwards, outcome))
        yield forwards
        yield HistogramMetricFamily(
            "whatsapp_cluster_lease_renewal_seconds",
            "How long lease renewals (heartbeat and leases) took",
            buckets=[
                ("+Inf" if bound == float("inf") else str(bound), count)
                for bound, count in counts.renewal_buckets.items()
            ],
            sum_value=counts.renewal_sum,
        )
        yield GaugeMetricFamily(
            "whatsapp_cluster_lease_renewal_last_seconds",
            "How long the last lease renewal took",
            counts.renewal_seconds,
        )
