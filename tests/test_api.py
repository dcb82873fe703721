"""The subscriptions API as its users meet it: keys, isolation, refusals, unsubscribe links."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest

from config.settings import LimitSettings
from devstack.sinks import HttpSink, SmtpSink
from service.accounts import add_user, key_hash
from service.delivery import AppriseNotifier
from service.logs import configure_logging
from service.operations.metrics import Metrics
from service.operations.metrics_endpoint import instrument
from service.redaction import mask
from service.registry import SubscriptionRegistry
from service.store import Store
from service.subscriptions import SubscriptionIn
from service.targets import TargetPolicy
from service.unsubscribe import UnsubscribeLinks
from service.web import ApiContext, create_api

PASSWORD = "Tr0ub4dor-s3cret"
MAIL = f"mailtos://ana:{PASSWORD}@mail.example.com?to=ana@example.com"
OPERATOR_KEY = "operator-key-for-tests-0123456789"
# Name resolution is not available on this machine; these are the answers a DNS would give.
DNS = {
    "mail.example.com": ["93.184.215.14"],
    "hooks.example.com": ["93.184.215.15"],
    "intranet.example.com": ["10.1.2.3"],
    "rebind.example.com": ["93.184.215.16", "127.0.0.1"],
}


def resolve(host: str) -> list[str]:
    if host not in DNS:
        raise OSError(f"unknown host {host}")
    return DNS[host]


@dataclass
class Api:
    client: httpx.AsyncClient
    store: Store
    links: UnsubscribeLinks
    alice: dict[str, str]
    bob: dict[str, str]
    operator: dict[str, str]
    kafka_up: list[bool]

    async def create(self, who: dict[str, str], **body: Any) -> httpx.Response:
        return await self.client.post("/subscriptions", json=body, headers=who)


LIMITS = LimitSettings(subscriptions_per_user=3, targets_per_subscription=2, values_per_field=4)


@asynccontextmanager
async def serving(
    tmp_path: Path,
    limits: LimitSettings = LIMITS,
    allow_private_hosts: bool = False,
    metrics: Metrics | None = None,
) -> AsyncIterator[Api]:
    """The API over a store of its own, with users alice and bob and the operator's key;
    counted in `metrics` as `jobwire run` counts it, if given."""
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")
    keys = {}
    for name in ("alice", "bob"):
        created = await add_user(store, name)
        assert created is not None
        keys[name] = {"Authorization": f"Bearer {created[1]}"}
    links = UnsubscribeLinks(b"test-signing-secret", "http://jobwire.test")
    kafka_up = [True]
    policy = TargetPolicy(
        ["mailto", "mailtos", "json", "jsons", "form", "slack", "ntfy"],
        allow_private_hosts=allow_private_hosts,
        resolver=resolve,
    )
    notifier = AppriseNotifier(policy, concurrency=4, timeout_s=10)
    app = create_api(
        ApiContext(
            store=store,
            registry=SubscriptionRegistry(store, policy, limits),
            links=links,
            notifier=notifier,
            operator_key=OPERATOR_KEY,
            kafka_connected=lambda: kafka_up[0],
        )
    )
    if metrics is not None:
        instrument(app, metrics)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://jobwire.test") as client:
            yield Api(
                client,
                store,
                links,
                keys["alice"],
                keys["bob"],
                {"Authorization": f"Bearer {OPERATOR_KEY}"},
                kafka_up,
            )
    finally:
        notifier.close()
        await store.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving(tmp_path) as running:
        yield running


async def test_requests_without_a_valid_key_are_refused(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer jw_not-a-key"}, {"Authorization": "Basic x"}):
        response = await api.client.get("/subscriptions", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "API key" in response.json()["detail"]


async def test_a_subscription_round_trips_with_its_password_masked(api: Api) -> None:
    created = await api.create(
        api.alice,
        name="Portland retail",
        employers=["Nordstrom"],
        cities=["Portland"],
        notify=[MAIL],
    )
    assert created.status_code == 201, created.text
    body = created.json()
    (shown,) = body["notify"]
    assert shown.startswith("mailtos://ana:****@mail.example.com")
    assert body["active"] is True
    assert body["kinds"] == ["posting", "article"]

    fetched = await api.client.get(f"/subscriptions/{body['id']}", headers=api.alice)
    listed = await api.client.get("/subscriptions", headers=api.alice)
    assert fetched.json() == body
    assert listed.json() == [body]
    for response in (created, fetched, listed):
        assert PASSWORD not in response.text
    stored = await api.store.subscriptions.get(body["id"])
    assert stored is not None
    assert stored.notify == [MAIL]


async def test_users_cannot_see_or_touch_each_others_subscriptions(api: Api) -> None:
    alices = (await api.create(api.alice, employers=["Ross"], notify=[MAIL])).json()["id"]
    bobs = (await api.create(api.bob, titles=["cashier"], notify=[MAIL])).json()["id"]
    path = f"/subscriptions/{alices}"

    assert [s["id"] for s in (await api.client.get("/subscriptions", headers=api.bob)).json()] == [
        bobs
    ]
    assert (await api.client.get(path, headers=api.bob)).status_code == 404
    assert (
        await api.client.patch(path, json={"active": False}, headers=api.bob)
    ).status_code == 404
    assert (await api.client.post(f"{path}/test", headers=api.bob)).status_code == 404
    assert (await api.client.delete(path, headers=api.bob)).status_code == 404
    # Not found looks the same as an id that never existed.
    assert (await api.client.get(f"/subscriptions/{'0' * 32}", headers=api.bob)).json() == (
        await api.client.get(path, headers=api.bob)
    ).json()

    still = await api.client.get(path, headers=api.alice)
    assert still.status_code == 200
    assert still.json()["active"] is True
    everyone = await api.client.get("/subscriptions", headers=api.operator)
    assert {s["id"] for s in everyone.json()} == {alices, bobs}
    assert (await api.client.delete(path, headers=api.operator)).status_code == 204
    assert (await api.client.get(path, headers=api.alice)).status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"employers": ["Ross"]}, "notify", "Field required"),
        ({"employers": ["Ross"], "notify": []}, "notify", "at least 1 item"),
        ({"employers": ["Ross"], "notify": ["nope://x"]}, "notify.0", "unknown scheme 'nope'"),
        ({"notify": [MAIL]}, "body", "set at least one of employers, titles or cities"),
        ({"employers": ["!!!"], "notify": [MAIL]}, "employers.0", "no letters or digits"),
        ({"titles": ["  "], "notify": [MAIL]}, "titles.0", "at least 1 character"),
        ({"cities": ["x" * 201], "notify": [MAIL]}, "cities.0", "at most 200 characters"),
        ({"employers": ["a", "b", "c", "d", "e"], "notify": [MAIL]}, "employers", "at most 4"),
        ({"employers": ["Ross"], "notify": [MAIL] * 3}, "notify", "at most 2 targets"),
        ({"employer": ["Ross"], "notify": [MAIL]}, "employer", "Extra inputs"),
        ({"employers": ["Ross"], "kinds": ["tweet"], "notify": [MAIL]}, "kinds.0", "posting"),
        ({"employers": ["Ross"], "kinds": [], "notify": [MAIL]}, "kinds", "at least 1"),
        ({"employers": ["Ross\x00"], "notify": [MAIL]}, "employers.0", "control characters"),
        ({"employers": "Ross", "notify": [MAIL]}, "employers", "valid list"),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(
    api: Api, body: dict[str, Any], field: str, says: str
) -> None:
    response = await api.create(api.alice, **body)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == [field], errors
    assert says in errors[0]["message"]
    assert PASSWORD not in response.text
    assert (await api.client.get("/subscriptions", headers=api.alice)).json() == []


async def test_a_body_that_is_not_json_is_refused(api: Api) -> None:
    response = await api.client.post(
        "/subscriptions",
        content=b"{nope",
        headers={**api.alice, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"].startswith("body")


async def test_an_oversized_body_is_refused_before_it_is_read(api: Api) -> None:
    huge = {"employers": ["Ross"], "notify": [MAIL], "name": "x" * 300_000}
    response = await api.create(api.alice, **huge)
    assert response.status_code == 413
    assert "at most 256 KiB" in response.json()["detail"]


async def test_each_answer_is_logged_and_counted_by_its_route_never_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = Metrics()
    lines = io.StringIO()
    configure_logging("json", "INFO", lines)
    async with serving(tmp_path, metrics=metrics) as api:
        subscription = (await api.create(api.alice, employers=["Ross"], notify=[MAIL])).json()
        token = api.links.token(subscription["id"])
        assert (await api.client.get(f"/unsubscribe/{token}")).status_code == 200
        huge = {"employers": ["Ross"], "notify": [MAIL], "name": "x" * 300_000}
        assert (await api.create(api.alice, **huge)).status_code == 413

        async def broken(*_: object, **__: object) -> None:
            raise RuntimeError("the store broke")

        monkeypatch.setattr(api.store.subscriptions, "all", broken)
        with pytest.raises(RuntimeError):  # the test client re-raises what the app raised
            await api.client.get("/subscriptions", headers=api.alice)
    logged = [json.loads(line) for line in lines.getvalue().splitlines()]
    answers = [
        (line["method"], line["route"], line["status"])
        for line in logged
        if line["event"] == "api.request"
    ]
    assert answers == [
        ("POST", "/subscriptions", 201),
        ("GET", "/unsubscribe/{token}", 200),
        ("POST", "(no route)", 413),  # refused before routing, as it is read
        ("GET", "/subscriptions", 500),  # a handler that raised is not missing from the log
    ]
    assert all(line["ms"] >= 0 for line in logged if line["event"] == "api.request")
    ours = [line for line in logged if line["logger"].startswith("jobwire")]
    assert ours
    assert not any(token in json.dumps(line) for line in ours)
    counted = {
        (sample.labels["route"], sample.labels["status"]): sample.value
        for family in metrics.registry.collect()
        if family.name == "jobwire_api_requests"
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    assert counted == {
        ("/subscriptions", "201"): 1,
        ("/unsubscribe/{token}", "200"): 1,
        ("(no route)", "413"): 1,
        ("/subscriptions", "500"): 1,
    }


async def test_answering_from_the_store_takes_no_trip_through_the_thread_pool(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI runs a plain `def` dependency in its thread pool: a crossing to another thread
    and back on each request, for what is an attribute lookup here."""
    created = (await api.create(api.alice, employers=["Ross"], notify=[MAIL])).json()
    trips = 0
    run_sync = anyio.to_thread.run_sync

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal trips
        trips += 1
        return await run_sync(*args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    response = await api.client.get(f"/subscriptions/{created['id']}", headers=api.alice)
    assert response.status_code == 200
    assert trips == 0


async def test_a_chunked_body_is_cut_off_at_the_limit_before_the_key_is_checked(api: Api) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"employers": ["Ross"], "notify": ["' + MAIL.encode() + b'"], "name": "'
        for _ in range(100 * 1024):  # 100 MB in 1 KiB chunks, if anyone read it all
            sent += 1024
            yield b"x" * 1024

    for headers in ({}, {"Authorization": "Bearer jw_wrong"}, api.alice):
        sent = 0
        response = await api.client.post("/subscriptions", content=chunks(), headers=headers)
        assert "content-length" not in response.request.headers
        assert response.status_code == 413, response.text
        assert "at most 256 KiB" in response.json()["detail"]
        assert sent < 1024 * 1024  # it stopped reading within the first megabyte
    assert (await api.client.get("/subscriptions", headers=api.alice)).json() == []


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("json://127.0.0.1:5432/x", "loopback"),
        ("json://localhost:6379/", "internal name"),
        ("jsons://169.254.169.254/latest/meta-data", "link-local or cloud metadata"),
        ("json://metadata.google.internal/computeMetadata/v1", "internal name"),
        ("form://10.0.0.8/hook", "private"),
        ("json://[::1]:8080/x", "loopback"),
        ("json://[fd00::1]/x", "private"),
        ("json://intranet.example.com/x", "private"),
        ("json://rebind.example.com/x", "loopback"),
        ("json://nowhere.example.com/x", "does not resolve"),
        ("mailto://ana:pw@example.com?smtp=192.168.1.10&to=ana@example.com", "private"),
        ("ntfy://192.168.1.20/alerts", "private"),
        ("discord://1234/token", "scheme 'discord' is not allowed"),
    ],
)
async def test_targets_that_reach_internal_services_are_refused(
    api: Api, target: str, reason: str
) -> None:
    response = await api.create(api.alice, employers=["Ross"], notify=[MAIL, target])
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "notify.1"
    assert reason in error["message"]
    assert PASSWORD not in response.text


@pytest.mark.parametrize(
    "target",
    ["jsons://hooks.example.com/alerts", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnl", "ntfy://jobs"],
)
async def test_public_targets_are_accepted(api: Api, target: str) -> None:
    response = await api.create(api.alice, employers=["Ross"], notify=[target])
    assert response.status_code == 201, response.text


async def test_a_user_stops_at_the_subscription_limit(api: Api) -> None:
    for n in range(3):
        assert (await api.create(api.alice, employers=[f"Shop {n}"], notify=[MAIL])).is_success
    over = await api.create(api.alice, employers=["One more"], notify=[MAIL])
    assert over.status_code == 409
    assert "3 subscriptions, the most allowed" in over.json()["detail"]
    # Another user's count is their own.
    assert (await api.create(api.bob, employers=["Ross"], notify=[MAIL])).status_code == 201


async def test_patch_pauses_resumes_and_changes_only_what_is_sent(api: Api) -> None:
    sub = (await api.create(api.alice, employers=["Ross"], notify=[MAIL])).json()
    path = f"/subscriptions/{sub['id']}"

    paused = await api.client.patch(path, json={"active": False}, headers=api.alice)
    assert paused.status_code == 200
    assert paused.json()["active"] is False
    assert paused.json()["employers"] == ["Ross"]
    changed = await api.client.patch(path, json={"titles": ["cashier"]}, headers=api.alice)
    assert changed.json()["titles"] == ["cashier"]
    assert changed.json()["active"] is False

    refused = await api.client.patch(
        path, json={"notify": ["json://127.0.0.1/x"]}, headers=api.alice
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "notify.0"
    unchanged = await api.store.subscriptions.get(sub["id"])
    assert unchanged is not None
    assert unchanged.notify == [MAIL]


async def test_an_unsubscribe_link_pauses_its_subscription_and_forgeries_do_nothing(
    api: Api,
) -> None:
    mine = (await api.create(api.alice, name="Ross jobs", employers=["Ross"], notify=[MAIL])).json()
    other = (await api.create(api.bob, employers=["Target"], notify=[MAIL])).json()
    token = api.links.token(mine["id"])
    _, mac = token.split(".")
    forgeries = [
        f"{other['id']}.{mac}",  # someone else's subscription with my signature
        f"{mine['id']}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        mine["id"],
        f"{mine['id']}.",
        UnsubscribeLinks(b"another-secret", "http://x").token(mine["id"]),
    ]
    for forged in forgeries:
        for method in ("GET", "POST"):
            response = await api.client.request(method, f"/unsubscribe/{forged}")
            assert response.status_code == 404
            assert "not valid" in response.text
    for sub, who in ((mine, api.alice), (other, api.bob)):
        assert (await api.client.get(f"/subscriptions/{sub['id']}", headers=who)).json()["active"]

    # Opening the link (as a link scanner or a chat unfurler would) only asks.
    for _ in range(3):
        page = await api.client.get(f"/unsubscribe/{token}")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "Stop the alerts for “Ross jobs”?" in page.text
        assert "<form method=post>" in page.text
    state = await api.client.get(f"/subscriptions/{mine['id']}", headers=api.alice)
    assert state.json()["active"] is True

    # The page's button, or a mail client's one-click unsubscribe (RFC 8058), pauses it.
    response = await api.client.post(
        f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    assert "no more alerts for “Ross jobs”" in response.text
    state = await api.client.get(f"/subscriptions/{mine['id']}", headers=api.alice)
    assert state.json()["active"] is False
    assert "You get no alerts" in (await api.client.get(f"/unsubscribe/{token}")).text
    await api.client.delete(f"/subscriptions/{mine['id']}", headers=api.alice)
    for method in ("GET", "POST"):
        gone = await api.client.request(method, f"/unsubscribe/{token}")
        assert gone.status_code == 200
        assert "was deleted" in gone.text
    assert api.links.url(mine["id"]) == f"http://jobwire.test/unsubscribe/{token}"


async def _owner(api: Api, who: dict[str, str]) -> str:
    user = await api.store.accounts.by_key_hash(
        key_hash(who["Authorization"].removeprefix("Bearer "))
    )
    assert user is not None
    return user.id


async def test_a_test_alert_reports_each_target_on_its_own(tmp_path: Path) -> None:
    # Loopback sinks: an operator who allows private hosts (the send-time check agrees).
    with HttpSink() as good, HttpSink() as bad:
        async with serving(tmp_path, allow_private_hosts=True) as api:
            await _each_target_on_its_own(api, good, bad)


async def _each_target_on_its_own(api: Api, good: HttpSink, bad: HttpSink) -> None:
    bad.fail_with(500)
    sub = await api.store.subscriptions.add(
        SubscriptionIn(
            name="Ross jobs",
            employers=["Ross"],
            notify=[
                good.url.replace("http://", "json://") + "/ok",
                f"json://user:{PASSWORD}@127.0.0.1:{bad.port}/broken",
            ],
        ),
        owner=await _owner(api, api.alice),
    )
    response = await api.client.post(f"/subscriptions/{sub.id}/test", headers=api.alice)
    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is False
    assert [r["ok"] for r in report["results"]] == [True, False]
    assert report["results"][1]["target"].startswith("json://user:****@127.0.0.1")
    assert "500" in report["results"][1]["error"]
    assert PASSWORD not in response.text
    (received,) = good.wait_for(1, timeout=10)
    assert "test alert" in received.json["title"]
    assert api.links.url(sub.id) in received.json["message"]


async def test_health_and_readiness(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"kafka": "ok", "store": "ok"}
    api.kafka_up[0] = False
    not_ready = await api.client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["kafka"] == "not connected"


async def test_the_openapi_document_describes_every_route(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    assert set(schema["paths"]) == {
        "/subscriptions",
        "/subscriptions/{subscription_id}",
        "/subscriptions/{subscription_id}/test",
        "/unsubscribe/{token}",
        "/me",
        "/me/export",
        "/healthz",
        "/readyz",
    }
    assert (await api.client.get("/docs")).status_code == 200


async def test_a_user_exports_their_own_data_masked_unless_they_ask_for_it_whole(
    api: Api,
) -> None:
    mine = (await api.create(api.alice, employers=["Nordstrom"], notify=[MAIL])).json()
    await api.create(api.bob, employers=["Ross"], notify=[MAIL])

    masked = await api.client.get("/me/export", headers=api.alice)
    assert masked.status_code == 200
    assert [s["id"] for s in masked.json()["subscriptions"]] == [mine["id"]]
    assert PASSWORD not in masked.text
    whole = await api.client.get("/me/export?targets=full", headers=api.alice)
    assert whole.json()["subscriptions"][0]["notify"] == [MAIL]
    operator = await api.client.get("/me/export", headers=api.operator)
    assert operator.status_code == 400
    assert "jobwire users export NAME" in operator.json()["detail"]
    bad = await api.client.get("/me/export?targets=everything", headers=api.alice)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "targets"


async def test_a_user_erases_their_account_and_their_key_stops_working(api: Api) -> None:
    mine = (await api.create(api.alice, employers=["Nordstrom"], notify=[MAIL])).json()
    theirs = (await api.create(api.bob, employers=["Ross"], notify=[MAIL])).json()

    erased = await api.client.delete("/me", headers=api.alice)
    assert erased.status_code == 204
    assert (await api.client.get("/subscriptions", headers=api.alice)).status_code == 401
    everyone = await api.client.get("/subscriptions", headers=api.operator)
    assert [s["id"] for s in everyone.json()] == [theirs["id"]]
    assert await api.store.subscriptions.get(mine["id"]) is None


async def test_wrong_keys_from_one_address_get_429_with_retry_after(api: Api) -> None:
    statuses = []
    for n in range(15):
        response = await api.client.get(
            "/subscriptions", headers={"Authorization": f"Bearer jw_guess{n}"}
        )
        statuses.append(response.status_code)
    assert statuses == [401] * 10 + [429] * 5
    assert int(response.headers["retry-after"]) >= 1
    assert "wrong API key" in response.json()["detail"]
    # Refused before the key is checked: a right key from that address waits too, or the
    # answers would still tell a guesser which key is right.
    assert (await api.client.get("/subscriptions", headers=api.alice)).status_code == 429


async def test_test_alerts_are_limited_per_user(tmp_path: Path) -> None:
    with HttpSink() as sink:
        async with serving(tmp_path, allow_private_hosts=True) as api:
            await _tests_limited(api, sink)


async def _tests_limited(api: Api, sink: HttpSink) -> None:
    target = sink.url.replace("http://", "json://") + "/hook"
    mine = await api.store.subscriptions.add(
        SubscriptionIn(employers=["Ross"], notify=[target]), owner=await _owner(api, api.alice)
    )
    theirs = await api.store.subscriptions.add(
        SubscriptionIn(employers=["Ross"], notify=[target]), owner=await _owner(api, api.bob)
    )
    tests = [
        await api.client.post(f"/subscriptions/{mine.id}/test", headers=api.alice) for _ in range(5)
    ]
    assert [r.status_code for r in tests] == [200, 200, 200, 429, 429]
    assert 1 <= int(tests[-1].headers["retry-after"]) <= 20
    assert "too many test alerts" in tests[-1].json()["detail"]
    assert len(sink.wait_for(3, 10)) == 3
    assert (
        await api.client.post(f"/subscriptions/{theirs.id}/test", headers=api.bob)
    ).status_code == 200
    # Other requests of the throttled user still work.
    assert (await api.client.get("/subscriptions", headers=api.alice)).status_code == 200


async def test_requests_are_limited_per_key(tmp_path: Path) -> None:
    limits = LimitSettings(requests_per_minute=5)
    async with serving(tmp_path, limits) as api:
        statuses = [
            (await api.client.get("/subscriptions", headers=api.alice)).status_code
            for _ in range(7)
        ]
        assert statuses == [200] * 5 + [429] * 2
        assert (await api.client.get("/subscriptions", headers=api.bob)).status_code == 200


async def test_concurrent_creates_cannot_pass_the_subscription_limit(tmp_path: Path) -> None:
    limits = LimitSettings(subscriptions_per_user=100)
    async with serving(tmp_path, limits) as api:
        owner = await _owner(api, api.alice)
        for n in range(95):
            await api.store.subscriptions.add(
                SubscriptionIn(employers=[f"Shop {n}"], notify=[MAIL]), owner=owner
            )
        responses = await asyncio.gather(
            *(api.create(api.alice, employers=[f"New {n}"], notify=[MAIL]) for n in range(30))
        )
        assert sorted(r.status_code for r in responses) == [201] * 5 + [409] * 25
        assert await api.store.subscriptions.count(owner) == 100


async def test_a_test_alert_to_a_name_that_now_resolves_to_loopback_is_refused(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HttpSink() as sink:
        url = f"json://hooks.example.com:{sink.port}/hook"
        created = await api.create(api.alice, employers=["Ross"], notify=[url])
        assert created.status_code == 201  # public when saved
        monkeypatch.setitem(DNS, "hooks.example.com", ["127.0.0.1"])  # loopback at send time
        response = await api.client.post(
            f"/subscriptions/{created.json()['id']}/test", headers=api.alice
        )
        assert response.status_code == 200
        (result,) = response.json()["results"]
        assert result["ok"] is False
        assert result["error"].startswith(
            "refused: hooks.example.com resolved to 127.0.0.1 (a loopback address) at send time"
        )
        assert sink.requests == []


async def test_a_test_email_carries_one_click_unsubscribe_headers(tmp_path: Path) -> None:
    with SmtpSink() as mail:
        async with serving(tmp_path, allow_private_hosts=True) as api:
            await _one_click(api, mail)


async def _one_click(api: Api, mail: SmtpSink) -> None:
    target = f"mailto://127.0.0.1:{mail.port}?from=jobwire@example.com&to=ana@example.com"
    sub = await api.store.subscriptions.add(
        SubscriptionIn(employers=["Ross"], notify=[target]), owner=await _owner(api, api.alice)
    )
    response = await api.client.post(f"/subscriptions/{sub.id}/test", headers=api.alice)
    assert response.json()["ok"] is True
    assert response.json()["results"][0]["target"] == mask(target)
    (received,) = mail.wait_for(1, 10)
    link = api.links.url(sub.id)
    assert received.message["List-Unsubscribe"] == f"<{link}>"
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # The one-click POST a mail client makes pauses the subscription.
    clicked = await api.client.post(
        link.removeprefix("http://jobwire.test"),
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert clicked.status_code == 200
    paused = await api.store.subscriptions.get(sub.id)
    assert paused is not None
    assert paused.active is False
