"""`make run`: the whole stack on one machine, with the sample events flowing to alerts.

`python -m devstack.demo` (what `make run` calls; `--help` lists its options) starts a real
Kafka broker (KRaft), a mail catcher and a chat webhook sink on loopback, subscribes three demo
users, publishes the sample postings and article (and one malformed message, to show the
dead-letter topic), and prints every alert as it arrives while jobwire's logs scroll. Ctrl-C
stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from config.settings import (
    ApiSettings,
    KafkaSettings,
    LogSettings,
    MailSettings,
    Settings,
    StoreSettings,
    TargetSettings,
)
from consumers.publish import publish_file
from devstack.kafka import create_topics_async, start_kafka
from devstack.sinks import HttpSink, SmtpSink
from service.accounts import add_user
from service.app import Service
from service.logs import configure_logging
from service.store import Store
from service.subscriptions import SubscriptionIn

SAMPLES = Path(str(resources.files("devstack") / "samples" / "events.jsonl"))
SAMPLE_KEYS = [
    (str(event["kind"]), str(event["id"]))
    for event in map(orjson.loads, SAMPLES.read_bytes().splitlines())
]


def _say(text: str) -> None:
    # The demo's own story goes to stderr in bold, apart from the service's log lines.
    sys.stderr.write(f"\033[1m{text}\033[0m\n" if sys.stderr.isatty() else text + "\n")
    sys.stderr.flush()


def run_demo(workdir: Path, keep_running: bool = True) -> None:
    workdir = workdir.resolve()
    # A fresh stack each time, so the demo shows the same alerts on every run.
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    configure_logging("console" if sys.stdout.isatty() else "json")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # the mail catcher's chatter
    _say("jobwire demo: starting Kafka (KRaft) on loopback; the first run downloads its jars…")
    broker = start_kafka(workdir / "kafka")
    smtp = SmtpSink(maildir=workdir / "mail")
    http = HttpSink()
    smtp.start()
    http.start()
    try:
        _say(
            f"Kafka at {broker.bootstrap}; mail catcher at 127.0.0.1:{smtp.port}; "
            f"chat sink at {http.url}"
        )
        settings = Settings(
            kafka=KafkaSettings(bootstrap_servers=broker.bootstrap, group_id="jobwire-demo"),
            store=StoreSettings(url=f"sqlite+aiosqlite:///{workdir / 'jobwire.db'}"),
            # Any free port, so a demo never fails on a taken 8080; the URL is printed.
            api=ApiSettings(port=0),
            # The demo's mail catcher and chat sink live on loopback.
            targets=TargetSettings(allow_private_hosts=True),
            # jobwire's own email (the web page's confirmations and sign-in links, the alerts
            # of people who sign up there) goes to the mail catcher too.
            mail=MailSettings.model_validate(
                {"url": f"mailto://127.0.0.1:{smtp.port}?from=jobwire@example.com"}
            ),
            log=LogSettings(format="auto"),
        )
        asyncio.run(_demo(settings, smtp, http, workdir, keep_running))
    finally:
        http.stop()
        smtp.stop()
        broker.stop()
        _say("jobwire demo: stopped")


DEMO_SUBSCRIPTIONS: list[tuple[str, dict[str, object], str]] = [
    # (name, criteria, where the alert goes: "mail:<address>" or "chat:<path>")
    (
        "Nordstrom in Portland",
        {"employers": ["NORDSTROM"], "cities": ["Portland"]},
        "mail:ana@example.com",
    ),
    (
        "Store protection, Dallas",
        {"titles": ["Store Protection Specialist"], "cities": ["Dallas"]},
        "chat:ben",
    ),
    ("Tencent news", {"employers": ["Tencent"], "kinds": ["article"]}, "chat:ben"),
    # A digest: its matches wait for 08:00 in Paris; the demo sends it at once (below).
    (
        "Ross Stores, daily",
        {
            "employers": ["ROSS STORES"],
            "frequency": "daily",
            "at": "08:00",
            "timezone": "Europe/Paris",
        },
        "mail:dee@example.com",
    ),
]


async def _demo(
    settings: Settings, smtp: SmtpSink, http: HttpSink, workdir: Path, keep_running: bool
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    store = await Store.open(settings.store.url)
    created = await add_user(store, "demo")
    assert created is not None  # a fresh store has no users
    user, key = created
    for name, criteria, where in DEMO_SUBSCRIPTIONS:
        channel, address = where.split(":", 1)
        target = (
            f"mailto://127.0.0.1:{smtp.port}?from=jobwire@example.com&to={address}"
            if channel == "mail"
            else f"{http.url.replace('http://', 'json://')}/{address}"
        )
        sub = await store.subscriptions.add(
            SubscriptionIn.model_validate({**criteria, "name": name, "notify": [target]}),
            owner=user.id,
        )
        _say(f"subscribed {name!r} ({sub.id}) -> {where}")
    await store.close()

    service = Service(settings)
    running = asyncio.create_task(service.run(stop))
    await service.ready.wait()

    kafka = settings.kafka
    await create_topics_async(
        kafka.bootstrap_servers,
        [kafka.postings_topic, kafka.articles_topic, kafka.dead_letter_topic],
    )
    _say("publishing a malformed message (it goes to the dead-letter topic) …")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await producer.start()
    await producer.send_and_wait(settings.kafka.postings_topic, b'{"id": "broken", "employer": ')
    await producer.stop()
    _say(f"publishing the samples in {SAMPLES} (22 postings, 1 article) …")
    counts = await publish_file(settings.kafka, SAMPLES)
    _say("published " + ", ".join(f"{n} to {topic}" for topic, n in counts.items()))

    expected_mail, expected_chat = 2, 2
    await asyncio.to_thread(smtp.wait_for, expected_mail, 60.0)
    await asyncio.to_thread(http.wait_for, expected_chat, 60.0)
    for mail in smtp.messages:
        _say(f"\n📧 EMAIL to {mail.to}: {mail.subject}\n{mail.body.strip()}\n")
    for post in http.requests:
        body = post.json if isinstance(post.json, dict) else {}
        _say(
            f"\n💬 CHAT {post.path}: {body.get('title')}\n{str(body.get('message', '')).strip()}\n"
        )
    _say(
        f"{expected_mail} emails (saved as .eml files in {workdir / 'mail'}) and "
        f"{expected_chat} chat messages arrived."
    )
    await _all_kept(settings, SAMPLE_KEYS)  # so the page's preview shows every sample
    await _send_digest_now(settings, smtp, expected_mail)
    _say(
        f"\n🌐 The web page: {service.api_url}/  (sign up there with any address: the "
        f"confirmation email shows up here, and in {workdir / 'mail'})\n"
    )
    if keep_running:
        watcher = asyncio.create_task(_print_new_mail(smtp, len(smtp.messages), stop))
        _say(
            f"jobwire keeps running. Its API is at {service.api_url} (docs: "
            f"{service.api_url}/docs); the demo user's key is {key}\n"
            f"  curl -H 'Authorization: Bearer {key}' {service.api_url}/subscriptions\n"
            "From another terminal, with\n"
            f"  export JOBWIRE_KAFKA__BOOTSTRAP_SERVERS={settings.kafka.bootstrap_servers}\n"
            f"  export JOBWIRE_STORE__URL={settings.store.url}\n"
            "  export JOBWIRE_TARGETS__ALLOW_PRIVATE_HOSTS=true\n"
            "subscribe with `.venv/bin/jobwire subscribe …` and publish with "
            "`.venv/bin/jobwire publish FILE`. Ctrl-C stops everything."
        )
        await stop.wait()
        watcher.cancel()
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await running


async def _send_digest_now(settings: Settings, smtp: SmtpSink, emails_so_far: int) -> None:
    """The daily digest's alerts wait for 08:00 in Paris: send it now, as an operator would."""
    command = [str(Path(sys.executable).with_name("jobwire")), "digests", "send-now"]
    _say("the daily digest waits for 08:00 in Paris; sending it now: jobwire digests send-now")
    env = {**os.environ, "JOBWIRE_STORE__URL": settings.store.url}
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, check=True
    )
    _say(done.stdout.strip())
    arrived = await asyncio.to_thread(smtp.wait_for, emails_so_far + 1, 60.0)
    digest = arrived[emails_so_far]
    _say(f"\n📧 DIGEST to {digest.to}: {digest.subject}\n{digest.body.strip()}\n")


async def _all_kept(settings: Settings, keys: list[tuple[str, str]]) -> None:
    """Wait until jobwire has consumed these events (they are in its store); the store offers
    nothing to await, so it is asked every 0.2 s, for a minute at most."""
    store = await Store.open(settings.store.url)
    try:
        for _ in range(300):
            if len(await store.events.some(keys)) == len(set(keys)):
                return
            await asyncio.sleep(0.2)
    finally:
        await store.close()


async def _print_new_mail(smtp: SmtpSink, seen: int, stop: asyncio.Event) -> None:
    """Show each email that arrives after the samples' (the web page's confirmations, sign-in
    links and alerts), so the links can be opened from the terminal."""
    while not stop.is_set():
        try:
            arrived = await asyncio.to_thread(smtp.wait_for, seen + 1, 1.0)
        except TimeoutError:
            continue
        for mail in arrived[seen:]:
            _say(f"\n📧 EMAIL to {mail.to}: {mail.subject}\n{mail.body.strip()}\n")
        seen = len(arrived)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.demo",
        description="Run a whole local stack: Kafka, a mail catcher, a chat sink and jobwire, "
        "with the sample events flowing to alerts. Ctrl-C stops it.",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(".demo"),
        help="Where the demo keeps Kafka's data, the store and the mail (default: .demo).",
    )
    parser.add_argument(
        "--keep-running",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Keep the stack running after the sample alerts arrive (default: yes).",
    )
    args = parser.parse_args(argv)
    # The demo lives beside the tests, not in the jobwire a production install gets: `jobwire`
    # itself never imports devstack, and aiosmtpd (the mail catcher) is a dev dependency.
    try:
        run_demo(args.workdir, keep_running=args.keep_running)
    except KeyboardInterrupt:  # Ctrl-C before the service's own handler is in place
        sys.exit(130)


if __name__ == "__main__":
    main()
