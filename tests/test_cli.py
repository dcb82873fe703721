"""The `jobwire` command as a user types it: subscribe, list, unsubscribe, with clear refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from consumers.events import Event
from service.cli import app
from service.store import Match, Store
from service.subscriptions import SubscriptionIn

runner = CliRunner()


@pytest.fixture(autouse=True)
def store_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBWIRE_STORE__URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    # The hosts in these tests (mail.example.com, 127.0.0.1) are not public ones that resolve
    # here; the target policy has its own tests, and one below shows the CLI applies it.
    monkeypatch.setenv("JOBWIRE_TARGETS__ALLOW_PRIVATE_HOSTS", "true")


def test_subscribe_applies_the_target_policy_like_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBWIRE_TARGETS__ALLOW_PRIVATE_HOSTS")
    refused = runner.invoke(
        app, ["subscribe", "--employer", "Ross", "--notify", "json://127.0.0.1:5432/x"]
    )
    assert refused.exit_code == 2
    assert "notify.0" in refused.stderr
    assert "loopback" in refused.stderr
    monkeypatch.setenv("JOBWIRE_TARGETS__ALLOWED_SCHEMES", "mailto,slack")
    refused = runner.invoke(app, ["subscribe", "--employer", "Ross", "--notify", "discord://1/t"])
    assert refused.exit_code == 2
    assert "scheme 'discord' is not allowed" in refused.stderr
    assert runner.invoke(app, ["subscriptions", "--json"]).stdout == ""


def test_subscribe_prints_the_id_and_the_list_masks_the_password() -> None:
    made = runner.invoke(
        app,
        [
            "subscribe",
            "--employer",
            "NORDSTROM",
            "--city",
            "Portland",
            "--notify",
            "mailtos://ana:hunter2@mail.example.com?to=ana@example.com",
        ],
    )
    assert made.exit_code == 0, made.output
    sub_id = made.stdout.strip()
    assert len(sub_id) == 32

    listed = runner.invoke(app, ["subscriptions"])
    assert listed.exit_code == 0
    assert sub_id in listed.stdout
    assert "employers=NORDSTROM; cities=Portland" in listed.stdout
    assert "hunter2" not in listed.stdout
    assert "mailtos://ana:****@mail.example.com" in listed.stdout

    as_json = runner.invoke(app, ["subscriptions", "--json"])
    assert orjson.loads(as_json.stdout.splitlines()[0])["id"] == sub_id


def test_a_bad_subscription_is_refused_naming_the_field_and_nothing_is_stored() -> None:
    refused = runner.invoke(app, ["subscribe", "--employer", "NORDSTROM", "--notify", "nope://x"])
    assert refused.exit_code == 2
    assert "subscription refused: notify" in refused.stderr

    empty = runner.invoke(app, ["subscribe", "--notify", "json://127.0.0.1/x"])
    assert empty.exit_code == 2
    assert "set at least one of employers, titles or cities" in empty.stderr

    assert runner.invoke(app, ["subscriptions", "--json"]).stdout == ""


def test_unsubscribe_removes_and_says_so_for_an_unknown_id() -> None:
    sub_id = runner.invoke(
        app, ["subscribe", "--title", "asset protection", "--notify", "json://127.0.0.1/x"]
    ).stdout.strip()
    assert runner.invoke(app, ["unsubscribe", sub_id]).exit_code == 0
    assert runner.invoke(app, ["subscriptions", "--json"]).stdout == ""
    missing = runner.invoke(app, ["unsubscribe", sub_id])
    assert missing.exit_code == 1
    assert "no subscription" in missing.stderr


def test_bad_settings_stop_the_command_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBWIRE_DELIVERY__CONCURRENCY", "0")
    result = runner.invoke(app, ["subscriptions"])
    assert result.exit_code == 2
    assert "JOBWIRE_DELIVERY__CONCURRENCY" in result.stderr


def test_publish_refuses_a_file_with_a_bad_line_before_sending_anything(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"kind": "posting", "id": "1", "employer": "A", "title": "B", "city": "C"}\n'
        '{"kind": "posting", "id": "2", "title": "B", "city": "C"}\n'
    )
    result = runner.invoke(app, ["publish", str(events)])
    assert result.exit_code == 2
    assert f"{events}:2: posting.employer: Field required" in result.stderr


def test_every_command_explains_itself() -> None:
    for command in (
        [],
        ["run"],
        ["subscribe"],
        ["subscriptions"],
        ["unsubscribe"],
        ["publish"],
        ["match"],
        ["deliveries"],
        ["deliveries", "retry"],
        ["demo"],
    ):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage:" in result.stdout


def test_deliveries_shows_the_ledger_masked_and_retry_requeues_dead_alerts(
    tmp_path: Path, sample_events: list[Event]
) -> None:
    target = "mailtos://ana:hunter2@mail.example.com?to=ana@example.com"

    async def one_dead_alert() -> int:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
        sub = await store.subscriptions.add(
            SubscriptionIn.model_validate({"employers": ["NORDSTROM"], "notify": [target]})
        )
        await store.ledger.record(sample_events[3:4], [Match(sub.id, sample_events[3], [target])])
        (claimed,) = await store.ledger.claim(1, lease_s=60)
        await store.ledger.mark_dead(claimed.delivery.id, "550 mailbox unavailable")
        await store.close()
        return claimed.delivery.id

    dead_id = asyncio.run(one_dead_alert())

    shown = runner.invoke(app, ["deliveries", "--status", "dead"])
    assert shown.exit_code == 0, shown.output
    assert f"{dead_id}" in shown.stdout
    assert "550 mailbox unavailable" in shown.stdout
    assert "posting:fj-2020-10-08-004" in shown.stdout
    assert "hunter2" not in shown.stdout

    assert runner.invoke(app, ["deliveries", "retry"]).exit_code == 2
    retried = runner.invoke(app, ["deliveries", "retry", "--dead"])
    assert retried.stdout.strip() == "re-queued 1 alert(s)"
    pending = runner.invoke(app, ["deliveries", "--status", "pending", "--json"])
    assert orjson.loads(pending.stdout)["id"] == dead_id


def test_an_unreachable_store_says_what_to_check_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBWIRE_STORE__URL", "postgresql+asyncpg://bob:hunter2@127.0.0.1:9/jobwire")
    result = runner.invoke(app, ["subscriptions"])
    assert result.exit_code == 2
    shown = "postgresql+asyncpg://bob:***@127.0.0.1:9/jobwire"
    assert f"cannot reach the store at {shown}" in result.stderr
    assert "check that the database is up and JOBWIRE_STORE__URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert "hunter2" not in result.stderr


def test_users_add_shows_the_key_once_and_list_and_remove_never_show_it() -> None:
    added = runner.invoke(app, ["users", "add", "ana@example.com"])
    assert added.exit_code == 0
    key = added.stdout.strip()
    assert key.startswith("jw_")
    assert "shown only now" in added.stderr
    again = runner.invoke(app, ["users", "add", "ana@example.com"])
    assert again.exit_code == 2
    assert "already a user" in again.stderr

    listed = runner.invoke(app, ["users", "list"])
    assert "ana@example.com" in listed.stdout
    assert key not in listed.stdout + listed.stderr

    removed = runner.invoke(app, ["users", "remove", "ana@example.com"])
    assert removed.exit_code == 0
    assert "erased 'ana@example.com': 0 subscription(s) and 0 ledger row(s)" in removed.stdout
    assert runner.invoke(app, ["users", "remove", "ana@example.com"]).exit_code == 1


def test_users_export_prints_their_data_masked_and_remove_erases_it(
    tmp_path: Path, sample_events: list[Event]
) -> None:
    password = "hunter2-mail"
    target = f"mailtos://ana:{password}@mail.example.com?to=ana@example.com"
    assert runner.invoke(app, ["users", "add", "ana"]).exit_code == 0

    async def alert_for_ana() -> str:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
        user = await store.accounts.by_name("ana")
        assert user is not None
        sub = await store.subscriptions.add(
            SubscriptionIn.model_validate({"employers": ["NORDSTROM"], "notify": [target]}),
            owner=user.id,
        )
        await store.ledger.record(sample_events[3:4], [Match(sub.id, sample_events[3], [target])])
        await store.close()
        return sub.id

    sub_id = asyncio.run(alert_for_ana())
    exported = runner.invoke(app, ["users", "export", "ana"])
    assert exported.exit_code == 0, exported.output
    data = orjson.loads(exported.stdout)
    assert [s["id"] for s in data["subscriptions"]] == [sub_id]
    assert [d["event"] for d in data["deliveries"]] == [f"posting:{sample_events[3].id}"]
    assert password not in exported.stdout

    removed = runner.invoke(app, ["users", "remove", "ana"])
    assert "erased 'ana': 1 subscription(s) and 1 ledger row(s)" in removed.stdout
    assert runner.invoke(app, ["users", "export", "ana"]).exit_code == 1
    assert runner.invoke(app, ["deliveries", "--json"]).stdout == ""


def test_match_recent_checks_subscriptions_against_the_events_the_store_kept(
    tmp_path: Path, sample_events: list[Event]
) -> None:
    async def keep_the_samples() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
        await store.ledger.record(sample_events, [])
        await store.close()

    asyncio.run(keep_the_samples())
    subs = tmp_path / "subs.json"
    subs.write_bytes(
        orjson.dumps(
            [
                {"id": "nordstrom-pdx", "employers": ["NORDSTROM"], "cities": ["Portland"]},
                {"id": "tencent", "employers": ["Tencent"], "kinds": ["article"]},
            ]
        )
    )
    found = runner.invoke(app, ["match", "--subscriptions", str(subs), "--recent"])
    assert found.exit_code == 0, found.output
    pairs = [orjson.loads(line) for line in found.stdout.splitlines()]
    assert sorted(p["subscription_id"] for p in pairs) == ["nordstrom-pdx"] * 2 + ["tencent"]
    neither = runner.invoke(app, ["match", "--subscriptions", str(subs)])
    assert neither.exit_code == 2
    assert "give either --events FILE or --recent" in neither.stderr
