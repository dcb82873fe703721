"""The API of a running jobwire, over real HTTP, with events flowing through real Kafka."""

from __future__ import annotations

import asyncio
import re
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from config.settings import TargetSettings
from consumers.publish import publish_file
from devstack.kafka import KafkaBroker
from devstack.sinks import HttpSink, SmtpSink
from service.accounts import add_user
from service.store import Store
from tests.conftest import make_settings
from tests.integration.conftest import (
    JOBWIRE,
    chat_target,
    eventually,
    listening_url,
    running,
    service_env,
    start_jobwire,
)

pytestmark = pytest.mark.integration


def write_postings(path: Path, *ids: str, employer: str = "ROSS STORES") -> Path:
    path.write_bytes(
        b"".join(
            orjson.dumps(
                {
                    "kind": "posting",
                    "id": i,
                    "employer": employer,
                    "title": "Cashier",
                    "city": "Ely",
                }
            )
            + b"\n"
            for i in ids
        )
    )
    return path


async def test_an_api_subscription_alerts_and_its_unsubscribe_link_stops_the_alerts(
    kafka: KafkaBroker, http_sink: HttpSink, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, kafka.bootstrap)
    settings.targets = TargetSettings(allow_private_hosts=True)  # the sink is on loopback
    store = await Store.open(settings.store.url)
    created = await add_user(store, "ana")
    await store.close()
    assert created is not None
    auth = {"Authorization": f"Bearer {created[1]}"}

    async def alerts(count: int) -> list[str]:
        received = await asyncio.to_thread(http_sink.wait_for, count, 60.0)
        return [r.path for r in received]

    async with (
        running(settings) as service,
        httpx.AsyncClient(base_url=str(service.api_url), headers=auth) as client,
    ):
        assert service.live is not None
        live = service.live

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready)
        made = await client.post(
            "/subscriptions",
            json={
                "name": "Ross jobs",
                "employers": ["Ross"],
                "notify": [chat_target(http_sink, "ana")],
            },
        )
        assert made.status_code == 201, made.text
        sub_id = made.json()["id"]
        # A second subscriber to the same events: once their alert is in, ana's would be too.
        barrier = await client.post(
            "/subscriptions",
            json={"employers": ["Ross"], "notify": [chat_target(http_sink, "barrier")]},
        )
        started = time.monotonic()

        async def both_active() -> bool:
            return {sub_id, barrier.json()["id"]} <= live.targets.keys()

        await eventually(both_active)
        print(f"\n[api figures] new subscription matching after {time.monotonic() - started:.2f} s")

        await publish_file(settings.kafka, write_postings(tmp_path / "1.jsonl", "ross-1"))
        assert sorted(await alerts(2)) == ["/ana", "/barrier"]
        ana_alert = next(r for r in http_sink.requests if r.path == "/ana")
        # A webhook takes Markdown: the link is [Unsubscribe](URL).
        link = re.search(r"\[Unsubscribe\]\((\S+)\)", str(ana_alert.json["message"]))
        assert link is not None
        assert link.group(1).startswith(f"{service.api_url}/unsubscribe/")

        async with httpx.AsyncClient() as browser:  # no key: the link is enough
            page = await browser.get(link.group(1))
            # Opening the link (a link scanner does too) only asks; the button unsubscribes.
            assert page.status_code == 200
            assert "Stop the alerts for “Ross jobs”?" in page.text
            assert (await client.get(f"/subscriptions/{sub_id}")).json()["active"] is True
            done = await browser.post(link.group(1), data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200
        assert "no more alerts for “Ross jobs”" in done.text
        assert (await client.get(f"/subscriptions/{sub_id}")).json()["active"] is False

        async def paused() -> bool:
            return sub_id not in live.targets

        await eventually(paused)
        await publish_file(settings.kafka, write_postings(tmp_path / "2.jsonl", "ross-2"))
        assert (await alerts(3))[2] == "/barrier"

        resumed = await client.patch(f"/subscriptions/{sub_id}", json={"active": True})
        assert resumed.json()["active"] is True

        async def active_again() -> bool:
            return sub_id in live.targets

        await eventually(active_again)
        await publish_file(settings.kafka, write_postings(tmp_path / "3.jsonl", "ross-3"))
        assert sorted((await alerts(5))[3:]) == ["/ana", "/barrier"]
        assert [r.path for r in http_sink.requests].count("/ana") == 2


async def test_passwords_keys_and_the_signing_secret_never_leak(
    kafka: KafkaBroker,
    http_sink: HttpSink,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    password = f"pw-{secrets.token_hex(8)}"
    operator_key = f"op-{secrets.token_hex(16)}"
    signing_secret = f"sign-{secrets.token_hex(16)}"
    settings = make_settings(tmp_path, kafka.bootstrap)
    env = {
        **service_env(settings),
        "JOBWIRE_API__OPERATOR_KEY": operator_key,
        "JOBWIRE_API__SIGNING_SECRET": signing_secret,
        "JOBWIRE_TARGETS__ALLOW_PRIVATE_HOSTS": "true",
        "JOBWIRE_DELIVERY__MAX_ATTEMPTS": "4",
    }

    def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(JOBWIRE), *args], env=env, capture_output=True, text=True, check=True
        )

    def cli(*args: str) -> str:
        done = run_cli(*args)
        return done.stdout + done.stderr

    added = run_cli("users", "add", "ana")
    user_key = added.stdout.strip()
    assert user_key.startswith("jw_")  # shown once, here, and nowhere else
    assert "shown only now" in added.stderr

    log_path = tmp_path / "jobwire.log"
    process = start_jobwire(env, log_path)
    try:
        url = await listening_url(log_path)
        mail = (
            f"mailto://ana:{password}@127.0.0.1:{smtp_sink.port}"
            "?from=jobwire@example.com&to=ana@example.com"
        )
        hook = f"json://ana:{password}@127.0.0.1:{http_sink.port}/hook"
        http_sink.fail_with(500)
        responses: list[httpx.Response] = []
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {user_key}"}
        ) as client:
            made = await client.post(
                "/subscriptions", json={"employers": ["ACME"], "notify": [mail, hook]}
            )
            assert made.status_code == 201, made.text
            sub_id = made.json()["id"]
            responses += [
                made,
                await client.post("/subscriptions", json={"notify": [mail]}),
                await client.post(
                    "/subscriptions", json={"employers": ["ACME"], "notify": [mail, f"x{mail}"]}
                ),
                await client.get("/subscriptions"),
                await client.get(f"/subscriptions/{sub_id}"),
                await client.patch(f"/subscriptions/{sub_id}", json={"notify": [hook, mail]}),
                await client.post(f"/subscriptions/{sub_id}/test"),
                await client.get(
                    "/subscriptions", headers={"Authorization": f"Bearer {operator_key}"}
                ),
            ]
            assert [r.status_code for r in responses] == [201, 422, 422, 200, 200, 200, 200, 200]
            report = responses[6].json()
            assert [r["ok"] for r in report["results"]] == [False, False]

            async def applied() -> bool:
                text = await asyncio.to_thread(log_path.read_text)
                return '"event":"subscriptions.refreshed"' in text

            await eventually(applied)
            await publish_file(
                settings.kafka, write_postings(tmp_path / "e.jsonl", "a1", "a2", employer="ACME")
            )

            # The webhook fails (the test alert, then one delivery), then recovers well within
            # its 4 attempts; the mail server refuses to log in, so mail dies.
            async def webhook_failed_twice() -> bool:
                return http_sink.rejected >= 2

            await eventually(webhook_failed_twice)
            http_sink.fail_with(None)
            store = await Store.open(settings.store.url)
            try:

                async def settled() -> bool:
                    counts = await store.ledger.counts()
                    return counts.get("sent") == 2 and counts.get("dead") == 2

                await eventually(settled)
            finally:
                await store.close()
        outputs = [
            cli("subscriptions"),
            cli("subscriptions", "--json"),
            cli("deliveries"),
            cli("deliveries", "--json", "--status", "dead"),
        ]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    logs = log_path.read_text()
    assert '"event":"delivery.dead"' in logs
    assert '"event":"delivery.retry_scheduled"' in logs
    assert "ana:****@" in outputs[0]
    shown = [logs, *outputs, *(r.text for r in responses), *(str(r.headers) for r in responses)]
    for secret in (password, operator_key, signing_secret, user_key):
        leaks = [text[:200] for text in shown if secret in text]
        assert not leaks, f"a secret leaked into: {leaks}"
    with capsys.disabled():
        print(
            f"\n[api figures] secrets checked in {len(logs.splitlines())} log lines, "
            f"{len(responses)} responses and {len(outputs)} CLI outputs: none leaked"
        )


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_a_100_mb_chunked_body_without_a_key_is_refused_before_it_is_read(
    kafka: KafkaBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, kafka.bootstrap)
    log_path = tmp_path / "jobwire.log"
    process = start_jobwire(service_env(settings), log_path)
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        block = b"x" * 65536
        for _ in range(1600):  # 100 MiB, no Content-Length
            sent += len(block)
            yield block

    try:
        url = await listening_url(log_path)
        before = _rss_mb(process.pid)
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=url) as client:
            try:
                response = await client.post("/subscriptions", content=chunks())
                status = response.status_code
            except httpx.TransportError:
                # The server answered 413 and closed while the client was still sending.
                status = 413
            took = time.monotonic() - started
            after = _rss_mb(process.pid)
            first = sent
            assert status == 413
            # Still serving, and the 413 is what a client that reads the answer gets.
            again = await client.post(
                "/subscriptions", content=chunks(), headers={"Authorization": "Bearer jw_x"}
            )
            assert again.status_code == 413
            assert (await client.get("/healthz")).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    with capsys.disabled():
        print(
            f"\n[api figures] 100 MiB chunked, no key: 413 ({first / 2**20:.0f} MiB sent) "
            f"in {took:.2f} s; RSS {before:.0f} -> {after:.0f} MB"
        )
    assert after - before < 30
