"""Where jobwire's outgoing connections may go, checked at the moment each one is made.

A target URL is checked when it is saved (service/targets.py), but a check at save time proves
nothing about the send: the name may resolve elsewhere by then (DNS rebinding), a webhook may
answer `307 Location: http://127.0.0.1/...`, and a plugin may connect to hosts its URL does not
show. So every send runs inside `guarded()`, which for its duration:

- resolves each name the plugin asks for once, refuses the send if any address is internal
  (loopback, private, link-local/metadata, unspecified, multicast, or an IPv6 form of one),
  and hands the plugin exactly the addresses it checked;
- checks the address of every socket `connect`/`connect_ex`/`sendto` again, so a plugin that
  connects to a literal address or resolves by itself cannot bypass the check either: the
  connection always goes to an address that was checked, and rebinding cannot switch it;
- never follows an HTTP redirect, whatever the plugin or the URL's `redirect=yes` asks.

How it is scoped: the patches to `socket` and `requests` are installed once, process-wide, when
this module is imported, but they do nothing unless the current *context* has a guard (a
`ContextVar`). `guarded()` sets it for the code in its block only, so Kafka, the store and the
API (other threads, other contexts) are untouched. Apprise hands work to its own thread pools
with a copy of the caller's context (`submit_with_context` in Apprise 2.x), so sends it runs on
worker threads are guarded too, and a send Apprise abandons after a timeout stays guarded.

With `allow_private_hosts` (a trusted single-user set-up, the tests' loopback sinks) addresses
are not checked, but redirects are still not followed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests.sessions

Resolver = Callable[[str], Iterable[str]]

# Names that are internal whatever DNS says elsewhere.
INTERNAL_NAMES = ("localhost",)
INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")

# NAT64 prefixes embed an IPv4 address in their last 32 bits (RFC 6052, RFC 8215).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


UNRESOLVED = "a name that does not resolve; check it"


class EgressRefused(OSError):
    """A connection the guard did not allow; the message says what and why, never a secret.

    An OSError, so that inside a plugin it fails like any connection error (requests, smtplib
    and Apprise all handle those); `guarded()` raises it again once the block ends, so the
    caller learns the real reason and records the send as failed.
    """


def address_problem(address: str) -> str | None:
    """Why an IP address is internal ("a loopback address", ...), or None if it is public."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address wrapped in IPv6 reaches that IPv4 address.
        if ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            candidates.append(ip.sixtofour)
        if ip.teredo is not None:
            candidates.extend(ip.teredo)
        if any(ip in net for net in _NAT64):
            candidates.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    # The embedded IPv4 address first: it names what the address really reaches.
    candidates.append(ip)
    for candidate in candidates:
        if candidate.is_loopback:
            return "a loopback address"
        if candidate.is_link_local:
            return "a link-local or cloud metadata address"
        if candidate.is_unspecified:
            return "an unspecified address (this host)"
        if candidate.is_multicast:
            return "a multicast address"
        if not candidate.is_global:
            return "a private address"
    return None


def name_problem(host: str) -> str | None:
    """Why a host name is internal by its form alone, or None."""
    name = host.strip("[]").rstrip(".").lower()
    if name in INTERNAL_NAMES or name.endswith(INTERNAL_SUFFIXES):
        return "an internal name"
    return None


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def system_resolve(host: str) -> list[str]:
    """Every address `host` resolves to, from the system resolver (blocking)."""
    return [str(info[4][0]) for info in _real_getaddrinfo(host, None, 0, socket.SOCK_STREAM)]


def host_problem(host: str, resolver: Resolver | None = None) -> str | None:
    """Why connecting to `host` would reach something internal, or None if every address it
    has is public. Blocking (it may resolve the name)."""
    found = name_problem(host)
    if found:
        return found
    name = host.strip("[]").rstrip(".")
    if is_ip(name):
        return address_problem(name)
    try:
        addresses = list((resolver or system_resolve)(name))
    except OSError:
        return UNRESOLVED
    for address in addresses:
        found = address_problem(address)
        if found:
            return f"{found} ({address.split('%', 1)[0]})"
    return None if addresses else "a name without addresses"


@dataclass
class Egress:
    """One guarded send: its rules, and what it refused (read by `guarded()` at the end)."""

    allow_private_hosts: bool = False
    resolver: Resolver | None = None
    refusals: list[str] = field(default_factory=list)
    # Every name the send resolved and every address it connected to, for tests and logs.
    resolved: list[str] = field(default_factory=list)
    connected: list[str] = field(default_factory=list)

    def refuse(self, reason: str) -> EgressRefused:
        self.refusals.append(reason)
        return EgressRefused(reason)

    def getaddrinfo(
        self, host: Any, port: Any, family: int, type_: int, proto: int, flags: int
    ) -> list[Any]:
        if host is None:
            # Passive or "this host" lookups are never what a notification means.
            if self.allow_private_hosts:
                return _real_getaddrinfo(host, port, family, type_, proto, flags)
            raise self.refuse("refused: a connection to this host (no host name) at send time")
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.resolved.append(name)
        if self.resolver is not None and not is_ip(name):
            results = _synthesize(self.resolver(name.rstrip(".")), port, family, type_, proto)
        else:
            results = _real_getaddrinfo(host, port, family, type_, proto, flags)
        if not self.allow_private_hosts:
            found = name_problem(name)
            if found:
                raise self.refuse(f"refused: {name} is {found} at send time")
            for info in results:
                address = str(info[4][0])
                found = address_problem(address)
                if found:
                    shown = address.split("%", 1)[0]
                    what = (
                        f"a connection to {shown}" if is_ip(name) else f"{name} resolved to {shown}"
                    )
                    raise self.refuse(
                        f"refused: {what} ({found}) at send time; "
                        "alerts may only go to public hosts"
                    )
        return results

    def checked_address(self, sock: socket.socket, address: Any) -> Any:
        """The address to really connect to: `address` once checked, a name resolved (by the
        guarded resolver) to a checked address."""
        family = sock.family
        if family == socket.AF_UNIX:
            if self.allow_private_hosts:
                return address
            raise self.refuse("refused: a local (unix socket) connection at send time")
        if family not in (socket.AF_INET, socket.AF_INET6):
            if self.allow_private_hosts:
                return address
            raise self.refuse(f"refused: a connection of address family {family!r}")
        host, port, *rest = address
        name = host.decode() if isinstance(host, bytes) else str(host)
        if not is_ip(name):
            # socket.connect would resolve the name itself, unchecked: resolve it here instead
            # and connect to the checked address.
            infos = self.getaddrinfo(name, port, family, sock.type, 0, 0)
            if not infos:
                raise self.refuse(f"refused: {name} has no address")
            return infos[0][4]
        if not self.allow_private_hosts:
            found = address_problem(name)
            if found:
                raise self.refuse(
                    f"refused: a connection to {name.split('%', 1)[0]} ({found}) at send time; "
                    "alerts may only go to public hosts"
                )
        self.connected.append(name)
        return (host, port, *rest)


_active: ContextVar[Egress | None] = ContextVar("jobwire_egress", default=None)


@contextlib.contextmanager
def guarded(
    allow_private_hosts: bool = False, resolver: Resolver | None = None
) -> Iterator[Egress]:
    """Guard every connection the code in the block makes (see the module's docstring).

    Raises EgressRefused when the block ends if anything was refused, even when the plugin
    swallowed the error and reported a plain failure; call it in the thread that sends (a
    blocking Apprise `notify`), not around an `await` that hands work to a thread pool.
    """
    egress = Egress(allow_private_hosts, resolver)
    token = _active.set(egress)
    try:
        yield egress
    except BaseException as exc:
        if egress.refusals:
            raise EgressRefused(egress.refusals[0]) from exc
        raise
    finally:
        _active.reset(token)
    if egress.refusals:
        raise EgressRefused(egress.refusals[0])


def active() -> Egress | None:
    """The guard of the current context, if a send is under way."""
    return _active.get()


def _synthesize(
    addresses: Iterable[str], port: Any, family: int, type_: int, proto: int
) -> list[Any]:
    """getaddrinfo's answer for addresses a test resolver gave."""
    number = int(port) if isinstance(port, int | str) and str(port).isdigit() else 0
    results: list[Any] = []
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        if family not in (0, socket.AF_UNSPEC, fam):
            continue
        sockaddr: tuple[Any, ...] = (
            (str(ip), number, 0, 0) if fam == socket.AF_INET6 else (str(ip), number)
        )
        results.append((fam, type_ or socket.SOCK_STREAM, proto, "", sockaddr))
    if not results:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return results


# -- the process-wide hooks, inert without a guard in the current context ---------------------

_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_sendto = socket.socket.sendto
_real_redirect_target = requests.sessions.SessionRedirectMixin.get_redirect_target


def _getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list[Any]:
    egress = _active.get()
    if egress is None:
        return _real_getaddrinfo(host, port, family, type, proto, flags)
    return egress.getaddrinfo(host, port, family, type, proto, flags)


def _connect(self: socket.socket, address: Any) -> None:
    egress = _active.get()
    if egress is not None:
        address = egress.checked_address(self, address)
    _real_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    egress = _active.get()
    if egress is not None:
        address = egress.checked_address(self, address)
    return _real_connect_ex(self, address)


def _sendto(self: socket.socket, data: Any, *args: Any) -> int:
    egress = _active.get()
    if egress is not None and args:
        # sendto(data, address) or sendto(data, flags, address)
        *flags, address = args
        args = (*flags, egress.checked_address(self, address))
    return _real_sendto(self, data, *args)


def _get_redirect_target(self: requests.sessions.Session, resp: Any) -> str | None:
    target = _real_redirect_target(self, resp)
    egress = _active.get()
    if target is None or egress is None:
        return target
    origin = urlsplit(str(resp.url)).hostname or "the target"
    where = urlsplit(target).hostname or "another address"
    egress.refuse(
        f"refused: {origin} answered {resp.status_code}, a redirect to {where}; jobwire "
        "never follows redirects: put the final address in the target URL"
    )
    return None


def _install() -> None:
    if socket.getaddrinfo is _getaddrinfo:
        return
    socket.getaddrinfo = _getaddrinfo
    socket.socket.connect = _connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign,assignment]
    socket.socket.sendto = _sendto  # type: ignore[assignment]
    requests.sessions.SessionRedirectMixin.get_redirect_target = _get_redirect_target  # type: ignore[assignment,method-assign]


_install()
