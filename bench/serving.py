"""What the benches share: a ``stratum serve`` of their own on a free port, its environment, a token of its
development issuer, a token of the Salesforce sandbox (the direct read every gateway read is set against), and
the won deals to activate.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "SALESFORCE_SANDBOX_TOKEN_PATH",
    "free_port",
    "pinned",
    "running_server",
    "salesforce_sandbox_token",
    "salesforce_sandbox_token_sync",
    "server_env",
    "server_token",
    "won_deal_ids",
]

ROOT = Path(__file__).resolve().parent.parent

SALESFORCE_SANDBOX_TOKEN_PATH = "/sandboxes/salesforce/services/oauth2/token"
# The Salesforce sandbox's own connected app (sandboxes/salesforce): not a secret, the demo's seed.
_SALESFORCE_SANDBOX_CLIENT = {
    "grant_type": "client_credentials",
    "client_id": "stratum-sandbox",
    "client_secret": "stratum-sandbox-secret",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(core: int) -> Any:
    """A ``preexec_fn`` that keeps a child process on ``core`` (None on a one-core machine)."""
    if (os.cpu_count() or 1) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {core})


def server_env(data_dir: str, port: int, *, log_level: str = "warning", **extra: str) -> dict[str, str]:
    """The environment of a ``stratum serve`` on ``port`` keeping its state in ``data_dir``; ``extra`` adds or
    overrides ``STRATUM_*`` settings."""
    return {
        **os.environ,
        "STRATUM_DATA_DIR": data_dir,
        "STRATUM_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "STRATUM_PORT": str(port),
        "STRATUM_LOG_LEVEL": log_level,
        **extra,
    }


def server_token(env: dict[str, str], scope: str) -> str:
    """A token of the server's development issuer (``stratum token``) for ``scope``."""
    return subprocess.run(
        [sys.executable, "-m", "apis.cli", "token", "--scope", scope],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.strip()


def _wait_ready(base: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.1)


@contextmanager
def running_server(
    env: dict[str, str], base: str, *, core: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``stratum serve`` in a subprocess with ``env``, ready at ``base`` for the length of the block (on
    ``core`` if given); the process, for its pid."""
    server = subprocess.Popen(
        [sys.executable, "-m", "apis.cli", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        preexec_fn=pinned(core) if core is not None else None,
    )
    try:
        _wait_ready(base, server, "stratum serve")
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(signal.SIGCONT)  # a bench may have stopped it between its rounds
        server.terminate()
        server.wait(timeout=15)


async def salesforce_sandbox_token(
    client: httpx.AsyncClient, path: str = SALESFORCE_SANDBOX_TOKEN_PATH
) -> str:
    """A token of the Salesforce sandbox mounted behind ``client`` (``path``: its token endpoint there)."""
    response = await client.post(path, data=_SALESFORCE_SANDBOX_CLIENT)
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def salesforce_sandbox_token_sync(base: str) -> str:
    response = httpx.post(f"{base}{SALESFORCE_SANDBOX_TOKEN_PATH}", data=_SALESFORCE_SANDBOX_CLIENT)
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


async def won_deal_ids(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    """Every closed-won deal's id, through the system tier's opportunity listing."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"stage": "closed_won", "limit": 200}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/system/v1/crm/opportunities", params=params, headers=headers)
        response.raise_for_status()
        page = response.json()
        ids += [o["id"] for o in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            return ids
