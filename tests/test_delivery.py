"""What delivery records about a failure: the reason, never the target's secrets."""

from __future__ import annotations

import pytest

from service.redaction import scrub


@pytest.mark.parametrize(
    ("message", "target", "secret", "kept"),
    [
        (
            "Failed to send to https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/"
            "TIiajkdnlazkcOXrIdevi7FQ: 404",
            "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
            "TIiajkdnlazkcOXrIdevi7FQ",
            "404",
        ),
        (
            "login failed for ana:Hunter2-pw@127.0.0.1 port 2525",
            "mailto://ana:Hunter2-pw@127.0.0.1:2525?from=jobwire@example.com&to=ana@example.com",
            "Hunter2-pw",
            "127.0.0.1 port 2525",
        ),
        (
            "HTTP 500 from 127.0.0.1:8080/hook (user u, password s3cr3t-pass)",
            "json://u:s3cr3t-pass@127.0.0.1:8080/hook",
            "s3cr3t-pass",
            # The path of a webhook may be its token (service/redaction.py), so it goes too.
            "HTTP 500 from 127.0.0.1:8080/",
        ),
    ],
)
def test_scrub_removes_what_the_privacy_form_hides_and_keeps_the_reason(
    message: str, target: str, secret: str, kept: str
) -> None:
    scrubbed = scrub(message, target)
    assert secret not in scrubbed
    assert kept in scrubbed
