"""HTTP/1.1 on the wire for plain_http.py: a request's bytes, and an answer read from a socket.

http.client did both, and its part, the system calls included, was half of a warm `json://`
send's CPU (measured on the 2-core development machine, py-spy, 20,000 sends to a loopback
webhook): its answer's headers go through the `email` package's parser (a fifth of the send
by itself), and it writes a request's headers and body in two writes, each a wait for the
socket and a send, and each a hand-over of the interpreter's lock among a sending process's
threads. Here the request leaves in one write, and the answer's head is split by hand: the
send's CPU fell by a quarter (263-294 to 203-212 us). The rules are http.client's: the same
Host and Content-Length headers, the same refusal of a header name or value that could split
the request, the same limits on an answer's head, an answer of `100 Continue` skipped, and a
body read by its length, in chunks, or to the connection's close.
"""

from __future__ import annotations

import http.client
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

# http.client's limits on an answer's head: one line, and how many headers.
MAX_LINE = 65536
MAX_HEADERS = 100

_METHODS_WITH_BODY = frozenset({"PATCH", "POST", "PUT"})  # an empty one says Content-Length: 0
_LEGAL_NAME = re.compile(rb"[^:\s][^:\r\n]*").fullmatch  # http.client's own checks
_ILLEGAL_VALUE = re.compile(rb"\n(?![ \t])|\r(?![ \t\n])").search
_ILLEGAL_PATH = re.compile("[\x00-\x20\x7f]").search
_ILLEGAL_METHOD = re.compile("[\x00-\x1f]").search
_READ = 65536


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    content: bytes
    will_close: bool  # the server closes the connection after it (or we must)


def request_bytes(
    method: str,
    host: str,
    port: int,
    default_port: int,
    path: str,
    headers: Iterable[tuple[str, object]],
    body: bytes | None,
) -> bytes:
    """The request as http.client would write it: Host, Content-Length, then `headers`."""
    if _ILLEGAL_METHOD(method):
        raise ValueError(f"method can't contain control characters. {method!r}")
    if _ILLEGAL_PATH(path):
        raise http.client.InvalidURL(f"URL can't contain control characters. {path!r}")
    try:
        host_enc = host.encode("ascii")
    except UnicodeEncodeError:
        host_enc = host.encode("idna")
    if b":" in host_enc:
        host_enc = b"[" + host_enc + b"]"  # an IPv6 address
    if port != default_port:
        host_enc += b":%d" % port
    lines = [f"{method} {path} HTTP/1.1".encode("ascii"), b"Host: " + host_enc]
    names: set[str] = set()
    rest: list[bytes] = []
    for name, value in headers:
        encoded = _header(name, value)
        names.add(name.lower())
        rest.append(encoded)
    if "host" in names:
        del lines[1]  # the caller's own Host, as http.client leaves it
    if "content-length" not in names and "transfer-encoding" not in names:
        if body is not None:
            lines.append(b"Content-Length: %d" % len(body))
        elif method.upper() in _METHODS_WITH_BODY:
            lines.append(b"Content-Length: 0")
    lines.extend(rest)
    lines.extend((b"", b""))
    head = b"\r\n".join(lines)
    return head + body if body else head


def _header(name: str, value: object) -> bytes:
    name_enc = name.encode("ascii")
    if not _LEGAL_NAME(name_enc):
        raise ValueError(f"Invalid header name {name_enc!r}")
    if isinstance(value, bytes):
        value_enc = value
    elif isinstance(value, int):
        value_enc = str(value).encode("ascii")
    else:
        value_enc = str(value).encode("latin-1")
    if _ILLEGAL_VALUE(value_enc):
        raise ValueError(f"Invalid header value {value_enc!r}")
    return name_enc + b": " + value_enc


def read_answer(sock: socket.socket, method: str) -> Answer:
    """The server's answer to one request on `sock`, read whole."""
    reader = _Reader(sock)
    while True:
        version, status, reason = _status_line(reader.line())
        headers = _headers(reader)
        if status != http.client.CONTINUE:
            break
    fields = {name.lower(): value for name, value in headers}  # the last of a repeated one
    connection = fields.get("connection", "").lower()
    will_close = "close" in connection or (version == 10 and "keep-alive" not in connection)
    if method.upper() == "HEAD" or status in (204, 304) or 100 <= status < 200:
        content = b""
    elif "chunked" in fields.get("transfer-encoding", "").lower():
        content = _chunked(reader)
    elif "content-length" in fields:
        length = _length(fields["content-length"])
        content = reader.exactly(length)
    else:  # the body runs to the connection's close
        content = reader.rest()
        will_close = True
    if reader.left_over():
        will_close = True  # bytes nothing asked for: the connection cannot carry another
    return Answer(status, reason, headers, content, will_close)


def _status_line(line: bytes) -> tuple[int, int, str]:
    text = line.decode("iso-8859-1")
    if not text:
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    parts = text.split(None, 2)  # the reason may be empty, or several words
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise http.client.BadStatusLine(text)
    version, status_text, reason = parts[0], parts[1], parts[2] if len(parts) == 3 else ""
    try:
        status = int(status_text)
    except ValueError:
        raise http.client.BadStatusLine(text) from None
    if not 100 <= status <= 999:
        raise http.client.BadStatusLine(text)
    if version in ("HTTP/1.0", "HTTP/0.9"):
        number = 10
    elif version.startswith("HTTP/1."):
        number = 11
    else:
        raise http.client.UnknownProtocol(version)
    return number, status, reason.strip()


def _headers(reader: _Reader) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    while True:
        line = reader.line()
        if line in (b"\r\n", b"\n", b""):
            return headers
        if len(headers) >= MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and headers:  # a folded line continues the last header
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {text.strip()}")
            continue
        name, colon, value = text.partition(":")
        if colon:  # a line without one is no header; the email parser skipped it too
            headers.append((name, value.lstrip(" \t")))


def _length(text: str) -> int:
    try:
        length = int(text.split(",")[0])
    except ValueError:
        raise http.client.HTTPException(f"invalid Content-Length {text!r}") from None
    if length < 0:
        raise http.client.HTTPException(f"invalid Content-Length {text!r}")
    return length


def _chunked(reader: _Reader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = reader.line().split(b";", 1)[0]
        try:
            size = int(size_line, 16)
        except ValueError:
            raise http.client.IncompleteRead(b"".join(parts)) from None
        if size == 0:
            while reader.line() not in (b"\r\n", b"\n", b""):
                pass  # trailers: read and ignored, as http.client does
            return b"".join(parts)
        parts.append(reader.exactly(size))
        reader.exactly(2)  # the CRLF after the chunk


class _Reader:
    """Reads from a socket into one buffer; what the answer does not use is left over."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._at = 0

    def _more(self) -> bool:
        data = self._sock.recv(_READ)
        if not data:
            return False
        del self._buffer[: self._at]
        self._at = 0
        self._buffer += data
        return True

    def line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\n", self._at)
            if end >= 0:
                if end + 1 - self._at > MAX_LINE:
                    raise http.client.LineTooLong("header line")
                line = bytes(self._buffer[self._at : end + 1])
                self._at = end + 1
                return line
            if len(self._buffer) - self._at > MAX_LINE:
                raise http.client.LineTooLong("header line")
            if not self._more():
                line = bytes(self._buffer[self._at :])
                self._at = len(self._buffer)
                return line

    def exactly(self, size: int) -> bytes:
        while len(self._buffer) - self._at < size:
            if not self._more():
                got = bytes(self._buffer[self._at :])
                raise http.client.IncompleteRead(got, size - len(got))
        data = bytes(self._buffer[self._at : self._at + size])
        self._at += size
        return data

    def rest(self) -> bytes:
        while self._more():
            pass
        data = bytes(self._buffer[self._at :])
        self._at = len(self._buffer)
        return data

    def left_over(self) -> bool:
        return self._at < len(self._buffer)
