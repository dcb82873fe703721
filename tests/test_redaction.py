"""No secret of a target is ever shown: API responses, CLI output, log lines, stored errors.

Every target below carries marker secrets (`ZQ<n>MARK`) in every position its scheme has: a
password, path tokens, `+header` values, `-param` and query values, vendor tokens.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from typer.testing import CliRunner

from config.settings import DEFAULT_SCHEMES, DeliverySettings, LimitSettings
from consumers.events import JobPosting
from service.accounts import add_user
from service.cli import app as cli
from service.delivery import AppriseNotifier, DeliveryWorker
from service.logs import configure_logging
from service.operations import status
from service.redaction import mask, scrub, secrets
from service.registry import SubscriptionRegistry
from service.store import Match, Store
from service.store.ledger import Outcomes
from service.subscriptions import SubscriptionIn
from service.targets import TargetPolicy
from service.unsubscribe import UnsubscribeLinks
from service.web import ApiContext, create_api
from tests.conftest import make_settings

H = "hooks.example.com"
MARK = "MARK"


def m(n: int, length: int | None = None, lower: bool = False) -> str:
    """Marker secret number n, shaped to pass a plugin's token rules."""
    text = f"ZQ{n}MARK"
    if length:
        text = (text * 10)[:length]
    return text.lower() if lower else text


# One target of each scheme on the default allowlist, markers everywhere they can go.
MARKED = {
    "mailto": f"mailto://ana:{m(1)}@{H}?from=a@example.com&to=b@example.com&+X-Token={m(2)}",
    "mailtos": f"mailtos://ana:{m(1)}@{H}?to=b@example.com&+X-Token={m(2)}&pgp=no",
    "slack": f"slack://{m(1)}/{m(2)}/{m(3, 24)}/#jobs",
    "discord": f"discord://12345{m(1)}/{m(2)}",
    "tgram": f"tgram://123456789:{m(1, 35)}/12345",
    "matrix": f"matrix://ana:{m(1)}@{H}/#room",
    "matrixs": f"matrixs://{m(1)}@{H}/#room?mode=matrix",
    "ntfy": f"ntfy://ana:{m(1)}@{H}/{m(2)}?+X-Token={m(3)}",
    "ntfys": f"ntfys://{H}/{m(1)}?token={m(2)}",
    "gotify": f"gotify://{H}/{m(1)}",
    "gotifys": f"gotifys://{H}/{m(1)}?priority=high",
    "mmost": f"mmost://{H}/{m(1)}",
    "mmosts": f"mmosts://{H}/{m(1)}",
    "rocket": f"rocket://ana:{m(1)}@{H}/#jobs",
    "rockets": f"rockets://ana:{m(1)}@{H}/#jobs",
    "pover": f"pover://{m(1, 30, True)}@{m(2, 30, True)}",
    "signal": f"signal://ana:{m(1)}@{H}/+12345678901/+12345678902",
    "signals": f"signals://ana:{m(1)}@{H}/+12345678901",
    "json": (
        f"json://ana:{m(1)}@{H}/hooks/{m(2)}?+Authorization=Bearer%20{m(3)}"
        f"&-apikey={m(4)}&key={m(5)}&:token={m(6)}&method=PUT"
    ),
    "jsons": f"jsons://{H}/{m(1)}?+X-Api-Key={m(2)}",
    "form": f"form://ana:{m(1)}@{H}/{m(2)}?+Authorization=Bearer%20{m(3)}&-apikey={m(4)}",
    "forms": f"forms://{H}/{m(1)}?-apikey={m(2)}",
    "xml": f"xml://ana:{m(1)}@{H}/{m(2)}?+Authorization=Bearer%20{m(3)}&-apikey={m(4)}",
    "xmls": f"xmls://{H}/{m(1)}?-apikey={m(2)}",
}


def test_every_default_scheme_has_a_marked_target() -> None:
    assert set(MARKED) == set(DEFAULT_SCHEMES)


@pytest.mark.parametrize("scheme", sorted(MARKED))
def test_the_masked_form_shows_no_secret_and_what_the_user_set_stays(scheme: str) -> None:
    shown = mask(MARKED[scheme])
    assert MARK not in shown.upper()
    assert shown.startswith(f"{scheme}://") or shown.startswith(f"{scheme[:-1]}://")
    # Apprise's defaults are not shown: only what the user wrote.
    for default in ("overflow=", "retry=", "wait=", "optional="):
        assert default not in shown


def test_webhook_secrets_in_path_headers_and_params_are_masked_but_named() -> None:
    shown = mask(MARKED["json"])
    assert shown == (
        "json://ana:****@hooks.example.com/hooks/****"
        "?method=PUT&+Authorization=****&-apikey=****&:token=****"
    )
    assert mask(MARKED["gotifys"]).endswith("?priority=high")
    assert mask("mailto://127.0.0.1:2525?from=a@example.com&to=b@example.com") == (
        "mailto://127.0.0.1:2525/b%40example.com?from=a%40example.com"
    )


def test_scrub_removes_every_secret_in_any_encoding_and_keeps_the_reason() -> None:
    url = MARKED["json"]
    text = (
        f"POST https://{H}/hooks/{m(2)}?apikey={m(4)} failed (401): header "
        f"'Authorization: Bearer {m(3)}', basic YW5hOlpRMU1BUks=, url {url}"
    )
    cleaned = scrub(text, url)
    assert MARK not in cleaned
    assert "failed (401)" in cleaned
    assert H in cleaned
    assert "Authorization: ****" in cleaned


def test_short_secrets_are_masked_in_urls_but_left_in_free_text() -> None:
    url = "json://ana:pw@hooks.example.com/x"
    assert "pw" not in mask(url).split("@")[0].removeprefix("json://ana:")
    assert "pw" in secrets(url)
    assert scrub("a pwd prompt", url) == "a pwd prompt"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """What an operator reads: jobwire's JSON log lines, as `jobwire run` configures them."""
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    apprise_log = logging.getLogger("apprise")
    configure_logging("json", "INFO", stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
    apprise_log.propagate = True
    structlog.reset_defaults()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    yield opened
    await opened.close()


async def test_no_marker_in_any_api_response_cli_output_log_line_or_stored_error(
    store: Store,
    tmp_path: Path,
    captured_logs: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dns = {H: ["93.184.215.15"]}

    def resolve(name: str) -> list[str]:
        if name not in dns:
            raise OSError(f"unknown host {name}")
        return dns[name]

    created = await add_user(store, "ana")
    assert created is not None
    auth = {"Authorization": f"Bearer {created[1]}"}
    policy = TargetPolicy(DEFAULT_SCHEMES, resolver=resolve)
    notifier = AppriseNotifier(policy, concurrency=4, timeout_s=10)
    api = create_api(
        ApiContext(
            store=store,
            registry=SubscriptionRegistry(store, policy, LimitSettings(tests_per_minute=100)),
            links=UnsubscribeLinks(b"secret", "http://jobwire.test"),
            notifier=notifier,
            operator_key=None,
            kafka_connected=lambda: True,
        )
    )
    responses: list[httpx.Response] = []
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=auth) as client:
        saved: dict[str, str] = {}
        for scheme, url in MARKED.items():
            made = await client.post(
                "/subscriptions", json={"name": scheme, "employers": ["ACME"], "notify": [url]}
            )
            responses.append(made)
            if made.status_code == 201:
                saved[made.json()["id"]] = url
        assert len(saved) == len(MARKED), [r.text for r in responses if r.status_code != 201]
        # DNS rebinds by send time: the webhook hosts now answer loopback; vendors do not resolve.
        dns[H] = ["127.0.0.1"]
        for sub_id in saved:
            responses.append(await client.get(f"/subscriptions/{sub_id}"))
            responses.append(await client.post(f"/subscriptions/{sub_id}/test"))
        responses.append(await client.get("/subscriptions"))
        responses.append(await client.get("/me/export"))
        first = next(iter(saved))
        responses.append(await client.patch(f"/subscriptions/{first}", json={"name": "renamed"}))
        responses.append(
            await client.patch(f"/subscriptions/{first}", json={"notify": [f"json://{m(9)}"]})
        )
    tested = [r.json() for r in responses if r.request.url.path.endswith("/test")]
    assert tested
    assert all(not report["ok"] for report in tested)
    assert any("resolved to 127.0.0.1" in str(report) for report in tested)

    # Real deliveries of one event to every target, recorded in the ledger as they fail.
    event = JobPosting(id="p1", employer="ACME", title="Cashier", city="Ely")
    subscriptions = [await store.subscriptions.get(sub_id) for sub_id in saved]
    await store.ledger.record(
        [event], [Match(sub.id, event, sub.target_ids) for sub in subscriptions if sub]
    )
    worker = DeliveryWorker(
        store, notifier, DeliverySettings(max_attempts=1, poll_interval_s=0.05, timeout_s=10)
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    async with asyncio.timeout(60):
        while (await store.ledger.counts()).get("dead", 0) < len(saved):  # noqa: ASYNC110 - ledger rows offer nothing to await
            await asyncio.sleep(0.05)
    stop.set()
    await running
    notifier.close()
    stored = [row.last_error or "" for row in await store.ledger.recent(limit=None)]
    assert all(stored)

    monkeypatch.setenv("JOBWIRE_STORE__URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()
    outputs = [
        # In a thread: the CLI runs its own event loop.
        await asyncio.to_thread(runner.invoke, cli, command)
        for command in (
            ["subscriptions"],
            ["subscriptions", "--json"],
            ["deliveries"],
            ["deliveries", "--json"],
            ["users", "export", "ana"],
        )
    ]
    assert all(out.exit_code == 0 for out in outputs), [o.output for o in outputs]

    seen = {
        "api": "\n".join(r.text for r in responses),
        "cli": "\n".join(out.stdout + out.stderr for out in outputs),
        "logs": captured_logs.getvalue(),
        "ledger": "\n".join(stored),
    }
    assert '"delivery.dead"' in seen["logs"]
    for where, text in seen.items():
        assert MARK not in text.upper(), f"a marker secret in the {where}"


async def test_status_scrubs_an_error_an_older_jobwire_stored_with_the_password_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, "127.0.0.1:9")
    target = f"json://ana:ZQ1{MARK}@{H}/hook"
    store = await Store.open(settings.store.url)
    spec = SubscriptionIn.model_validate({"employers": ["ACME"], "notify": [target]})
    sub = await store.subscriptions.add(spec)
    event = JobPosting(id="p1", employer="ACME", title="Clerk", city="Ely")
    await store.ledger.record([event], [Match(sub.id, event, sub.target_ids)])
    (row,) = await store.ledger.recent()
    # Written as it came, before errors were scrubbed on the way in.
    await store.ledger.apply(Outcomes(dead=[(row.id, f"HTTP 401 from {target}")]))
    await store.close()

    shown = await status._store(settings)
    (dead,) = shown.dead_targets
    assert dead.last_error is not None
    assert "HTTP 401" in dead.last_error
    assert f"ZQ1{MARK}" not in dead.last_error
