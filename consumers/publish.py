"""Producing events: what `jobwire publish` and the demo use to put events on the topics."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from pydantic import ValidationError

from config.settings import KafkaSettings
from consumers.connection import client_options, explain_failure
from consumers.events import AnyEvent, describe_errors


class PublishError(Exception):
    """A file that cannot be published; the message names the line."""


def read_lines(path: Path, validate: bool = True) -> list[tuple[str, bytes, bytes]]:
    """(kind, key, value) for each line; the `kind` key says the topic and is not sent."""
    out: list[tuple[str, bytes, bytes]] = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise PublishError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("kind") not in ("posting", "article"):
            raise PublishError(f'{where}: each line needs "kind": "posting" or "article"')
        if validate:
            try:
                AnyEvent.validate_python(data)
            except ValidationError as exc:
                raise PublishError(
                    f"{where}: {describe_errors(exc)} (or publish with --no-validate)"
                ) from None
        kind = data.pop("kind")
        out.append((kind, str(data.get("id", "")).encode(), orjson.dumps(data)))
    return out


async def publish_file(settings: KafkaSettings, path: Path, validate: bool = True) -> Counter[str]:
    """Send every line of a JSONL file to its topic, keyed by event id; counts per topic."""
    lines = read_lines(path, validate)
    topics = {"posting": settings.postings_topic, "article": settings.articles_topic}
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    try:
        await producer.start()
    except Exception as exc:
        await producer.stop()  # else aiokafka warns of an unclosed producer on exit
        problem = None
        if isinstance(exc, KafkaConnectionError):
            problem = await explain_failure(settings, exc)
        if problem is None or problem.kind == "unreachable":
            raise PublishError(
                f"cannot reach Kafka at {settings.bootstrap_servers} ({exc}); "
                "set JOBWIRE_KAFKA__BOOTSTRAP_SERVERS or start a broker"
            ) from None
        raise PublishError(f"cannot use Kafka: {problem}") from None
    counts: Counter[str] = Counter()
    try:
        sent = []
        for kind, key, value in lines:
            sent.append(await producer.send(topics[kind], value=value, key=key or None))
            counts[topics[kind]] += 1
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return counts
