"""structlog, configured once: contextvars first, redaction, JSON last.

``correlation_id``, ``client_id`` and (later) ``run_id`` are bound in contextvars by the edge and the auth
middleware, so every line a request causes carries them.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging", "get_logger", "redact"]

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


def configure_logging(
    level: str = "info", fmt: str = "json", *, stream: TextIO | None = None, force: bool = False
) -> None:
    """Idempotent: the CLI, tests and workers all call it; only the first call configures (or ``force``)."""
    global _configured
    if _configured and not force:
        return
    _configured = True
    # httpx logs every request URL at INFO through stdlib logging; our access line already covers it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stdout),
        cache_logger_on_first_use=not force,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
