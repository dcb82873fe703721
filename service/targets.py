"""Which notification targets a user may save, and where their alerts may go when sent.

A subscription names URLs that jobwire will later connect to. Without a policy, anyone with an
API key could point a `json://` webhook at `127.0.0.1:5432` or the cloud metadata address and
use jobwire to reach services that are not theirs. The policy holds at two moments:

- when a target is saved (`TargetPolicy.check`): the scheme must be allowed, and a scheme whose
  plugin connects to a host the URL names must name one that resolves only to public
  addresses. This is where a user learns, with a clear message, that a target will not work.
- when an alert is sent (`TargetPolicy.sending`): every connection the plugin makes is checked
  again, on the address it really connects to (service/egress.py). This is what makes the
  policy hold: DNS may answer differently by then, and a server may redirect.

Which schemes connect to a host the user names is derived from Apprise's plugins, not from a
hand list that could miss one: a plugin whose URL templates have a `{host}` connects to it.
The others are either reviewed as reaching only their vendor's fixed service (`VENDOR_SCHEMES`,
each proven by a test that sends through the real plugin and records every name it resolves)
or unknown, and an unknown scheme is refused unless the operator names it in
`JOBWIRE_TARGETS__UNCHECKED_SCHEMES` as well.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

import apprise
from apprise.manager_plugins import NotificationManager

from config.settings import TargetSettings
from service import egress
from service.egress import Resolver
from service.redaction import mask, scheme_of, scrub


class Reach(enum.Enum):
    """Where a scheme's plugin connects."""

    NAMED_HOST = "the host its URL names"
    VENDOR = "its vendor's fixed service only"
    UNKNOWN = "somewhere jobwire cannot tell"


# Reviewed: these plugins reach only their vendor's API, whatever is written where a host would
# be (that part is a token). tests/test_targets.py proves each by sending through the real
# plugin with a loopback address in every position and recording every name it resolves.
VENDOR_SCHEMES = frozenset({"slack", "discord", "tgram", "pover", "pbul", "gchat"})

# Plugins with a vendor mode beside their self-hosted one: in it, the URL's host is a token.
_VENDOR_MODES = {"ntfy": {"cloud"}, "ntfys": {"cloud"}, "matrix": {"t2bot"}, "matrixs": {"t2bot"}}


class TargetRefused(ValueError):
    """A target the policy does not allow; the message is safe to show (URL masked)."""


@lru_cache(maxsize=1)
def _plugins() -> Any:
    return NotificationManager()  # type: ignore[no-untyped-call]


def shipped_schemes() -> frozenset[str]:
    """Every scheme the installed Apprise has, enabled or not."""
    return frozenset(_plugins().schemas(include_disabled=True))


def reach(scheme: str) -> Reach:
    """Where `scheme://` targets connect, derived from the installed Apprise's plugin."""
    scheme = scheme.lower()
    if scheme not in _plugins():
        return Reach.UNKNOWN
    templates = getattr(_plugins()[scheme], "templates", ()) or ()
    if any("{host}" in template for template in templates):
        return Reach.NAMED_HOST
    return Reach.VENDOR if scheme in VENDOR_SCHEMES else Reach.UNKNOWN


class TargetPolicy:
    """The operator's rules for targets, applied when a subscription is saved and when an
    alert is sent."""

    def __init__(
        self,
        allowed_schemes: Iterable[str],
        allow_private_hosts: bool = False,
        resolver: Resolver | None = None,
        unchecked_schemes: Iterable[str] = (),
    ) -> None:
        self.allowed_schemes = frozenset(scheme.lower() for scheme in allowed_schemes)
        self.unchecked_schemes = frozenset(scheme.lower() for scheme in unchecked_schemes)
        self.allow_private_hosts = allow_private_hosts
        # None: the system's resolver. Tests give answers of their own (no DNS here).
        self.resolver = resolver

    @classmethod
    def from_settings(cls, settings: TargetSettings) -> TargetPolicy:
        return cls(
            settings.allowed_schemes,
            settings.allow_private_hosts,
            unchecked_schemes=settings.unchecked_schemes,
        )

    def may_resolve(self, url: str) -> bool:
        """Whether `check(url)` may look a host name up, which blocks. Only then does it need
        a worker thread: the trip there and back was a large share of a create's time on the
        API (docs/performance.md), and a vendor's target, or any target where private hosts are
        allowed, is decided from the URL alone."""
        return not self.allow_private_hosts and reach(scheme_of(url)) is not Reach.VENDOR

    def check(self, url: str) -> None:
        """Raise TargetRefused, saying why, if users may not send alerts to `url`.

        Blocking (it may resolve a host name): the API calls it from a worker thread.
        """
        scheme = scheme_of(url)
        if scheme not in self.allowed_schemes:
            allowed = ", ".join(sorted(self.allowed_schemes))
            raise TargetRefused(
                f"scheme {scheme!r} is not allowed here: {mask(url)} (allowed: {allowed})"
            )
        where = reach(scheme)
        if where is Reach.UNKNOWN and scheme not in self.unchecked_schemes:
            raise TargetRefused(
                f"jobwire cannot tell where {scheme}:// targets connect, so it refuses them "
                "although the scheme is allowed; an operator who accepts that (every send is "
                "still checked) also lists it in JOBWIRE_TARGETS__UNCHECKED_SCHEMES"
            )
        if self.allow_private_hosts or where is Reach.VENDOR:
            return
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        host = _connected_host(plugin, scheme)
        if host is None:
            return
        if where is Reach.UNKNOWN and not (egress.is_ip(host) or "." in host):
            return  # probably a token where a host would be; the send is checked anyway
        reason = egress.host_problem(host, self.resolver)
        if reason == egress.UNRESOLVED and where is Reach.UNKNOWN:
            return  # maybe not a host at all; the send is checked anyway
        if reason:
            # The host may itself be secret (a token where a host would be).
            raise TargetRefused(
                scrub(
                    f"{mask(url)} would connect to {host} ({reason}); "
                    "alerts may only go to public hosts",
                    url,
                )
            )

    @contextlib.contextmanager
    def sending(self) -> Iterator[egress.Egress]:
        """Guard one blocking send (see service/egress.py): every connection it makes goes to a
        checked public address (unless private hosts are allowed), no redirect is followed,
        and egress.EgressRefused says what was refused when the block ends."""
        with egress.guarded(self.allow_private_hosts, self.resolver) as guard:
            yield guard


def _connected_host(plugin: object, scheme: str) -> str | None:
    if plugin is None:
        return None
    if str(getattr(plugin, "mode", "")) in _VENDOR_MODES.get(scheme, set()):
        return None
    host = getattr(plugin, "smtp_host", None) or getattr(plugin, "host", None)
    return str(host) if host else None
