"""Library log lines that repeat many times a second reach the output once per window.

That `jobwire run` applies it to aiokafka is shown in tests/integration/test_kafka_security.py.
"""

from __future__ import annotations

import logging

from service.logs import RepeatLimiter


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_a_repeated_library_line_passes_once_per_window_then_says_how_many_were_dropped() -> None:
    now = [0.0]
    limiter = RepeatLimiter(("aiokafka",), window_s=30.0, clock=lambda: now[0])
    refused = ("aiokafka", "Unable connect to node with id %s: %s", 1, "SaslAuthenticationFailed")
    passed = []
    for _ in range(60):  # what aiokafka logs in ten seconds of a refused password
        record = _record(*refused)
        if limiter.filter(record):
            passed.append(record.getMessage())
        now[0] += 1 / 6
    assert passed == ["Unable connect to node with id 1: SaslAuthenticationFailed"]

    # Another cause, or another logger, is news: it passes at once.
    assert limiter.filter(_record("aiokafka", "Unable connect to node with id %s: %s", 1, "down"))
    assert limiter.filter(_record("aiokafka.consumer.fetcher", "Failed fetch messages from 1"))

    now[0] = 30.0
    record = _record(*refused)
    assert limiter.filter(record)
    assert record.getMessage() == (
        "Unable connect to node with id 1: SaslAuthenticationFailed (59 more in 30 s)"
    )


def test_jobwires_own_lines_are_never_limited() -> None:
    limiter = RepeatLimiter(("aiokafka",), clock=lambda: 0.0)
    assert all(
        limiter.filter(_record("jobwire.consumer", "consumer.kafka_auth_failed")) for _ in range(5)
    )
