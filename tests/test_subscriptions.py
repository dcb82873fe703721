"""What a subscription may ask for, and refusals that name the field."""

from __future__ import annotations

import contextlib
import logging
import threading

import pytest
from _pytest.logging import LogCaptureHandler
from pydantic import ValidationError

from consumers.events import describe_errors
from service.delivery.send.notifier import _Reasons
from service.logs import apprise_lines_go_nowhere, configure_logging
from service.redaction import mask as masked
from service.subscriptions import SubscriptionIn


def log_as_jobwire(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logging as `jobwire` sets it, at DEBUG, without the handler pytest attaches to every
    logger that does not propagate while a test runs (a place Apprise's lines are shown)."""
    configure_logging("json", "DEBUG")
    apprise_log = logging.getLogger("apprise")
    mine = [h for h in apprise_log.handlers if not isinstance(h, LogCaptureHandler)]
    monkeypatch.setattr(apprise_log, "handlers", mine)


def refusal(**fields: object) -> str:
    with pytest.raises(ValidationError) as caught:
        SubscriptionIn.model_validate(fields)
    return describe_errors(caught.value)


def test_a_subscription_must_want_something() -> None:
    assert "set at least one of employers, titles or cities" in refusal(
        notify=["json://127.0.0.1/x"]
    )


def test_a_target_apprise_cannot_parse_is_refused_naming_the_field() -> None:
    message = refusal(employers=["NORDSTROM"], notify=["nosuchscheme://whatever"])
    assert message.startswith("notify")
    assert "nosuchscheme" in message


def test_a_refused_target_does_not_echo_its_password() -> None:
    message = refusal(employers=["NORDSTROM"], notify=["mailto://bob:hunter2@"])
    assert "notify" in message
    assert "hunter2" not in message


def test_an_unknown_kind_is_refused() -> None:
    assert "kinds" in refusal(employers=["X"], kinds=["tweet"], notify=["json://127.0.0.1/x"])


def test_masked_hides_the_password_of_a_mail_target() -> None:
    shown = masked("mailtos://bob:hunter2@mail.example.com?to=bob@example.com")
    assert "hunter2" not in shown
    assert shown.startswith("mailtos://bob:")


@pytest.mark.parametrize("apprise_lines_shown", [False, True])
@pytest.mark.parametrize(
    "url",
    [
        "mailto://bob:hunter2@",
        "mailtos://bob:hunter2@mail.example.com?to=bob@example.com",
        "json://bob:hunter2@",
        "json://bob:hunter2@hooks.example.com/hook",
        "nosuchscheme://bob:hunter2@example.com",
    ],
)
def test_checking_a_target_never_writes_its_password_out(
    url: str,
    apprise_lines_shown: bool,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Apprise parses a target unmasked for its check only where its lines go nowhere (as
    jobwire configures logging); where they are shown, it masks them as always."""
    log_as_jobwire(monkeypatch)
    if apprise_lines_shown:  # as an application using jobwire's checks might log
        apprise_log = logging.getLogger("apprise")
        monkeypatch.setattr(apprise_log, "propagate", True)
        monkeypatch.setattr(apprise_log, "level", logging.DEBUG)
    with contextlib.suppress(ValidationError):
        SubscriptionIn.model_validate({"employers": ["NORDSTROM"], "notify": [url]})
    out, err = capfd.readouterr()
    if apprise_lines_shown:
        assert "apprise" in out + err  # the lines were shown: the check below means something
    assert "hunter2" not in out + err


@pytest.mark.parametrize("as_jobwire", [True, False])
@pytest.mark.parametrize(
    "url",
    [
        "discord://1/",  # Apprise's plugin raises: its webhook token is missing
        "mailto://bob:hunter2@",  # raises: no mail server to send through
        "json://bob:hunter2@",  # Apprise cannot parse it
    ],
)
def test_a_target_apprise_cannot_use_is_refused_naming_it_masked(
    url: str, as_jobwire: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where Apprise's lines go nowhere, the check takes a plugin's errors itself (service/
    subscriptions.py's _plugin_for); anywhere else Apprise turns them into None. Either way
    the target is refused, and its password is not in the answer."""
    if as_jobwire:
        log_as_jobwire(monkeypatch)
    assert apprise_lines_go_nowhere() is as_jobwire
    with pytest.raises(ValidationError) as refused:
        SubscriptionIn.model_validate({"employers": ["NORDSTROM"], "notify": [url]})
    (error,) = refused.value.errors()
    assert error["loc"] == ("notify", 0)
    assert "could not parse it" in error["msg"]
    assert "hunter2" not in error["msg"]


def test_a_sends_reasons_never_hold_a_check_made_beside_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The send path keeps Apprise's lines as a failed send's reason; a target checked in
    another context at the same moment (another user's, unmasked) is never among them."""
    log_as_jobwire(monkeypatch)
    assert apprise_lines_go_nowhere()  # with the send path's handler in place
    opened, checked = threading.Event(), threading.Event()
    kept: list[str] = []

    def send() -> None:
        with _Reasons.collect() as reasons:
            opened.set()
            checked.wait(5)
            logging.getLogger("apprise").warning("the send's own reason")
            kept.extend(reasons)

    sender = threading.Thread(target=send)
    sender.start()
    opened.wait(5)
    for url in ("mailto://bob:hunter2@", "nosuchscheme://bob:hunter2@example.com"):
        with contextlib.suppress(ValidationError):
            SubscriptionIn.model_validate({"employers": ["NORDSTROM"], "notify": [url]})
    checked.set()
    sender.join(5)
    assert kept == ["the send's own reason"]


def test_apprise_lines_go_nowhere_only_as_jobwire_sets_logging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log_as_jobwire(monkeypatch)
    assert apprise_lines_go_nowhere()
    apprise_log = logging.getLogger("apprise")
    jobwires = apprise_log.handlers
    monkeypatch.setattr(apprise_log, "handlers", [*jobwires, logging.StreamHandler()])
    assert not apprise_lines_go_nowhere()
    monkeypatch.setattr(apprise_log, "handlers", jobwires)
    monkeypatch.setattr(apprise_log, "propagate", True)
    assert not apprise_lines_go_nowhere()
