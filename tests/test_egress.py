"""The send-time guard around real Apprise sends to real sinks on loopback.

Each test sends through Apprise, `apprise.Apprise().add(url); notify(...)`, inside the guard,
and asserts on what the sinks received: a refused send reaches nobody. Each runs twice: as
requests sends for Apprise, and as jobwire's notifier sends a webhook (a kept session, whose
plain HTTP client writes the request itself; service/delivery/send/plain_http.py).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import apprise
import pytest
import requests

from devstack.sinks import HttpSink, SmtpSink
from service import egress
from service.delivery.send import keepalive
from service.egress import EgressRefused, address_problem, guarded

TRANSPORTS = ("requests", "kept session")
_session: list[requests.Session] = []  # the kept session of this test, when it has one


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> Iterator[str]:
    session = keepalive.new_session() if request.param == "kept session" else None
    _session[:] = [session] if session is not None else []
    yield str(request.param)
    _session.clear()
    if session is not None:
        session.close()


def send(*urls: str) -> bool:
    notifier = apprise.Apprise()
    for url in urls:
        assert notifier.add(url), url
    with keepalive.using(_session[0]) if _session else contextlib.nullcontext():
        return bool(
            notifier.notify(title="alert", body="text", body_format=apprise.NotifyFormat.TEXT)
        )


def hook(sink: HttpSink, path: str = "hook", host: str = "127.0.0.1") -> str:
    return f"json://{host}:{sink.port}/{path}"


@pytest.fixture
def sink() -> HttpSink:
    with HttpSink() as running:
        yield running


@pytest.mark.usefixtures("transport")
def test_a_webhook_on_loopback_is_refused_at_send_time_and_receives_nothing(
    sink: HttpSink,
) -> None:
    with pytest.raises(EgressRefused) as refused, guarded():
        send(hook(sink))
    assert "127.0.0.1 (a loopback address) at send time" in str(refused.value)
    assert sink.requests == []
    # The same send with private hosts allowed (the tests' and the demo's set-up) arrives.
    with guarded(allow_private_hosts=True):
        assert send(hook(sink))
    assert len(sink.wait_for(1, 5)) == 1


@pytest.mark.usefixtures("transport")
def test_a_name_that_rebinds_to_loopback_after_it_was_saved_is_refused_at_send() -> None:
    with HttpSink() as sink:
        answers = {"hooks.example.com": ["93.184.215.15"]}  # what DNS said when it was saved
        assert egress.host_problem("hooks.example.com", answers.__getitem__) is None
        answers["hooks.example.com"] = ["127.0.0.1"]  # and what it says at send time
        url = hook(sink, host="hooks.example.com")
        with pytest.raises(EgressRefused) as refused, guarded(resolver=answers.__getitem__):
            send(url)
        assert str(refused.value).startswith(
            "refused: hooks.example.com resolved to 127.0.0.1 (a loopback address) at send time"
        )
        assert sink.requests == []
        # The connection goes to the address the guard's resolver gave, nowhere else: with the
        # check lifted the same send reaches the loopback sink through that answer.
        with guarded(allow_private_hosts=True, resolver=answers.__getitem__) as guard:
            assert send(url)
        assert guard.resolved == ["hooks.example.com"]
        assert guard.connected == ["127.0.0.1"]
        assert len(sink.wait_for(1, 5)) == 1


@pytest.mark.usefixtures("transport")
def test_a_name_with_one_internal_address_among_public_ones_is_refused(sink: HttpSink) -> None:
    answers = {"mixed.example.com": ["93.184.215.16", "10.0.0.7"]}
    with (
        pytest.raises(EgressRefused, match=r"10\.0\.0\.7 \(a private address\)"),
        guarded(resolver=answers.__getitem__),
    ):
        send(hook(sink, host="mixed.example.com"))
    assert sink.requests == []


def test_a_redirect_to_loopback_is_not_followed_even_with_the_host_check_lifted(
    sink: HttpSink, transport: str
) -> None:
    with HttpSink() as redirector:
        redirector.redirect_to(f"{sink.url}/stolen")
        if transport == "requests":
            # Without the guard, Apprise (requests) follows the 307 and the alert lands on
            # loopback: the hole this closes. (The plain client never follows one.)
            assert send(hook(redirector, "first"))
            assert [r.path for r in sink.wait_for(1, 5)] == ["/stolen"]
            sink.clear()
        else:
            assert not send(hook(redirector, "first"))

        with pytest.raises(EgressRefused) as refused, guarded(allow_private_hosts=True):
            send(hook(redirector, "second"))
        assert "answered 307, a redirect to 127.0.0.1" in str(refused.value)
        assert "never follows redirects" in str(refused.value)
        assert redirector.rejected == 2
        assert sink.requests == []


@pytest.mark.usefixtures("transport")
def test_a_redirect_is_refused_even_when_the_url_asks_to_follow_redirects(
    sink: HttpSink,
) -> None:
    with HttpSink() as redirector:
        redirector.redirect_to(f"{sink.url}/stolen")
        with (
            pytest.raises(EgressRefused, match="never follows redirects"),
            guarded(allow_private_hosts=True),
        ):
            send(hook(redirector, "x") + "?redirect=yes")
        assert sink.requests == []


def test_mail_to_a_loopback_smtp_server_is_refused() -> None:
    with SmtpSink() as mail:
        url = f"mailto://127.0.0.1:{mail.port}?from=jobwire@example.com&to=ana@example.com"
        with pytest.raises(EgressRefused, match="loopback"), guarded():
            send(url)
        assert mail.messages == []
        with guarded(allow_private_hosts=True):
            assert send(url)
        assert len(mail.wait_for(1, 10)) == 1


@pytest.mark.usefixtures("transport")
def test_sends_apprise_runs_on_its_worker_threads_are_guarded_too(sink: HttpSink) -> None:
    # Two targets: Apprise 2.x notifies them from its thread pool, with a copy of our context.
    with pytest.raises(EgressRefused), guarded():
        send(hook(sink, "one"), hook(sink, "two"))
    assert sink.requests == []


def test_a_socket_connecting_to_a_literal_address_or_by_name_is_checked() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        for address in (("127.0.0.1", port), ("localhost", port)):
            with socket.socket() as client, pytest.raises(EgressRefused), guarded():
                client.connect(address)
        with socket.socket() as client, pytest.raises(EgressRefused), guarded():
            assert client.connect_ex(("127.0.0.1", port)) != 0
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
            pytest.raises(EgressRefused),
            guarded(),
        ):
            udp.sendto(b"x", ("127.0.0.1", port))


def test_outside_a_guard_nothing_changes_for_other_threads_and_code() -> None:
    # Kafka, the store and the API connect to loopback while a send is guarded elsewhere.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        connected = threading.Event()

        def other_thread() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                connected.set()

        def other_thread_then_this_one() -> None:
            thread = threading.Thread(target=other_thread)
            thread.start()
            thread.join()
            socket.create_connection(("127.0.0.1", port), timeout=5)

        with pytest.raises(EgressRefused), guarded():
            other_thread_then_this_one()
        assert connected.is_set()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    assert egress.active() is None


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.100.100.200", "private"),  # carrier-grade NAT; Alibaba's metadata service
        ("169.254.169.254", "link-local or cloud metadata"),
        ("fe80::1%eth0", "link-local"),
        ("fd00:ec2::254", "private"),  # AWS's IPv6 metadata service
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 around 10.0.0.1
        ("93.184.215.14", None),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None),
    ],
)
def test_which_addresses_are_internal(address: str, problem: str | None) -> None:
    found = address_problem(address)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
