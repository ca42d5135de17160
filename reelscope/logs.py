"""structlog setup: key-value events, JSON in containers, readable in a terminal."""

from __future__ import annotations

import logging
import sys

import structlog

from models.links import hide_passwords


def configure_logging(fmt: str = "auto", level: str = "INFO") -> None:
    """Route structlog and stdlib logging to stderr in one format: ``json``, ``console``,
    or ``auto`` (console on a terminal, JSON lines when piped or in a container)."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _hide_passwords,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that are chatty at INFO.
    for name in (
        "httpx",
        "paddlex",
        "paddleocr",
        "faster_whisper",
        "pyscenedetect",
        "uvicorn.access",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


def _hide_passwords(
    logger: object, method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Every string in the event with its links' passwords hidden: a failed download
    logs the link it failed on, the libraries' own messages too."""
    for key, value in event.items():
        if isinstance(value, str) and "@" in value:
            event[key] = hide_passwords(value)
    return event
