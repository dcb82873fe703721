"""Schemathesis against the served API: no request the schema allows (or breaks) gets a 500."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from config.settings import LimitSettings
from service.accounts import add_user
from service.delivery import AppriseNotifier
from service.registry import SubscriptionRegistry
from service.store import Store
from service.targets import TargetPolicy
from service.unsubscribe import UnsubscribeLinks
from service.web import ApiContext, bind, create_api, serve


@dataclass
class Served:
    url: str
    key: str


def _serve_in_thread(db: Path, ready: queue.Queue[Served], stop: threading.Event) -> None:
    async def main() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        created = await add_user(store, "fuzz")
        assert created is not None
        policy = TargetPolicy(["json", "jsons", "mailto", "slack"])
        notifier = AppriseNotifier(policy, concurrency=2, timeout_s=5)
        api = create_api(
            ApiContext(
                store=store,
                registry=SubscriptionRegistry(store, policy, LimitSettings()),
                links=UnsubscribeLinks(b"fuzz-secret", "http://127.0.0.1"),
                notifier=notifier,
                operator_key=None,
                kafka_connected=lambda: True,
            )
        )
        sock = bind("127.0.0.1", 0)
        stopping = asyncio.Event()
        server = asyncio.create_task(serve(api, sock, stopping))
        ready.put(Served(f"http://127.0.0.1:{sock.getsockname()[1]}", created[1]))
        await asyncio.to_thread(stop.wait)
        stopping.set()
        await server
        notifier.close()
        await store.close()

    asyncio.run(main())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    ready: queue.Queue[Served] = queue.Queue()
    stop = threading.Event()
    db = tmp_path_factory.mktemp("fuzz") / "api.db"
    thread = threading.Thread(target=_serve_in_thread, args=(db, ready, stop), daemon=True)
    thread.start()
    yield ready.get(timeout=30)
    stop.set()
    thread.join(timeout=30)


# The document is the one the app serves; building it calls no route, so no context is needed.
schema = schemathesis.openapi.from_dict(create_api(cast(ApiContext, None)).openapi())


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_gets_a_server_error(case: schemathesis.Case, served: Served) -> None:
    case.call_and_validate(
        base_url=served.url,
        headers={"Authorization": f"Bearer {served.key}"},
        checks=[not_a_server_error],
    )
