"""Real servers on loopback that receive what jobwire sends: a mail catcher and a webhook sink.

Tests and the local demo point Apprise at these instead of at mocks, so what they assert on
is what a user's mailbox or chat would really receive: the parsed email, the posted JSON.

Both sinks run their server in a background thread, so they work the same from plain sync
tests, from asyncio tests and from the demo. ``wait_for`` blocks on a ``threading.Condition``
that the server thread notifies on every arrival (no polling); from a coroutine, call it
through ``await asyncio.to_thread(sink.wait_for, count, timeout)`` so the event loop keeps
running the code that is supposed to send.

Outages: ``stop()`` then ``start()`` brings a sink back on the same port, so a target URL
built once stays valid across the outage. ``HttpSink.fail_with(500)`` keeps the server up but
answers an error, like a chat service having a bad day.

Apprise URLs that reach them (Apprise 2.2.0):

* ``mailto://127.0.0.1:{port}?from=jobwire@example.com&to=alice@example.com`` — the
  ``mailto://`` schema (not ``mailtos://``) means plain SMTP: no STARTTLS, no login.
  ``from=`` is required (with an IP for a host Apprise cannot derive a sender and rejects
  the URL); ``mailtos://`` would need ``&mode=insecure`` to work here. Several ``to=``
  addresses arrive as one message per recipient.
* ``json://127.0.0.1:{port}/hook`` — posts ``{"version", "title", "message", "type", ...}``.

Pass ``body_format=apprise.NotifyFormat.TEXT`` to ``notify()`` for plain-text alerts: without
it the email plugin takes the body for HTML, and the text/plain part it derives has lost its
line breaks.
"""

from __future__ import annotations

import asyncio
import email.policy
import json
import logging
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Generic, TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

# aiosmtpd says at INFO that each client came and went (three lines a message): in the tests'
# output and the demo's log that buries what matters. Its warnings and errors still show.
logging.getLogger("mail.log").setLevel(logging.WARNING)

LOOPBACK = "127.0.0.1"

Item = TypeVar("Item")


class _Inbox(Generic[Item]):
    """What a sink has received, in arrival order, and a way to wait for more of it."""

    def __init__(self) -> None:
        self._items: list[Item] = []
        self._arrived = threading.Condition()

    def add(self, item: Item) -> None:
        with self._arrived:
            self._items.append(item)
            self._arrived.notify_all()

    def snapshot(self) -> list[Item]:
        with self._arrived:
            return list(self._items)

    def clear(self) -> None:
        with self._arrived:
            self._items.clear()

    def wait_for(self, count: int, timeout: float, what: str) -> list[Item]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._items) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} {what} within {timeout} s, got {len(self._items)}"
                )
            return list(self._items)


# ---------------------------------------------------------------------------------------------
# SMTP


@dataclass(frozen=True)
class ReceivedMail:
    """One email as the mail catcher accepted it."""

    sender: str  # envelope MAIL FROM
    recipients: list[str]  # envelope RCPT TO, one per accepted recipient
    # The header fields a reader sees, decoded; addresses bare, ", "-joined.
    from_: str
    to: str
    subject: str
    body: str  # the text/plain part (else the HTML one), with "\n" line ends
    message: EmailMessage = field(repr=False)


def _parse_mail(envelope: Envelope) -> ReceivedMail:
    content = envelope.original_content or b""
    # SMTP carries CRLF line ends and the parser keeps them inside bodies; tests and the
    # demo compare text with "\n", so parse a copy with plain line ends.
    message = BytesParser(policy=email.policy.default).parsebytes(content.replace(b"\r\n", b"\n"))
    assert isinstance(message, EmailMessage)  # what policy.default builds
    part = message.get_body(preferencelist=("plain", "html"))
    return ReceivedMail(
        sender=envelope.mail_from or "",
        recipients=list(envelope.rcpt_tos),
        from_=_addresses(message, "from"),
        to=_addresses(message, "to"),
        subject=str(message.get("subject", "")),
        body=part.get_content() if isinstance(part, EmailMessage) else "",
        message=message,
    )


def _addresses(message: EmailMessage, header: str) -> str:
    values = [str(value) for value in message.get_all(header, [])]
    return ", ".join(address for _, address in getaddresses(values))


class _MailHandler:
    """aiosmtpd handler: parse each message, keep it, optionally save it as a .eml file."""

    def __init__(
        self, inbox: _Inbox[ReceivedMail], maildir: Path | None, accept_after_s: float
    ) -> None:
        self._inbox = inbox
        self._maildir = maildir
        self._saved = 0
        self._accept_after_s = accept_after_s

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        if self._accept_after_s:
            await asyncio.sleep(self._accept_after_s)  # a slow server: the sender waits
        mail = _parse_mail(envelope)
        if self._maildir is not None:
            # Written before the 250 reply: once the sender is told "accepted", the file exists.
            self._saved += 1
            name = f"{time.strftime('%Y%m%dT%H%M%S')}-{self._saved:04d}.eml"
            (self._maildir / name).write_bytes(envelope.original_content or b"")
        self._inbox.add(mail)
        return "250 Message accepted for delivery"


class _LoopbackController(Controller):
    """aiosmtpd's threaded controller, but able to listen on a port the OS picks (port 0).

    The stock controller connects to its own ``port`` after binding to check that it is up,
    which fails for port 0; binding first and reading the port back avoids picking a "free"
    port and racing another process for it.
    """

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self._bind()

    async def _bind(self) -> asyncio.AbstractServer:
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=self.port
        )
        self.port = server.sockets[0].getsockname()[1]
        return server


class SmtpSink:
    """A plain-SMTP mail catcher on 127.0.0.1 that keeps every message it accepts.

    ``maildir``, if given, also receives each message as a ``.eml`` file (open it in any mail
    client). ``port`` is chosen on the first ``start()`` and kept across ``stop()``/``start()``.
    ``accept_after_s`` keeps each sender waiting that long before its message is accepted.
    """

    def __init__(
        self, maildir: Path | None = None, port: int = 0, accept_after_s: float = 0.0
    ) -> None:
        self.maildir = maildir
        self._port = port
        self._accept_after_s = accept_after_s
        self._inbox: _Inbox[ReceivedMail] = _Inbox()
        self._controller: _LoopbackController | None = None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("SmtpSink has no port until start() is called")
        return self._port

    @property
    def running(self) -> bool:
        return self._controller is not None

    @property
    def messages(self) -> list[ReceivedMail]:
        return self._inbox.snapshot()

    def start(self) -> None:
        if self._controller is not None:
            return
        if self.maildir is not None:
            self.maildir.mkdir(parents=True, exist_ok=True)
        # A fresh controller each time: aiosmtpd closes the controller's event loop on stop().
        controller = _LoopbackController(
            _MailHandler(self._inbox, self.maildir, self._accept_after_s),
            hostname=LOOPBACK,
            port=self._port,
            # Without a name aiosmtpd calls socket.getfqdn(), which can hang on a machine
            # whose DNS is broken or absent.
            server_hostname="jobwire-mail-sink",
            ready_timeout=10.0,
        )
        controller.start()
        self._port = controller.port
        self._controller = controller

    def stop(self) -> None:
        if self._controller is None:
            return
        self._controller.stop()
        self._controller = None

    def clear(self) -> None:
        self._inbox.clear()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedMail]:
        """Block until at least ``count`` messages have arrived; all of them, in order.

        Raises ``TimeoutError`` saying how many did arrive. From a coroutine, use
        ``await asyncio.to_thread(sink.wait_for, count, timeout)``.
        """
        return self._inbox.wait_for(count, timeout, "emails")

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# HTTP


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the webhook sink accepted (answered 2xx)."""

    method: str
    path: str  # as requested, query string included
    headers: dict[str, str]
    body: bytes
    json: Any  # the body parsed as JSON, or None when it is not JSON


class _Server(ThreadingHTTPServer):
    # Request threads must not keep the process (or a stop()) waiting on a slow client.
    daemon_threads = True
    block_on_close = False
    sink: HttpSink


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._receive()

    def do_PUT(self) -> None:
        self._receive()

    def do_PATCH(self) -> None:
        self._receive()

    def _receive(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # The sender went away mid-request (a test kills it at random moments): nothing
            # was delivered, as a real webhook server would see it, so nothing is recorded.
            self.close_connection = True
            return
        status = self.server.sink._answer(
            ReceivedRequest(
                method=self.command,
                path=self.path,
                headers=dict(self.headers.items()),
                body=body,
                json=_json_or_none(body),
            )
        )
        # A slow receiver: what arrived is kept (above), the sender waits for its answer.
        time.sleep(self.server.sink.answer_delay_s)
        reply = b'{"ok": true}' if status < 300 else b'{"ok": false}'
        self.send_response(status)
        location = self.server.sink.redirect_location
        if 300 <= status < 400 and location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes every request to stderr, which buries test and demo output.
        pass


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


class HttpSink:
    """A webhook receiver on 127.0.0.1: records each POST/PUT/PATCH and answers 200.

    ``requests`` holds what was accepted; while ``fail_with(status)`` is in force requests are
    answered with that status and counted in ``rejected`` instead, so ``wait_for`` counts only
    what a chat user would actually have seen. ``redirect_to(url)`` makes it a redirector:
    every request is answered ``307 Location: url`` (and counted in ``rejected``).
    """

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._inbox: _Inbox[ReceivedRequest] = _Inbox()
        self._lock = threading.Lock()
        self._fail_status: int | None = None
        self._redirect: str | None = None
        self._rejected = 0
        # Seconds to wait before answering a request it has kept: a slow webhook.
        self.answer_delay_s = 0.0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("HttpSink has no port until start() is called")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` with no trailing slash; append ``/path`` for a hook."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def requests(self) -> list[ReceivedRequest]:
        return self._inbox.snapshot()

    @property
    def rejected(self) -> int:
        with self._lock:
            return self._rejected

    def fail_with(self, status: int | None) -> None:
        """Answer every request with ``status`` (e.g. 500) from now on; ``None`` heals it."""
        with self._lock:
            self._fail_status = status

    def redirect_to(self, location: str | None, status: int = 307) -> None:
        """Answer every request with a redirect to ``location``; ``None`` stops redirecting."""
        with self._lock:
            self._redirect = location
            self._fail_status = status if location is not None else None

    @property
    def redirect_location(self) -> str | None:
        with self._lock:
            return self._redirect

    def _answer(self, request: ReceivedRequest) -> int:
        """Called by the server thread for each request: keep it, and say what to answer."""
        with self._lock:
            status = self._fail_status
            if status is not None:
                self._rejected += 1
                return status
        self._inbox.add(request)
        return 200

    def start(self) -> None:
        if self._server is not None:
            return
        server = _Server((LOOPBACK, self._port), _Handler)
        server.sink = self
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"http-sink-{self._port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def clear(self) -> None:
        self._inbox.clear()
        with self._lock:
            self._rejected = 0

    def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedRequest]:
        """Block until at least ``count`` requests were accepted; all of them, in order.

        Raises ``TimeoutError`` saying how many did arrive. From a coroutine, use
        ``await asyncio.to_thread(sink.wait_for, count, timeout)``.
        """
        return self._inbox.wait_for(count, timeout, "requests")

    def __enter__(self) -> HttpSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
