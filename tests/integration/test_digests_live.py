"""Digests with real parts: postings through real Kafka wait in the ledger, then one message per
target reaches a real mail server and a real Matrix room; and a crash mid-digest sends it again
once, losing nothing."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from pathlib import Path

import pytest

from devstack.kafka import KafkaBroker
from devstack.sinks import HttpSink, SmtpSink
from devstack.synapse import MatrixRoom
from service.store import Store
from service.subscriptions import SubscriptionIn
from tests.conftest import make_settings
from tests.integration.conftest import (
    JOBWIRE,
    chat_target,
    eventually,
    mail_target,
    postings,
    publish,
    running,
    service_env,
    start_jobwire,
)

pytestmark = pytest.mark.integration


async def test_fifty_postings_make_one_multipart_email_digest_and_one_matrix_digest(
    kafka: KafkaBroker, smtp_sink: SmtpSink, matrix_room: MatrixRoom, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, kafka.bootstrap)
    store = await Store.open(settings.store.url)
    sub = await store.subscriptions.add(
        SubscriptionIn.model_validate(
            {
                "name": "ACME in Portland",
                "employers": ["ACME"],
                "frequency": "daily",
                "at": "08:00",
                "timezone": "Europe/Paris",
                "notify": [mail_target(smtp_sink, "ana@example.com"), matrix_room.url(token=True)],
            }
        )
    )
    try:
        async with running(settings):
            dated = [
                {**posting, "published_at": f"2026-11-25T09:{n:02d}:00Z"}
                for n, posting in enumerate(postings("d", 50))
            ]
            await publish(kafka.bootstrap, settings.kafka.postings_topic, dated)

            async def all_waiting() -> bool:
                return (await store.ledger.counts()).get("pending") == 100  # 50 x 2 targets

            await eventually(all_waiting)
            assert smtp_sink.messages == []  # nothing before the digest's time
            await store.ledger.send_digests_now()  # what `jobwire digests send-now` does
            [mail] = await asyncio.to_thread(smtp_sink.wait_for, 1, 60)
            [chat] = await asyncio.to_thread(matrix_room.wait_for_messages, 1, 60)

            async def all_sent() -> bool:
                return (await store.ledger.counts()) == {"sent": 100}

            await eventually(all_sent)
        rows = await store.ledger.recent(subscription_id=sub.id)
    finally:
        await store.close()

    assert mail.subject == "50 new postings for 'ACME in Portland'"
    assert mail.message.get_content_type() == "multipart/alternative"
    text = mail.message.get_body(preferencelist=("plain",))
    html = mail.message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    newest_first = [f"{n:05d}" for n in range(49, -1, -1)]
    assert re.findall(r"Role d (\d{5})", text.get_content()) == newest_first
    assert re.findall(r"Role d (\d{5})", html.get_content()) == newest_first
    assert "/unsubscribe/" in text.get_content()
    assert f"/manage/subscriptions/{sub.id}" in text.get_content()  # the page to manage it
    assert 'href="http' in html.get_content()
    assert mail.message["List-Unsubscribe"].startswith("<http")
    assert len(re.findall(r"Role d \d{5}", chat.body)) == 50
    # The ledger shows which rows went out together: one digest per target.
    assert len({row.digest_id for row in rows}) == 2
    assert all(row.digest for row in rows)


@pytest.mark.slow
async def test_a_crash_while_a_digest_is_sent_sends_it_again_once_and_loses_no_row(
    kafka: KafkaBroker, http_sink: HttpSink, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, kafka.bootstrap)
    store = await Store.open(settings.store.url)
    await store.subscriptions.add(
        SubscriptionIn.model_validate(
            {"employers": ["ACME"], "frequency": "hourly", "notify": [chat_target(http_sink, "d")]}
        )
    )
    env = service_env(settings)
    log_path = tmp_path / "jobwire.log"
    process = start_jobwire(env, log_path)
    try:
        await publish(kafka.bootstrap, settings.kafka.postings_topic, postings("c", 20))

        async def all_waiting() -> bool:
            return (await store.ledger.counts()).get("pending") == 20

        await eventually(all_waiting)
        http_sink.answer_delay_s = 30.0  # the digest arrives; the answer never does
        sent_now = await asyncio.to_thread(
            subprocess.run,
            [str(JOBWIRE), "digests", "send-now"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert sent_now.stdout.startswith("20 alert(s)")
        await asyncio.to_thread(http_sink.wait_for, 1, 60)
        process.send_signal(signal.SIGKILL)  # claimed and sent, not yet marked sent
        await asyncio.to_thread(process.wait, 30)
        assert (await store.ledger.counts()) == {"sending": 20}
        http_sink.answer_delay_s = 0.0
        process = start_jobwire(env, tmp_path / "jobwire-again.log")

        async def all_sent() -> bool:
            return (await store.ledger.counts()) == {"sent": 20}

        await eventually(all_sent)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
        await store.close()
    copies = http_sink.requests
    with capsys.disabled():
        print(f"\n[fault figures] crash mid-digest: rows=20, digests received={len(copies)}")
    assert len(copies) == 2  # sent again once, when the crashed claim's lease ran out
    for copy in copies:
        assert len(re.findall(r"Role c \d{5}", str(copy.json))) == 20
