"""Writers to the SQLite run database queue on a lock in this process (process_apis.engine) instead of in
SQLite's busy handler, which sleeps up to 100 ms between tries however soon the lock is free: at 8
activations at once, that sleep was most of the runs' time (bench/activation_latency.py: p90 8.6 s
against a p50 of 1.6 s on a loaded machine). These tests give SQLite no busy wait at all (busy_timeout 0),
so a writer that met a held lock inside SQLite would fail at once with "database is locked"."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from process_apis.engine import _RunDatabaseConnection


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, factory=_RunDatabaseConnection, check_same_thread=False)
    conn.isolation_level = "IMMEDIATE"  # as DBOS's engine sets it
    conn.execute("PRAGMA busy_timeout=0")
    return conn


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "workflows.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE steps (run TEXT, step INTEGER)")
    return path


def test_a_second_writer_waits_for_the_first_to_commit_instead_of_failing(database: Path) -> None:
    first, second = _connect(database), _connect(database)
    first.cursor().execute("INSERT INTO steps VALUES ('a', 1)")  # opens the write transaction
    done = threading.Event()
    failure: list[BaseException] = []

    def write() -> None:
        try:
            cursor = second.cursor()
            cursor.execute("INSERT INTO steps VALUES ('b', 1)")
            second.commit()
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    assert not done.wait(0.3), failure  # queued behind the open transaction, not refused
    first.commit()
    writer.join(5)
    assert done.is_set()
    assert failure == []
    rows = first.cursor().execute("SELECT run FROM steps ORDER BY rowid").fetchall()
    assert rows == [("a",), ("b",)]


def test_many_writers_at_once_all_commit(database: Path) -> None:
    failures: list[BaseException] = []

    def write(run: str) -> None:
        conn = _connect(database)
        try:
            for step in range(25):
                conn.cursor().execute("SELECT count(*) FROM steps").fetchall()  # reads take no lock
                conn.cursor().execute("INSERT INTO steps VALUES (?, ?)", (run, step))
                conn.commit()
        except BaseException as exc:
            failures.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=write, args=(f"run-{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM steps").fetchone() == (200,)


@pytest.mark.parametrize("ending", ["rollback", "close", "failed statement"])
def test_every_end_of_a_transaction_lets_the_next_writer_in(database: Path, ending: str) -> None:
    first = _connect(database)
    if ending == "failed statement":
        with pytest.raises(sqlite3.OperationalError):
            first.cursor().execute("INSERT INTO no_such_table VALUES (1)")
    else:
        first.cursor().execute("INSERT INTO steps VALUES ('a', 1)")
        getattr(first, ending)()
    second = _connect(database)
    result: list[object] = []

    def write() -> None:
        try:
            second.cursor().execute("INSERT INTO steps VALUES ('b', 1)")
            second.commit()
            result.append("committed")
        except BaseException as exc:
            result.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(5)
    assert result == ["committed"]
