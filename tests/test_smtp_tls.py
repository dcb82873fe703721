"""Email's TLS contexts: built once and shared when verified, never altered by `verify=no`."""

from __future__ import annotations

import ssl
from typing import Any

import apprise.plugins.email.smtp

import service.delivery  # noqa: F401 - what installs the contexts: the notifier, on import

apprise_smtp: Any = apprise.plugins.email.smtp


def test_apprise_email_gets_one_shared_verified_context() -> None:
    first = apprise_smtp.ssl.create_default_context()
    second = apprise_smtp.ssl.create_default_context()
    assert first.context() is second.context()  # built once, not once per email
    assert first.check_hostname is True
    assert first.verify_mode == ssl.CERT_REQUIRED
    assert first.wrap_socket == first.context().wrap_socket  # what smtplib calls


def test_a_target_that_turns_verification_off_gets_a_context_of_its_own() -> None:
    lax = apprise_smtp.ssl.create_default_context()
    lax.check_hostname = False  # what Apprise does for ?verify=no
    lax.verify_mode = apprise_smtp.ssl.CERT_NONE
    strict = apprise_smtp.ssl.create_default_context()
    assert lax.context() is not strict.context()
    assert lax.verify_mode == ssl.CERT_NONE
    assert strict.verify_mode == ssl.CERT_REQUIRED  # the shared context is untouched
    assert strict.check_hostname is True
