"""The send stage against a real HTTP/1.1 server: connections kept, failure reasons kept apart."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import requests

from service.delivery import AppriseNotifier, DeliveryFailed
from service.delivery.render import Message
from service.delivery.send import keepalive
from service.delivery.send import notifier as notifier_module
from service.targets import TargetPolicy


class _Hook(BaseHTTPRequestHandler):
    """Keep-alive webhook: answers 500 on /broken, 503 on /busy, else 200, and notes which
    client connection (its port) each request came over."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, int]]] = []
    messages: ClassVar[list[tuple[str, str]]] = []
    authorizations: ClassVar[list[str | None]] = []
    hold: ClassVar[threading.Barrier | None] = None
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.lock:
            self.seen.append((self.path, self.client_address[1]))
            self.messages.append((self.path, json.loads(body).get("message", "")))
            self.authorizations.append(self.headers.get("Authorization"))
        if self.path == "/slow" and self.hold is not None:
            self.hold.wait()
        status = {"/broken": 500, "/busy": 503}.get(self.path, 200)
        body = b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.seen = []
    _Hook.messages = []
    _Hook.authorizations = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def notifier() -> Iterator[AppriseNotifier]:
    sender = AppriseNotifier(TargetPolicy(["json"], allow_private_hosts=True), 4, timeout_s=10)
    yield sender
    sender.close()


def _connections(path: str) -> set[int]:
    return {port for seen_path, port in _Hook.seen if seen_path == path}


def test_alerts_to_one_webhook_arrive_over_one_kept_connection(
    hook: str, notifier: AppriseNotifier
) -> None:
    for n in range(5):
        notifier.send_blocking(f"json://{hook}/a", Message(f"posting {n}", "body"))
    assert len([p for p, _ in _Hook.seen if p == "/a"]) == 5
    assert len(_connections("/a")) == 1


def test_each_kept_target_goes_on_getting_the_format_its_url_asks_for(
    hook: str, notifier: AppriseNotifier
) -> None:
    # A plugin is kept per target, with what Apprise works out of its URL once: each target
    # must still get its own format, every time, whichever was sent to first.
    message = Message(
        "New posting", "Nordstrom, Portland", html="<b>Nordstrom</b>", markdown="**Nordstrom**"
    )
    for _ in range(2):
        for wanted in ("html", "markdown", "text"):
            notifier.send_blocking(f"json://{hook}/{wanted}?format={wanted}", message)
        notifier.send_blocking(f"json://{hook}/default", message)
    got: dict[str, set[str]] = {}
    for path, body in _Hook.messages:
        got.setdefault(path.split("?")[0], set()).add(body)
    assert got == {
        "/html": {"<b>Nordstrom</b>"},
        "/markdown": {"**Nordstrom**"},
        "/text": {"Nordstrom, Portland"},
        "/default": {"**Nordstrom**"},  # the richest the target takes
    }


def test_alerts_sent_from_different_threads_share_the_targets_kept_connection(
    hook: str, notifier: AppriseNotifier
) -> None:
    # Sends run on whichever thread is free; each thread warming a target of its own cost a
    # plugin, a session and a connection per target and thread.
    for n in range(4):
        thread = threading.Thread(
            target=notifier.send_blocking,
            args=(f"json://{hook}/a", Message(f"posting {n}", "body")),
        )
        thread.start()
        thread.join()
    assert len([p for p, _ in _Hook.seen if p == "/a"]) == 4
    assert len(_connections("/a")) == 1


def test_alerts_at_the_same_moment_to_one_target_are_sent_side_by_side(
    hook: str, notifier: AppriseNotifier
) -> None:
    _Hook.hold = threading.Barrier(2, timeout=5)  # each answer waits for the other request
    try:
        with ThreadPoolExecutor(2) as pool:
            sends = [
                pool.submit(
                    notifier.send_blocking, f"json://{hook}/slow", Message(f"posting {n}", "body")
                )
                for n in range(2)
            ]
            for send in sends:
                send.result(timeout=10)
    finally:
        _Hook.hold = None
    notifier.send_blocking(f"json://{hook}/slow", Message("posting 3", "body"))
    assert len(_connections("/slow")) == 2  # one per send at once; the third reused one


def test_a_process_keeps_a_bounded_number_of_plugins_the_least_recently_used_go(
    hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notifier_module, "KEPT_PLUGINS", 2)  # each holds a connection open
    sender = AppriseNotifier(TargetPolicy(["json"], allow_private_hosts=True), 1, timeout_s=10)
    try:
        for path in ("a", "b", "a", "c", "a", "b"):
            sender.send_blocking(f"json://{hook}/{path}", Message(f"to {path}", "body"))
    finally:
        sender.close()
    assert len(_connections("/a")) == 1  # used last before each newcomer: kept
    assert len(_connections("/b")) == 2  # the least recently used when /c came: let go


def test_other_requests_in_the_process_still_get_a_connection_each(
    hook: str, notifier: AppriseNotifier
) -> None:
    notifier.send_blocking(f"json://{hook}/a", Message("posting", "body"))
    for _ in range(3):
        requests.post(f"http://{hook}/b", json={}, timeout=5)
    assert len(_connections("/b")) == 3


def test_each_failed_send_gives_its_own_reason_while_others_fail_at_the_same_time(
    hook: str, notifier: AppriseNotifier
) -> None:
    def send(status: int) -> tuple[int, str]:
        path = "broken" if status == 500 else "busy"
        try:
            notifier.send_blocking(f"json://{hook}/{path}", Message("posting", "body"))
        except DeliveryFailed as exc:
            return status, str(exc)
        return status, ""

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(send, [500, 503] * 20))
    for status, reason in results:
        other = 503 if status == 500 else 500
        assert str(status) in reason
        assert str(other) not in reason


@pytest.mark.parametrize("proxy", [None, "http://proxy.example:3128"])
def test_a_webhook_does_not_get_the_operators_saved_password(
    proxy: str | None,
    hook: str,
    notifier: AppriseNotifier,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # requests adds ~/.netrc's password for the host to a request without one of its own: a
    # user's webhook must not receive the service account's credentials, proxy or not.
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    if proxy is not None:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login operator password operator-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    notifier.send_blocking(f"json://{hook}/a", Message("posting", "body"))
    assert _Hook.authorizations == [None]


@pytest.mark.parametrize(
    "environment",
    [
        {"REQUESTS_CA_BUNDLE": "/etc/ssl/ours.pem"},
        {"CURL_CA_BUNDLE": "/etc/ssl/curls.pem"},
        {"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "hooks.example"},
        {},
    ],
)
def test_a_kept_session_takes_certificates_and_proxies_from_the_environment_like_requests(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for url in ("https://hooks.example/h", "https://chat.example/h"):
        for verify in (True, False, None):
            ours = keepalive.new_session().merge_environment_settings(url, {}, None, verify, None)
            theirs = requests.Session().merge_environment_settings(url, {}, None, verify, None)
            assert ours == theirs
