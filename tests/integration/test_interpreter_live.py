"""`jobwire run` tunes its own interpreter: start-up's objects set aside once it is ready
and the interpreter's lock handed over promptly (service/interpreter.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from tests.conftest import eventually, make_settings
from tests.integration.conftest import service_env, start_jobwire, stop_jobwire


async def test_a_running_service_has_tuned_its_interpreter(tmp_path: Path) -> None:
    # No broker is needed: the service is ready (and the consumer keeps trying) without one.
    log_path = tmp_path / "jobwire.log"
    process = start_jobwire(service_env(make_settings(tmp_path)), log_path)
    lines: dict[str, dict[str, object]] = {}

    async def logged() -> bool:
        for text in (await asyncio.to_thread(log_path.read_text)).splitlines():
            if text.startswith("{"):
                line = orjson.loads(text)
                lines.setdefault(str(line["event"]), line)
        return "heap.settled" in lines

    try:
        await eventually(logged)
    finally:
        stop_jobwire(process)
    # Apprise's plugins, SQLAlchemy, pydantic, FastAPI: full collections no longer walk them.
    objects = lines["heap.settled"]["objects"]
    assert isinstance(objects, int)
    assert objects > 50_000
    # The store's thread gets the lock from a busy event loop within half a millisecond, not 5.
    assert lines["service.starting"]["switch_interval_ms"] == 0.5
