"""Records libraries write through the standard library (DBOS, Litestar, uvicorn, asyncio) come out as our
JSON lines, with the bound context and the same redaction, even after the tier apps (each of which
reconfigures the root logger when it is built) exist."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest
import structlog

from apis.config import Settings
from apis.gateway import build_gateway
from apis.logging import REDACTED, configure_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream, force=True)
    yield stream
    structlog.contextvars.clear_contextvars()
    configure_logging("info", "json", force=True)
    structlog.reset_defaults()
    structlog.configure(cache_logger_on_first_use=False)


@pytest.mark.parametrize("name", ["dbos", "litestar", "uvicorn.error", "asyncio", "some.library"])
def test_a_library_record_is_one_redacted_json_line_with_the_context(
    name: str, stream: io.StringIO, make_settings: Callable[..., Settings]
) -> None:
    build_gateway(make_settings())  # builds every Litestar app, each of which takes the root logger
    structlog.contextvars.bind_contextvars(correlation_id="c-42", run_id="pa-1")
    logging.getLogger(name).error("retrying with Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")

    lines = stream.getvalue().splitlines()
    assert lines, "nothing was written"
    for raw in lines:
        json.loads(raw)  # every line, not just ours
    line = json.loads(lines[-1])
    assert line["logger"] == name
    assert line["level"] == "error"
    assert (line["correlation_id"], line["run_id"]) == ("c-42", "pa-1")
    assert "eyJ" not in line["event"]
    assert REDACTED in line["event"]
