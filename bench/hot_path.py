"""The governed read's CPU in process: the gateway's ASGI app called directly, no sockets, no HTTP server.

What ``bench/gateway_overhead.py`` measures through uvicorn and a load generator, this measures inside one
process, by CPU time (``time.process_time``), so other work on the machine barely moves it: the system-tier
account read and the same read from the sandbox, alternated in rounds, each request awaited alone. The
difference is the gateway's own cost (the HTTP server's is the same for both and is not in either).
``--profile`` writes a cProfile of the gateway read for ``python -m pstats`` (or snakeviz).

    python bench/hot_path.py [--requests 3000] [--rounds 5] [--log-level info] [--redis URL]
                             [--profile out.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apis.config import load_settings  # noqa: E402
from apis.gateway import build_gateway  # noqa: E402
from apis.logging import configure_logging  # noqa: E402
from bench.serving import salesforce_sandbox_token  # noqa: E402
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID  # noqa: E402

DIRECT_PATH = f"/sandboxes/salesforce/services/data/v61.0/sobjects/Account/{DEMO_ACCOUNT_ID}"
GATEWAY_PATH = f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}"


def _scope(path: str, token: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _call(app: Any, path: str, token: str) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(path, token), receive, send)
    return status


async def _sandbox_token(app: Any) -> str:
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        return await salesforce_sandbox_token(client)


class _Timed:
    """The edge's access logger, timing each line it writes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0

    def info(self, *args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        self.inner.info(*args, **kwargs)
        self.seconds += time.perf_counter() - started


async def _run(args: argparse.Namespace, data_dir: str) -> dict[str, list[float]]:
    from apis import edge
    from apis.edge import Edge

    access_log = edge.access_log

    settings = load_settings(
        {},
        data_dir=data_dir,
        log_level=args.log_level,
        rate_limit_system="100000000/minute",
        sandbox_salesforce_daily_api_limit=100_000_000,
        redis_url=args.redis,
    )
    gateway = build_gateway(settings, tiers=("system",))
    app = Edge(gateway)
    await gateway.runtime.start()
    # As a served process does once started (apis.gateway.Gateway.freeze_after_start).
    gc.collect()
    gc.freeze()
    try:
        assert gateway.runtime.dev_server is not None
        token = gateway.runtime.dev_server.issue_token("stratum-demo", "system:read")
        paths = {"direct": (DIRECT_PATH, await _sandbox_token(app)), "gateway": (GATEWAY_PATH, token)}
        for path, bearer in paths.values():
            for _ in range(300):
                status = await _call(app, path, bearer)
                if status != 200:
                    raise SystemExit(f"{path} answered {status}")
        # The access line timed where it is written, inside each gateway read (the difference of two reads'
        # CPU, with and without it, was within their noise).
        timed = _Timed(access_log)
        edge.access_log = timed
        results: dict[str, list[float]] = {name: [] for name in paths}
        results["access line"] = []
        profiler = cProfile.Profile() if args.profile else None
        for round_number in range(args.rounds):
            for name in paths if round_number % 2 == 0 else reversed(paths):
                path, bearer = paths[name]
                if profiler is not None and name == "gateway":
                    profiler.enable()
                timed.seconds = 0.0
                started = time.process_time()
                for _ in range(args.requests):
                    await _call(app, path, bearer)
                results[name].append((time.process_time() - started) * 1e6 / args.requests)
                if name == "gateway":
                    results["access line"].append(timed.seconds * 1e6 / args.requests)
                if profiler is not None:
                    profiler.disable()
        if profiler is not None:
            profiler.dump_stats(args.profile)
        return results
    finally:
        edge.access_log = access_log
        await gateway.runtime.stop()


def measure(
    requests: int = 3000, rounds: int = 5, log_level: str = "info", redis: str | None = None
) -> dict[str, float]:
    """CPU us per request, medians of rounds: the direct read, the gateway read, the gateway's own (paired
    per round) and the access line's."""
    args = argparse.Namespace(
        requests=requests, rounds=rounds, log_level=log_level, redis=redis, profile=None
    )
    with tempfile.TemporaryDirectory() as data_dir, open(os.devnull, "w") as lines:
        # The lines go where a deployment's would (a pipe), not to this terminal.
        configure_logging(log_level, "json", stream=lines, force=True)
        # Cached loggers, as a server runs them (force turns the cache off).
        structlog.configure(cache_logger_on_first_use=True)
        results = asyncio.run(_run(args, data_dir))
    own = [g - d for g, d in zip(results["gateway"], results["direct"], strict=True)]
    return {
        "direct_us": statistics.median(results["direct"]),
        "gateway_us": statistics.median(results["gateway"]),
        "gateway_own_us": statistics.median(own),
        "access_line_us": statistics.median(results["access line"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000, help="per path and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--redis", default=None, help="STRATUM_REDIS_URL: rate limits and state in Redis")
    parser.add_argument("--profile", default=None, help="write a cProfile of the gateway read here")
    args = parser.parse_args()
    if args.profile:
        with tempfile.TemporaryDirectory() as data_dir, open(os.devnull, "w") as lines:
            configure_logging(args.log_level, "json", stream=lines, force=True)
            asyncio.run(_run(args, data_dir))
        print(f"profile of the gateway read written to {args.profile}")
        return 0
    figures = measure(args.requests, args.rounds, args.log_level, args.redis)
    print(
        f"in process, CPU us per request (medians of {args.rounds} rounds of {args.requests}): direct "
        f"{figures['direct_us']:.0f}, gateway {figures['gateway_us']:.0f}, gateway's own "
        f"{figures['gateway_own_us']:.0f}, of which the access line {figures['access_line_us']:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
