"""Processes for end-to-end tests: `stratum serve` and `stratum worker` in subprocesses, and JSON logs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg

__all__ = ["FLEET_ENV", "STRATUM", "Fleet", "Server", "Worker", "free_port", "registered"]

STRATUM = [sys.executable, "-m", "apis.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, tmp: Path, *args: str, name: str = "server", **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"{name}.log"
        self.env = {
            **os.environ,
            "STRATUM_DATA_DIR": str(tmp / "data"),
            "STRATUM_PUBLIC_URL": self.base,
            "STRATUM_PORT": str(self.port),
            # Every test here injects its own fault into one shared server; the breaker opening across
            # tests is covered in tests/system, so keep it closed here.
            "STRATUM_SALESFORCE__BREAKER_FAILURE_THRESHOLD": "0",
            # A scheduled invoice status sync would spend the tests' injected vendor faults; a test that
            # wants it turns it on.
            "STRATUM_INVOICE_STATUS__SCHEDULE_ENABLED": "false",
            # Likewise the Business Central subscriptions made at start-up (a test that wants them says so).
            "STRATUM_INVOICE_STATUS__BUSINESS_CENTRAL_SUBSCRIPTIONS": "false",
            **env,
        }
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [*STRATUM, "serve", *args], env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"stratum serve exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("stratum serve did not become ready")

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [*STRATUM, *args], env=self.env, check=True, capture_output=True, text=True
        ).stdout.strip()

    def log_lines(self) -> list[dict[str, object]]:
        lines = []
        for raw in self.log_path.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
        return lines

    def salesforce_update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        """Change a CRM record as a person would, through the Salesforce sandbox's own REST API."""
        base = f"{self.base}/sandboxes/salesforce"
        token = httpx.post(
            f"{base}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "stratum-sandbox",
                "client_secret": "stratum-sandbox-secret",
            },
        ).json()["access_token"]
        response = httpx.patch(
            f"{base}/services/data/v61.0/sobjects/{sobject}/{record_id}",
            json=fields,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 204, response.text

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)
        self._log.close()


class Worker:
    """`stratum worker` in a subprocess, with the environment of the server whose runs it shares."""

    def __init__(self, server: Server, name: str, **env: str) -> None:
        self.log_path = server.log_path.parent / f"{name}.log"
        self.env = {**server.env, **env}
        self.metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [*STRATUM, "worker", "--metrics-port", self.metrics_url.split(":")[-1].split("/")[0]],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no last heartbeat, like a host that died."""
        self.process.kill()
        self.process.wait(timeout=15)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        if not self._log.closed:
            self._log.close()


# What a fleet's processes run with: runs shared through PostgreSQL and taken over from a dead worker within
# seconds, short backoff, and vendor breakers kept closed (an injected outage is waited out by the run).
FLEET_ENV = {
    "STRATUM_WORKFLOWS__RUN_IN_PROCESS": "false",
    "STRATUM_WORKFLOWS__STEP_BACKOFF_BASE_SECONDS": "0.2",
    "STRATUM_WORKFLOWS__STEP_BACKOFF_MAX_SECONDS": "1",
    "STRATUM_WORKFLOWS__HEARTBEAT_SECONDS": "0.5",
    "STRATUM_WORKFLOWS__WORKER_TIMEOUT_SECONDS": "3",
    "STRATUM_WORKFLOWS__POLL_INTERVAL_SECONDS": "0.2",
    "STRATUM_NETSUITE__BREAKER_FAILURE_THRESHOLD": "0",
    "STRATUM_KANTATA__BREAKER_FAILURE_THRESHOLD": "0",
    "STRATUM_NETSUITE__TIMEOUT_SECONDS": "2",
    "STRATUM_KANTATA__TIMEOUT_SECONDS": "2",
}


class Fleet:
    """`stratum serve` (HTTP and the sandboxes, no workflows of its own) and two `stratum worker` processes
    running the workflows, sharing runs through ``database`` (PostgreSQL) and gateway state through
    ``redis_url``; ``http`` calls the gateway as the demo client with every scope it may have."""

    def __init__(self, tmp: Path, database: str, redis_url: str, *, wait: int = 60, **env: str) -> None:
        self.database = database
        self.server = Server(
            tmp,
            name="server",
            **{
                **FLEET_ENV,
                "STRATUM_REDIS_URL": redis_url,
                "STRATUM_WORKFLOWS__DATABASE_URL": database,
                **env,
            },
        )
        self.workers = [self.worker(f"worker-{i}") for i in (1, 2)]
        registered(database, len(self.workers))
        assert all(w.process.poll() is None for w in self.workers)
        self.secret = self.server.cli("token", "--client", "stratum-demo", "--show-secret")
        self.http = httpx.Client(
            base_url=self.server.base, headers={"Authorization": f"Bearer {self.token()}"}, timeout=wait + 10
        )

    def token(self, scope: str | None = None) -> str:
        """An access token of the demo client (client credentials grant): every scope it may have, or
        ``scope``."""
        response = httpx.post(
            f"{self.server.base}/oauth/token",
            auth=("stratum-demo", self.secret),
            data={"grant_type": "client_credentials", **({"scope": scope} if scope else {})},
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def worker(self, name: str) -> Worker:
        return Worker(self.server, name, STRATUM_SYSTEM_URL=self.server.base)

    def post(self, path: str, body: Any = None, **headers: str) -> httpx.Response:
        return self.http.post(path, json=body, headers={"Idempotency-Key": uuid.uuid4().hex, **headers})

    def stop(self) -> None:
        self.http.close()
        for worker in self.workers:
            worker.stop()
        self.server.stop()


def registered(database: str, count: int) -> None:
    """Wait until ``count`` workers have registered in the engine's ``stratum_workers`` table."""
    deadline = time.monotonic() + 30
    with psycopg.connect(database, autocommit=True) as conn:
        while True:
            try:
                row = conn.execute("SELECT count(*) FROM stratum_workers").fetchone()
                if row and row[0] >= count:
                    return
            except psycopg.errors.UndefinedTable:
                pass
            assert time.monotonic() < deadline, f"{count} workers did not register"
            time.sleep(0.1)
