"""`jobwire match`: subscriptions checked against events from files, as a user runs it."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from service.cli import app
from tests.conftest import SAMPLES

runner = CliRunner()


def write_subscriptions(tmp_path: Path, subscriptions: list[dict[str, object]]) -> Path:
    path = tmp_path / "subs.json"
    path.write_bytes(orjson.dumps(subscriptions))
    return path


def test_match_prints_one_sorted_line_per_match(tmp_path: Path) -> None:
    subs = write_subscriptions(
        tmp_path,
        [
            {"id": "b-nordstrom", "employers": ["NORDSTROM"], "cities": ["Portland"]},
            {"id": "a-tencent", "employers": ["Tencent"]},
            {"id": "c-dallas", "titles": ["Store Protection Specialist"], "cities": ["Dallas"]},
        ],
    )
    result = runner.invoke(app, ["match", "--subscriptions", str(subs), "--events", str(SAMPLES)])
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert lines == [
        {"event_id": "fj-2020-10-08-004", "subscription_id": "b-nordstrom"},
        {"event_id": "fj-2020-10-08-015", "subscription_id": "c-dallas"},
        {"event_id": "fj-2020-10-08-018", "subscription_id": "b-nordstrom"},
        {"event_id": "fn-2020-10-08-ant-tencent", "subscription_id": "a-tencent"},
    ]


def test_a_bad_subscription_names_which_and_the_field(tmp_path: Path) -> None:
    subs = write_subscriptions(
        tmp_path, [{"id": "ok", "cities": ["X"]}, {"id": "bad", "kinds": ["tweet"]}]
    )
    result = runner.invoke(app, ["match", "--subscriptions", str(subs), "--events", str(SAMPLES)])
    assert result.exit_code == 2
    assert "subscription 2: kinds.0:" in result.stderr


def test_a_bad_event_line_names_the_line_and_field(tmp_path: Path) -> None:
    subs = write_subscriptions(tmp_path, [{"id": "ok", "cities": ["X"]}])
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"kind": "posting", "id": "1", "employer": "A", "title": "B", "city": "C"}\n'
        "\n"
        '{"kind": "article", "id": "2"}\n'
    )
    result = runner.invoke(app, ["match", "--subscriptions", str(subs), "--events", str(events)])
    assert result.exit_code == 2
    assert f"{events}:3: article.headline: Field required" in result.stderr
