"""structlog, configured once: contextvars first, redaction, JSON last.

``correlation_id``, ``client_id`` and ``run_id`` are bound in contextvars by the edge, the auth middleware and
the workflow saga, so every line a request or a run causes carries them.

Libraries that log through the standard library (DBOS, Litestar, uvicorn, asyncio, SQLAlchemy, httpx) go
through the same pipeline: one root handler renders their records with the same contextvars, redaction and
renderer, so stdout is one JSON object per line whoever wrote it. ``uvicorn_log_config`` gives uvicorn that
handler too, for the lines it writes before the app (and ``configure_logging``) is loaded.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from logging.handlers import QueueHandler
from typing import Any, TextIO

import structlog

__all__ = [
    "StratumLogHandler",
    "configure_logging",
    "get_logger",
    "redact",
    "route_library_logs",
    "uvicorn_log_config",
]

_SECRET_KEYS = re.compile(
    r"(authorization|access_token|refresh_token|id_token|client_secret|secret|password|passwd|assertion"
    r"|api[_-]?key|cookie|set-cookie|token|session_id|private_key|signature)$",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?i)\b(bearer|basic|anaplanauthtoken)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
REDACTED = "[redacted]"


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return _JWT.sub(REDACTED, _BEARER.sub(r"\1 " + REDACTED, value))
    if isinstance(value, Mapping):
        return {k: (REDACTED if _SECRET_KEYS.search(str(k)) else _redact_value(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no token, secret or credential reaches a rendered line."""
    for key in list(event_dict):
        if key != "event" and _SECRET_KEYS.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(event_dict[key])
    return event_dict


_configured = False
_level = "info"
_format = "json"
_stream: TextIO | None = None
# Standard-library loggers that would otherwise print plain text (DBOS and Litestar install console
# handlers of their own): they hand their records to the root handler instead.
_LIBRARY_LOGGERS = ("dbos", "litestar", "uvicorn", "uvicorn.error", "uvicorn.access", "asyncio", "sqlalchemy")


def _renderer(fmt: str) -> Any:
    if fmt == "json":
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False)


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


class StratumLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler: renders standard-library records as our lines (contextvars, logger name,
    redaction, the same renderer). Without a stream it writes to whatever ``sys.stdout`` is at the time."""

    def __init__(self, stream: TextIO | None = None, fmt: str = "json") -> None:
        self._fixed_stream = stream
        super().__init__(stream)
        self.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=[
                    *_shared_processors(),
                    structlog.stdlib.add_logger_name,
                    structlog.processors.format_exc_info,
                    redact,
                ],
                processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _renderer(fmt)],
            )
        )

    @property
    def stream(self) -> TextIO:
        return self._fixed_stream or sys.stdout

    @stream.setter
    def stream(self, value: TextIO | None) -> None:
        self._fixed_stream = value


def route_library_logs() -> None:
    """Send every standard-library record through the root ``StratumLogHandler``.

    Idempotent, and called again once the apps are built: each Litestar app replaces the root logger's
    handlers with its plain-text queue handler when it is constructed."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, StratumLogHandler | QueueHandler):
            root.removeHandler(handler)
    root.addHandler(StratumLogHandler(_stream, _format))
    root.setLevel(_level.upper())
    # httpx logs every request URL at INFO; our access line already covers it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if not isinstance(handler, logging.NullHandler):
                logger.removeHandler(handler)
        logger.propagate = True
    # DBOS installs its plain-text console handler when its logger has none: this one passes records on.
    dbos = logging.getLogger("dbos")
    if not dbos.handlers:
        dbos.addHandler(logging.NullHandler())


def uvicorn_log_config(level: str = "info", fmt: str = "json") -> dict[str, Any]:
    """uvicorn's ``log_config``: its loggers propagate to a root ``StratumLogHandler`` (no plain lines)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stratum": {"()": StratumLogHandler, "fmt": fmt}},
        "root": {"handlers": ["stratum"], "level": level.upper()},
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_logging(
    level: str = "info", fmt: str = "json", *, stream: TextIO | None = None, force: bool = False
) -> None:
    """Idempotent: the CLI, tests and workers all call it; only the first call configures (or ``force``)."""
    global _configured
    if _configured and not force:
        return
    global _level, _format, _stream
    _configured = True
    _level, _format, _stream = level, fmt, stream
    route_library_logs()
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.processors.format_exc_info,
            redact,
            _renderer(fmt),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        # One write per line (print() writes the line and its newline apart), so a line never interleaves
        # with one a standard-library handler writes from another thread.
        logger_factory=structlog.WriteLoggerFactory(file=stream or sys.stdout),
        cache_logger_on_first_use=not force,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
