"""``/metrics``: Prometheus text format from a registry of the app's own (never the global one).

HTTP requests are counted by the middleware; collector and projection figures are read from
the running services at scrape time, so they are never stale and never double-counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

HealthSource = Callable[[], Mapping[str, Mapping[str, Any]]]
"""Each cluster's collector health as plain data (see ``CollectorService.health``)."""


class ServiceCollector(Collector):
    """Collector and projection figures, read when Prometheus scrapes."""

    def __init__(self, health: HealthSource | None) -> None:
        self.health = health
        self.lag: tuple[int, int, float] | None = None  # head, checkpoint, seconds: set per scrape

    def collect(self) -> Iterator[Metric]:
        polls = CounterMetricFamily(
            "pvetrail_polls", "Polls of Proxmox VE, by cluster and kind", labels=["cluster", "kind"]
        )
        errors = CounterMetricFamily(
            "pvetrail_poll_errors",
            "Failed polls, by cluster and error kind",
            labels=["cluster", "kind"],
        )
        appended = CounterMetricFamily(
            "pvetrail_events_appended", "Events appended by the collectors", labels=["cluster"]
        )
        duration = GaugeMetricFamily(
            "pvetrail_poll_duration_seconds",
            "Duration of the last poll, by cluster and kind",
            labels=["cluster", "kind"],
        )
        failures = GaugeMetricFamily(
            "pvetrail_collector_consecutive_failures",
            "Polls failed in a row",
            labels=["cluster"],
        )
        up = GaugeMetricFamily(
            "pvetrail_collector_up", "1 while the last poll succeeded", labels=["cluster"]
        )
        clock = GaugeMetricFamily(
            "pvetrail_node_clock_offset_seconds",
            "A Proxmox VE node's clock minus ours, from the Date headers of its answers",
            labels=["cluster", "node"],
        )
        leader = GaugeMetricFamily(
            "pvetrail_collector_leader",
            "1 while this process holds the cluster's collector lease (it polls)",
            labels=["cluster"],
        )
        standby = GaugeMetricFamily(
            "pvetrail_collector_standby",
            "1 while another process holds the cluster's collector lease (this one stands by)",
            labels=["cluster"],
        )
        clusters = self.health() if self.health is not None else {}
        for cluster, health in clusters.items():
            for kind, count in dict(health.get("polls_total") or {}).items():
                polls.add_metric([cluster, str(kind)], float(count))
            for kind, count in dict(health.get("poll_errors_total") or {}).items():
                errors.add_metric([cluster, str(kind)], float(count))
            appended.add_metric([cluster], float(health.get("events_appended_total") or 0))
            for kind, seconds in dict(health.get("last_poll_duration_s") or {}).items():
                duration.add_metric([cluster, str(kind)], float(seconds))
            consecutive = int(health.get("consecutive_failures") or 0)
            failures.add_metric([cluster], float(consecutive))
            up.add_metric([cluster], 1.0 if consecutive == 0 else 0.0)
            for node, offset in dict(health.get("clock_offsets_s") or {}).items():
                clock.add_metric([cluster, str(node)], float(offset))
            leader.add_metric([cluster], 1.0 if health.get("leader") else 0.0)
            standby.add_metric([cluster], 1.0 if health.get("state") == "standby" else 0.0)
        yield from (polls, errors, appended, duration, failures, up, clock, leader, standby)
        if self.lag is not None:
            head, checkpoint, seconds = self.lag
            yield GaugeMetricFamily(
                "pvetrail_projection_lag_events",
                "Events in the log not yet applied to the projections",
                value=float(max(head - checkpoint, 0)),
            )
            yield GaugeMetricFamily(
                "pvetrail_projection_lag_seconds",
                "Age of the oldest event not yet applied to the projections",
                value=float(seconds),
            )
            yield GaugeMetricFamily(
                "pvetrail_event_log_head", "Position of the last event in the log", value=head
            )


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
"""The ``method`` label's values (anything else counts as ``other``)."""


class Metrics:
    """The app's registry and its HTTP instruments."""

    def __init__(self, health: HealthSource | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pvetrail_http_requests",
            "HTTP requests, by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pvetrail_http_request_duration_seconds",
            "HTTP request duration, by route",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.services = ServiceCollector(health)
        self.registry.register(self.services)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request (a method outside HTTP's own as ``other``: a client
        must not be able to make up label values)."""
        if method not in KNOWN_METHODS:
            method = "other"
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
