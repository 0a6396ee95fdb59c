"""Every metric `/metrics` serves, defined here and nowhere else (docs/operations.md lists them).

Each application has its own `CollectorRegistry` (several can run in one process, in the
tests), holding:

- prometheus-client's process, platform and garbage-collector collectors;
- histograms and labelled counters observed where they happen, none of them on the
  fan-out's per-recipient path;
- `_Collector`, which reads plain integer counters kept by the hub, the delivery engine
  and the server adapter only when the endpoint is scraped, so that the hot paths pay an
  integer increment, not a Prometheus call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from hubbub.brokers.local import LocalBroker
from hubbub.core.codes import CloseCode, ErrorCode
from hubbub.engine.hub import Hub
from hubbub.server.guard import Guard
from hubbub.server.looplag import LoopLagMonitor, Probe, garbage_collections

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0)
"""Seconds, for every latency histogram here: from well under a loop pass to a stall."""

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)
"""Writes per store commit; the SQLite store commits at most 1000 at once."""

KNOWN_CLOSE_CODES = frozenset(range(1000, 1016)) | frozenset(int(code) for code in CloseCode)
"""Close codes counted under their own label: the registered ones and hubbub's. A client
may close with any code from 3000 to 4999; those all count as `other`, so that no client
can make the server keep thousands of series."""


def close_label(code: int | None) -> str:
    """The `code` label of `hubbub_connections_closed_total` for a connection's close code."""
    if code is None:
        return "none"
    return str(int(code)) if code in KNOWN_CLOSE_CODES else "other"


class Metrics:
    """The metrics of one application around one hub."""

    def __init__(self, hub: Hub, guard: Guard) -> None:
        self.hub = hub
        self.guard = guard
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        # Plain counters the server adapter increments (see the module docstring).
        self.opened = 0
        self.closed: dict[str, int] = dict.fromkeys(
            [*(str(int(code)) for code in CloseCode), "1006"], 0)
        self.ws_received = 0
        self.ws_received_bytes = 0
        self.http_received = 0
        self.http_received_bytes = 0
        self.http_refused: dict[ErrorCode, int] = {}
        self.commits = 0
        self.commit_seconds = 0.0

        self.publish_to_write = Histogram(
            "hubbub_publish_to_write_seconds",
            "From a message's publish being accepted to its frame being handed to the "
            "sockets' transports (the oldest message of each written batch)",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.loop_lag = Histogram(
            "hubbub_loop_lag_seconds",
            "How late the event loop ran a timer due every 50 ms",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.store_commit = Histogram(
            "hubbub_store_commit_seconds", "Duration of each store transaction (SQLite)",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.store_batch = Histogram(
            "hubbub_store_batch_size", "Writes (appends and room creations) per store commit",
            buckets=BATCH_BUCKETS, registry=self.registry)
        self.registry.register(_Collector(self))

        hub.fanout.on_written = self.publish_to_write.observe
        if isinstance(hub.broker, LocalBroker):
            hub.broker.store.on_commit = self._committed

    def _committed(self, seconds: float, writes: int) -> None:
        # The store's writer thread: prometheus-client's metrics are thread-safe, and the
        # two plain numbers are only ever read by the event loop thread.
        self.store_commit.observe(seconds)
        self.store_batch.observe(writes)
        self.commits += 1
        self.commit_seconds += seconds

    def store_commits(self) -> Callable[[], str | None]:
        """A loop-lag probe (see `looplag.Probe`): the store commits during a stall."""
        commits, seconds = self.commits, self.commit_seconds

        def explain() -> str | None:
            count = self.commits - commits
            if not count:
                return None
            return (f"{count} store commit(s) meanwhile, "
                    f"{(self.commit_seconds - seconds) * 1000:.0f} ms in all")

        return explain

    def loop_monitor(self, warn_after_ms: float) -> LoopLagMonitor:
        probes: tuple[Probe, ...] = (garbage_collections, self.store_commits)
        return LoopLagMonitor(self.loop_lag.observe, warn_after=warn_after_ms / 1000,
                              probes=probes)

    def ws_frame(self, data: str | bytes) -> None:
        """One data frame from a WebSocket client (text arrives decoded: its UTF-8 size
        is its length unless it holds non-ASCII characters, which `isascii` tells in O(1))."""
        self.ws_received += 1
        self.ws_received_bytes += (len(data) if isinstance(data, bytes) or data.isascii()
                                   else len(data.encode()))

    def http_publish(self, body: bytes) -> None:
        self.http_received += 1
        self.http_received_bytes += len(body)

    def connection_closed(self, code: int | None) -> None:
        label = close_label(code)
        self.closed[label] = self.closed.get(label, 0) + 1

    def refused(self, code: ErrorCode) -> None:
        """One HTTP API refusal (the hub counts the WebSocket ones itself)."""
        self.http_refused[code] = self.http_refused.get(code, 0) + 1

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Collector:
    """The metrics read from plain counters at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        metrics = self.metrics
        hub = metrics.hub
        fanout = hub.fanout
        yield _gauge("hubbub_connections", "Open WebSocket connections", len(hub.connections))
        yield _gauge("hubbub_rooms", "Rooms with at least one member", len(hub.registry.names()))
        yield _counter("hubbub_messages_published", "Messages stored", hub.published)
        yield _counter("hubbub_broker_listener_restarts", "Times the broker's subscription "
                       "listener was restarted (Redis)", hub.broker.listener_restarts)
        yield _counter("hubbub_deliveries", "Fan-out copies handed to sockets (one per "
                       "recipient per message)", fanout.deliveries)
        yield _counter("hubbub_slow_closes", "Connections closed as too slow (4008)",
                       fanout.slow_closes)
        yield _gauge("hubbub_outbox_bytes", "Bytes held now in the outboxes of connections "
                     "whose socket is not keeping up",
                     sum(conn.outlet.held() for conn in hub.connections.values()))
        yield _counter("hubbub_connections_opened", "WebSocket connections accepted",
                       metrics.opened)
        yield _counters("hubbub_connections_closed", "WebSocket connections ended, by close "
                        "code", "code", dict(sorted(metrics.closed.items())))
        yield _counters("hubbub_refusals", "Requests refused with an error, WebSocket and "
                        "HTTP API, by error code", "code",
                        {error.value: hub.refused.get(error, 0)
                         + metrics.http_refused.get(error, 0) for error in ErrorCode})
        guard = metrics.guard
        yield _counters("hubbub_rate_limit_hits", "Requests refused by a rate limit "
                        "(`requests`: a connection's request rate)", "limit",
                        {"requests": hub.refused.get(ErrorCode.RATE_LIMITED, 0),
                         "http": guard.refused_http_rate, "pings": guard.ping_rate_closes})
        yield _counters("hubbub_connection_limit_hits", "Connections refused or cut off by a "
                        "connection limit", "reason",
                        {"max_connections": guard.refused_max_connections,
                         "max_connections_per_ip": guard.refused_max_connections_per_ip,
                         "connection_rate": guard.refused_connection_rate,
                         "header_timeout": guard.header_timeouts})
        yield _counters("hubbub_foreign_requests_refused", "Requests refused for their Host "
                        "(allowed_hosts) or Origin (allowed_origins)", "header",
                        {"host": guard.refused_host, "origin": guard.refused_origin})
        yield _counters("hubbub_received_messages", "Messages received: WebSocket data "
                        "frames and HTTP API publishes", "transport",
                        {"websocket": metrics.ws_received, "http": metrics.http_received})
        yield _counters("hubbub_received_bytes", "Payload bytes of those messages",
                        "transport", {"websocket": metrics.ws_received_bytes,
                                      "http": metrics.http_received_bytes})
        yield _counter("hubbub_sent_messages", "WebSocket frames handed to the delivery "
                       "engine: fan-out copies and frames to one connection",
                       fanout.deliveries + fanout.sends)
        yield _counter("hubbub_sent_bytes", "Payload bytes of those frames",
                       fanout.sent_bytes)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def _counters(name: str, documentation: str, label: str,
              values: dict[str, float]) -> CounterMetricFamily:
    """One counter per value of `label`."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in values.items():
        family.add_metric([value], count)
    return family
