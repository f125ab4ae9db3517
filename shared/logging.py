"""structlog set-up shared by every service and the CLI.

JSON lines when not on a TTY (what log shippers want), a console renderer on a TTY
(what a developer wants). Handlers bind event id, topic, partition and offset.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "INFO", *, stream: object = None) -> None:
    out = stream if stream is not None else sys.stderr
    renderer: structlog.typing.Processor
    renderer = structlog.dev.ConsoleRenderer() if getattr(out, "isatty", lambda: False)() else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # FastStream and aiokafka log through the standard library; keep them quieter.
    logging.basicConfig(level=logging.WARNING, stream=out)  # type: ignore[arg-type]
