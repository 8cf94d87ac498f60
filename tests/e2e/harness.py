"""Processes for end-to-end tests: `stratum serve` and `stratum worker` in subprocesses, and JSON logs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["STRATUM", "Server", "Worker", "free_port"]

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
