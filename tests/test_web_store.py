"""The store behind the web page: several API keys per user, links that work once, sessions,
the user's confirmed address, and what erasing a user removes; migration 0006 both ways."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from service.accounts import add_user, authenticate, key_hash, new_api_key
from service.store import Store, migrate
from service.store.api_keys import KeyLimitReached


@pytest.fixture
def store(store_of_each_kind: Store) -> Store:
    return store_of_each_kind


async def test_a_user_holds_several_keys_and_revokes_each_on_its_own(store: Store) -> None:
    made = await add_user(store, "ana")
    assert made is not None
    user, first = made
    second = new_api_key()
    added = await store.api_keys.add(user.id, key_hash(second), "laptop", max_keys=2)
    for key in (first, second):
        actor = await authenticate(store, key, None)
        assert actor is not None
        assert actor.user_id == user.id
    with pytest.raises(KeyLimitReached):
        await store.api_keys.add(user.id, key_hash(new_api_key()), "one more", max_keys=2)
    assert [k.label for k in await store.api_keys.of(user.id)] == [
        "from the operator (jobwire users add)",
        "laptop",
    ]
    assert await store.api_keys.revoke(user.id, added.id)
    assert await authenticate(store, second, None) is None
    assert await authenticate(store, first, None) is not None
    other = await add_user(store, "ben")
    assert other is not None
    assert not await store.api_keys.revoke(other[0].id, (await store.api_keys.of(user.id))[0].id)


async def test_an_address_belongs_to_one_user_and_joins_the_operators_user_of_that_name(
    store: Store,
) -> None:
    made = await add_user(store, "ana@example.com")
    assert made is not None
    joined = await store.accounts.for_email("ana@example.com")
    assert joined.id == made[0].id
    assert joined.email == "ana@example.com"
    fresh, again = await asyncio.gather(
        store.accounts.for_email("ben@example.com"), store.accounts.for_email("ben@example.com")
    )
    assert fresh.id == again.id
    long = "a" * 60 + "@example.com"
    assert (await store.accounts.for_email(long)).name != long  # too long to be a name


async def test_a_link_works_once_even_when_clicked_twice_at_once(store: Store) -> None:
    token = await store.email_tokens.issue("sign-in", "ana@example.com", timedelta(minutes=15))
    assert await store.email_tokens.peek("confirm", token) is None  # another purpose
    assert (await store.email_tokens.peek("sign-in", token)) is not None
    used = await asyncio.gather(*(store.email_tokens.use("sign-in", token) for _ in range(5)))
    assert sum(found is not None for found in used) == 1
    assert await store.email_tokens.peek("sign-in", token) is None


async def test_tokens_are_kept_only_as_hashes_and_expired_ones_are_cleared(
    store: Store,
) -> None:
    old = await store.email_tokens.issue("confirm", "ana@example.com", timedelta(seconds=-1))
    token = await store.email_tokens.issue("confirm", "ana@example.com", timedelta(hours=1))
    session = await store.web_sessions.start("u1", timedelta(hours=1))
    async with store.engine.connect() as conn:
        rows = []
        for table in ("email_tokens", "web_sessions"):
            rows.extend((await conn.execute(text(f"SELECT * FROM {table}"))).all())
        stored = " ".join(str(row) for row in rows)
        count = (await conn.execute(text("SELECT count(*) FROM email_tokens"))).scalar_one()
    for secret in (old, token, session):
        assert secret not in stored
    assert count == 1  # the expired one went when the next was made


async def test_erasing_a_user_removes_their_keys_sessions_and_pending_links(
    store: Store,
) -> None:
    user = await store.accounts.for_email("ana@example.com")
    key = new_api_key()
    await store.api_keys.add(user.id, key_hash(key), "laptop", max_keys=5)
    session = await store.web_sessions.start(user.id, timedelta(hours=1))
    link = await store.email_tokens.issue("sign-in", "ana@example.com", timedelta(hours=1))
    await store.accounts.erase(user.id)
    assert await authenticate(store, key, None) is None
    assert await store.web_sessions.user_of(session) is None
    assert await store.email_tokens.peek("sign-in", link) is None
    assert await store.accounts.by_email("ana@example.com") is None


async def test_migration_0006_moves_keys_to_their_table_and_back(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'jobwire.db'}"
    store = await Store.open(url)
    made = await add_user(store, "ana")
    assert made is not None
    user, first = made
    second = new_api_key()
    await store.api_keys.add(user.id, key_hash(second), "laptop", max_keys=5)
    keyless = await store.accounts.for_email("ben@example.com")
    await store.close()

    engine = Store.connect(url)
    try:
        assert await migrate.downgrade(engine, "0005") == "0005"
        async with engine.connect() as conn:
            rows = dict((await conn.execute(text("SELECT name, key_hash FROM users"))).all())
        assert rows["ana"] == key_hash(first)  # the oldest key stays the user's key
        assert rows[keyless.name].startswith("none:")  # no key: one nobody can hold
        await migrate.upgrade(engine)
        assert await migrate.differences(engine) == []
    finally:
        await engine.dispose()
    store = await Store.open(url)
    try:
        actor = await authenticate(store, first, None)
        assert actor is not None
        assert actor.user_id == user.id
        assert await authenticate(store, second, None) is None  # newer keys go with 0006
    finally:
        await store.close()
