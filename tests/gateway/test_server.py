"""`stratum serve` over real sockets: a port in use stops it before anything starts, and connections that
never finish their headers are closed."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import STRATUM, Server

HEADER_TIMEOUT = 0.5
# Far above HEADER_TIMEOUT: a connection the server does not close fails the test instead of hanging it.
PATIENCE = 15


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(
        tmp_path_factory.mktemp("server"), STRATUM_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT)
    )
    yield running
    running.stop()


def _second_serve(server: Server, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STRATUM, "serve", "--port", str(server.port), *args],
        env={**server.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_serve_on_the_same_port_and_data_directory_starts_nothing(server: Server) -> None:
    second = _second_serve(server)
    assert second.returncode != 0
    assert f"stratum: cannot listen on 127.0.0.1:{server.port}: Address already in use" in second.stderr
    # It never launched the workflow engine on the first one's run database (which would have resumed
    # that one's runs in flight).
    assert "workflow_engine_started" not in second.stdout + second.stderr
    assert httpx.get(f"{server.base}/health/ready", timeout=5).status_code == 200


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one worker", "two workers"])
def test_a_serve_on_a_port_in_use_writes_nothing(server: Server, tmp_path: Path, workers: list[str]) -> None:
    data_dir = tmp_path / "data"
    second = _second_serve(
        server,
        *workers,
        STRATUM_DATA_DIR=str(data_dir),
        # What several workers need, so that only the port stops them.
        STRATUM_REDIS_URL="redis://127.0.0.1:6379/15",
        STRATUM_WORKFLOWS__RUN_IN_PROCESS="false",
    )
    assert second.returncode != 0
    assert "Address already in use" in second.stderr
    assert not data_dir.exists()  # no key, no client registry, no run database, no metrics directory


def _connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False


def _get(sock: socket.socket, path: str = "/health/live") -> int:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: stratum\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "the server closed the connection instead of answering"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    while len(body) < length:
        body += sock.recv(4096)
    return int(lines[0].split()[1])


def test_a_connection_that_sends_half_a_request_line_is_closed(server: Server) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health/li")
        assert _closed_by_server(sock)


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    with _connect(server) as sock:
        assert _closed_by_server(sock)


def test_a_request_that_stalls_on_a_kept_alive_connection_is_closed(server: Server) -> None:
    with _connect(server) as sock:
        assert _get(sock) == 200
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: stra")
        assert _closed_by_server(sock)


def test_normal_requests_are_answered(server: Server) -> None:
    assert httpx.get(f"{server.base}/health/live", timeout=5).status_code == 200


def test_idle_time_between_kept_alive_requests_is_not_a_header_timeout(server: Server) -> None:
    with _connect(server) as sock:
        assert _get(sock) == 200
        # Idle for longer than the header timeout, shorter than uvicorn's keep-alive timeout (5 s), which
        # is what closes an idle kept-alive connection.
        time.sleep(HEADER_TIMEOUT * 3)
        assert _get(sock) == 200
