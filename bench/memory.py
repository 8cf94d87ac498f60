"""Memory under sustained writes: does the server's resident memory stop growing once its caches are warm?

Starts ``stratum serve`` with embedded defaults (SQLite run database, in-process workflow worker and state
store, the vendor sandboxes), activates the closed-won deals the CRM sandbox holds (warm-up: this is where
the vendors' records and the run database's caches fill), then for ``--seconds`` keeps ``--concurrency``
writers busy with the writes a client makes, round robin:

  activation  POST /process/v1/project-activations, a new Idempotency-Key each time (a deal activated
              before answers its first run: the workflow's business key)
  actuals     PUT /system/v1/fpa/projects/{id}/actuals, a new Idempotency-Key each time (the Anaplan
              sandbox replaces the project's actuals: its data does not grow)
  crm event   POST /process/v1/crm-events, a new event id each time, HMAC-signed like the relay does (a won
              deal already activated: the intake records the event id and answers the first run)

The server's RSS (/proc/PID/status VmRSS) is sampled every second. Printed: RSS after warm-up and at the end,
the growth (MiB, %, per 1,000 writes) and the slope over the second half of the sustained phase (MiB per
minute): flat means that slope goes to about zero once caches fill, whatever the first half did.

    python bench/memory.py [--seconds 90] [--warmup 20] [--concurrency 4] [--state-max-mib 64] [--json]

The in-process state store keeps at most ``STRATUM_STATE_MEMORY_MAX_MIB`` (64) of idempotency records and
other keys: a bench of a few thousand writes does not reach that, so ``--state-max-mib 2`` shows the plateau.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.serving import free_port, running_server, server_env, server_token, won_deal_ids  # noqa: E402
from process_apis.crm_events import SIGNATURE_HEADER, sign_crm_event  # noqa: E402

CRM_EVENTS_SECRET = "bench-memory-crm-events-secret"
MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its children (a server with workers is all of them)."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
            with open(f"/proc/{current}/task/{current}/children") as children:
                pids += [int(child) for child in children.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


class Sampler:
    """RSS every ``interval`` seconds in a thread (the event loop is busy with the load)."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []  # (monotonic, rss bytes, writes so far)
        self.writes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), rss_bytes(self.pid), self.writes))
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic(), rss_bytes(self.pid), self.writes))


def _crm_event(opportunity_id: str) -> bytes:
    body = {
        "replay_id": str(time.time_ns()),
        "event": {
            "id": str(uuid.uuid4()),
            "payload": {
                "ChangeEventHeader": {
                    "entityName": "Opportunity",
                    "recordIds": [opportunity_id],
                    "changeType": "UPDATE",
                    "changedFields": ["StageName", "IsWon"],
                    "commitTimestamp": int(time.time() * 1000),
                    "transactionKey": uuid.uuid4().hex,
                    "sequenceNumber": 1,
                },
                "StageName": "Closed Won",
                "IsWon": True,
            },
        },
    }
    return json.dumps(body).encode()


class Load:
    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        self.statuses: dict[str, int] = {}

    def _count(self, kind: str, response: httpx.Response) -> None:
        key = f"{kind} {response.status_code}"
        self.statuses[key] = self.statuses.get(key, 0) + 1

    async def closed_won(self) -> list[str]:
        return await won_deal_ids(self.client, self.headers)

    async def activate(self, opportunity_id: str) -> dict[str, Any]:
        response = await self.client.post(
            "/process/v1/project-activations",
            json={"opportunity_id": opportunity_id},
            headers={**self.headers, "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=60"},
        )
        self._count("activation", response)
        body: dict[str, Any] = response.json()
        return body

    async def actuals(self, project_id: str) -> None:
        response = await self.client.put(
            f"/system/v1/fpa/projects/{project_id}/actuals",
            json={
                "currency": "USD",
                "external_key": f"bench-memory:{project_id}",
                "months": [
                    {"month": "2026-01", "amount": "1250.00"},
                    {"month": "2026-02", "amount": "980.50"},
                ],
            },
            headers={**self.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        self._count("actuals", response)

    async def crm_event(self, opportunity_id: str) -> None:
        body = _crm_event(opportunity_id)
        response = await self.client.post(
            "/process/v1/crm-events",
            content=body,
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign_crm_event(body, CRM_EVENTS_SECRET),
            },
        )
        self._count("crm event", response)


async def run(
    base: str, token: str, seconds: float, warmup: float, concurrency: int, sampler_pid: int
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=90) as client:
        load = Load(client, token)
        deals = await load.closed_won()
        with Sampler(sampler_pid) as sampler:
            started = time.monotonic()
            # Warm-up: every won deal activated once (new records in the vendors, new runs), then the same
            # writes as the measured phase until the warm-up time is over.
            won: list[tuple[str, str]] = []  # (opportunity, PSA project)
            queue = list(deals)

            async def first_pass() -> None:
                while queue:
                    deal = queue.pop(0)
                    body = await load.activate(deal)
                    sampler.writes += 1
                    project = (body.get("result") or {}).get("psa_project_id")
                    if body.get("state") == "completed" and project:
                        won.append((deal, project))

            await asyncio.gather(*(first_pass() for _ in range(concurrency)))
            if not won:
                raise SystemExit(f"no activation completed: {load.statuses}")
            kinds = itertools.cycle(("activation", "actuals", "crm event"))
            targets = itertools.cycle(won)

            async def write_until(deadline: float) -> None:
                while time.monotonic() < deadline:
                    kind, (deal, project) = next(kinds), next(targets)
                    if kind == "activation":
                        await load.activate(deal)
                    elif kind == "actuals":
                        await load.actuals(project)
                    else:
                        await load.crm_event(deal)
                    sampler.writes += 1

            warm_until = max(time.monotonic(), started + warmup)
            await asyncio.gather(*(write_until(warm_until) for _ in range(concurrency)))
            measured_from = time.monotonic()
            measured_writes = sampler.writes
            await asyncio.gather(*(write_until(measured_from + seconds) for _ in range(concurrency)))
    return {
        "samples": sampler.samples,
        "measured_from": measured_from,
        "measured_writes_from": measured_writes,
        "deals": len(won),
        "statuses": load.statuses,
    }


def _slope_mib_per_minute(points: list[tuple[float, int, int]]) -> float:
    if len(points) < 2:
        return 0.0
    xs = [t for t, _, _ in points]
    ys = [rss / MIB for _, rss, _ in points]
    slope = statistics.linear_regression(xs, ys).slope
    return slope * 60


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    samples: list[tuple[float, int, int]] = result["samples"]
    measured = [s for s in samples if s[0] >= result["measured_from"]]
    start_t, start_rss, start_writes = measured[0]
    end_t, end_rss, end_writes = measured[-1]
    half = start_t + (end_t - start_t) / 2
    writes = end_writes - start_writes
    growth = end_rss - start_rss
    return {
        "seconds": round(end_t - start_t, 1),
        "writes": writes,
        "writes_per_s": round(writes / (end_t - start_t), 1),
        "rss_warm_mib": round(start_rss / MIB, 1),
        "rss_end_mib": round(end_rss / MIB, 1),
        "growth_mib": round(growth / MIB, 2),
        "growth_pct": round(100 * growth / start_rss, 2),
        "growth_kib_per_1000_writes": round(growth / 1024 / writes * 1000, 1) if writes else None,
        "slope_second_half_mib_per_min": round(
            _slope_mib_per_minute([s for s in measured if s[0] >= half]), 3
        ),
        "slope_first_half_mib_per_min": round(
            _slope_mib_per_minute([s for s in measured if s[0] <= half]), 3
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=90, help="sustained writes after warm-up")
    parser.add_argument(
        "--warmup", type=float, default=20, help="at least this long, and every won deal once"
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--state-max-mib", type=int, default=None, help="STRATUM_STATE_MEMORY_MAX_MIB (default: the server's)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = server_env(
            data_dir,
            port,
            STRATUM_CRM_EVENTS_SECRET=CRM_EVENTS_SECRET,
            # Measure memory, not refusals: the client's quotas and the sandboxes' request limits lifted.
            STRATUM_RATE_LIMIT_SYSTEM="100000000/minute",
            STRATUM_RATE_LIMIT_PROCESS="100000000/minute",
            STRATUM_SANDBOX_SALESFORCE_DAILY_API_LIMIT="100000000",
            STRATUM_SANDBOX_ANAPLAN_REQUESTS_PER_MINUTE="100000000",
        )
        if args.state_max_mib is not None:
            env["STRATUM_STATE_MEMORY_MAX_MIB"] = str(args.state_max_mib)
        token = server_token(env, "system:read system:write process:run process:read")
        with running_server(env, base) as server:
            result = asyncio.run(run(base, token, args.seconds, args.warmup, args.concurrency, server.pid))

    summary = summarise(result)
    print(
        f"memory under sustained writes, default setup (SQLite, in-process worker, store and sandboxes), "
        f"{result['deals']} won deals, concurrency {args.concurrency}, {os.cpu_count()} cores"
    )
    print(f"answers: {dict(sorted(result['statuses'].items()))}")
    print(
        f"{summary['writes']} writes in {summary['seconds']} s ({summary['writes_per_s']}/s) after warm-up: "
        f"RSS {summary['rss_warm_mib']} -> {summary['rss_end_mib']} MiB, "
        f"{summary['growth_mib']:+} MiB ({summary['growth_pct']:+}%), "
        f"{summary['growth_kib_per_1000_writes']} KiB per 1,000 writes"
    )
    print(
        f"slope: first half {summary['slope_first_half_mib_per_min']:+} MiB/min, "
        f"second half {summary['slope_second_half_mib_per_min']:+} MiB/min"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "bench": "memory",
                    "concurrency": args.concurrency,
                    "state_max_mib": args.state_max_mib,
                    **summary,
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
