"""Structured logging for every QuackNet process (structlog over the stdlib).

One JSON object per line for services (their stdout goes to .quacknet/logs/);
readable key=value lines when a person watches a terminal.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from quacknet.settings import Settings


def configure_logging(settings: Settings) -> None:
    json_lines = settings.log_json if settings.log_json is not None else not sys.stderr.isatty()
    renderer = (structlog.processors.JSONRenderer() if json_lines
                else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback))
    # log.exception(...) / exc_info: the exception as structured fields ("exception": type, value,
    # frames) in JSON lines; the console renderer prints a plain traceback. No locals: secrets.
    exceptions = [structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))] if json_lines else []
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
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
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exceptions, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
