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


def test_the_last_count_of_a_line_that_stopped_repeating_comes_out_with_the_next_line() -> None:
    now = [0.0]
    emitted: list[logging.LogRecord] = []
    limiter = RepeatLimiter(("aiokafka",), window_s=10.0, clock=lambda: now[0], emit=emitted.append)
    lost = ("aiokafka.client", "Unable to update metadata from %s", [1])
    for _ in range(40):  # four seconds of a broker that is down, then it is back
        limiter.filter(_record(*lost))
        now[0] += 0.1
    assert emitted == []  # its window is still open: the count may still grow

    now[0] = 11.0
    # jobwire's next line of its own, after the window closed, brings the count out first.
    assert limiter.filter(_record("jobwire.consumer", "consumer.committed"))
    [counted] = emitted
    assert (counted.name, counted.levelno) == ("aiokafka.client", logging.ERROR)
    assert counted.getMessage() == "Unable to update metadata from [1] (39 more in 11 s)"
    # Said once: the kind starts afresh, and a counted line is not limited itself.
    assert limiter.filter(counted)
    limiter.filter(_record("jobwire.consumer", "consumer.committed"))
    assert len(emitted) == 1
    assert limiter.filter(_record(*lost))
