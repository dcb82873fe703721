"""`jobwire status`: one screen for an operator, from Kafka and the store themselves.

It needs no running instance: the lag is each partition's end offset minus the group's
committed offset (what a restarted instance would start from), the instances are the group's
members as the broker knows them, and the ledger, the dead targets and the last event come from
the store. Kafka and the store are asked at the same time, each within `TIMEOUT_S`; one that
does not answer is shown as such, and the rest is still shown.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaConnectionError

from config.settings import Settings
from consumers.connection import client_options, explain_failure
from service.redaction import mask
from service.store import DELIVERY_STATUSES, Store, describe_failure, utcnow
from service.store.engine import sqlite_file

TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here
    end: int
    lag: int


@dataclass(frozen=True, slots=True)
class Instance:
    client_id: str
    host: str
    partitions: list[str]


@dataclass
class KafkaStatus:
    reachable: bool
    error: str | None = None
    group_state: str | None = None
    instances: list[Instance] = field(default_factory=list)
    lag: list[PartitionLag] = field(default_factory=list)

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.lag)


@dataclass(frozen=True, slots=True)
class DeadTargetStatus:
    target: str  # masked
    subscription_id: str
    subscription_name: str
    dead: int
    since: str
    last_error: str | None


@dataclass
class StoreStatus:
    reachable: bool
    error: str | None = None
    ledger: dict[str, int] = field(default_factory=dict)
    dead_targets: list[DeadTargetStatus] = field(default_factory=list)
    last_event_at: str | None = None


@dataclass
class Status:
    group_id: str
    bootstrap_servers: str
    kafka: KafkaStatus
    store: StoreStatus

    @property
    def healthy(self) -> bool:
        return self.kafka.reachable and self.store.reachable

    def as_json(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["kafka"]["total_lag"] = self.kafka.total_lag
        return shown


async def gather(settings: Settings) -> Status:
    """Ask Kafka and the store, at the same time."""
    kafka, store = await asyncio.gather(_kafka(settings), _store(settings))
    return Status(settings.kafka.group_id, settings.kafka.bootstrap_servers, kafka, store)


async def _kafka(settings: Settings) -> KafkaStatus:
    k = settings.kafka
    admin = AIOKafkaAdminClient(**client_options(k), client_id="jobwire-status")
    # No group: this consumer only reads offsets, it never joins or commits.
    offsets = AIOKafkaConsumer(**client_options(k), client_id="jobwire-status")
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await admin.start()
            await offsets.start()
            return await _describe(k.group_id, [k.postings_topic, k.articles_topic], admin, offsets)
    except TimeoutError:
        return KafkaStatus(False, f"no answer within {TIMEOUT_S:g} s")
    except KafkaConnectionError as exc:
        return KafkaStatus(False, str(await explain_failure(k, exc)))
    except Exception as exc:
        # It answered, then refused or failed (a missing permission, say): that, not "check
        # the bootstrap servers".
        return KafkaStatus(False, f"{type(exc).__name__}: {exc}")
    finally:
        await offsets.stop()
        await admin.close()


async def _describe(
    group_id: str, topics: list[str], admin: AIOKafkaAdminClient, offsets: AIOKafkaConsumer
) -> KafkaStatus:
    partitions = [
        TopicPartition(topic["topic"], p["partition"])
        for topic in await admin.describe_topics(topics)
        if topic["error_code"] == 0
        for p in topic["partitions"]
    ]
    committed = {
        tp: meta.offset
        for tp, meta in (await admin.list_consumer_group_offsets(group_id)).items()
        if meta.offset >= 0
    }
    ends = await offsets.end_offsets(partitions) if partitions else {}
    starts = await offsets.beginning_offsets(partitions) if partitions else {}
    lag = [
        PartitionLag(
            tp.topic,
            tp.partition,
            committed.get(tp),
            ends[tp],
            max(ends[tp] - committed.get(tp, starts[tp]), 0),
        )
        for tp in sorted(partitions, key=lambda tp: (tp.topic, tp.partition))
    ]
    [response] = await admin.describe_consumer_groups([group_id])
    [group] = response.to_object()["groups"]
    instances = [
        Instance(member["client_id"], member["client_host"].lstrip("/"), _assigned(member))
        for member in group["members"]
    ]
    return KafkaStatus(True, None, group["state"], instances, lag)


def _assigned(member: dict[str, Any]) -> list[str]:
    raw = member["member_assignment"]
    if not raw:
        return []
    assignment = ConsumerProtocolMemberAssignment.decode(raw)
    return sorted(f"{topic}[{p}]" for topic, parts in assignment.assignment for p in parts)


async def _store(settings: Settings) -> StoreStatus:
    # A look, not a start: it neither creates a missing SQLite file nor upgrades nor reseals.
    path = sqlite_file(settings.store.url)
    if path is not None and not path.exists():
        return StoreStatus(
            False, f"there is no store at {path}: check JOBWIRE_STORE__URL, or start jobwire"
        )
    try:
        async with asyncio.timeout(TIMEOUT_S):
            store = await Store.open(
                settings.store.url, False, settings.store.keys(), seal_plain=False
            )
            try:
                ledger = await store.ledger.counts()
                dead = await store.target_state.dead()
                last = await store.target_state.last_event_at()
            finally:
                await store.close()
    except TimeoutError:
        return StoreStatus(False, f"no answer within {TIMEOUT_S:g} s")
    except Exception as exc:
        return StoreStatus(False, describe_failure(exc))
    return StoreStatus(
        True,
        None,
        {status: ledger.get(status, 0) for status in DELIVERY_STATUSES},
        [
            DeadTargetStatus(
                mask(d.target),
                d.subscription_id,
                d.subscription_name,
                d.dead,
                _when(d.since),
                d.shown_error,
            )
            for d in dead
        ],
        _when(last) if last else None,
    )


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds") + "Z"


def render(status: Status, now: datetime | None = None) -> str:
    """The one screen: Kafka and the group, lag, last event, ledger, dead targets."""
    now = now or utcnow()
    k, s = status.kafka, status.store
    lines = [f"jobwire status: group {status.group_id!r}, brokers {status.bootstrap_servers}", ""]
    if not k.reachable:
        lines.append(f"Kafka: UNREACHABLE: {k.error}")
    else:
        lines.append(f"Kafka: reachable; group {k.group_state}, {len(k.instances)} instance(s)")
        for instance in k.instances:
            parts = " ".join(instance.partitions) or "(no partitions)"
            lines.append(f"  {instance.client_id}@{instance.host}  {parts}")
        lines.append("")
        lines.append(f"Lag (end offset - committed offset), total {k.total_lag}:")
        width = max((len(p.topic) for p in k.lag), default=5) + len("[000]")
        for p in k.lag:
            name = f"{p.topic}[{p.partition}]"
            committed = "none" if p.committed is None else str(p.committed)
            offsets = f"committed {committed:>8}  end {p.end:>8}"
            lines.append(f"  {name:<{width}}  {offsets}  lag {p.lag}")
    lines.append("")
    if not s.reachable:
        lines.append(f"Store: UNREACHABLE: {s.error}")
        return "\n".join(lines)
    if s.last_event_at:
        seconds = (now - datetime.fromisoformat(s.last_event_at.removesuffix("Z"))).total_seconds()
        lines.append(f"Last event: {s.last_event_at} ({_ago(seconds)})")
    else:
        lines.append("Last event: none kept")
    lines.append("Ledger: " + ", ".join(f"{n} {status}" for status, n in s.ledger.items()))
    lines.append(f"Dead targets: {len(s.dead_targets)}")
    for d in s.dead_targets:
        name = f" {d.subscription_name!r}" if d.subscription_name else ""
        lines.append(f"  {d.target}  subscription {d.subscription_id}{name}")
        lines.append(f"    {d.dead} dead since {d.since}; last error: {d.last_error or '-'}")
    return "\n".join(lines)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
