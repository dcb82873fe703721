"""Settings from the environment, and start-up refused with a message naming the variable."""

from __future__ import annotations

import pytest

from config.settings import SettingsError, load_settings


def test_defaults_work_with_no_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.chdir(str(tmp_path))
    settings = load_settings()
    assert settings.kafka.postings_topic == "jobs.postings"
    assert settings.kafka.articles_topic == "news.articles"
    assert settings.kafka.dead_letter_topic == "jobwire.dead-letter"
    assert settings.store.url.startswith("sqlite+aiosqlite:///")


def test_nested_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBWIRE_KAFKA__BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("JOBWIRE_DELIVERY__MAX_ATTEMPTS", "3")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "broker:9092"
    assert settings.delivery.max_attempts == 3


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBWIRE_DELIVERY__MAX_ATTEMPTS", "many")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "JOBWIRE_DELIVERY__MAX_ATTEMPTS" in str(caught.value)


def test_schemes_are_a_comma_separated_list_and_secrets_print_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBWIRE_TARGETS__ALLOWED_SCHEMES", "mailtos, Slack,json")
    monkeypatch.setenv("JOBWIRE_API__OPERATOR_KEY", "op-secret-value-0123456789abcdefgh")
    monkeypatch.setenv("JOBWIRE_API__SIGNING_SECRET", "signing-secret-value")
    settings = load_settings()
    assert settings.targets.allowed_schemes == ["mailtos", "slack", "json"]
    assert settings.api.operator_key is not None
    assert settings.api.operator_key.get_secret_value() == "op-secret-value-0123456789abcdefgh"
    printed = repr(settings) + str(settings.model_dump())
    assert "op-secret-value" not in printed
    assert "signing-secret-value" not in printed


def test_a_short_operator_key_stops_start_up_with_how_to_make_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBWIRE_API__OPERATOR_KEY", "hunter2-guessable")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "JOBWIRE_API__OPERATOR_KEY" in message
    assert "at least 32 characters" in message
    assert "openssl rand" in message
    assert "hunter2-guessable" not in message


def test_unchecked_schemes_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBWIRE_TARGETS__UNCHECKED_SCHEMES", "Zulip, ryver")
    assert load_settings().targets.unchecked_schemes == ["zulip", "ryver"]
