"""Gateway overhead: a system-tier read through the whole stack vs the same read from the sandbox directly.

Starts ``stratum serve`` (one uvicorn worker, embedded defaults) on a free loopback port, then, over the same
keep-alive HTTP connection style, alternates two requests so machine noise hits both alike:

  direct   GET /sandboxes/salesforce/services/data/v61.0/sobjects/Account/{id}   (Salesforce sandbox token)
  gateway  GET /system/v1/crm/accounts/{id}                                        (Stratum token)

The gateway read runs the edge (correlation id, access log, metrics), JWT verification, the scope check, the
rate limiter, the handler, the Salesforce adapter (which calls the same sandbox in process), the vendor-to-
canonical mapping and the JSON encoding. Prints percentiles per path and the overhead ratios.

    python bench/gateway_overhead.py [--requests 2000] [--concurrency 1] [--redis redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandboxes.salesforce.data import DEMO_ACCOUNT_ID  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_server(env: dict[str, str], base: str) -> Iterator[None]:
    """``stratum serve`` in a subprocess with ``env``, ready at ``base`` for the length of the block."""
    server = subprocess.Popen(
        [sys.executable, "-m", "apis.cli", "serve"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("stratum serve did not start")
            time.sleep(0.1)
        yield
    finally:
        server.terminate()
        server.wait(timeout=15)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _measure(client: httpx.AsyncClient, url: str, headers: dict[str, str], out: list[float]) -> None:
    started = time.perf_counter()
    response = await client.get(url, headers=headers)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}: {response.text[:300]}")
    out.append(elapsed * 1000)


async def run(
    base: str, stratum_token: str, requests: int, concurrency: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        sf = await client.post(
            "/sandboxes/salesforce/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "stratum-sandbox",
                "client_secret": "stratum-sandbox-secret",
            },
        )
        sf.raise_for_status()
        paths = {
            "direct": (
                f"/sandboxes/salesforce/services/data/v61.0/sobjects/Account/{DEMO_ACCOUNT_ID}",
                {"Authorization": f"Bearer {sf.json()['access_token']}"},
            ),
            "gateway": (
                f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}",
                {"Authorization": f"Bearer {stratum_token}"},
            ),
        }
        results: dict[str, list[float]] = {"direct": [], "gateway": []}
        warmup: dict[str, list[float]] = {"direct": [], "gateway": []}
        for name, (url, headers) in paths.items():
            for _ in range(200):
                await _measure(client, url, headers, warmup[name])

        if concurrency == 1:
            for i in range(requests):
                # Alternate, so drift in machine load lands on both paths.
                for name in ("direct", "gateway") if i % 2 == 0 else ("gateway", "direct"):
                    await _measure(client, *paths[name], results[name])
            return results, {}

        # Under concurrency the two paths would queue behind each other in one server; measure them in
        # alternating phases instead (direct, gateway, direct, gateway) and report throughput per path.
        elapsed = {"direct": 0.0, "gateway": 0.0}

        async def worker(name: str, count: int) -> None:
            for _ in range(count):
                await _measure(client, *paths[name], results[name])

        for name in ("direct", "gateway", "direct", "gateway"):
            started = time.perf_counter()
            per_worker = requests // 2 // concurrency
            await asyncio.gather(*(worker(name, per_worker) for _ in range(concurrency)))
            elapsed[name] += time.perf_counter() - started
        return results, {name: len(results[name]) / elapsed[name] for name in results}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="requests per path")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--redis", default=None, help="STRATUM_REDIS_URL for the server (shared rate limits)")
    args = parser.parse_args()

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "STRATUM_DATA_DIR": data_dir,
            "STRATUM_PUBLIC_URL": base,
            "STRATUM_PORT": str(port),
            "STRATUM_LOG_LEVEL": "warning",  # measure the stack, not the terminal
            "STRATUM_RATE_LIMIT_SYSTEM": "100000000/minute",
            "STRATUM_SANDBOX_SALESFORCE_DAILY_API_LIMIT": "100000000",
        }
        if args.redis:
            env["STRATUM_REDIS_URL"] = args.redis
        cli = [sys.executable, "-m", "apis.cli"]
        token = subprocess.run(
            [*cli, "token", "--scope", "system:read"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.strip()
        with running_server(env, base):
            results, throughput = asyncio.run(run(base, token, args.requests, args.concurrency))

    print(
        f"system-tier account read, {args.requests} requests per path, concurrency {args.concurrency}, "
        f"state store: {'redis' if args.redis else 'memory'}, {os.cpu_count()} cores"
    )
    print(f"{'path':<8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>8}")
    summary = {}
    for name, values in results.items():
        summary[name] = {q: _percentile(values, q) for q in (50, 90, 99)}
        print(
            f"{name:<8} {summary[name][50]:8.3f} {summary[name][90]:8.3f} {summary[name][99]:8.3f} "
            f"{statistics.fmean(values):8.3f} {throughput.get(name, 1000 / statistics.fmean(values)):8.0f}"
        )
    for q in (50, 99):
        ratio = summary["gateway"][q] / summary["direct"][q]
        added = summary["gateway"][q] - summary["direct"][q]
        print(f"overhead p{q}: x{ratio:.2f} ({added:+.3f} ms)")
    if throughput:
        print(f"throughput ratio gateway/direct: {throughput['gateway'] / throughput['direct']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
