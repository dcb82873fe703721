"""jobwire's Prometheus metrics: one registry per running service, one method per thing counted.

Each stage calls one method here (`events_received`, `matches_recorded`, `delivery_sent`, ...);
this module alone knows the metric names, their labels and their buckets. The names follow
Prometheus's conventions: a `jobwire_` prefix, `_total` on counters, base units (`_seconds`),
labels with few values (a topic, a scheme, a status; never an id). docs/operations.md lists
every one, and deploy/ holds the alert rules and the dashboard built on them.

Gauges that are a question to the store (the ledger's rows by status) are refreshed by
`service/operations/health.py`, not at scrape time: a scrape never waits on the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from consumers.events import MalformedCause
from service.store import DELIVERY_STATUSES, ClaimedDelivery, utcnow

# An alert's whole trip can include retries with backoff (minutes); a send takes milliseconds
# to a mail server's 30 s timeout.
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
# 10 subscriptions take microseconds, a million about half a minute.
INDEX_BUCKETS = (0.0001, 0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 120)
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

# Counters' `_created` series double what a scrape carries and no query of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Every metric of one jobwire process, in a registry of its own (so two services in one
    test process do not add up)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        started = clock()

        # -- Kafka: consumed, dead-lettered, lag, reachability ----------------------------------
        self.events_consumed = Counter(
            "jobwire_events_consumed",
            "Valid events read from Kafka, by topic.",
            ["topic"],
            registry=registry,
        )
        self.events_dead_lettered = Counter(
            "jobwire_events_dead_lettered",
            "Malformed messages parked on the dead-letter topic, by source topic and reason "
            "(empty, not_json, not_an_object, invalid_fields).",
            ["topic", "reason"],
            registry=registry,
        )
        self.lag_messages = Gauge(
            "jobwire_consumer_lag_messages",
            "Messages in a partition not yet read by this instance: high-water mark - position.",
            ["topic", "partition"],
            registry=registry,
        )
        self.last_event = Gauge(
            "jobwire_consumer_last_event_timestamp_seconds",
            "When this instance last read a valid event (Unix time; its start until then).",
            registry=registry,
        )
        self.last_event.set_function(lambda: self._last_event_at)
        self.last_event_age = Gauge(
            "jobwire_consumer_last_event_age_seconds",
            "Seconds since this instance last read a valid event (since its start until then).",
            registry=registry,
        )
        self.last_event_age.set_function(lambda: self.clock() - self._last_event_at)
        self._last_event_at = started
        self.kafka_up = Gauge(
            "jobwire_kafka_up",
            "1 while the Kafka brokers answer this instance, 0 while they do not.",
            registry=registry,
        )

        # -- matching and the ledger ------------------------------------------------------------
        self.matches = Counter(
            "jobwire_matches_recorded",
            "(subscription, event) matches recorded in the ledger, re-read batches included.",
            registry=registry,
        )
        self.alerts_recorded = Counter(
            "jobwire_alerts_recorded",
            "New alerts (ledger rows, one per match and target) recorded; re-reads add none.",
            registry=registry,
        )
        self.ledger_rows = Gauge(
            "jobwire_ledger_rows",
            "Alerts in the ledger by status (pending, sending, sent, dead); the same for every "
            "instance of one store.",
            ["status"],
            registry=registry,
        )
        self.store_up = Gauge(
            "jobwire_store_up",
            "1 while the store answers this instance, 0 while it does not.",
            registry=registry,
        )
        self.subscriptions_active = Gauge(
            "jobwire_subscriptions_active",
            "Active subscriptions in this instance's matching index.",
            registry=registry,
        )
        self.index_build = Histogram(
            "jobwire_index_build_duration_seconds",
            "Time to apply subscription changes to the matching index (the first is the whole "
            "index, at start).",
            buckets=INDEX_BUCKETS,
            registry=registry,
        )
        self.refresh_age = Gauge(
            "jobwire_subscriptions_refresh_age_seconds",
            "Seconds since subscriptions were last read from the store (grows while the store "
            "is away; changes wait for the next refresh).",
            registry=registry,
        )
        self.refresh_age.set_function(lambda: self.clock() - self._refreshed_at)
        self._refreshed_at = started

        # -- delivery ---------------------------------------------------------------------------
        self.deliveries = Counter(
            "jobwire_deliveries",
            "Alerts by outcome (sent; retry: failed, tried again later; dead: given up, with "
            "those that die with their target) and target scheme.",
            ["outcome", "scheme"],
            registry=registry,
        )
        self.send_duration = Histogram(
            "jobwire_delivery_send_duration_seconds",
            "Time one send to a target took, whatever its outcome, by scheme.",
            ["scheme"],
            buckets=SEND_BUCKETS,
            registry=registry,
        )
        self.latency = Histogram(
            "jobwire_delivery_latency_seconds",
            "From an event's publication to Kafka to its alert being sent, by scheme.",
            ["scheme"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.sends_in_flight = Gauge(
            "jobwire_delivery_in_flight",
            "Sends under way now (at most JOBWIRE_DELIVERY__CONCURRENCY).",
            registry=registry,
        )
        self.sends_held_back = Gauge(
            "jobwire_delivery_held_back",
            "Alerts claimed and waiting their turn in memory because their target, or the "
            "server it goes through (jobwire's own mail), has JOBWIRE_DELIVERY__PER_TARGET "
            "sends under way; other targets' alerts are claimed past them.",
            registry=registry,
        )
        self.targets_dead = Gauge(
            "jobwire_targets_dead",
            "Targets this instance declared dead (every attempt failed) that have not "
            "answered since.",
            registry=registry,
        )
        self.target_deaths = Counter(
            "jobwire_target_deaths",
            "Targets declared dead, by scheme (a dead target that fails a later probe again "
            "is not counted again).",
            ["scheme"],
            registry=registry,
        )
        self.meta_alerts = Counter(
            "jobwire_meta_alerts",
            "Notices about dead and recovered targets, by recipient (owner, operator), kind "
            "(dead, recovered) and outcome (sent, failed, skipped: nowhere to send).",
            ["recipient", "kind", "outcome"],
            registry=registry,
        )
        for recipient in ("owner", "operator"):
            for kind in ("dead", "recovered"):
                for outcome in ("sent", "failed", "skipped"):
                    self.meta_alerts.labels(recipient, kind, outcome)

        # -- the API ----------------------------------------------------------------------------
        self.api_requests = Counter(
            "jobwire_api_requests",
            "HTTP requests to the API by route template, method and status code.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.api_duration = Histogram(
            "jobwire_api_request_duration_seconds",
            "Time to answer an API request, by route template.",
            ["route"],
            buckets=API_BUCKETS,
            registry=registry,
        )

        self._consumed: dict[str, Counter] = {}
        # Per scheme: its sent counter, send time and latency, each looked up once. Looking
        # three labels up for every alert sent was 2-3% of the service's time at 1,000+ a
        # second. Schemes are few: Apprise's, those the operator allows.
        self._sent: dict[str, tuple[Counter, Histogram, Histogram]] = {}
        self._lag_series: set[tuple[str, str]] = set()
        # Targets declared dead and not yet recorded so (their scheme), then dead ones.
        self._dying: dict[int, str] = {}
        self._dead_targets: dict[int, str] = {}

    # -- what the Kafka edge reports (consumers.health.ConsumerObserver) -----------------------

    def events_received(self, topic: str, count: int) -> None:
        """A batch of one topic's events was read. Once per batch, not per event: a counter's
        lock taken per event cost a tenth of ingest."""
        if not count:
            return
        consumed = self._consumed.get(topic)
        if consumed is None:
            consumed = self._consumed[topic] = self.events_consumed.labels(topic)
        consumed.inc(count)
        self._last_event_at = self.clock()

    def event_dead_lettered(self, topic: str, cause: MalformedCause) -> None:
        self.events_dead_lettered.labels(topic, cause).inc()

    def consumer_lag(self, lag: Mapping[tuple[str, int], int]) -> None:
        shown = {(topic, str(partition)): n for (topic, partition), n in lag.items()}
        # Partitions that moved to another instance stop being this one's to report.
        for labels in self._lag_series - shown.keys():
            self.lag_messages.remove(*labels)
        for labels, n in shown.items():
            self.lag_messages.labels(*labels).set(n)
        self._lag_series = set(shown)

    def kafka_reachable(self, up: bool) -> None:
        self.kafka_up.set(1 if up else 0)

    # -- matching and the ledger -----------------------------------------------------------

    def matches_recorded(self, matches: int, new_alerts: int) -> None:
        self.matches.inc(matches)
        self.alerts_recorded.inc(new_alerts)

    def subscriptions_refreshed(self, active: int, index_seconds: float | None) -> None:
        """A refresh read the store; `index_seconds` is how long the index took, if it
        changed."""
        self._refreshed_at = self.clock()
        self.subscriptions_active.set(active)
        if index_seconds is not None:
            self.index_build.observe(index_seconds)

    def ledger_counts(self, counts: Mapping[str, int]) -> None:
        for status in DELIVERY_STATUSES:
            self.ledger_rows.labels(status).set(counts.get(status, 0))

    def store_reachable(self, up: bool) -> None:
        self.store_up.set(1 if up else 0)

    # -- delivery ----------------------------------------------------------------------------

    def alerts_sent(self, alerts: Sequence[ClaimedDelivery], send_s: float) -> None:
        """One send took these alerts (one, or a digest's). The latency of each runs from its
        event's Kafka timestamp, kept with the event in the store, so whichever instance sends
        it and however late; else (an event stored before migration 0011, or a record without
        a timestamp) from when the alert was recorded."""
        scheme = alerts[0].scheme
        series = self._sent.get(scheme)
        if series is None:
            series = self._sent[scheme] = (
                self.deliveries.labels("sent", scheme),
                self.send_duration.labels(scheme),
                self.latency.labels(scheme),
            )
        sent, send_duration, latency = series
        sent.inc(len(alerts))
        send_duration.observe(send_s)
        now = self.clock()
        recorded_now: datetime | None = None
        for alert in alerts:
            if alert.kafka_timestamp_ms:
                latency.observe(max(now - alert.kafka_timestamp_ms / 1000, 0.0))
            else:
                recorded_now = recorded_now or utcnow()
                recorded = alert.delivery.created_at
                latency.observe(max((recorded_now - recorded).total_seconds(), 0.0))

    def alerts_failed(self, alerts: Sequence[ClaimedDelivery], send_s: float, dead: bool) -> None:
        scheme = alerts[0].scheme
        self.deliveries.labels("dead" if dead else "retry", scheme).inc(len(alerts))
        self.send_duration.labels(scheme).observe(send_s)
        if dead:
            self._dying[alerts[0].delivery.target_id] = scheme

    def target_dead(self, target_id: int, error: str, also_dead: int) -> None:
        """The alerts that died with their target count as dead too."""
        scheme = self._dying.pop(target_id, "unknown")
        self.deliveries.labels("dead", scheme).inc(also_dead)
        if target_id not in self._dead_targets:
            self._dead_targets[target_id] = scheme
            self.target_deaths.labels(scheme).inc()
            self.targets_dead.set(len(self._dead_targets))

    def target_recovered(self, target_id: int) -> None:
        if self._dead_targets.pop(target_id, None) is not None:
            self.targets_dead.set(len(self._dead_targets))

    def watch_sends(self, in_flight: Callable[[], int], held_back: Callable[[], int]) -> None:
        """The delivery worker's own counts, read at each scrape (nothing on the send path)."""
        self.sends_in_flight.set_function(in_flight)
        self.sends_held_back.set_function(held_back)

    def meta_alert(self, recipient: str, kind: str, outcome: str) -> None:
        self.meta_alerts.labels(recipient, kind, outcome).inc()

    # -- the API -----------------------------------------------------------------------------

    def api_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.api_requests.labels(route, method, str(status)).inc()
        self.api_duration.labels(route).observe(seconds)

    def count_restarts(self, restarts: Mapping[str, int]) -> None:
        """Expose the service's own count of restarted parts as `jobwire_restarts_total`."""
        self.registry.register(RestartsCollector(restarts))

    # -- reading them back -------------------------------------------------------------------

    def names(self) -> set[str]:
        """Every series name this registry can expose (`_total`, `_bucket`, ... included),
        whether or not it has a sample yet."""
        return {
            metric.name + suffix
            for metric in self.registry.collect()
            for suffix in _SUFFIXES.get(metric.type, ("",))
        }


_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}


class RestartsCollector(Collector):
    """`jobwire_restarts_total{part}` from the service's own count of restarted parts."""

    def __init__(self, restarts: Mapping[str, int]) -> None:
        self.restarts = restarts

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "jobwire_restarts",
            "Times a part (the consumer) failed and was started again.",
            labels=["part"],
        )
        # The consumer is the part that restarts: shown from 0, so `increase()` sees the first.
        for part, count in sorted({"consumer": 0, **self.restarts}.items()):
            family.add_metric([part], count)
        yield family
