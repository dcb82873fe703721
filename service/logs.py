"""Logging, configured once at start-up: events with stable keys, JSON or a console view.

Every module logs through `structlog.get_logger()` with a dotted event name and keyword keys;
this module decides how those become lines. Standard-library loggers (aiokafka, Apprise,
uvicorn) go through the same renderer so an operator tails one stream.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import orjson
import structlog
from structlog.typing import Processor

LogFormat = Literal["auto", "json", "console"]


def _orjson_dumps(obj: object, default: object = None) -> str:
    return orjson.dumps(obj, default=str).decode()


def configure_logging(
    fmt: LogFormat = "auto", level: str = "INFO", stream: TextIO | None = None
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
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
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


def _only_progress(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(("Context impl", "Will assume"))
