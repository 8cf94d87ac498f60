"""A private redis-server on a free port, for tests that stop and start Redis (never the shared one)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

__all__ = ["PrivateRedis"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """``start`` and ``stop`` it as often as a test likes: the same port, the same data directory, so with
    ``persistent`` (append-only file, as ``scripts/ensure-redis`` starts it) a restart keeps the data."""

    def __init__(self, data_dir: Path, *, persistent: bool = True) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not on PATH")
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.data_dir = data_dir
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persistent else []
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.data_dir),
                "--save", "",
                *(persistence or ["--appendonly", "no"]),
                "--logfile", str(self.data_dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the private redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        """SIGTERM: Redis flushes its append-only file and exits, like a restart."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False
