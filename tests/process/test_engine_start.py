"""The workflow engine starts on the SQLite the interpreter running these tests links (Debian 12's 3.40 has
no unixepoch('subsec'), which DBOS uses on Python 3.12+), on a fresh data directory and on a run database a
failed start left behind. `.ci/run` runs this file and tests/e2e on Python 3.11 and on 3.12."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from dbos._migration import sqlite_migrations

from apis.config import Settings
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID
from tests.e2e.harness import Server

# DBOS 3.4's "now in milliseconds" in its SQLite schema: the second under Python 3.12 and later, the first
# before (dbos._migration.get_sqlite_timestamp_expr).
_BEFORE_312 = "(strftime('%s','now') * 1000)"
_FROM_312 = "(unixepoch('subsec') * 1000)"


def _run_database_left_by_a_failed_start_on_python_312(path: Path) -> None:
    """The file DBOS leaves when `stratum serve` dies at start on Python 3.12 with SQLite 3.40: migrated
    (DBOS's SQLite migrations, as its runner applies them), defaults in the 3.12 form, no version row."""
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE dbos_migrations (version INTEGER NOT NULL PRIMARY KEY)")
        for migration in sqlite_migrations:
            for statement in migration.replace(_BEFORE_312, _FROM_312).split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute("INSERT INTO dbos_migrations (version) VALUES (?)", (len(sqlite_migrations),))
    schema = path.read_bytes()
    assert _FROM_312.encode() in schema


def test_serve_starts_on_a_fresh_data_directory(tmp_path: Path) -> None:
    server = Server(tmp_path)  # runs `stratum serve` with this interpreter, and waits for /health/ready
    try:
        assert httpx.get(f"{server.base}/health/ready", timeout=5).status_code == 200
        assert (tmp_path / "data" / "workflows.sqlite").stat().st_size > 0
    finally:
        server.stop()
    started = [line for line in server.log_lines() if line.get("event") == "workflow_engine_started"]
    assert started, f"no engine start in the log of Python {sys.version}"


async def test_a_run_database_left_by_a_failed_start_runs_workflows(
    tmp_path: Path, make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    data_dir = tmp_path / "data"
    _run_database_left_by_a_failed_start_on_python_312(data_dir / "workflows.sqlite")
    gw = await make_gateway(make_settings(data_dir=str(data_dir), workflows={"poll_interval_seconds": 0.1}))

    response = await gw.client.post(
        "/process/v1/customer-syncs",
        json={"account_ids": [DEMO_ACCOUNT_ID]},
        headers={**gw.auth("process:run"), "Idempotency-Key": "left-behind", "Prefer": "wait=30"},
    )
    assert response.status_code in (201, 202), response.text
    assert response.json()["state"] == "completed", response.json()


def test_the_run_database_connection_answers_unixepoch_as_sqlite_342_does() -> None:
    from process_apis.engine import _RunDatabaseConnection

    with sqlite3.connect(":memory:", factory=_RunDatabaseConnection) as conn:
        subsec, whole, given, bad = conn.execute(
            "SELECT unixepoch('subsec'), unixepoch(), unixepoch('2024-01-01 00:00:01'), unixepoch('soon')"
        ).fetchone()
    # Seconds since the epoch with milliseconds (not NULL, as SQLite 3.40's built-in answers).
    assert isinstance(subsec, float)
    assert abs(subsec - whole) < 2
    assert given == 1704067201
    assert bad is None
