"""structlog, configured once: contextvars first, redaction, JSON last.

``correlation_id``, ``client_id`` and ``run_id`` are bound in contextvars by the edge, the auth middleware and
the workflow saga, so every line a request or a run causes carries them.

Libraries that log through the standard library (DBOS, Litestar, uvicorn, asyncio, SQLAlchemy, httpx) go
through the same pipeline: one root handler renders their records with the same contextvars, redaction and
renderer, so stdout is one JSON object per line whoever wrote it. ``uvicorn_log_config`` gives uvicorn that
handler too, for the lines it writes before the app (and ``configure_logging``) is loaded.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from logging.handlers import QueueHandler
from typing import Any, TextIO

import msgspec
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
# Whether a key names a secret, per key: keys are the code's own names, a small set, so the answer is kept
# (bounded, in case a caller's data ever supplies keys).
_secret_key_cache: dict[str, bool] = {}
_SECRET_KEY_CACHE_SIZE = 4096
_PLAIN = (int, float, bool, type(None))


def _is_secret_key(key: Any) -> bool:
    name = key if isinstance(key, str) else str(key)
    known = _secret_key_cache.get(name)
    if known is None:
        known = _SECRET_KEYS.search(name) is not None
        if len(_secret_key_cache) < _SECRET_KEY_CACHE_SIZE:
            _secret_key_cache[name] = known
    return known


def _may_hold_secret(text: str) -> bool:
    """Whether ``text`` has what a credential pattern needs to match at all. Almost no value has it (a
    path, an id, a status), so most skip the substitutions; substring tests on the lower case are a few
    times cheaper than a case-insensitive regular expression."""
    lower = text.lower()
    return "eyj" in lower or "bearer" in lower or "basic" in lower or "anaplanauthtoken" in lower


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        if not _may_hold_secret(value):
            return value
        return _JWT.sub(REDACTED, _BEARER.sub(r"\1 " + REDACTED, value))
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, Mapping):
        return {k: (REDACTED if _is_secret_key(k) else _redact_value(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no token, secret or credential reaches a rendered line."""
    texts: list[str] = []
    known = _secret_key_cache
    for key, value in event_dict.items():
        secret = known.get(key)
        if secret is None:
            secret = _is_secret_key(key)
        if secret and key != "event":
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            texts.append(value)
        elif not isinstance(value, _PLAIN):
            event_dict[key] = _redact_value(value)
    # One look over every text value of the line (most lines have nothing to redact), then each one only if
    # something may be there. NUL joins them: no pattern spans it.
    if texts and _may_hold_secret("\0".join(texts)):
        for key, value in event_dict.items():
            if isinstance(value, str):
                event_dict[key] = _redact_value(value)
    return event_dict


def _json_fallback(value: Any) -> Any:
    """What msgspec cannot encode is written as structlog's JSON renderer writes it: its repr."""
    return repr(value)


_json_encoder = msgspec.json.Encoder(enc_hook=_json_fallback)


def render_json(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> str:
    """structlog renderer: the line as JSON, with msgspec (a tenth of the standard library's cost per access
    line). A line msgspec refuses (a key that is not a string) is still written, by the standard library."""
    try:
        return _json_encoder.encode(event_dict).decode()
    except (TypeError, ValueError):
        return json.dumps(event_dict, default=repr)


_configured = False
_level = "info"
_format = "json"
_stream: TextIO | None = None
# Standard-library loggers that would otherwise print plain text (DBOS and Litestar install console
# handlers of their own): they hand their records to the root handler instead.
_LIBRARY_LOGGERS = ("dbos", "litestar", "uvicorn", "uvicorn.error", "uvicorn.access", "asyncio", "sqlalchemy")


def _renderer(fmt: str) -> Any:
    if fmt == "json":
        return render_json
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
