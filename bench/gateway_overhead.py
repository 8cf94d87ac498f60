"""Gateway overhead: what one governed system-tier read costs the server, beside the same read from the
sandbox directly, with Redis-backed rate limits, without access logging, and behind nginx as a reference.

Starts several ``stratum serve`` processes (one uvicorn worker each, embedded defaults, access log at info to
/dev/null) pinned to core 0, and drives them from a load generator (``bench/load.py``) pinned to core 1, so
the server's core measures the server alone. Only the server being measured runs: the others are paused
(SIGSTOP), so their background work (the workflow engine's polling) does not land on the one measured.
Rounds alternate every path, so drift in machine load falls on all alike; figures are medians of rounds.

  direct    GET /sandboxes/salesforce/services/data/v61.0/sobjects/Account/{id}   (Salesforce sandbox token)
  gateway   GET /system/v1/crm/accounts/{id}                                        (Stratum token)

The gateway read runs the edge (correlation id, access log, metrics), JWT verification, the scope check, the
rate limiter, the handler, the Salesforce adapter (which calls the same sandbox in process through the vendor
HTTP client), the vendor-to-canonical mapping and the JSON encoding. Per path and round:

- CPU per request: the server process's CPU time (utime + stime from /proc) over the requests answered,
  saturated (``--connections`` keep-alive connections in a closed loop). The gateway's own CPU is the
  gateway's minus the direct read's; ``1/rps`` gives the same on a saturated core and is printed beside it.
- Unloaded p50: one connection, one request at a time.
- Redis: a second gateway with ``STRATUM_REDIS_URL`` on a private redis-server; its throughput over the
  memory-backed gateway's, and the Redis round trips (server read events) and commands per request.
- Access logging: the access line's time, measured in process where each line is written, inside the
  governed read (``bench/hot_path.py``), over the served gateway read's CPU per request.
- nginx (when installed): a reverse proxy in front of the same sandbox, on the same core; its CPU per
  request (1/rps through nginx minus 1/rps direct) is what a proxy written in C costs.

    python bench/gateway_overhead.py [--rounds 5] [--seconds 2] [--connections 8] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import hot_path  # noqa: E402
from bench.load import percentile  # noqa: E402
from bench.serving import (  # noqa: E402
    free_port,
    pinned,
    running_server,
    salesforce_sandbox_token_sync,
    server_env,
    server_token,
)

SERVER_CORE, LOAD_CORE = 0, 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
DIRECT_PATH, GATEWAY_PATH = hot_path.DIRECT_PATH, hot_path.GATEWAY_PATH


# Kept for the other benches, which start one server the same way.
_percentile = percentile


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Target:
    """One path on one server: what the load generator sends, and whose CPU it costs."""

    def __init__(self, name: str, port: int, path: str, headers: dict[str, str], pids: list[int]) -> None:
        self.name, self.port, self.path, self.headers, self.pids = name, port, path, headers, pids


def _load(target: Target, *, connections: int, seconds: float) -> dict[str, Any]:
    command = [
        sys.executable,
        str(ROOT / "bench" / "load.py"),
        "--port",
        str(target.port),
        "--path",
        target.path,
        "--connections",
        str(connections),
        "--seconds",
        str(seconds),
        "--warmup",
        "0.3",
    ]
    for name, value in target.headers.items():
        command += ["--header", f"{name}: {value}"]
    before = sum(_cpu_seconds(pid) for pid in target.pids)
    done = subprocess.run(command, capture_output=True, text=True, check=False, preexec_fn=pinned(LOAD_CORE))
    after = sum(_cpu_seconds(pid) for pid in target.pids)
    if done.returncode != 0:
        raise SystemExit(f"load generator failed on {target.name}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if result["failures"]:
        raise SystemExit(f"{target.name} answered {result['statuses']} to {result['failures']} requests")
    # The warm-up's requests are not counted, so its CPU is not either: scale by the measured share.
    result["cpu_ms"] = (after - before) * 1000 / (result["requests"] * (seconds + 0.3) / seconds)
    return result


class Pauser:
    """Only the server being measured runs; the others are stopped (and started again before the next)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    @contextmanager
    def only(self, pids: list[int]) -> Iterator[None]:
        for pid in self.pids:
            os.kill(pid, signal.SIGCONT if pid in pids else signal.SIGSTOP)
        time.sleep(0.05)
        yield


def _stratum_env(data_dir: str, port: int, **extra: str) -> dict[str, str]:
    return server_env(
        data_dir,
        port,
        log_level="info",
        STRATUM_RATE_LIMIT_SYSTEM="100000000/minute",
        STRATUM_SANDBOX_SALESFORCE_DAILY_API_LIMIT="100000000",
        **extra,
    )


@contextmanager
def private_redis() -> Iterator[tuple[str, Any] | None]:
    """A redis-server of the bench's own (so nobody else's commands are counted), or None without one."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    import redis

    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        preexec_fn=pinned(LOAD_CORE),
    )
    client = redis.Redis(port=port)
    try:
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def _redis_counts(client: Any) -> tuple[int, int]:
    stats = client.info("stats")
    # total_commands_processed counts INFO itself too: one per call, subtracted by the caller.
    return int(stats["total_reads_processed"]), int(stats["total_commands_processed"])


@contextmanager
def nginx_proxy(upstream_port: int) -> Iterator[tuple[int, int] | None]:
    """nginx (one process, access log on) in front of ``upstream_port``; (port, pid), or None without it."""
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if binary is None:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as prefix:
        (Path(prefix) / "logs").mkdir()
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(
            f"""daemon off; master_process off; worker_processes 1; pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log error;
events {{ worker_connections 1024; }}
http {{
  access_log {prefix}/logs/access.log combined buffer=64k;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
  upstream sandbox {{ server 127.0.0.1:{upstream_port}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port}; keepalive_requests 100000000;
    location / {{ proxy_pass http://sandbox; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
"""
        )
        process = subprocess.Popen(
            [binary, "-p", prefix, "-c", str(conf)],
            stderr=subprocess.DEVNULL,
            preexec_fn=pinned(SERVER_CORE),
        )
        try:
            for _ in range(100):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                time.sleep(0.05)
            yield port, process.pid
        finally:
            process.terminate()
            process.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per saturated phase")
    parser.add_argument("--connections", type=int, default=8, help="saturating connections")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object last")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        redis_server = stack.enter_context(private_redis())
        variants: dict[str, dict[str, str]] = {"memory": {}}
        if redis_server is not None:
            variants["redis"] = {"STRATUM_REDIS_URL": redis_server[0]}
        servers: dict[str, tuple[int, int]] = {}
        tokens: dict[str, str] = {}
        for name, extra in variants.items():
            port = free_port()
            env = _stratum_env(stack.enter_context(tempfile.TemporaryDirectory()), port, **extra)
            tokens[name] = server_token(env, "system:read")
            process = stack.enter_context(running_server(env, f"http://127.0.0.1:{port}", core=SERVER_CORE))
            servers[name] = (port, process.pid)
        memory_port, memory_pid = servers["memory"]
        sandbox = {
            "Authorization": f"Bearer {salesforce_sandbox_token_sync(f'http://127.0.0.1:{memory_port}')}"
        }
        targets = {
            "direct": Target("direct", memory_port, DIRECT_PATH, sandbox, [memory_pid]),
            "gateway": Target(
                "gateway",
                memory_port,
                GATEWAY_PATH,
                {"Authorization": f"Bearer {tokens['memory']}"},
                [memory_pid],
            ),
        }
        if "redis" in servers:
            targets["gateway, redis"] = Target(
                "gateway, redis",
                servers["redis"][0],
                GATEWAY_PATH,
                {"Authorization": f"Bearer {tokens['redis']}"},
                [servers["redis"][1]],
            )
        nginx = stack.enter_context(nginx_proxy(memory_port))
        if nginx is not None:
            targets["nginx to direct"] = Target(
                "nginx to direct", nginx[0], DIRECT_PATH, sandbox, [memory_pid, nginx[1]]
            )
        pauser = Pauser([pid for _, pid in servers.values()])
        unloaded = ("direct", "gateway", "gateway, redis")

        saturated: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        single: dict[str, list[dict[str, Any]]] = {name: [] for name in unloaded if name in targets}
        redis_per_request: list[tuple[float, float]] = []
        for round_number in range(args.rounds + 1):  # round 0 warms every path up and is not counted
            order = list(targets) if round_number % 2 else list(reversed(targets))
            for name in order:
                target = targets[name]
                with pauser.only(target.pids):
                    counts = (
                        _redis_counts(redis_server[1]) if name == "gateway, redis" and redis_server else None
                    )
                    result = _load(target, connections=args.connections, seconds=args.seconds)
                    if counts is not None and redis_server is not None:
                        reads, commands = _redis_counts(redis_server[1])
                        # Over the whole phase (its warm-up included): requests scaled likewise.
                        sent = result["requests"] * (args.seconds + 0.3) / args.seconds
                        redis_per_request.append(
                            ((reads - counts[0]) / sent, (commands - counts[1] - 1) / sent)
                        )
                    if round_number:
                        saturated[name].append(result)
                    if name in single:
                        one = _load(target, connections=1, seconds=args.seconds * 0.75)
                        if round_number:
                            single[name].append(one)

    def med(name: str, key: str, rows: dict[str, list[dict[str, Any]]] = saturated) -> float:
        return statistics.median(r[key] for r in rows[name])

    def paired(a: str, b: str, f: Any, rows: dict[str, list[dict[str, Any]]] = saturated) -> float:
        return statistics.median(f(x, y) for x, y in zip(rows[a], rows[b], strict=True))

    # A saturated core answers 1/CPU-per-request requests a second, so capacity ratios come from CPU time:
    # unlike req/s they hold when something else on the machine takes a share of the server's core.
    figures: dict[str, Any] = {
        "gateway_cpu_ms": paired("gateway", "direct", lambda g, d: g["cpu_ms"] - d["cpu_ms"]),
        "gateway_cpu_ms_from_rps": paired(
            "gateway", "direct", lambda g, d: 1000 / g["rps"] - 1000 / d["rps"]
        ),
        "unloaded_p50_added_ms": paired("gateway", "direct", lambda g, d: g["p50_ms"] - d["p50_ms"], single),
        "throughput_ratio": paired("gateway", "direct", lambda g, d: d["cpu_ms"] / g["cpu_ms"]),
    }
    # The access line's cost is measured in process, timed where each line is written (bench/hot_path.py):
    # a difference between two servers, or two reads, drowned in their noise. Its share is of the served
    # read's CPU per request, measured above.
    in_process = hot_path.measure(requests=2000, rounds=args.rounds)
    figures["access_line_us"] = in_process["access_line_us"]
    figures["access_log_share"] = in_process["access_line_us"] / 1000 / med("gateway", "cpu_ms")
    if "gateway, redis" in targets:
        figures["redis_throughput_ratio"] = paired(
            "gateway, redis", "gateway", lambda r, m: m["cpu_ms"] / r["cpu_ms"]
        )
        figures["redis_p50_added_ms"] = paired(
            "gateway, redis", "gateway", lambda r, m: r["p50_ms"] - m["p50_ms"], single
        )
        figures["redis_round_trips_per_request"] = statistics.median(r for r, _ in redis_per_request)
        figures["redis_commands_per_request"] = statistics.median(c for _, c in redis_per_request)
    if "nginx to direct" in targets:
        # Both processes' CPU (nginx's and the sandbox's server) over the requests, less the direct read's.
        figures["nginx_cpu_ms"] = paired("nginx to direct", "direct", lambda n, d: n["cpu_ms"] - d["cpu_ms"])

    print(
        f"system-tier account read; server on core {SERVER_CORE}, load on core {LOAD_CORE}; "
        f"{args.rounds} rounds of {args.seconds:g} s at {args.connections} connections (and 1, unloaded); "
        "medians of rounds"
    )
    print(f"{'path':<22} {'req/s':>8} {'CPU ms/req':>11} {'p50 ms':>8} {'p99 ms':>8} {'1-conn p50':>11}")
    for name in targets:
        unloaded_p50 = f"{med(name, 'p50_ms', single):11.3f}" if name in single else f"{'':>11}"
        print(
            f"{name:<22} {med(name, 'rps'):8.0f} {med(name, 'cpu_ms'):11.3f} {med(name, 'p50_ms'):8.3f} "
            f"{med(name, 'p99_ms'):8.3f} {unloaded_p50}"
        )
    print(
        f"goal 1: gateway's own CPU per governed request {figures['gateway_cpu_ms']:.3f} ms "
        f"(1/rps: {figures['gateway_cpu_ms_from_rps']:.3f}; at most 0.4, aim 0.2); unloaded p50 "
        f"{figures['unloaded_p50_added_ms']:+.3f} ms above direct (at most 0.4); capacity "
        f"x{figures['throughput_ratio']:.2f} of direct"
    )
    if "nginx_cpu_ms" in figures:
        print(
            f"        reference: nginx in front of the same sandbox {figures['nginx_cpu_ms']:.3f} ms "
            "per request"
        )
    if "redis_throughput_ratio" in figures:
        print(
            f"goal 2: Redis-backed limits x{figures['redis_throughput_ratio']:.2f} the memory-backed "
            f"capacity (at least 0.90), p50 {figures['redis_p50_added_ms']:+.3f} ms; per request "
            f"{figures['redis_round_trips_per_request']:.2f} round trips, "
            f"{figures['redis_commands_per_request']:.2f} commands (one round trip)"
        )
    else:
        print("goal 2: no redis-server here; not measured")
    print(
        f"goal 3: access logging {figures['access_log_share'] * 100:.1f} % of the server's CPU per governed "
        f"request ({figures['access_line_us']:.1f} us a line, in process; under 5 %)"
    )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
