"""Structured logging for every QuackNet process (structlog over the stdlib).

One JSON object per line for services (their stdout goes to .quacknet/logs/);
readable key=value lines when a person watches a terminal. An exception logged with
``log.exception`` (or ``exc_info``) carries its type, message and traceback: as a structured
``exception`` field in JSON, as a formatted traceback on a terminal.
"""

from __future__ import annotations

import logging
import sys

import structlog

from quacknet.settings import Settings


def configure_logging(settings: Settings) -> None:
    json_lines = settings.log_json if settings.log_json is not None else not sys.stderr.isatty()
    renderer = (structlog.processors.JSONRenderer() if json_lines  # plain tracebacks: no locals (secrets) on screen
                else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback))
    # Frames without their locals: a local may hold a secret, and a line must stay a line.
    exceptions = (structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False))
                  if json_lines else structlog.dev.set_exc_info)
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        exceptions,
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
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
