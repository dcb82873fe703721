"""Plain HTTP/1.1 requests on kept connections, for the webhook sends that need nothing more.

Most of a `json://` send's CPU was requests' own work around the bytes on the wire: merging
the session's settings, preparing hooks and cookies, the adapter, urllib3's pool (measured on
the 2-core development machine: 0.65 ms of CPU a send, of which http.client's part, writing
the request and parsing the answer, is about a third). Apprise's HTTP plugins ask for very
little: a method, a URL, headers, a body, basic auth, certificate checking and a timeout.
`PlainHTTP.request` sends exactly those on a connection it keeps, and answers with a real
`requests.Response`, so the plugin sees what requests would have given it. http.client makes
the connection (TLS and all); the request and its answer are written and read by http1.py,
which does what http.client did for a third less of a send's CPU.

Anything else, it does not take (it returns None and the caller uses requests itself): files,
streams, cookies, proxies, client certificates or hooks (each unless empty, which requests
reads as none: Slack's and Discord's plugins pass `files=None`), an auth object, form
fields, a timeout that is not seconds, a user and password in the URL, any scheme but
http(s), or a proxy set in the environment.

What it keeps the same as requests (keepalive.py's session, which uses it):
- the URL and its query are prepared by requests' own code, and so is basic auth;
- requests' default headers (User-Agent, Accept-Encoding, Accept, Connection), under the
  plugin's own; a gzip or deflate answer is decoded;
- certificates are checked against the same bundle (certifi's, or the one the environment
  names), or not at all when the URL says `verify=no`;
- a redirect is never followed: the answer is handed to the session's `get_redirect_target`,
  which the egress guard refuses (service/egress.py);
- each failure is raised as the requests exception requests would raise (ConnectionError,
  ConnectTimeout, ReadTimeout, SSLError), which is what every plugin catches;
- a kept connection the server has closed is noticed before reuse, as urllib3 does.

Every connection is still made by `socket.connect` inside the send's egress guard, so the
guard checks each address as before.
"""

from __future__ import annotations

import functools
import http.client
import json
import os.path
import select
import socket
import ssl
import threading
import zlib
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.exceptions
from requests.auth import _basic_auth_str
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, default_headers, get_encoding_from_headers

from service.delivery.send import http1

# The keyword arguments this client takes. Any other (files, cookies, proxies, stream, cert,
# hooks) leaves the request to requests, unless it is empty: Slack's and Discord's plugins,
# among others, pass `files=None` or `files=[]` without attachments, which requests reads as
# no files at all.
_TAKEN = frozenset(
    {"params", "data", "json", "headers", "auth", "timeout", "verify", "allow_redirects"}
)

# The URL (and query) a target sends to, split once; Apprise's URL for a target rarely changes.
KEPT_URLS = 8
_Where = tuple[str, str, str, int, str]  # the URL, its scheme, host, port, and the rest

# Hosts one target's sends reach (a login host and an API host, say); the oldest goes first.
KEPT_CONNECTIONS = 4

# The schemes this client sends to, and the port a URL without one means.
_PORTS = {"http": 80, "https": 443}

_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class _Connection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        # A request leaves in one write (http1.py), and should not wait for an ACK to go.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _TLSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class PlainHTTP:
    """Kept connections for one target's sends (its session's), and the requests they carry."""

    def __init__(self, ca_bundle: str | None) -> None:
        self._ca_bundle = ca_bundle or DEFAULT_CA_BUNDLE_PATH
        self._connections: OrderedDict[tuple[str, str, int, object], http.client.HTTPConnection]
        self._connections = OrderedDict()
        self._default_headers = default_headers()
        self._wheres: dict[Any, _Where | None] = {}
        self._lock = threading.Lock()

    def request(
        self, method: str, url: str, kwargs: dict[str, Any], redirect_target: Any
    ) -> requests.Response | None:
        """The answer to `method url`, or None when the request needs requests itself.

        `redirect_target` is the session's `get_redirect_target`, called on the answer as
        requests does, so that the egress guard sees a redirect and refuses it.
        """
        if any(value for name, value in kwargs.items() if name not in _TAKEN):
            return None  # files, cookies, a proxy, a stream...: requests' to do
        data, auth = kwargs.get("data"), kwargs.get("auth")
        if data is not None and not isinstance(data, str | bytes):
            return None  # form fields or a stream: requests encodes those
        if auth is not None and not (isinstance(auth, tuple) and len(auth) == 2):
            return None
        if not _plain_timeout(kwargs.get("timeout")):
            return None  # a urllib3 Timeout, say: requests knows what to make of it
        where = self._where(url, kwargs.get("params"))
        if where is None:
            return None
        # A send uses its session alone, but a plugin that hands work to threads of its own
        # could share it: the second request at once goes through requests, which may.
        if not self._lock.acquire(blocking=False):
            return None
        try:
            response = self._exchange(method, where, kwargs)
        finally:
            self._lock.release()
        redirect_target(response)  # the guard refuses a redirect here, as requests would ask
        return response

    def _exchange(self, method: str, where: _Where, kwargs: dict[str, Any]) -> requests.Response:
        full_url, scheme, host, port, path = where
        headers = self._headers(kwargs.get("headers"))
        auth = kwargs.get("auth")
        if auth is not None:
            headers["Authorization"] = _basic_auth_str(*auth)
        data, body_json = kwargs.get("data"), kwargs.get("json")
        body: bytes | None = None
        if not data and body_json is not None:  # requests' order: data first, else json
            body = json.dumps(body_json, allow_nan=False).encode()
            headers.setdefault("Content-Type", "application/json")
        elif data:
            body = data.encode() if isinstance(data, str) else data
        connect_s, read_s = _timeouts(kwargs.get("timeout"))
        verify = kwargs.get("verify")

        connection = self._connection(scheme, host, port, True if verify is None else verify)
        connected = connection.sock is not None
        try:
            if not connected:
                connection.timeout = connect_s
                connection.connect()
                connected = True
            sock = connection.sock
            if sock.gettimeout() != read_s:  # setting it is a system call, each time
                sock.settimeout(read_s)
            sock.sendall(
                http1.request_bytes(
                    method.upper(), host, port, _PORTS[scheme], path, headers.items(), body
                )
            )
            answer = http1.read_answer(sock, method)
        except BaseException as exc:
            connection.close()  # in an unknown state: the next request connects again
            error = _as_requests_error(exc, connected)
            if error is exc:
                raise
            raise error from exc
        if answer.will_close:
            connection.close()
        return _response(answer, full_url)

    def _where(self, url: Any, params: Any) -> _Where | None:
        """The URL requests would send to, split for http.client; None if not plain HTTP.

        A target sends to the same URL each time, so what requests' `prepare_url` (IDNA,
        quoting, the query) makes of it is kept: it was an eighth of a send's CPU.
        """
        key = (url, tuple(params.items())) if isinstance(params, dict) else (url, params)
        try:
            return self._wheres[key]
        except KeyError:
            pass
        except TypeError:  # a list among the query's values: prepare, do not keep
            return _where(url, params)
        where = _where(url, params)
        if len(self._wheres) >= KEPT_URLS:
            self._wheres.clear()
        self._wheres[key] = where
        return where

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def _headers(self, given: Any) -> CaseInsensitiveDict[str]:
        headers = CaseInsensitiveDict(self._default_headers)
        if given:
            for name, value in given.items():
                if value is None:
                    headers.pop(name, None)  # requests drops a header set to None
                else:
                    headers[name] = value
        return headers

    def _connection(
        self, scheme: str, host: str, port: int, verify: Any
    ) -> http.client.HTTPConnection:
        key = (scheme, host, port, verify if scheme == "https" else None)
        connection = self._connections.get(key)
        if connection is not None:
            self._connections.move_to_end(key)
            if connection.sock is not None and _dropped(connection.sock):
                connection.close()  # the server closed it while idle; connect again
            return connection
        if scheme == "https":
            connection = _TLSConnection(host, port, context=self._tls(verify))
        else:
            connection = _Connection(host, port)
        self._connections[key] = connection
        while len(self._connections) > KEPT_CONNECTIONS:
            _, oldest = self._connections.popitem(last=False)
            oldest.close()
        return connection

    def _tls(self, verify: Any) -> ssl.SSLContext:
        if verify is False:
            return _tls_context(None)
        return _tls_context(verify if isinstance(verify, str) else self._ca_bundle)


@functools.lru_cache(maxsize=8)
def _tls_context(certificates: str | None) -> ssl.SSLContext:
    """A TLS context that trusts `certificates` (a bundle or a folder), or checks nothing.

    One per way of checking, for the whole process: loading certifi's bundle costs about 16 ms
    of CPU, which requests (urllib3) pays for each new connection and a context per target
    would pay at each target's first send. A bundle changed on disk is read at the next start.
    """
    if certificates is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif os.path.isdir(certificates):
        context = ssl.create_default_context(capath=certificates)
    else:
        context = ssl.create_default_context(cafile=certificates)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # as urllib3
    return context


def _where(url: Any, params: Any) -> _Where | None:
    prepared = PreparedRequest()
    prepared.prepare_url(url, params)
    full_url = str(prepared.url)
    parts = urlsplit(full_url)
    if parts.scheme not in _PORTS or parts.username or parts.password:
        return None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")  # no #fragment
    port = parts.port or _PORTS[parts.scheme]
    return full_url, parts.scheme, parts.hostname or "", port, path


def _plain_timeout(timeout: Any) -> bool:
    """None, seconds, or (connect, read) seconds: the timeouts this client sets itself."""
    parts = timeout if isinstance(timeout, tuple) and len(timeout) == 2 else (timeout,)
    return all(part is None or isinstance(part, int | float) for part in parts)


def _timeouts(timeout: Any) -> tuple[float | None, float | None]:
    if isinstance(timeout, tuple):
        connect_s, read_s = timeout
        return connect_s, read_s
    return timeout, timeout


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle kept connection has something to read: the server's close, or bytes
    no request asked for. Either way it cannot carry the next request (urllib3's test)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _response(answer: http1.Answer, url: str) -> requests.Response:
    response = requests.Response()
    response.status_code = answer.status
    response.reason = answer.reason
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for name, value in answer.headers:
        # Repeated headers are joined, as urllib3 does.
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    response.headers = headers
    content = answer.content
    wbits = _DECODERS.get(headers.get("content-encoding", "").strip().lower())
    if wbits is not None and content:
        try:
            content = zlib.decompress(content, wbits)
        except zlib.error as exc:
            raise requests.exceptions.ContentDecodingError(f"undecodable answer: {exc}") from exc
    response._content = content
    response._content_consumed = True
    response.url = url
    response.encoding = get_encoding_from_headers(headers)
    return response


def _as_requests_error(exc: BaseException, connected: bool) -> BaseException:
    """The exception requests would raise for `exc`, which plugins catch and report."""
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return requests.exceptions.SSLError(str(exc))
    if isinstance(exc, TimeoutError):
        if connected:
            return requests.exceptions.ReadTimeout(str(exc) or "read timed out")
        return requests.exceptions.ConnectTimeout(str(exc) or "connect timed out")
    if isinstance(exc, OSError | http.client.HTTPException):
        return requests.exceptions.ConnectionError(str(exc) or type(exc).__name__)
    if isinstance(exc, ValueError):  # a header http.client refuses (a newline in it, say)
        return requests.exceptions.InvalidHeader(str(exc))
    return exc
