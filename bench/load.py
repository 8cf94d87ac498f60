"""A small closed-loop HTTP/1.1 load generator: keep-alive connections, each sending one request at a time.

The benches measure the server, so the client must cost far less than the server per request: httpx spends
about as much CPU per request as the gateway does, and would saturate first. This sends prebuilt request
bytes over raw asyncio streams and reads each answer by its ``Content-Length`` (the servers measured never
answer chunked), which costs a few microseconds per request. Run it pinned to its own core
(``taskset``) when the server is pinned to the other, so the two do not share a core.

Used by ``bench/gateway_overhead.py`` in a child process (``python bench/load.py ...``): it prints one JSON
object with the requests completed, the elapsed time and the latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

__all__ = ["percentile", "request_bytes"]


def request_bytes(host: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    else:
        raise RuntimeError(f"answer without Content-Length: {head[:200]!r}")
    if length:
        await reader.readexactly(length)
    return status


async def run(
    host: str, port: int, request: bytes, *, connections: int, seconds: float, warmup: float
) -> dict[str, object]:
    latencies: list[float] = []
    failures: list[int] = []
    measuring = False
    stop_at = 0.0

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        try:
            while True:
                started = time.perf_counter()
                if stop_at and started >= stop_at:
                    return
                try:
                    status = await _one(reader, writer, request)
                except (asyncio.IncompleteReadError, ConnectionResetError):
                    # The server closed a kept-alive connection (nginx does after keepalive_requests): a
                    # client opens another and sends again, as this does; the lost request is not counted.
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
                    continue
                if measuring:
                    latencies.append(time.perf_counter() - started)
                    if status != 200:
                        failures.append(status)
        finally:
            writer.close()

    tasks = [asyncio.create_task(connection()) for _ in range(connections)]
    await asyncio.sleep(warmup)
    measuring = True
    began = time.perf_counter()
    stop_at = began + seconds
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    ms = [v * 1000 for v in latencies]
    return {
        "requests": len(latencies),
        "failures": len(failures),
        "statuses": sorted(set(failures)),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(ms, 50) if ms else None,
        "p99_ms": percentile(ms, 99) if ms else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--header", action="append", default=[], help="Name: value")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    request = request_bytes(f"{args.host}:{args.port}", args.path, headers)
    import uvloop  # uvicorn[standard] brings it

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(
            run(
                args.host,
                args.port,
                request,
                connections=args.connections,
                seconds=args.seconds,
                warmup=args.warmup,
            )
        )
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
