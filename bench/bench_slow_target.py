"""How long other subscribers' alerts wait while slow targets have a backlog.

    python bench/bench_slow_target.py [--backlog 2000] [--others 100] [--delay-ms 50] [--rounds 3]
                                      [--slow-webhooks N] [--subscriptions-each K]
                                      [--own-mail PEOPLE] [--drain]

One subscriber's chat webhook answers in `--delay-ms`, and `--backlog` of its alerts are due
ahead of everyone else's (a burst of postings matching one broad subscription). With
`--slow-webhooks N` the backlog is spread over N such webhooks (a slow chat service has many
users), and with `--subscriptions-each K` each of them is the target of K subscriptions (a
team's channel that several of its subscriptions post to). With `--own-mail PEOPLE` the
backlog is instead spread over that many people who signed up on the web page, each with a
target of their own, all sent through jobwire's own mail: the operator's one mail server (an
SMTP server on loopback that takes each message after `--delay-ms`, which takes 8 at once like
any target). Behind them, `--others` alerts are due for 50 other subscribers' webhooks, which
answer at once. A real SQLite store and the real delivery worker (its default settings: 32
sends in flight, 8 to one target URL) send through Apprise to a webhook server on loopback.

Printed per round: when the last of the others' alerts arrived, counted from the worker's
start, against the baseline measured in the same run (the same alerts with no slow backlog
ahead of them), and how many of the slow backlog's alerts had arrived by then; with `--drain`,
also when the slow backlog's last alert arrived, and so the slow targets' own pace, which is
bound by their 8 sends in flight each (8 / delay) and by the 32 in all. Figures are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import DeliverySettings, MailSettings, TargetSettings
from consumers.events import JobPosting
from devstack.sinks import SmtpSink
from service.delivery.render import Message
from service.delivery.send.notifier import AppriseNotifier
from service.delivery.worker import DeliveryWorker
from service.logs import configure_logging
from service.own_mail import own_mail_target
from service.store import Match, Store
from service.subscriptions import SubscriptionIn
from service.system_mail import MailRouting, SystemMail
from service.targets import TargetPolicy

OTHER_TARGETS = 50


class Webhooks(ThreadingHTTPServer):
    """Answers every POST with 200: `/slow` after the delay, the rest at once. Counts arrivals
    per kind, and notes when the last of the others' arrived."""

    daemon_threads = True
    request_queue_size = 128  # 32 senders connect at once; the default 5 refused some

    def __init__(self, delay_s: float, mail: SmtpSink | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay_s = delay_s
        self.mail = mail  # the slow mail server, whose messages count as the slow kind's
        self.lock = threading.Lock()
        self.arrived: Counter[str] = Counter()
        self.others_done = threading.Event()
        self.others_wanted = 0
        self.others_done_at = 0.0
        self.slow_by_then = 0

    def reset(self, others_wanted: int) -> None:
        with self.lock:
            self.arrived.clear()
            self.others_done.clear()
            self.others_wanted = others_wanted
        if self.mail is not None:
            self.mail.clear()

    def slow_arrived(self) -> int:
        """The slow backlog's alerts that arrived so far, by webhook or by mail."""
        with self.lock:
            mailed = len(self.mail.messages) if self.mail is not None else 0
            return self.arrived["slow"] + mailed

    def wait_for_slow(self, count: int, timeout_s: float) -> None:
        """Until `count` of the slow backlog's alerts have arrived (a poll: mail is counted by
        the SMTP server, not here), within a couple of milliseconds."""
        deadline = time.perf_counter() + timeout_s
        while self.slow_arrived() < count and time.perf_counter() < deadline:
            time.sleep(0.002)

    def note(self, path: str) -> None:
        kind = "slow" if path.startswith("/slow") else "other"
        with self.lock:
            self.arrived[kind] += 1
            if kind == "other" and self.arrived["other"] == self.others_wanted:
                self.others_done_at = time.perf_counter()
                mailed = len(self.mail.messages) if self.mail is not None else 0
                self.slow_by_then = self.arrived["slow"] + mailed
                self.others_done.set()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The headers and the body go in two writes: without this, the body waited for the
    # client's delayed ACK (40 ms) on every answer.
    disable_nagle_algorithm = True
    server: Webhooks

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/slow"):
            time.sleep(self.server.delay_s)
        self.server.note(self.path)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def postings(prefix: str, count: int) -> list[JobPosting]:
    return [
        JobPosting(id=f"{prefix}-{i}", employer="ACME", title="Clerk", city="Portland")
        for i in range(count)
    ]


def slow_targets(options: argparse.Namespace, port: int) -> list[str]:
    """One target per slow subscription: the webhooks' URLs, each `--subscriptions-each`
    times, or each person's own-mail target."""
    if options.own_mail:
        return [own_mail_target(f"p{n}@example.com") for n in range(options.own_mail)]
    return [
        f"json://127.0.0.1:{port}/slow/{n}"
        for n in range(options.slow_webhooks)
        for _ in range(options.subscriptions_each)
    ]


async def one_round(
    webhooks: Webhooks, backlog: int, options: argparse.Namespace, mail: SmtpSink | None
) -> tuple[float, int, float | None]:
    """Seconds until the others' last alert arrived, the slow targets' alerts by then, and
    with `--drain` the seconds until the last of those arrived."""
    port = webhooks.server_address[1]
    others = options.others
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp}/jobwire.db", auto_migrate=True)
        try:
            if backlog:
                slow = [
                    await store.subscriptions.add(SubscriptionIn(employers=["ACME"], notify=[t]))
                    for t in slow_targets(options, port)
                ]
                events = postings("slow", backlog)
                # Each slow target's share in one block, due together, as after an outage
                # of theirs: their alerts were held while they failed, and are due again at
                # once when they recover.
                await store.ledger.record(
                    events,
                    [
                        Match(sub.id, e, sub.target_ids)
                        for i, e in enumerate(events)
                        for sub in [slow[i * len(slow) // backlog]]
                    ],
                )
            subscribers = [
                await store.subscriptions.add(
                    SubscriptionIn(employers=["ACME"], notify=[f"json://127.0.0.1:{port}/o{n}"])
                )
                for n in range(OTHER_TARGETS)
            ]
            events = postings("other", others)
            matches = [
                Match(sub.id, e, sub.target_ids)
                for i, e in enumerate(events)
                for sub in [subscribers[i % OTHER_TARGETS]]
            ]
            await store.ledger.record(events, matches)  # due after the slow backlog

            settings = DeliverySettings()
            users = AppriseNotifier(
                TargetPolicy.from_settings(TargetSettings(allow_private_hosts=True)),
                settings.concurrency,
                settings.timeout_s,
            )
            system_mail = None
            if mail is not None:
                url = f"mailto://127.0.0.1:{mail.port}?from=jobwire@example.com"
                mail_settings = MailSettings.model_validate({"url": url})
                system_mail = SystemMail.from_settings(
                    mail_settings, settings.concurrency, settings.timeout_s
                )
            worker = DeliveryWorker(store, MailRouting(users, system_mail), settings)
            webhooks.reset(others)
            stop = asyncio.Event()
            started = time.perf_counter()
            running = asyncio.create_task(worker.run(stop))
            await asyncio.to_thread(webhooks.others_done.wait, 600)
            took = webhooks.others_done_at - started
            slow_by_then = webhooks.slow_by_then
            drained = None
            if backlog and options.drain:
                await asyncio.to_thread(webhooks.wait_for_slow, backlog, 600)
                drained = time.perf_counter() - started
            stop.set()
            await running
            users.close()
            if system_mail is not None:
                system_mail.close()
        finally:
            await store.close()
    return took, slow_by_then, drained


async def run(options: argparse.Namespace) -> None:
    mail = SmtpSink(accept_after_s=options.delay_ms / 1000) if options.own_mail else None
    if mail is not None:
        mail.start()
    webhooks = Webhooks(options.delay_ms / 1000, mail)
    threading.Thread(target=webhooks.serve_forever, daemon=True).start()
    servers = 1 if mail else options.slow_webhooks
    if mail:
        slow = (
            f"{options.own_mail} people's own-mail targets, through a mail server that takes "
            f"each message in {options.delay_ms} ms"
        )
    else:
        each = options.subscriptions_each
        slow = (
            f"{servers} webhook{'s' if servers > 1 else ''} that answer"
            f"{'' if servers > 1 else 's'} in {options.delay_ms} ms"
            + (f", each the target of {each} subscriptions" if each > 1 else "")
        )
    print(
        f"{options.others} alerts to {OTHER_TARGETS} webhooks that answer at once; ahead of "
        f"them {options.backlog} to {slow} "
        f"(8 in flight each: at most {servers * 8000 / options.delay_ms:,.0f} a second)"
    )
    # Apprise loads its plugins' modules at its first URL (most of a second): not a round's cost.
    warm = AppriseNotifier(
        TargetPolicy.from_settings(TargetSettings(allow_private_hosts=True)), 1, 5
    )
    await warm.send(
        f"json://127.0.0.1:{webhooks.server_address[1]}/warm", Message("warm", "up", None)
    )
    base, slow = [], []
    for round_ in range(1, options.rounds + 1):
        took, _, _ = await one_round(webhooks, 0, options, mail)
        base.append(took)
        print(f"  round {round_}: no slow backlog (baseline)   last other alert at {took:6.2f} s")
        took, slow_sent, drained = await one_round(webhooks, options.backlog, options, mail)
        slow.append(took)
        print(
            f"  round {round_}: behind the slow backlog        last other alert at {took:6.2f} s"
            f"   ({slow_sent} of the slow backlog's by then)"
        )
        if drained is not None:
            print(
                f"  round {round_}: the slow backlog's last alert at {drained:6.2f} s "
                f"({options.backlog / drained:,.0f} a second)"
            )
    webhooks.shutdown()
    if mail is not None:
        mail.stop()
    baseline, measured = statistics.median(base), statistics.median(slow)
    print(
        f"median: {measured:.2f} s behind the slow backlog against {baseline:.2f} s without "
        f"it: {measured / baseline:.1f}× baseline"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=2000, help="the slow target's alerts")
    parser.add_argument("--others", type=int, default=100, help="other subscribers' alerts")
    parser.add_argument("--delay-ms", type=float, default=50, help="the slow target's answer")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--drain",
        action="store_true",
        help="also wait for the whole slow backlog, and print how fast it went",
    )
    parser.add_argument(
        "--slow-webhooks",
        type=int,
        default=1,
        metavar="N",
        help="spread the backlog over this many slow webhooks",
    )
    parser.add_argument(
        "--subscriptions-each",
        type=int,
        default=1,
        metavar="K",
        help="make each slow webhook the target of this many subscriptions",
    )
    parser.add_argument(
        "--own-mail",
        type=int,
        default=0,
        metavar="PEOPLE",
        help="spread the backlog over this many people's targets sent through jobwire's own "
        "mail (0: one webhook)",
    )
    options = parser.parse_args()
    configure_logging("console", "ERROR", stream=sys.stderr)
    asyncio.run(run(options))


if __name__ == "__main__":
    main()
