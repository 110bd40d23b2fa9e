"""Prometheus metrics of one relay process (a private registry per app).

Labels have small fixed value sets (route templates, outcomes, scopes), never
ids, so cardinality stays bounded whatever clients send.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics import MetricWrapperBase


class RelayMetrics:
    """The counters and gauges listed in docs/relay.md."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.channels_open = Gauge(
            "unlatch_relay_channels_open", "Open channels", ["kind"], registry=self.registry
        )
        self.messages_relayed = Counter(
            "unlatch_relay_messages_relayed",
            "Messages posted on channels (hello, accept, seen, reply)",
            ["kind"],
            registry=self.registry,
        )
        self.messages_delivered = Counter(
            "unlatch_relay_messages_delivered",
            "Messages handed to a waiting party (WebSocket or long-poll)",
            ["transport"],
            registry=self.registry,
        )
        self.pushes = Counter(
            "unlatch_relay_pushes",
            "Push notifications by outcome (delivered, gone, failed)",
            ["outcome"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "unlatch_relay_listener_notifications",
            "Unlock notifications sent to phone WebSocket listeners",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "unlatch_relay_rate_limited",
            "Requests refused by a rate limit or pending cap",
            ["scope"],
            registry=self.registry,
        )
        self.rate_limit_fallbacks = Counter(
            "unlatch_relay_rate_limit_fallbacks",
            "Rate-limit checks made with this node's own buckets because the shared"
            " limiter (Redis) was unreachable: limits then hold per node, not per deployment",
            registry=self.registry,
        )
        self.websockets_open = Gauge(
            "unlatch_relay_websockets_open", "Open WebSockets", ["endpoint"], registry=self.registry
        )
        self.http_requests = Counter(
            "unlatch_relay_http_requests",
            "HTTP requests by route template and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.channels_created = Counter(
            "unlatch_relay_channels_created", "Channels created", ["kind"], registry=self.registry
        )
        self.channels_expired = Counter(
            "unlatch_relay_channels_expired", "Channels that expired", registry=self.registry
        )
        self.reconcile_wakeups = Counter(
            "unlatch_relay_reconcile_wakeups",
            "Waiters told to re-read the store by this node's reconciler (Redis bus): a store"
            " change it found, whose bus event may have been lost",
            registry=self.registry,
        )
        for kind in ("pairing", "unlock"):
            self.channels_open.labels(kind)
            self.channels_created.labels(kind)
        for outcome in ("delivered", "gone", "failed"):
            self.pushes.labels(outcome)
        for endpoint in ("pairing", "unlock", "listen"):
            self.websockets_open.labels(endpoint)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: MetricWrapperBase, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once: a request's counters skip
        prometheus_client's label checks and lock (a few microseconds each, on every
        request). Bounded like the label values themselves (small fixed sets)."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
