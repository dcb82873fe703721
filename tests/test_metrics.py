"""What the metrics say after what the stages tell them (service/operations/metrics.py)."""

from __future__ import annotations

from datetime import timedelta

from consumers.events import JobPosting
from service.operations.metrics import Metrics
from service.store import ClaimedDelivery, Delivery, utcnow


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def claimed(
    target_id: int,
    event_id: str,
    scheme: str,
    age_s: float = 0.0,
    kafka_timestamp_ms: int | None = None,
) -> ClaimedDelivery:
    event = JobPosting(id=event_id, employer="ACME", title="Agent", city="Portland")
    created = utcnow() - timedelta(seconds=age_s)
    delivery = Delivery(
        id=1,
        subscription_id="sub",
        target_id=target_id,
        target=f"{scheme}://x",
        event_kind="posting",
        event_id=event_id,
        status="sending",
        attempts=1,
        next_attempt_at=created,
        last_error=None,
        created_at=created,
        sent_at=None,
    )
    return ClaimedDelivery(delivery, event, "AP jobs", scheme, kafka_timestamp_ms)


def test_lag_is_reported_for_the_partitions_held_now_and_forgotten_when_they_move() -> None:
    metrics = Metrics()
    metrics.consumer_lag({("jobs.postings", 0): 5, ("jobs.postings", 1): 2})
    metrics.consumer_lag({("jobs.postings", 1): 0})  # partition 0 went to another instance
    lag = "jobwire_consumer_lag_messages"
    assert value(metrics, lag, topic="jobs.postings", partition="0") is None
    assert value(metrics, lag, topic="jobs.postings", partition="1") == 0


def test_alerts_that_die_with_their_target_count_as_dead_and_the_target_once() -> None:
    metrics = Metrics()
    metrics.alerts_failed([claimed(7, "e1", "mailto")], 0.2, dead=False)
    metrics.alerts_failed([claimed(7, "e1", "mailto")], 0.2, dead=True)
    metrics.target_dead(7, "550 no such user", also_dead=4)
    # Probed later, dead again: one more alert dead, the target not counted again.
    metrics.alerts_failed([claimed(7, "e9", "mailto")], 0.1, dead=True)
    metrics.target_dead(7, "550 no such user", also_dead=0)
    assert value(metrics, "jobwire_deliveries_total", outcome="retry", scheme="mailto") == 1
    assert value(metrics, "jobwire_deliveries_total", outcome="dead", scheme="mailto") == 6
    assert value(metrics, "jobwire_target_deaths_total", scheme="mailto") == 1
    assert value(metrics, "jobwire_targets_dead") == 1
    metrics.target_recovered(7)
    assert value(metrics, "jobwire_targets_dead") == 0


def test_latency_runs_from_the_kafka_timestamp_kept_with_the_event() -> None:
    now = [1_000_000.0]
    metrics = Metrics(clock=lambda: now[0])
    # A digest of two: one send, two alerts. The first's event carries its Kafka timestamp
    # from the store (3 s ago); the second's was stored before there was one: its latency
    # runs from when it was recorded (about 30 s ago).
    metrics.alerts_sent(
        [
            claimed(3, "e1", "json", age_s=0.5, kafka_timestamp_ms=int((now[0] - 3.0) * 1000)),
            claimed(3, "e2", "json", age_s=30.0),
        ],
        0.01,
    )
    latency = "jobwire_delivery_latency_seconds"
    assert value(metrics, f"{latency}_count", scheme="json") == 2
    assert value(metrics, "jobwire_delivery_send_duration_seconds_count", scheme="json") == 1
    assert value(metrics, "jobwire_deliveries_total", outcome="sent", scheme="json") == 2
    total = value(metrics, f"{latency}_sum", scheme="json")
    assert total is not None
    assert 32.9 < total < 33.5  # 3 s + about 30 s


def test_reading_events_counts_them_and_says_when_the_last_came() -> None:
    now = [1_000_000.0]
    metrics = Metrics(clock=lambda: now[0])
    metrics.events_received("jobs.postings", 1)
    metrics.events_received("jobs.postings", 0)
    now[0] += 1.0
    assert value(metrics, "jobwire_events_consumed_total", topic="jobs.postings") == 1
    assert value(metrics, "jobwire_consumer_last_event_timestamp_seconds") == 1_000_000.0
    assert value(metrics, "jobwire_consumer_last_event_age_seconds") == 1.0


def test_alerts_sent_to_several_schemes_each_count_under_their_own() -> None:
    metrics = Metrics()
    for scheme in ("json", "mailto", "json", "slack", "json"):
        metrics.alerts_sent([claimed(1, "e1", scheme, kafka_timestamp_ms=1)], 0.01)
    sent = "jobwire_deliveries_total"
    assert value(metrics, sent, outcome="sent", scheme="json") == 3
    assert value(metrics, sent, outcome="sent", scheme="mailto") == 1
    assert value(metrics, sent, outcome="sent", scheme="slack") == 1
    latency = "jobwire_delivery_latency_seconds_count"
    assert value(metrics, latency, scheme="mailto") == 1
    assert value(metrics, "jobwire_delivery_send_duration_seconds_count", scheme="json") == 3
