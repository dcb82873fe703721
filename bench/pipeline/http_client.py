"""A lean HTTP/1.1 keep-alive client for the API benchmarks, so the client is not what they measure.

httpx costs about 0.9 ms of CPU per request on the 2-core development machine (measured: 8
keep-alive clients POSTing to a bare FastAPI route read 1,080 a second with the benchmark's
process at a full core, the server at half of one). On the same two cores as the server, that
caps any API row near 1,100 requests a second, whatever the server does, and takes CPU from
it long before. This client writes each request as bytes and reads the answer by its
`content-length`: about 50 µs a request, so the figures are the server's.

It speaks just enough HTTP for jobwire's JSON API on loopback: one request at a time on a
connection, answers with `content-length`, chunked or empty (204). Anything else is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class KeptConnection:
    """One keep-alive connection; `request` sends one request and reads its whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self._reader = reader
        self._writer = writer
        self._host = host

    @classmethod
    async def open(cls, base_url: str) -> KeptConnection:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only plain http:// URLs with a host: {base_url!r}")
        port = parts.port or 80
        reader, writer = await asyncio.open_connection(parts.hostname, port)
        return cls(reader, writer, parts.netloc)

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
    ) -> Answer:
        body = b"" if json_body is None else json.dumps(json_body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"host: {self._host}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if json_body is not None:
            lines.append("content-type: application/json")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {len(body)}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        fields = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            content = await self._reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            content = await self._chunked()
        elif status in (204, 304) or 100 <= status < 200:
            content = b""
        else:
            raise RuntimeError(f"an answer without a length: {status_line}")
        return Answer(status, content)

    async def _chunked(self) -> bytes:
        chunks = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self._reader.readexactly(size + 2)
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk[:-2])

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class Connections:
    """`count` kept connections to one server, each lent to one caller at a time."""

    def __init__(self, base_url: str, count: int) -> None:
        self._base_url = base_url
        self._count = count
        self._idle: asyncio.Queue[KeptConnection] = asyncio.Queue()
        self._all: list[KeptConnection] = []

    async def __aenter__(self) -> Connections:
        for _ in range(self._count):
            connection = await KeptConnection.open(self._base_url)
            self._all.append(connection)
            self._idle.put_nowait(connection)
        return self

    async def __aexit__(self, *_: object) -> None:
        for connection in self._all:
            await connection.close()

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
    ) -> Answer:
        connection = await self._idle.get()
        try:
            return await connection.request(method, path, headers, json_body)
        finally:
            self._idle.put_nowait(connection)
