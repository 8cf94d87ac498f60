"""The workflow engine: DBOS launched in this process, workers, and taking over the runs of dead workers.

DBOS is process-wide (one instance, workflows registered at import), so one ``WorkflowEngine`` owns it per
process. Runs are enqueued on one queue; every process that runs workflows (``stratum serve`` unless
``workflows.run_in_process`` is false, and each ``stratum worker``) dequeues from it.

Embedded default: SQLite in the data directory (WAL), one worker (``local``), which recovers its own
unfinished runs when it starts again; an activation or customer sync a request starts runs here at once,
without waiting for the queue's next poll (``process_apis.runs._start_once``). With PostgreSQL many
workers on many hosts share the runs: each has its own executor id and beats in ``stratum_workers``; any
live worker re-enqueues the runs of one that has been silent for ``worker_timeout_seconds`` (DBOS's
recovery is idempotent: the first live worker to dequeue a run owns it), so nobody has to restart a dead
worker for its runs to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dbos._dbos as dbos_internals  # the process-wide instance, to take over or stop it
import sqlalchemy as sa
from dbos import DBOS, DBOSConfig

from apis.data_dir import private_file
from apis.logging import get_logger
from process_apis.saga import WorkflowServices, install_services

if TYPE_CHECKING:
    from apis.config import Settings

__all__ = ["QUEUE_NAME", "WorkflowEngine", "create_fleet_tables", "workflow_database_url"]

log = get_logger("stratum.workflows")

QUEUE_NAME = "stratum-workflows"

_metadata = sa.MetaData()
_workers = sa.Table(
    "stratum_workers",
    _metadata,
    sa.Column("executor_id", sa.String(128), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
)


# Heartbeats are stamped and compared with the database's clock, the one clock every worker shares.
_DATABASE_NOW = sa.extract("epoch", sa.func.now())


def workflow_database_url(settings: Settings) -> str:
    """The run database's URL; only reads (``stratum serve`` checks it before binding its port)."""
    if settings.workflows.database_url:
        return settings.workflows.database_url
    return f"sqlite:///{Path(settings.data_dir).resolve() / 'workflows.sqlite'}"


# -- SQLite older than 3.42 --------------------------------------------------------------------------------
#
# DBOS (3.4) writes `unixepoch('subsec') * 1000` for "now in milliseconds", in its SQLite schema's column
# defaults and in its statements, whenever Python is 3.12 or later: it takes the Python version for the
# SQLite version. The 'subsec' modifier came with SQLite 3.42; Python's sqlite3 uses the system's library,
# and Debian 12 (python:3.12-*-bookworm images too) has 3.40, where the expression is NULL. So the first
# insert that relies on a default (`application_versions.version_timestamp`) breaks the start, and the file
# it leaves keeps the expression in its schema, which breaks Python 3.11 too (the same library).
# On such a SQLite, DBOS's connections get `unixepoch(x)` as an application function, which SQLite prefers
# to its built-in: 'subsec' answers now with milliseconds, as 3.42 does, and every other argument answers
# what the built-in does. The schema, DBOS's statements and any run database already written stay as they
# are, and they work on every Python and SQLite the project supports.


@functools.cache
def _sqlite_has_subsec() -> bool:
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        try:
            return conn.execute("SELECT unixepoch('subsec')").fetchone()[0] is not None
        except sqlite3.OperationalError:  # before 3.38 there is no unixepoch() at all
            return False


def _unixepoch(value: object) -> float | int | None:
    if value == "subsec":
        return time.time_ns() // 1_000_000 / 1000
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        row = conn.execute("SELECT CAST(strftime('%s', ?) AS INTEGER)", (value,)).fetchone()
    seconds: int | None = row[0]
    return seconds


# -- SQLite's journal -----------------------------------------------------------------------------------
#
# A run writes a few dozen small transactions (each step's checkpoint, its cancel check, its state). In
# SQLite's default rollback-journal mode each commit creates, syncs and deletes a journal and syncs the
# database (about 2 ms here), and a writer locks readers out, so concurrent runs and the requests reading
# them queue behind each other in SQLite's busy handler, which sleeps up to 100 ms between tries. In WAL
# mode a commit appends to the write-ahead log and readers never wait for the writer. The mode is the
# file's (set once); synchronous is each connection's. WAL_SYNCHRONOUS is FULL: each commit syncs the log
# before it returns, so a checkpointed step survives a power cut as well as a crash of the process, as it
# did before; a step whose vendor write was made is never forgotten (NORMAL would sync only at the WAL's
# checkpoints: safe against a crash of the process, not of the machine).
WAL_SYNCHRONOUS = "FULL"


def _use_wal(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":  # a file system without shared memory, say: still correct, slower
        log.warning("run_database_not_wal", journal_mode=mode)


# -- Writers queue in the process, not in SQLite's busy handler ----------------------------------------------
#
# SQLite lets one writer at a time into a file; DBOS opens every write with BEGIN IMMEDIATE, and a writer that
# finds the lock taken sleeps in SQLite's busy handler: 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, then 100 ms
# between tries, however soon the lock is free. With 8 activations at once, the steps' checkpoints (in DBOS's
# threads) found the lock taken most of the time and slept through it: py-spy had ~2 threads of DBOS's
# executor in that sleep at every moment and the server's loop idle half the time. So this process's
# writers to one run database take a lock first and queue on it: the next writer starts as the last one
# commits (bench/activation_latency.py at concurrency 8, medians of 3 A/B rounds: 5.2 -> 6.9 a second,
# p90 2.07 -> 1.30 s; on a machine loaded by the test suite, p90 8.6 -> 1.9 s). The lock is this process's
# only: another process writing the same file (a CLI command) is still kept out by SQLite's own lock and
# busy handler, as before. A transaction ends, and the lock goes, at commit, rollback or close.
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()
# As long as DBOS's busy_timeout: a writer that waits longer fails as SQLite would ("database is locked"),
# which DBOS's retries already handle.
_WRITE_LOCK_TIMEOUT_SECONDS = 30.0
# The statements before which pysqlite opens a transaction (its legacy transaction control, which DBOS's
# connections use), and an explicit BEGIN.
_OPENS_A_WRITE = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN")


def _write_lock(database: object) -> threading.Lock:
    key = str(database)
    if key != ":memory:" and not key.startswith("file:"):
        key = os.path.realpath(key)
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.Lock())


class _RunDatabaseCursor(sqlite3.Cursor):
    connection: _RunDatabaseConnection

    def execute(self, sql: str, parameters: Any = (), /) -> _RunDatabaseCursor:
        with self.connection._writing(sql):
            super().execute(sql, parameters)
        return self

    def executemany(self, sql: str, parameters: Any, /) -> _RunDatabaseCursor:
        with self.connection._writing(sql):
            super().executemany(sql, parameters)
        return self


class _RunDatabaseConnection(sqlite3.Connection):
    """A connection to the SQLite run database (the factory DBOS's engine connects with)."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._lock = _write_lock(database)
        self._holding = False
        if not _sqlite_has_subsec():
            self.create_function("unixepoch", 1, _unixepoch)
        self.execute(f"PRAGMA synchronous={WAL_SYNCHRONOUS}")

    def cursor(self, factory: Any = None) -> Any:
        # SQLAlchemy runs every statement on a cursor. Connection.execute (used only for PRAGMAs here)
        # executes in C without the cursor's Python execute, so it never takes the lock.
        return super().cursor(factory or _RunDatabaseCursor)

    @contextlib.contextmanager
    def _writing(self, sql: str) -> Iterator[None]:
        """Take the write lock before a statement that opens a write transaction; keep it until the
        transaction ends (or let it go at once if the statement failed before opening one)."""
        if (
            not self._holding
            and not self.in_transaction
            and sql.lstrip()[:7].upper().startswith(_OPENS_A_WRITE)
        ):
            if not self._lock.acquire(timeout=_WRITE_LOCK_TIMEOUT_SECONDS):
                raise sqlite3.OperationalError("database is locked")
            self._holding = True
        try:
            yield
        finally:
            if self._holding and not self.in_transaction:
                self._release()

    def _release(self) -> None:
        if self._holding:
            self._holding = False
            self._lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            if not self.in_transaction:
                self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()


# libpq settings for every connection to a PostgreSQL run database (DBOS's, the heartbeats', readiness's):
# a server that does not answer fails a connect in seconds (DBOS's default waits 10 s, libpq's forever), a
# connection whose peer vanished is noticed by TCP keepalives and the user timeout instead of hanging until
# the kernel gives up (minutes), and no statement waits on a lock forever. Values already in the URL win.
_POSTGRES_BOUNDS = {
    "connect_timeout": "3",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
    "options": "-c statement_timeout=15000",
}


def _bounded(url: str) -> str:
    if url.startswith("sqlite"):
        return url
    parsed = sa.make_url(url)
    extra = {k: v for k, v in _POSTGRES_BOUNDS.items() if k not in parsed.query}
    return parsed.update_query_dict(extra).render_as_string(hide_password=False)


class WorkflowEngine:
    """Launches DBOS for this process and, with PostgreSQL, keeps the worker fleet's runs moving."""

    def __init__(self, settings: Settings, services: WorkflowServices, *, run_workers: bool) -> None:
        self.settings = settings
        self.services = services
        self.run_workers = run_workers
        self.database_url = _bounded(workflow_database_url(settings))
        self.shared = not self.database_url.startswith("sqlite")
        # SQLite: one worker, always "local", so a restart recovers its own runs. PostgreSQL: one id per
        # process, so a dead one can be told apart from the living.
        self.executor_id = (
            f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}" if self.shared else "local"
        )
        self._monitor: asyncio.Task[None] | None = None
        self._heartbeats: sa.Engine | None = None
        self._instance: object | None = None
        self._probe: sa.Engine | None = None
        # Since when (monotonic) this worker's beats have all succeeded; None after a failed one.
        self._beating_since: float | None = None
        self.launched = False

    async def start(self) -> None:
        # Import the workflows so DBOS registers them before launch.
        import process_apis.activation
        import process_apis.billing
        import process_apis.customer_sync  # noqa: F401

        # One engine per process: a second gateway in the same process (tests) takes DBOS over.
        if dbos_internals._dbos_global_instance is not None:
            DBOS.destroy(destroy_registry=False)
        install_services(self.services)
        policy = self.settings.workflows
        if self.shared and self.run_workers:
            # Beat before taking any run, so no other worker mistakes this one for dead.
            self._heartbeats = sa.create_engine(self.database_url, pool_size=2, max_overflow=0)
            await asyncio.to_thread(self._register)
        config: DBOSConfig = {
            "name": "stratum",
            "system_database_url": self.database_url,
            "executor_id": self.executor_id,
            "log_level": "WARNING",
            "notification_listener_polling_interval_sec": 0.2,
        }
        if not self.shared:
            path = sa.make_url(self.database_url).database
            if path and path != ":memory:" and not path.startswith("file:"):
                # Created here, 0600, so SQLite's own files for it (-journal, -wal, -shm) are private too.
                private_file(Path(path), sqlite=True)
                _use_wal(Path(path))
            config["db_engine_kwargs"] = {"connect_args": {"factory": _RunDatabaseConnection}}
        # The embedded run database has one worker, this process: a run a request starts here executes here
        # at once instead of after the queue's next poll. With PostgreSQL runs go through the queue, so the
        # fleet shares them and takes over those of a dead worker.
        self.services.starts_here = self.run_workers and not self.shared
        DBOS(config=config)
        if not self.run_workers:
            DBOS.listen_queues([])
        # Launched from inside the running event loop, so DBOS runs queued workflows on this loop, where
        # the tier clients live.
        DBOS.launch()
        self.launched = True
        self._instance = dbos_internals._dbos_global_instance
        await DBOS.register_queue_async(
            QUEUE_NAME,
            worker_concurrency=policy.worker_concurrency,
            polling_interval_sec=policy.poll_interval_seconds,
            on_conflict="always_update",
        )
        if self._heartbeats is not None:
            self._monitor = asyncio.create_task(self._watch_fleet(), name="stratum-worker-heartbeat")
        log.info(
            "workflow_engine_started",
            executor_id=self.executor_id,
            database="postgresql" if self.shared else "sqlite",
            runs_workflows=self.run_workers,
        )

    @property
    def current(self) -> bool:
        """Whether the process's DBOS is still the one this engine launched (another engine in the same
        process, as in tests, takes DBOS over)."""
        return self.launched and dbos_internals._dbos_global_instance is self._instance

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        if self.launched:
            self.launched = False
            # Runs in flight stay PENDING under this executor id: a restart (SQLite) or another worker
            # (PostgreSQL, once this one's heartbeat is stale) picks them up from their last checkpoint.
            # Their tasks run on this loop; stop them here, or they would outlive the engine they use.
            # DBOS warns for each task cancelled; at shutdown that is the plan, not news.
            logging.getLogger("dbos").setLevel(logging.ERROR)
            await _cancel_workflow_tasks()
            DBOS.destroy(workflow_completion_timeout_sec=0, destroy_registry=False)
        if self._heartbeats is not None:
            await asyncio.to_thread(self._unregister)
            self._heartbeats.dispose()
            self._heartbeats = None
        if self._probe is not None:
            self._probe.dispose()
            self._probe = None
        install_services(None)

    async def answers(self) -> bool:
        """Whether the run database answers a query now (for ``/health/ready``). On its own connection,
        not DBOS's, which would retry a lost connection until it comes back."""
        return await asyncio.to_thread(self._select_one)

    def _select_one(self) -> bool:
        if self._probe is None:
            self._probe = sa.create_engine(self.database_url, poolclass=sa.NullPool)
        with self._probe.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True

    # -- the fleet (PostgreSQL) ----------------------------------------------------------------------------

    def _register(self) -> None:
        assert self._heartbeats is not None
        _ensure_database(self.database_url)
        create_fleet_tables(self._heartbeats)
        with self._heartbeats.begin() as conn:
            conn.execute(
                _workers.insert().values(
                    executor_id=self.executor_id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    started_at=_DATABASE_NOW,
                    heartbeat_at=_DATABASE_NOW,
                )
            )
        self._beating_since = time.monotonic()

    def _unregister(self) -> None:
        # A clean stop: this worker's runs were left PENDING; say it is gone so they are taken over at once.
        assert self._heartbeats is not None
        with self._heartbeats.begin() as conn:
            conn.execute(
                _workers.update().where(_workers.c.executor_id == self.executor_id).values(heartbeat_at=0.0)
            )

    def _beat_and_find_dead(self) -> list[str]:
        """Beat; then the workers holding runs that have been silent for ``worker_timeout_seconds``.

        Silence is judged on the database's clock (every beat is stamped with it), so hosts whose clocks
        disagree do not see each other as dead. And only by a worker that has itself been beating without
        a failure for a whole timeout: one whose database was unreachable (or that just started) saw no
        one's beats during that time, and the others, cut off by the same outage, need a full timeout
        after it to beat again. So a fleet coming back from a database outage takes nothing over."""
        assert self._heartbeats is not None
        timeout = self.settings.workflows.worker_timeout_seconds
        with self._heartbeats.begin() as conn:
            conn.execute(
                _workers.update()
                .where(_workers.c.executor_id == self.executor_id)
                .values(heartbeat_at=_DATABASE_NOW)
            )
            fresh = _workers.c.heartbeat_at >= _DATABASE_NOW - timeout
            live = {row[0] for row in conn.execute(sa.select(_workers.c.executor_id).where(fresh))}
            # Forget workers long gone (their runs were taken over when they first went silent).
            conn.execute(_workers.delete().where(_workers.c.heartbeat_at < _DATABASE_NOW - 24 * 3600))
        now = time.monotonic()
        if self._beating_since is None:
            self._beating_since = now
        if now - self._beating_since < timeout:
            return []
        holders = {
            status.executor_id
            for status in DBOS.list_workflows(
                status="PENDING", queue_name=QUEUE_NAME, load_input=False, load_output=False
            )
            if status.executor_id
        }
        return sorted(holders - live - {"local"})

    async def _watch_fleet(self) -> None:
        interval = self.settings.workflows.heartbeat_seconds
        while True:
            await self._watch_once()
            await asyncio.sleep(interval)

    async def _watch_once(self) -> None:
        try:
            dead = await asyncio.to_thread(self._beat_and_find_dead)
            for executor_id in dead:
                handles: list[Any] = await asyncio.to_thread(DBOS._recover_pending_workflows, [executor_id])
                if handles:
                    log.warning(
                        "worker_runs_taken_over",
                        dead_executor_id=executor_id,
                        runs=[h.get_workflow_id() for h in handles],
                    )
        except Exception as exc:  # the database blinked: beat again next time
            if self._beating_since is not None:
                log.warning("worker_heartbeat_failed", error=repr(exc))
            # Until it has beaten for a whole timeout again, this worker judges no one.
            self._beating_since = None


# How long a stop waits for its cancelled workflow tasks. A task that catches the cancel to record its
# outcome can wait on a run database that does not answer (DBOS retries a lost connection until it is back);
# the stop goes on without it and names it, rather than hanging the shutdown for the outage.
_CANCEL_GRACE_SECONDS = 5.0


async def _cancel_workflow_tasks() -> None:
    instance = dbos_internals._dbos_global_instance
    tasks = [t for t in getattr(instance, "_workflow_tasks", ()) if not t.done()]
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=_CANCEL_GRACE_SECONDS)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved, so asyncio does not report it as never retrieved
    if pending:
        log.warning(
            "workflow_tasks_left_running",
            count=len(pending),
            tasks=sorted(task.get_name() for task in pending),
            waited_seconds=_CANCEL_GRACE_SECONDS,
        )


# Any fixed 64-bit number, the same in every worker: the lock that serializes creating the fleet's table.
_FLEET_TABLES_LOCK = 0x5354524154554D31  # "STRATUM1"


def create_fleet_tables(engine: sa.Engine) -> None:
    """Create the fleet's heartbeat table unless it exists. Workers that start together on a fresh database
    would each see no table and each CREATE it; PostgreSQL lets one win and fails the other with a
    duplicate key in its catalog, killing that worker at start. A transaction-scoped advisory lock makes
    the look and the create one step per worker."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FLEET_TABLES_LOCK})
        _metadata.create_all(conn, checkfirst=True)


def _ensure_database(url: str) -> None:
    """Create the PostgreSQL database on first use (DBOS would, but the heartbeat table comes first)."""
    target = sa.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            ).first()
            if exists is None:
                with contextlib.suppress(sa.exc.ProgrammingError):  # another worker created it first
                    conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()
