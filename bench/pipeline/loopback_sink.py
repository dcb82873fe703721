"""The pipeline benchmark's sink: a webhook receiver and a mail catcher in a process of their own.

    python bench/pipeline/loopback_sink.py   # prints "READY HTTP_PORT SMTP_PORT", obeys stdin

devstack/sinks.py keeps what arrives as parsed Python objects, in threads of the caller's
process; that suits tests, but in a benchmark it would share a core with whatever it measures
and cost more per request than jobwire itself. This one is a single asyncio process that
answers fast and keeps only (kind, arrival time, marker) per request or mail, where the marker
is the number after ``bt`` in the body (the benchmark writes the publish time there).

* HTTP/1.1 on 127.0.0.1, keep-alive, any method and path: ``200 {"ok": true}``.
* SMTP (aiosmtpd) on 127.0.0.1, no TLS, no login: ``250`` for every message.

Commands on stdin, one a line; each is answered with one line on stdout:

* ``hold``: from now on, accept requests and mails but do not answer them (the sender waits),
  which parks a sender's delivery while the benchmark fills its ledger. Answers ``OK``.
* ``open``: answer what is held, and everything from now on. Answers ``OK``.
* ``take PATH``: write what arrived since the last ``take`` to PATH, one ``kind t_ns marker``
  line each (kind ``h`` or ``m``; marker 0 if none), and forget it. Answers ``TOOK n``.
* ``cpu``: this process's CPU seconds so far (user + system). Answers ``CPU s``.
* ``quit`` (or end of stdin): stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

LOOPBACK = "127.0.0.1"
MARKER = re.compile(rb"bt(\d{1,20})")
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
CONNECTION_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)
REPLY = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}'
)

Arrival = tuple[str, int, int]


class Sink:
    """What arrived, and whether senders are being held."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.opened = asyncio.Event()
        self.opened.set()
        self.held: list[tuple[asyncio.Transport, bool]] = []

    def arrived(self, kind: str, payload: bytes) -> None:
        found = MARKER.search(payload)
        self.arrivals.append((kind, time.time_ns(), int(found.group(1)) if found else 0))

    def hold(self) -> None:
        self.opened.clear()

    def open(self) -> None:
        self.opened.set()
        held, self.held = self.held, []
        for transport, close in held:
            _reply(transport, close)

    def take(self, path: Path) -> int:
        taken, self.arrivals = self.arrivals, []
        path.write_text("".join(f"{kind} {t} {marker}\n" for kind, t, marker in taken))
        return len(taken)


def _reply(transport: asyncio.Transport, close: bool) -> None:
    if transport.is_closing():
        return
    transport.write(REPLY)
    if close:
        transport.close()


class HttpReceiver(asyncio.Protocol):
    """Just enough HTTP/1.1 for webhook senders: Content-Length bodies, keep-alive."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[: end + 2])
            length_found = CONTENT_LENGTH.search(head)
            length = int(length_found.group(1)) if length_found else 0
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            close = CONNECTION_CLOSE.search(head) is not None
            self.sink.arrived("h", body)
            assert self.transport is not None
            if self.sink.opened.is_set():
                _reply(self.transport, close)
            else:
                self.sink.held.append((self.transport, close))


class MailReceiver:
    """aiosmtpd handler: note the message; while held, keep the sender waiting at DATA."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.sink.arrived("m", envelope.original_content or b"")
        await self.sink.opened.wait()
        return "250 Message accepted for delivery"


async def serve() -> None:
    loop = asyncio.get_running_loop()
    sink = Sink()
    http = await loop.create_server(lambda: HttpReceiver(sink), LOOPBACK, 0, backlog=1024)
    handler = MailReceiver(sink)
    smtp = await loop.create_server(
        # A fixed hostname: without one aiosmtpd calls socket.getfqdn(), which can hang.
        lambda: SMTP(handler, hostname="jobwire-bench-sink", loop=loop),
        LOOPBACK,
        0,
        backlog=1024,
    )
    http_port = http.sockets[0].getsockname()[1]
    smtp_port = smtp.sockets[0].getsockname()[1]
    print(f"READY {http_port} {smtp_port}", flush=True)

    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        command, _, argument = line.partition(" ")
        if command == "hold":
            sink.hold()
            answer = "OK"
        elif command == "open":
            sink.open()
            answer = "OK"
        elif command == "take":
            answer = f"TOOK {sink.take(Path(argument))}"
        elif command == "cpu":
            times = os.times()
            answer = f"CPU {times.user + times.system:.3f}"
        elif command == "quit":
            break
        else:
            answer = f"ERROR unknown command {command!r}"
        print(answer, flush=True)
    sink.open()
    http.close()
    smtp.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
