"""Secrets at rest: a copy of the store shows no target's password once keys are set."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from config.settings import Settings, SettingsError, load_settings
from consumers.events import Event
from service.cli import app
from service.own_mail import JOBWIRE_MAIL, own_mail_target
from service.store import Match, Store, StoreUnavailable, migrate
from service.store.crypto import new_key
from service.subscriptions import SubscriptionIn

PASSWORD = "Hunter2-mail-pass"
TARGET = f"mailtos://ana:{PASSWORD}@mail.example.com?to=ana@example.com"
runner = CliRunner()


def raw(path: Path) -> str:
    """Everything the store file holds, as a thief with a copy would read it."""
    with sqlite3.connect(path) as conn:
        return "\n".join(line for line in conn.iterdump())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "jobwire.db"


def url(db: Path) -> str:
    return f"sqlite+aiosqlite:///{db}"


async def test_with_keys_targets_and_the_signing_secret_are_sealed_and_still_work(
    db: Path, sample_events: list[Event]
) -> None:
    key = new_key()
    store = await Store.open(url(db), keys=[key])
    sub = await store.subscriptions.add(
        SubscriptionIn.model_validate({"employers": ["NORDSTROM"], "notify": [TARGET]})
    )
    secret = await store.secrets.get_or_create("unsubscribe-signing", "signing-secret-value")
    await store.ledger.record(sample_events[3:4], [Match(sub.id, sample_events[3], sub.target_ids)])
    (claimed,) = await store.ledger.claim(1, lease_s=60)
    await store.close()

    assert claimed.delivery.target == TARGET  # opened for the send
    assert secret == "signing-secret-value"
    dump = raw(db)
    assert PASSWORD not in dump
    assert "signing-secret-value" not in dump
    assert "fernet:" in dump


async def test_targets_sealed_before_0010_are_told_apart_at_the_next_start(
    db: Path, sample_events: list[Event]
) -> None:
    """Migration 0010 cannot open sealed URLs, so it leaves `sent_via` unknown; the first
    start with the keys fills it in, and a claim can then pass over the own-mail targets."""
    key = new_key()
    store = await Store.open(url(db), keys=[key])
    for notify in (own_mail_target("ana@example.com"), TARGET):
        sub = await store.subscriptions.add(
            SubscriptionIn.model_validate({"employers": ["NORDSTROM"], "notify": [notify]})
        )
        await store.ledger.record(
            sample_events[3:4], [Match(sub.id, sample_events[3], sub.target_ids)]
        )
    async with store.engine.begin() as conn:  # as a store upgraded to 0010 has them
        await conn.execute(text("UPDATE targets SET sent_via = NULL"))
    await store.close()
    assert "jobwire.invalid" not in raw(db)  # sealed: nothing in the file says which is which

    store = await Store.open(url(db), keys=[key])
    try:
        due = await store.ledger.claim(10, lease_s=60, skip_via={JOBWIRE_MAIL})
        assert [c.delivery.target for c in due] == [TARGET]
        async with store.engine.connect() as conn:
            unknown = (
                await conn.execute(text("SELECT count(*) FROM targets WHERE sent_via IS NULL"))
            ).scalar_one()
        assert unknown == 0
    finally:
        await store.close()


async def test_a_sealed_store_without_its_key_refuses_to_start_saying_what_to_set(
    db: Path,
) -> None:
    store = await Store.open(url(db), keys=[new_key()])
    await store.subscriptions.add(
        SubscriptionIn.model_validate({"employers": ["Ross"], "notify": [TARGET]})
    )
    await store.close()

    with pytest.raises(StoreUnavailable, match="no key is set: set JOBWIRE_STORE__ENCRYPTION_KEYS"):
        await Store.open(url(db))
    with pytest.raises(
        StoreUnavailable, match="none of the keys in JOBWIRE_STORE__ENCRYPTION_KEYS"
    ):
        await Store.open(url(db), keys=[new_key()])


async def test_a_plain_store_is_sealed_when_keys_are_set(db: Path) -> None:
    store = await Store.open(url(db))
    await store.subscriptions.add(
        SubscriptionIn.model_validate({"employers": ["Ross"], "notify": [TARGET]})
    )
    await store.close()
    assert PASSWORD in raw(db)

    key = new_key()
    store = await Store.open(url(db), keys=[key])
    (sub,) = await store.subscriptions.all()
    await store.close()
    assert sub.notify == [TARGET]
    assert PASSWORD not in raw(db)


def test_keys_rotate_to_a_new_key_and_decrypt_before_a_downgrade(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBWIRE_STORE__URL", url(db))
    monkeypatch.setenv("JOBWIRE_TARGETS__ALLOW_PRIVATE_HOSTS", "true")
    old = runner.invoke(app, ["keys", "new"]).stdout.strip()
    new = runner.invoke(app, ["keys", "new"]).stdout.strip()
    assert old != new
    assert len(old) == 44
    monkeypatch.setenv("JOBWIRE_STORE__ENCRYPTION_KEYS", old)
    made = runner.invoke(app, ["subscribe", "--employer", "Ross", "--notify", TARGET])
    assert made.exit_code == 0, made.output

    monkeypatch.setenv("JOBWIRE_STORE__ENCRYPTION_KEYS", f"{new},{old}")
    rotated = runner.invoke(app, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert rotated.stdout.strip() == "sealed 1 secret(s) with the first key"
    monkeypatch.setenv("JOBWIRE_STORE__ENCRYPTION_KEYS", new)  # the old key can go now
    listed = runner.invoke(app, ["subscriptions"])
    assert listed.exit_code == 0, listed.output
    assert PASSWORD not in listed.stdout

    refused = runner.invoke(app, ["db", "downgrade", migrate.FIRST])
    assert refused.exit_code == 2
    assert "jobwire keys decrypt" in refused.stderr
    assert runner.invoke(app, ["keys", "decrypt"]).stdout.strip() == (
        "stored 1 secret(s) in plain text"
    )
    assert runner.invoke(app, ["db", "downgrade", migrate.FIRST]).exit_code == 0
    with sqlite3.connect(db) as conn:
        (notify,) = conn.execute("SELECT notify FROM subscriptions").fetchone()
    assert PASSWORD in notify  # revision 0002 keeps targets in the subscription, as they were


def test_a_key_that_is_not_a_fernet_key_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBWIRE_STORE__ENCRYPTION_KEYS", "not-a-key-but-secret-ish")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "JOBWIRE_STORE__ENCRYPTION_KEYS" in str(refused.value)
    assert "jobwire keys new" in str(refused.value)
    assert "not-a-key-but-secret-ish" not in str(refused.value)
    monkeypatch.setenv("JOBWIRE_STORE__ENCRYPTION_KEYS", f" {new_key()} , {new_key()} ")
    assert len(Settings().store.keys()) == 2


async def test_opening_a_store_seals_what_is_plain_and_leaves_sealed_secrets_as_they_are(
    db: Path,
) -> None:
    key = new_key()
    store = await Store.open(url(db), keys=[key])
    for employer in ("Ross", "Macy's"):
        await store.subscriptions.add(
            SubscriptionIn.model_validate({"employers": [employer], "notify": [TARGET]})
        )
    await store.close()
    with sqlite3.connect(db) as conn:
        sealed = dict(conn.execute("SELECT id, url FROM targets").fetchall())
    # One secret in plain text, as a process started without the key would have written it.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE targets SET url = ? WHERE id = ?", (TARGET, min(sealed)))
    store = await Store.open(url(db), keys=[key])
    await store.close()
    with sqlite3.connect(db) as conn:
        now = dict(conn.execute("SELECT id, url FROM targets").fetchall())
    assert PASSWORD not in raw(db)
    untouched = {i: v for i, v in sealed.items() if i != min(sealed)}
    assert {i: now[i] for i in untouched} == untouched  # not rewritten at every start
