"""What a subscription may ask for, and refusals that name the field."""

from __future__ import annotations

import contextlib
import logging

import pytest
from pydantic import ValidationError

from consumers.events import describe_errors
from service.logs import configure_logging
from service.redaction import mask as masked
from service.subscriptions import SubscriptionIn


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
    configure_logging("json", "DEBUG")
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
