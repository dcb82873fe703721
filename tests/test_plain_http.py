"""Webhooks sent by the plain HTTP client on kept connections, against real HTTP(S) servers.

The client (service/delivery/send/plain_http.py) writes a webhook's request itself instead of going
through requests; these tests hold it to what requests would have done, as the target and the
plugin see it: the same request on the wire, the same answer to the plugin, TLS checked the
same way, and a failure that fails the send with a reason, never a send lost or stuck.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import apprise
import pytest
import requests
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from devstack.certificates import make_tls_material
from service.delivery import AppriseNotifier, DeliveryFailed
from service.delivery.render import Message
from service.delivery.send import keepalive, plain_http
from service.targets import TargetPolicy


class _Hook(BaseHTTPRequestHandler):
    """A keep-alive webhook that records each request whole.

    /gzip answers gzip-compressed JSON with a repeated header; /hangup answers, then closes the
    connection without saying so; /slow answers only after `_Hook.delay` seconds.
    """

    protocol_version = "HTTP/1.1"
    received: ClassVar[list[dict[str, Any]]] = []
    delay: ClassVar[float] = 0.0

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": body,
                "port": self.client_address[1],
            }
        )
        if self.path.startswith("/slow"):
            time.sleep(self.delay)
        answer, extra = b'{"ok": true}', [("Content-Type", "application/json")]
        if self.path.startswith("/gzip"):
            answer = gzip.compress(b'{"id": 7, "note": "caf\xc3\xa9"}')
            extra = [
                ("Content-Type", "application/json; charset=utf-8"),
                ("Content-Encoding", "gzip"),
                ("X-Tag", "one"),
                ("X-Tag", "two"),
            ]
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client gave up
            self.send_response(200)
            for name, value in extra:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
        if self.path.startswith("/hangup"):
            self.close_connection = True  # as a server's idle timeout does: no warning

    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def log_message(self, *args: object) -> None:
        pass


def _serve(context: ssl.SSLContext | None = None) -> Iterator[int]:
    _Hook.received = []
    _Hook.delay = 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def port() -> Iterator[int]:
    yield from _serve()


@pytest.fixture
def notifier() -> Iterator[AppriseNotifier]:
    sender = AppriseNotifier(TargetPolicy(["json"], allow_private_hosts=True), 2, timeout_s=10)
    yield sender
    sender.close()


@pytest.fixture
def exchanges(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs the plain client itself sent to (not requests), in order."""
    seen: list[str] = []
    real = plain_http.PlainHTTP._exchange

    def counted(self: plain_http.PlainHTTP, method: str, where: Any, kwargs: Any) -> Any:
        seen.append(where[0])
        return real(self, method, where, kwargs)

    monkeypatch.setattr(plain_http.PlainHTTP, "_exchange", counted)
    return seen


def test_a_webhook_receives_the_same_request_as_requests_would_have_sent(
    port: int, notifier: AppriseNotifier, exchanges: list[str]
) -> None:
    # Basic auth, a header of the user's (+), a query parameter (-) and a payload field (:).
    url = f"json://ana:s3cret@127.0.0.1:{port}/hook/é?+X-Team=ops&-source=jobwire&:note=hi"
    by_requests = apprise.Apprise()
    by_requests.add(url)
    assert by_requests.notify(title="Café opening", body="Nordstrom is hiring in Portland")
    notifier.send_blocking(url, Message("Café opening", "Nordstrom is hiring in Portland"))

    assert len(exchanges) == 1  # the notifier's send went through the plain client
    theirs, ours = _Hook.received
    assert ours["method"] == theirs["method"] == "POST"
    assert ours["path"] == theirs["path"] == "/hook/%C3%A9?source=jobwire"
    assert ours["headers"] == theirs["headers"]
    assert ours["headers"]["authorization"].startswith("Basic ")
    assert ours["headers"]["x-team"] == "ops"
    assert json.loads(ours["body"]) == json.loads(theirs["body"])


def test_what_the_plain_client_does_not_take_goes_through_requests_and_arrives(
    port: int, notifier: AppriseNotifier, exchanges: list[str]
) -> None:
    # form:// posts form fields, which requests encodes; a timeout object is requests' to read.
    sender = AppriseNotifier(TargetPolicy(["form"], allow_private_hosts=True), 1, timeout_s=10)
    try:
        sender.send_blocking(f"form://127.0.0.1:{port}/form", Message("Café opening", "b"))
    finally:
        sender.close()
    session = keepalive.new_session()
    try:
        with keepalive.using(session):
            answer = requests.post(
                f"http://127.0.0.1:{port}/timeout", timeout=urllib3.Timeout(connect=5, read=5)
            )
    finally:
        session.close()
    assert answer.status_code == 200
    assert exchanges == []
    form, timed = _Hook.received
    assert form["path"] == "/form"
    assert form["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert b"title=Caf%C3%A9+opening" in form["body"]
    assert timed["path"] == "/timeout"


def test_empty_extras_that_chat_plugins_pass_are_no_reason_to_leave_the_plain_client(
    port: int, exchanges: list[str]
) -> None:
    # Slack's and Discord's plugins pass files=None / files=[] when there is no attachment;
    # requests reads an empty value as none. A real file still goes through requests.
    url = f"http://127.0.0.1:{port}/chat"
    session = keepalive.new_session()
    try:
        with keepalive.using(session):
            for empty in ({"files": None}, {"files": []}, {"stream": False, "cookies": None}):
                requests.post(url, data='{"text": "hi"}', timeout=5, **empty)  # type: ignore[arg-type]
            requests.post(url, data={"payload_json": "{}"}, files={"f": ("a.txt", b"x")}, timeout=5)
    finally:
        session.close()
    assert exchanges == [url] * 3
    bodies = [r["body"] for r in _Hook.received]
    assert bodies[:3] == [b'{"text": "hi"}'] * 3
    assert _Hook.received[3]["headers"]["content-type"].startswith("multipart/form-data")


def test_the_plugin_gets_the_same_answer_as_from_requests(port: int, exchanges: list[str]) -> None:
    url = f"http://127.0.0.1:{port}/gzip"
    theirs = requests.get(url, timeout=5)
    session = keepalive.new_session()
    try:
        with keepalive.using(session):
            ours = requests.get(url, timeout=5)
    finally:
        session.close()
    assert exchanges == [url]
    assert (ours.status_code, ours.reason, ours.ok) == (theirs.status_code, theirs.reason, True)
    assert ours.headers["x-tag"] == theirs.headers["x-tag"] == "one, two"
    assert ours.encoding == theirs.encoding == "utf-8"
    assert ours.content == theirs.content == '{"id": 7, "note": "café"}'.encode()
    assert ours.json() == theirs.json() == {"id": 7, "note": "café"}
    assert ours.url == theirs.url


def test_alerts_keep_arriving_when_the_server_drops_the_idle_connection(
    port: int, notifier: AppriseNotifier, exchanges: list[str]
) -> None:
    for n in range(3):
        notifier.send_blocking(f"json://127.0.0.1:{port}/hangup", Message(f"posting {n}", "b"))
        time.sleep(0.05)  # the server's close reaches us before the next alert
    assert len(exchanges) == 3
    assert [r["body"] and json.loads(r["body"])["title"] for r in _Hook.received] == [
        "posting 0",
        "posting 1",
        "posting 2",
    ]
    assert len({r["port"] for r in _Hook.received}) == 3  # a new connection each time


def test_a_webhook_slower_than_its_read_timeout_fails_that_send_and_the_next_goes_through(
    port: int, notifier: AppriseNotifier, exchanges: list[str]
) -> None:
    target = f"json://127.0.0.1:{port}/slow?rto=0.3"
    _Hook.delay = 1.0
    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match="error occurred sending JSON"):
        notifier.send_blocking(target, Message("too slow", "b"))
    assert time.monotonic() - started < 0.9
    # At once, while the server still sits on the first answer: the connection that timed out
    # is mid-request, so the next send must not be written on it.
    _Hook.delay = 0.0
    notifier.send_blocking(target, Message("in time", "b"))
    assert len(exchanges) == 2
    assert [json.loads(r["body"])["title"] for r in _Hook.received] == ["too slow", "in time"]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """An HTTPS webhook on 127.0.0.1 with a certificate from a throwaway CA, and the CA."""
    directory = tmp_path_factory.mktemp("tls")
    material = make_tls_material(directory, "keystore-secret")
    key, certificate, _chain = pkcs12.load_key_and_certificates(
        material.broker_keystore.read_bytes(), b"keystore-secret"
    )
    assert key is not None
    assert certificate is not None
    pem = directory / "server.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + certificate.public_bytes(serialization.Encoding.PEM)
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    for served in _serve(context):
        yield served, material.ca_file


@pytest.mark.parametrize(
    ("trust", "query", "arrives"),
    [
        ("the CA, by REQUESTS_CA_BUNDLE", "", True),
        ("nothing but certifi's CAs", "", False),
        ("nothing but certifi's CAs", "?verify=no", True),
    ],
)
def test_a_tls_webhooks_certificate_is_checked_unless_the_url_says_not_to(
    trust: str,
    query: str,
    arrives: bool,
    tls: tuple[int, Path],
    exchanges: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tls_port, ca_file = tls
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    if trust.startswith("the CA"):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    _Hook.received = []
    sender = AppriseNotifier(TargetPolicy(["jsons"], allow_private_hosts=True), 1, timeout_s=10)
    try:
        if arrives:
            sender.send_blocking(f"jsons://127.0.0.1:{tls_port}/hook{query}", Message("t", "b"))
        else:
            with pytest.raises(DeliveryFailed):
                sender.send_blocking(f"jsons://127.0.0.1:{tls_port}/hook", Message("t", "b"))
    finally:
        sender.close()
    assert len(exchanges) == 1
    assert len(_Hook.received) == (1 if arrives else 0)


def test_a_session_shared_by_two_threads_at_once_sends_both(port: int) -> None:
    # jobwire lends a session to one send at a time; a plugin with threads of its own could
    # still share one, and the second request at once must not use a connection mid-request.
    session = keepalive.new_session()
    _Hook.delay = 0.3
    answers: list[int] = []

    def post() -> None:
        with keepalive.using(session):
            answers.append(requests.post(f"http://127.0.0.1:{port}/slow", timeout=5).status_code)

    try:
        threads = [threading.Thread(target=post) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        session.close()
    assert answers == [200, 200]
    assert len({r["port"] for r in _Hook.received}) == 2


# Answers as servers really write them, byte for byte, which http.server never would: each
# path's answer, and whether the server closes the connection after it.
_CANNED: dict[str, tuple[bytes, bool]] = {
    "/chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b'\r\n5;part=1\r\n{"ok"\r\nb\r\n: true, "n"\r\n4\r\n: 1}\r\n0\r\nX-Trailer: t\r\n\r\n',
        False,
    ),
    "/continue": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}",
        False,
    ),
    "/no-content": (b"HTTP/1.1 204 No Content\r\nX-Id: 9\r\nX-Id: 10\r\n\r\n", False),
    "/says-close": (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", False),
    "/http10": (b"HTTP/1.0 202 Accepted\r\nContent-Length: 3\r\n\r\nyes", False),
    "/to-close": (b"HTTP/1.1 200 Fine\r\nContent-Type: text/plain\r\n\r\nall of it", True),
    "/garbage": (b"NOT HTTP AT ALL\r\n\r\n", True),
    "/cut-short": (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", True),
}


class _CannedServer:
    """Answers each request with `_CANNED`'s bytes for its path; counts connections."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self.paths: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # closed at the end of the test
            while True:
                conn, _ = self._listener.accept()
                self.connections += 1
                threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        buffer = b""
        with conn, contextlib.suppress(OSError):
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                path = lines[0].split()[1]
                self.paths.append(path)
                answer, close = _CANNED[path]
                conn.sendall(answer)
                if close:
                    return

    def close(self) -> None:
        self._listener.close()


@pytest.fixture(scope="module")
def canned() -> Iterator[_CannedServer]:
    server = _CannedServer()
    yield server
    server.close()


def _ours(url: str, session: requests.Session | None = None) -> requests.Response:
    own = session or keepalive.new_session()
    try:
        with keepalive.using(own):
            return requests.post(url, data=b'{"title": "t"}', timeout=5)
    finally:
        if session is None:
            own.close()


@pytest.mark.parametrize(
    "path", ["/chunked", "/continue", "/no-content", "/says-close", "/http10", "/to-close"]
)
def test_an_answer_however_the_server_frames_it_reaches_the_plugin_as_from_requests(
    canned: _CannedServer, exchanges: list[str], path: str
) -> None:
    url = f"http://127.0.0.1:{canned.port}{path}"
    theirs = requests.post(url, data=b'{"title": "t"}', timeout=5)
    ours = _ours(url)
    assert exchanges == [url]  # the plain client answered, not requests
    assert (ours.status_code, ours.reason) == (theirs.status_code, theirs.reason)
    assert dict(ours.headers) == dict(theirs.headers)
    assert ours.content == theirs.content
    assert ours.encoding == theirs.encoding


def test_a_connection_is_kept_only_while_the_server_keeps_it(canned: _CannedServer) -> None:
    session = keepalive.new_session()
    before = canned.connections
    try:
        # The first five share a connection (the last of them says it closes); then an HTTP/1.0
        # answer, and one that runs to the close, each end theirs.
        paths = ["/chunked", "/continue", "/no-content", "/chunked", "/says-close"]
        paths += ["/chunked", "/http10", "/chunked", "/to-close", "/chunked"]
        answers = [_ours(f"http://127.0.0.1:{canned.port}{path}", session) for path in paths]
    finally:
        session.close()
    codes = [answer.status_code for answer in answers]
    assert codes == [200, 201, 204, 200, 200, 200, 202, 200, 200, 200]
    assert canned.connections - before == 4


@pytest.mark.parametrize("path", ["/garbage", "/cut-short"])
def test_a_broken_answer_fails_the_send_with_a_reason_and_the_next_one_goes_through(
    canned: _CannedServer, notifier: AppriseNotifier, exchanges: list[str], path: str
) -> None:
    with pytest.raises(requests.exceptions.RequestException):
        requests.post(f"http://127.0.0.1:{canned.port}{path}", timeout=5)
    with pytest.raises(DeliveryFailed):
        notifier.send_blocking(f"json://127.0.0.1:{canned.port}{path}", Message("t", "b"))
    notifier.send_blocking(f"json://127.0.0.1:{canned.port}/chunked", Message("t", "b"))
    assert len(exchanges) == 2
