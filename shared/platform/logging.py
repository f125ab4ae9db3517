"""structlog set-up shared by every service and the CLI.

JSON lines when not on a TTY (what log shippers want), a console renderer on a TTY
(what a developer wants). Handlers bind event id, topic, partition and offset; inside a
handler every line also carries the OpenTelemetry trace id (shared/platform/tracing.py). The
standard library's log records (aiokafka, FastStream, asyncio) go through the same
renderer, so a log shipper sees one format.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

from shared.platform.tracing import add_trace_id


class _NoQueryStrings(logging.Filter):
    """A request's query string can hold anything a caller typed (a token, a CPR number):
    an access log line names the path only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(a.split("?", 1)[0] if isinstance(a, str) and a.startswith("/") else a
                                for a in record.args)
        return True


def configure_logging(level: str = "INFO", *, stream: object = None) -> None:
    out = stream if stream is not None else sys.stderr
    renderer: structlog.typing.Processor
    # Readable lines on a terminal (coloured unless NO_COLOR is set), JSON anywhere else.
    renderer = structlog.dev.ConsoleRenderer(colors="NO_COLOR" not in os.environ) \
        if getattr(out, "isatty", lambda: False)() else structlog.processors.JSONRenderer()
    shared_processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_id,
    ]
    structlog.configure(
        processors=[*shared_processors, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # FastStream and aiokafka log through the standard library: rendered by structlog too
    # (with the logger's name), and kept quieter than our own lines.
    handler = logging.StreamHandler(out)  # type: ignore[arg-type]
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared_processors, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    # FastStream's application logger ("app starting", "shut down gracefully") and
    # uvicorn's (the front door: "Started server process", errors) have handlers of their
    # own and do not propagate: give them ours instead, so every line of a pod is JSON.
    # Only the parents get the handler: uvicorn's "uvicorn.error" propagates to "uvicorn",
    # so a handler on both wrote each of its lines twice.
    for name in ("faststream", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
    error_logger = logging.getLogger("uvicorn.error")
    error_logger.handlers[:] = []
    error_logger.propagate = True
    # uvicorn turns its access log off (--no-access-log, as `stafet serve` runs the front
    # door, which writes one line of its own per request: services/frontdoor/observability.py)
    # by leaving "uvicorn.access" without a handler and not propagating: keep it off then,
    # where a handler of ours would turn it back on. When it is on, its lines are ours
    # too, once, and name the path without its query string.
    access = logging.getLogger("uvicorn.access")
    if access.handlers or access.propagate:
        access.handlers[:] = [handler]
        access.propagate = False
        if not any(isinstance(f, _NoQueryStrings) for f in access.filters):
            access.addFilter(_NoQueryStrings())
