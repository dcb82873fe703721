"""`jobwire run` sets start-up's objects aside once it is ready (service/heap.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from tests.conftest import eventually, make_settings
from tests.integration.conftest import service_env, start_jobwire


async def test_a_running_service_has_set_start_ups_objects_aside(tmp_path: Path) -> None:
    # No broker is needed: the service is ready (and the consumer keeps trying) without one.
    log_path = tmp_path / "jobwire.log"
    process = start_jobwire(service_env(make_settings(tmp_path)), log_path)
    settled: list[dict[str, object]] = []

    async def logged() -> bool:
        lines = (await asyncio.to_thread(log_path.read_text)).splitlines()
        settled.extend(orjson.loads(x) for x in lines if '"heap.settled"' in x)
        return bool(settled)

    try:
        await eventually(logged)
    finally:
        process.terminate()
        process.wait(30)
    # Apprise's plugins, SQLAlchemy, pydantic, FastAPI: full collections no longer walk them.
    objects = settled[0]["objects"]
    assert isinstance(objects, int)
    assert objects > 50_000
