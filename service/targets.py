"""Which notification targets a user may save: the operator's schemes, and no internal hosts.

A subscription names URLs that jobwire will later connect to. Without a policy, anyone with an
API key could point a `json://` webhook at `127.0.0.1:5432` or the cloud metadata address and
use jobwire to reach services that are not theirs. So targets are checked when saved: the
scheme must be allowed, and schemes that connect to a host the user names must name one that
resolves only to public addresses.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable

import apprise

from config.settings import TargetSettings
from service.subscriptions import masked

# Schemes whose plugin connects to the host written in the URL (or, for email, its SMTP host).
# The others (slack://, discord://, tgram://, …) reach their vendor's fixed API whatever is
# written there, so the "host" of their URL is a token, not an address.
USER_HOST_SCHEMES = frozenset(
    (  # noqa: SIM905 - a word list reads better as words
        "json jsons form forms xml xmls apprise apprises gotify gotifys mmost mmosts "
        "rocket rockets ntfy ntfys matrix matrixs mailto mailtos"
    ).split()
)
# Names that resolve to internal services whatever DNS says elsewhere.
INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")

Resolver = Callable[[str], Iterable[str]]


class TargetRefused(ValueError):
    """A target the policy does not allow; the message is safe to show (URL masked)."""


def resolve(host: str) -> list[str]:
    """Every address `host` resolves to (blocking: call from a thread)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]


class TargetPolicy:
    """The operator's rules for targets, applied when a subscription is saved."""

    def __init__(
        self,
        allowed_schemes: Iterable[str],
        allow_private_hosts: bool = False,
        resolver: Resolver = resolve,
    ) -> None:
        self.allowed_schemes = frozenset(scheme.lower() for scheme in allowed_schemes)
        self.allow_private_hosts = allow_private_hosts
        self._resolve = resolver

    @classmethod
    def from_settings(cls, settings: TargetSettings) -> TargetPolicy:
        return cls(settings.allowed_schemes, settings.allow_private_hosts)

    def check(self, url: str) -> None:
        """Raise TargetRefused, saying why, if users may not send alerts to `url`.

        Blocking (it may resolve a host name): the API calls it from a worker thread.
        """
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in self.allowed_schemes:
            allowed = ", ".join(sorted(self.allowed_schemes))
            raise TargetRefused(
                f"scheme {scheme!r} is not allowed here: {masked(url)} (allowed: {allowed})"
            )
        if self.allow_private_hosts or scheme not in USER_HOST_SCHEMES:
            return
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        host = _connected_host(plugin)
        if host is None:
            return
        reason = self._internal(host)
        if reason:
            raise TargetRefused(
                f"{masked(url)} would connect to {host} ({reason}); "
                "alerts may only go to public hosts"
            )

    def _internal(self, host: str) -> str | None:
        """Why `host` counts as internal, or None if every address it has is public."""
        name = host.strip("[]").rstrip(".").lower()
        if name == "localhost" or name.endswith(INTERNAL_SUFFIXES):
            return "an internal name"
        try:
            addresses = [name] if _is_ip(name) else list(self._resolve(name))
        except OSError:
            return "a name that does not resolve; check it"
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if ip.is_loopback:
                return "a loopback address"
            if ip.is_link_local:
                return "a link-local or cloud metadata address"
            if not ip.is_global:
                return "a private address"
        return None if addresses else "a name without addresses"


def _connected_host(plugin: object) -> str | None:
    if plugin is None:
        return None
    # ntfy and Matrix URLs without a server of their own go to the public cloud service.
    if getattr(plugin, "mode", None) in {"cloud", "t2bot"}:
        return None
    host = getattr(plugin, "smtp_host", None) or getattr(plugin, "host", None)
    return str(host) if host else None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True
