"""The README's `jq` filter follows one event through a real run's log: received, matched and
recorded, committed, sent."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import orjson
import pytest

from devstack.kafka import KafkaBroker
from devstack.sinks import HttpSink
from tests.conftest import SAMPLES, make_settings
from tests.integration.conftest import (
    chat_target,
    eventually,
    publish_raw,
    service_env,
    start_jobwire,
    stop_jobwire,
    subscribe,
)

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_filter() -> tuple[str, str]:
    """The README's command, less `jobwire run |`, and the event id it follows."""
    [command] = re.findall(r"^jobwire run \| (jq .+)$", README.read_text(), re.MULTILINE)
    [event_id] = re.findall(r"--arg id (\S+)", command)
    return command, event_id


async def logged(log_path: Path, event: str) -> None:
    async def found() -> bool:
        return f'"event":"{event}"'.encode() in await asyncio.to_thread(log_path.read_bytes)

    await eventually(found)


def run_filter(command: str, log_path: Path) -> list[dict[str, object]]:
    """What the README's command prints for that log, one JSON object a line."""
    shown = subprocess.run(
        ["sh", "-c", f"{command} < {log_path}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return [orjson.loads(line) for line in shown.splitlines()]


async def test_the_readmes_jq_filter_shows_every_stage_of_one_event(
    kafka: KafkaBroker, http_sink: HttpSink, tmp_path: Path
) -> None:
    command, event_id = readme_filter()
    settings = make_settings(tmp_path, kafka.bootstrap)
    await subscribe(
        settings.store.url, employers=["NORDSTROM"], notify=[chat_target(http_sink, "ap")]
    )
    samples = [orjson.loads(line) for line in SAMPLES.read_bytes().splitlines() if line.strip()]
    postings = [orjson.dumps({k: v for k, v in s.items() if k != "kind"}) for s in samples]
    assert event_id in {s["id"] for s in samples}
    log_path = tmp_path / "jobwire.log"
    process = start_jobwire(service_env(settings), log_path)
    try:
        await logged(log_path, "consumer.started")
        await publish_raw(kafka.bootstrap, settings.kafka.postings_topic, postings)
        await asyncio.to_thread(http_sink.wait_for, 1, 60.0)
        await asyncio.sleep(0.5)  # by design: let the other alerts' lines be written too
    finally:
        stop_jobwire(process)

    lines = await asyncio.to_thread(run_filter, command, log_path)
    stages = [line["event"] for line in lines]
    # The worker starts on an alert as soon as the ledger holds it: its send may be logged
    # before the batch's commit.
    assert stages[:2] == ["events.received", "match.recorded"]
    assert sorted(stages[2:]) == ["consumer.committed", "delivery.sent"]
    received, recorded = lines[:2]
    committed = lines[stages.index("consumer.committed")]
    sent = lines[stages.index("delivery.sent")]
    assert event_id in received["event_ids"]
    assert recorded["matched"][event_id] == 1
    assert event_id in committed["event_ids"]
    assert sent["event_id"] == event_id
    assert sent["target"].startswith("json://")
    # Other events' lines are left out.
    assert all(line.get("event_id") in (event_id, None) for line in lines), (
        "a line about another event"
    )
