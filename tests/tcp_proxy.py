"""A TCP forwarder a test controls, to make a dependency (the run database) unreachable without touching it.

It runs its own event loop in a thread, so it keeps forwarding while the code under test blocks its loop
(DBOS connects synchronously at launch). ``down("refuse")``: every connection is cut and new ones are closed
at once, like a server that stopped. ``down("blackhole")``: nothing is forwarded any more and new
connections hang, like a network partition. ``up()`` cuts what hung and forwards again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Literal

__all__ = ["TcpProxy"]


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Literal["up", "refuse", "blackhole"] = "up"
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(5)
        self.port: int = self._server.sockets[0].getsockname()[1]

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            writer.transport.abort()
            return
        self._writers.add(writer)
        if self.mode == "blackhole":
            return  # held open, never answered
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if self.mode != "up":
                    # Swallow everything from now on: the peer waits for an answer that never comes.
                    await asyncio.Event().wait()
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    def _cut_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def down(self, how: Literal["refuse", "blackhole"]) -> None:
        def apply() -> None:
            self.mode = how
            if how == "refuse":
                self._cut_all()

        self._loop.call_soon_threadsafe(apply)

    def up(self) -> None:
        def apply() -> None:
            self.mode = "up"
            self._cut_all()

        self._loop.call_soon_threadsafe(apply)

    def close(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            self._cut_all()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
