"""A stop keeps what the service promised just before it: jobwire running with real Kafka and a
real SMTP server, stopped right after a sign-up was answered."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from config.settings import MailSettings
from devstack.kafka import KafkaBroker
from devstack.sinks import SmtpSink
from tests.conftest import make_settings, sign_up_on_the_page
from tests.integration.conftest import running

pytestmark = pytest.mark.integration


async def test_a_stop_right_after_a_sign_up_still_sends_its_confirmation_email(
    kafka: KafkaBroker, tmp_path: Path
) -> None:
    """The page said "check your inbox": a deploy or a Ctrl-C a moment later must not lose
    that email. The mail server here takes a second to accept it, so the stop begins while
    it is still being sent."""
    with SmtpSink(accept_after_s=1.0) as smtp:
        settings = make_settings(tmp_path, kafka.bootstrap)
        settings.mail = MailSettings.model_validate(
            {"url": f"mailto://127.0.0.1:{smtp.port}?from=jobwire@example.com"}
        )
        async with running(settings) as service:
            assert service.api_url is not None
            async with httpx.AsyncClient(base_url=service.api_url) as browser:
                answer = await sign_up_on_the_page(browser, "ana@example.com")
                assert answer.status_code == 200, answer.text
                assert smtp.messages == []  # still on its way when the stop begins
        # The stop has returned: by then the email was accepted, not dropped mid-send.
        (mail,) = smtp.messages
        assert mail.to == "ana@example.com"
        assert "/confirm/" in mail.body
