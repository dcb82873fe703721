"""Kept-alive HTTP connections for Apprise's webhook plugins, one pool per target and thread.

Apprise's HTTP plugins (json://, xml://, form://, most chat services) send with
`requests.post(...)`, which builds a throwaway `requests.Session` for every call: a new
connection pool, a new TCP (and TLS) connection, closed again after one request. Measured on
the 2-core development machine, that is a quarter of the CPU of a `json://` send, and the
receiving server pays for a connection per alert too.

`install()` (idempotent, done when the notifier is imported) makes the module-level
`requests.request` and its shortcuts (`requests.post`, `requests.get`, ...) use the session of
the current *context*, when `using(session)` gives one, and behave exactly as before when it
does not; so Kafka, the store and every other user of requests are untouched. The notifier
keeps one session per target and sending thread, next to the plugin it reuses.

Why this keeps the egress guard's promise (service/egress.py): a connection is only opened
inside a guarded send, where its address is checked at `connect`; a kept connection stays
with that checked address, so reusing it cannot reach a host the guard would refuse, even if
the name now resolves elsewhere. Redirects stay refused: the guard patches `Session` itself.
A kept connection the server has closed is noticed before reuse (by urllib3, or by the plain
client below, which makes the same check); one closed at the very moment of a send fails that
send, which is retried like any failed send.

The session writes a plain request (a method, a URL, headers, a body, basic auth, TLS and a
timeout: what nearly every webhook plugin asks for) with its own small client on those kept
connections (plain_http.py), and leaves anything more to requests; a send's CPU went from
0.65 to 0.27 ms for `json://`.

`new_session()` also spares each send a scan of the whole environment: with `trust_env` on,
requests reads every variable of `os.environ` twice per request looking for proxies (a fifth
of a send's CPU, measured) and looks for the service account's `~/.netrc`. The session reads
the environment once instead: with no proxy variable set it does not look again, but still
verifies certificates against `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE` when one names a bundle,
as requests would. With a proxy set, requests reads the proxy variables as usual. Either way
`~/.netrc` is never read: the service sends to URLs its users typed, and the operator's saved
passwords are not theirs.
"""

from __future__ import annotations

import contextlib
import os
import urllib.request
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import requests
import requests.api
import requests.auth

from service.delivery.send.plain_http import PlainHTTP

_session: ContextVar[requests.Session | None] = ContextVar("jobwire_http_session", default=None)
_plain_request = requests.api.request


def _request(method: str, url: str, **kwargs: Any) -> requests.Response:
    session = _session.get()
    if session is None:
        return _plain_request(method, url, **kwargs)
    return session.request(method=method, url=url, **kwargs)


class _NoAuth(requests.auth.AuthBase):
    """Stands where requests would otherwise put `~/.netrc`'s password for the host."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


class _Session(requests.Session):
    """A session that reads the environment once, when it is made, not at every request."""

    def __init__(self) -> None:
        super().__init__()
        self._proxied = bool(urllib.request.getproxies())
        self._bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self.trust_env = self._proxied
        # requests reads ~/.netrc only for a request without auth, whatever trust_env says
        # when a proxy is set; an auth of the URL's own (Apprise passes it) still wins.
        self.auth = _NoAuth()
        self._plain = PlainHTTP(self._bundle)

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        if not args and not self._proxied:
            response = self._plain.request(method, url, kwargs, self.get_redirect_target)
            if response is not None:
                return response
        return super().request(method, url, *args, **kwargs)

    def close(self) -> None:
        self._plain.close()
        super().close()

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if not self._proxied and self._bundle and verify in (True, None):
            verify = self._bundle  # what requests takes from the environment itself
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


def new_session() -> requests.Session:
    """A session for one target's sends (see the module's notes on the environment)."""
    return _Session()


@contextlib.contextmanager
def using(session: requests.Session) -> Iterator[None]:
    """Module-level requests calls in this block go through `session` (its kept connections)."""
    token = _session.set(session)
    try:
        yield
    finally:
        _session.reset(token)


def install() -> None:
    """Route `requests.request` and its shortcuts through `_request` (idempotent).

    The shortcuts in requests.api look `request` up in their module when called, so replacing
    it there covers `requests.post` and the rest; `requests.request` is the same function
    imported into the package, so it is replaced as well.
    """
    requests.api.request = _request  # type: ignore[assignment]
    requests.request = _request  # type: ignore[assignment]
