"""Logging, configured once at start-up: events with stable keys, JSON or a console view.

Every module logs through `structlog.get_logger()` with a dotted event name and keyword keys;
this module decides how those become lines. Standard-library loggers (aiokafka, Apprise,
uvicorn) go through the same renderer so an operator tails one stream.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Literal, Protocol

import orjson
import structlog
from structlog.typing import Processor

LogFormat = Literal["auto", "json", "console"]


def _orjson_dumps(obj: object, default: object = None) -> str:
    return orjson.dumps(obj, default=str).decode()


class Stream(Protocol):
    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...
    def isatty(self) -> bool: ...


def configure_logging(
    fmt: LogFormat = "auto", level: str = "INFO", stream: Stream | None = None
) -> None:
    """Route structlog and stdlib logging to stdout as JSON lines or a readable console view."""
    stream = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor
    if fmt == "json":
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer()

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.addFilter(RepeatLimiter(("aiokafka",), emit=handler.handle))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # No line shows the file, function, thread or process it came from (a line is its event's
    # own keys), so the standard library need not look them up for each record, as the
    # Python docs' logging "Optimization" section suggests. A delivery.sent line cost 35 us
    # of CPU with the lookups and 26 without, and the service writes one per alert.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # Libraries are chatty at INFO; their warnings still reach the operator.
    for name, lib_level in (("aiokafka", "WARNING"), ("kafka", "WARNING")):
        logging.getLogger(name).setLevel(max(logging.getLevelName(lib_level), root.level))
    # Apprise logs the full URL of a failing target, password included, so its lines never
    # reach the output. It keeps WARNING, though: its per-send capture reads them from there,
    # and jobwire reports the reason itself, with the target's secrets removed.
    # Alembic says which migration runs (progress worth keeping) and, each time it starts,
    # two lines about its dialect that say nothing to an operator.
    logging.getLogger("alembic.runtime.migration").addFilter(_only_progress)
    apprise_log = logging.getLogger("apprise")
    apprise_log.setLevel(logging.WARNING)
    apprise_log.propagate = False


class OwnContextHandler(logging.Handler):
    """A handler that keeps only the lines logged in its own context (a send's, as the send
    path's in service/delivery/send/notifier.py does): lines logged elsewhere, a target's
    check for one, never reach it."""


def apprise_lines_go_nowhere() -> bool:
    """Whether no line Apprise logs outside a send can be shown anywhere: so while its logger
    does not propagate and has only null handlers and handlers of their own context's lines,
    as `configure_logging` and the send path leave it."""
    apprise_log = logging.getLogger("apprise")
    return not apprise_log.propagate and all(
        isinstance(handler, logging.NullHandler | OwnContextHandler)
        for handler in apprise_log.handlers
    )


def _only_progress(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(("Context impl", "Will assume"))


# How long a repeated library line stays quiet; its repeats are counted meanwhile.
WINDOW_S = 10.0
_COUNTED = "jobwire_repeats_counted"


class RepeatLimiter(logging.Filter):
    """Passes each line from the given libraries once per window, and counts the repeats.

    aiokafka retries a lost broker every 100 ms or so and logs every failure: measured, about
    60 lines a second while a broker is down, and 6 a second for as long as a password is
    refused after a rotation. The first line says what is wrong; its repeats only bury
    jobwire's own lines. So each kind of line (logger and message) passes once per window; the
    next one after the window says how many were dropped ("... (59 more in 10 s)"). A line
    that differs (another cause, another broker) passes at once.

    When a line stops repeating (the broker is back), its last count would never be said: so
    with `emit` (the handler's `handle`), any line that comes after such a window has closed
    first brings out a line with that count.
    """

    def __init__(
        self,
        libraries: tuple[str, ...],
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        emit: Callable[[logging.LogRecord], object] | None = None,
    ) -> None:
        super().__init__()
        self.libraries = libraries
        self.window_s = window_s
        self.clock = clock
        self.emit = emit
        # (logger, message) -> (when its window began, how many were dropped since, level)
        self._seen: dict[tuple[str, str], tuple[float, int, int]] = {}
        self._next_sweep = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _COUNTED, False):
            return True
        now = self.clock()
        library = record.name.split(".", 1)[0] in self.libraries
        key = (record.name, record.getMessage()) if library else None
        if self.emit is not None and now >= self._next_sweep:
            self._sweep(now, key)
        if key is None:
            return True
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window_s:
            self._seen[key] = (seen[0], seen[1] + 1, seen[2])
            return False
        if len(self._seen) > 1000:  # lines differ in offsets or ids: forget the old ones
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
        self._seen[key] = (now, 0, record.levelno)
        if seen is not None and seen[1]:
            record.msg, record.args = _counted(key[1], seen[1], now - seen[0]), None
        return True

    def _sweep(self, now: float, current: tuple[str, str] | None) -> None:
        """Say the counts of windows that closed without another line of their kind."""
        self._next_sweep = now + 1.0
        for key, (began, dropped, level) in list(self._seen.items()):
            if key == current or now - began < self.window_s:
                continue
            del self._seen[key]
            if dropped and self.emit is not None:
                line = logging.LogRecord(
                    key[0], level, "", 0, _counted(key[1], dropped, now - began), None, None
                )
                setattr(line, _COUNTED, True)
                self.emit(line)


def _counted(message: str, dropped: int, seconds: float) -> str:
    return f"{message} ({dropped} more in {seconds:.0f} s)"


def quiet_library_logs() -> None:
    """For one-shot commands, which report a failure in their own words.

    Without this, logging's last-resort handler prints library lines to stderr beside that
    report: aiokafka's 'Unable connect to …' for the same failure, and, at exit, asyncio's
    'Future exception was never retrieved' with a traceback, for a TLS connection aiokafka
    gave up on (seen about one run in three when the broker refuses the client certificate).
    """
    for name in ("aiokafka", "kafka", "asyncio"):
        library = logging.getLogger(name)
        library.addHandler(logging.NullHandler())
        library.propagate = False
