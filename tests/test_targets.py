"""The target policy: which schemes reach a host the user names, and what is refused when saved.

No DNS on this machine: name lookups go to the answers in `DNS`.
"""

from __future__ import annotations

import contextlib

import apprise
import pytest

from config.settings import DEFAULT_SCHEMES
from service.egress import guarded
from service.subscriptions import check_target
from service.targets import (
    VENDOR_SCHEMES,
    Reach,
    TargetPolicy,
    TargetRefused,
    reach,
    shipped_schemes,
)

DNS = {"hooks.example.com": ["93.184.215.15"], "intranet.example.com": ["10.1.2.3"]}
PORT = 9  # nothing listens there; these tests never connect


def resolve(name: str) -> list[str]:
    if name not in DNS:
        raise OSError(f"unknown host {name}")
    return DNS[name]


# One target of every scheme on the default allowlist, with a loopback address written where a
# host would go (for vendor schemes, where their first token goes).
LOOPBACK_TARGETS = {
    "mailto": "mailto://user:pw@127.0.0.1:{port}?from=a@example.com&to=b@example.com",
    "mailtos": "mailtos://user:pw@127.0.0.1:{port}?from=a@example.com&to=b@example.com",
    "slack": "slack://127.0.0.1/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
    "discord": "discord://127.0.0.1/abcdefghijklmnopqrstuvwxyz",
    "tgram": "tgram://127.0.0.1:{port}/12345",
    "matrix": "matrix://user:pw@127.0.0.1:{port}/#room",
    "matrixs": "matrixs://user:pw@127.0.0.1:{port}/#room",
    "msteams": "msteams://127.0.0.1/a/b/c",
    "ntfy": "ntfy://127.0.0.1:{port}/topic",
    "ntfys": "ntfys://127.0.0.1:{port}/topic",
    "gotify": "gotify://127.0.0.1:{port}/AbCdEfGhIjKlMnO",
    "gotifys": "gotifys://127.0.0.1:{port}/AbCdEfGhIjKlMnO",
    "mmost": "mmost://127.0.0.1:{port}/abcdefghijklmnopqrstuvwxyz",
    "mmosts": "mmosts://127.0.0.1:{port}/abcdefghijklmnopqrstuvwxyz",
    "rocket": "rocket://user:pw@127.0.0.1:{port}/#jobs",
    "rockets": "rockets://user:pw@127.0.0.1:{port}/#jobs",
    "pover": "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@127.0.0.1",
    "signal": "signal://127.0.0.1:{port}/+12345678901",
    "signals": "signals://127.0.0.1:{port}/+12345678901",
    "json": "json://127.0.0.1:{port}/hook",
    "jsons": "jsons://127.0.0.1:{port}/hook",
    "form": "form://127.0.0.1:{port}/hook",
    "forms": "forms://127.0.0.1:{port}/hook",
    "xml": "xml://127.0.0.1:{port}/hook",
    "xmls": "xmls://127.0.0.1:{port}/hook",
}
# Where each reviewed vendor plugin really connects, whatever its URL says.
VENDOR_HOSTS = {
    "slack": "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#jobs",
    "discord": "discord://127.0.0.1/abcdefghijklmnopqrstuvwxyz",
    "tgram": "tgram://123456789:AAHabcdefghijklmnopqrstuvwxyz012345/12345",
    "pover": "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@127.0.0.1",
    "pbul": "pbul://127.0.0.1",
    "gchat": "gchat://127.0.0.1:8080/key/token",
}
VENDOR_DOMAINS = (
    "slack.com",
    "discord.com",
    "telegram.org",
    "pushover.net",
    "pushbullet.com",
    "googleapis.com",
)


def vendor_names(url: str) -> list[str]:
    """Every name a real send to `url` resolves (the lookups fail: nothing is sent)."""

    def no_dns(name: str) -> list[str]:
        raise OSError("no DNS here")

    notifier = apprise.Apprise()
    assert notifier.add(url), url
    with guarded(resolver=no_dns) as guard:
        assert not notifier.notify(title="probe", body="probe")
    return guard.resolved


def test_every_scheme_apprise_ships_has_a_known_reach() -> None:
    schemes = shipped_schemes()
    assert len(schemes) > 200
    found = {scheme: reach(scheme) for scheme in schemes}
    assert set(found.values()) == {Reach.NAMED_HOST, Reach.VENDOR, Reach.UNKNOWN}
    # The plugins the old hand list missed are derived now.
    for scheme in ("signal", "signals", "apprise", "bark", "mastodon", "hassio", "kodi"):
        assert found[scheme] is Reach.NAMED_HOST, scheme
    # Desktop and system plugins, and those reaching hosts their templates do not call a host
    # (zulip's organization, nostr relays, vapid endpoints), are unknown, so refused by default.
    for scheme in ("dbus", "windows", "syslog", "zulip", "nostr", "vapid"):
        if scheme in schemes:
            assert found[scheme] is Reach.UNKNOWN, scheme
    assert reach("no-such-scheme") is Reach.UNKNOWN


def test_the_reviewed_vendor_schemes_are_shipped_and_have_no_host_of_their_own() -> None:
    assert set(VENDOR_HOSTS) == set(VENDOR_SCHEMES)
    for scheme in VENDOR_SCHEMES:
        assert scheme in shipped_schemes(), f"Apprise no longer has {scheme}: drop it"
        assert reach(scheme) is Reach.VENDOR


@pytest.mark.parametrize("scheme", sorted(VENDOR_HOSTS))
def test_a_vendor_scheme_reaches_only_its_vendor_whatever_its_url_says(scheme: str) -> None:
    names = vendor_names(VENDOR_HOSTS[scheme])
    assert names, "the plugin resolved nothing: the probe proves nothing"
    for name in names:
        assert name.endswith(VENDOR_DOMAINS), f"{scheme}:// resolved {name}"


@pytest.mark.parametrize("scheme", DEFAULT_SCHEMES)
def test_every_default_scheme_with_a_loopback_host_is_refused_or_proven_vendor_fixed(
    scheme: str,
) -> None:
    url = LOOPBACK_TARGETS[scheme].format(port=PORT)
    policy = TargetPolicy(DEFAULT_SCHEMES, resolver=resolve)
    try:
        check_target(url)  # what the subscription schema refuses (Apprise cannot parse it)
        policy.check(url)
    except (ValueError, TargetRefused):
        return  # refused: nothing is ever sent to it
    assert reach(scheme) is Reach.VENDOR, f"{url} was accepted"
    assert "127.0.0.1" not in vendor_names(url)


def test_a_signal_target_on_loopback_is_refused_when_saved() -> None:
    policy = TargetPolicy(DEFAULT_SCHEMES, resolver=resolve)
    with pytest.raises(TargetRefused) as refused:
        policy.check("signal://127.0.0.1:8080/+12345678901/+12345678902")
    assert "would connect to 127.0.0.1 (a loopback address)" in str(refused.value)
    policy.check("signal://hooks.example.com:8080/+12345678901")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("json://intranet.example.com/hook", "a private address (10.1.2.3)"),
        ("json://localhost:8080/hook", "an internal name"),
        ("json://db.internal/hook", "an internal name"),
        ("json://[::ffff:127.0.0.1]/hook", "a loopback address"),
        ("json://169.254.169.254/latest", "a link-local or cloud metadata address"),
        ("json://nowhere.example.com/hook", "does not resolve"),
        ("mailtos://a:b@hooks.example.com?smtp=10.0.0.5&from=a@example.com", "private"),
        ("ntfys://intranet.example.com/topic", "a private address"),
    ],
)
def test_targets_that_would_reach_internal_hosts_are_refused(url: str, reason: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        TargetPolicy(["json", "mailtos", "ntfys"], resolver=resolve).check(url)
    assert reason in str(refused.value)


def test_vendor_modes_of_self_hostable_plugins_are_not_host_checked() -> None:
    policy = TargetPolicy(["ntfy", "ntfys"], resolver=resolve)
    policy.check("ntfys://my-alerts-topic")  # ntfy.sh: the "host" is the topic


def test_an_unknown_scheme_is_refused_unless_the_operator_names_it_as_unchecked() -> None:
    url = "zulip://bot@example.zulipchat.com/abcdefghijklmnopqrstuvwxyzABCDEF"
    with pytest.raises(TargetRefused) as refused:
        TargetPolicy(["zulip"], resolver=resolve).check(url)
    assert "JOBWIRE_TARGETS__UNCHECKED_SCHEMES" in str(refused.value)
    accepting = TargetPolicy(["zulip"], resolver=resolve, unchecked_schemes=["zulip"])
    accepting.check(url)  # a token-like host: left to the send-time check
    # What can be checked still is: an address where the host goes.
    with pytest.raises(TargetRefused, match="loopback"):
        accepting.check("zulip://bot@127.0.0.1/abcdefghijklmnopqrstuvwxyzABCDEF")


def test_private_hosts_are_accepted_when_the_operator_allows_them() -> None:
    policy = TargetPolicy(["json"], allow_private_hosts=True, resolver=resolve)
    policy.check("json://127.0.0.1:8080/hook")


def never_resolve(name: str) -> list[str]:
    raise AssertionError(f"resolved {name}, which blocks the event loop's thread")


@pytest.mark.parametrize("allow_private_hosts", [False, True])
@pytest.mark.parametrize("scheme", DEFAULT_SCHEMES)
def test_a_target_checked_without_a_worker_thread_never_resolves_a_name(
    scheme: str, allow_private_hosts: bool
) -> None:
    """The API checks on its event loop's thread every target `may_resolve` passes."""
    for url in (
        LOOPBACK_TARGETS[scheme].format(port=PORT),
        LOOPBACK_TARGETS[scheme].format(port=PORT).replace("127.0.0.1", "hooks.example.com"),
    ):
        policy = TargetPolicy(
            DEFAULT_SCHEMES, allow_private_hosts=allow_private_hosts, resolver=never_resolve
        )
        if policy.may_resolve(url):
            continue
        with contextlib.suppress(TargetRefused):  # refused without a lookup: as good
            policy.check(url)
