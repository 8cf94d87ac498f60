"""Closed-won to activated project: how long project activation takes in the default setup.

Starts ``stratum serve`` with embedded defaults (SQLite run database, in-process workflow worker, in-process
state store, the vendor sandboxes), takes the closed-won opportunities the CRM sandbox holds, and activates
them one after another (or ``--concurrency`` at a time) with ``Prefer: wait=60``. For each it records the
caller's wall time from the POST to the completed run, and the run's own time from queued to completed.

    python bench/activation_latency.py [--runs 20] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway_overhead import _free_port, _percentile, running_server  # noqa: E402


async def _closed_won(client: httpx.AsyncClient, headers: dict[str, str], wanted: int) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while len(ids) < wanted * 3:
        params = {"stage": "closed_won", "limit": 200, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/system/v1/crm/opportunities", params=params, headers=headers)).json()
        ids += [o["id"] for o in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return ids


async def run(
    base: str, token: str, runs: int, concurrency: int
) -> tuple[list[float], list[float], dict[str, int]]:
    headers = {"Authorization": f"Bearer {token}"}
    wall: list[float] = []
    server_side: list[float] = []
    parked: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=base, timeout=90) as client:
        candidates = await _closed_won(client, headers, runs)
        queue = list(candidates)

        async def activate_next() -> None:
            while queue and len(wall) + sum(parked.values()) < runs:
                opportunity_id = queue.pop(0)
                started = time.perf_counter()
                response = await client.post(
                    "/process/v1/project-activations",
                    json={"opportunity_id": opportunity_id},
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=60"},
                )
                elapsed = time.perf_counter() - started
                body = response.json()
                if response.status_code != 202 or body.get("state") != "completed":
                    # Parked for a person (say, a probable duplicate customer): not what is timed.
                    reason = (body.get("issue") or {}).get("code") or body.get(
                        "state", str(response.status_code)
                    )
                    parked[reason] = parked.get(reason, 0) + 1
                    continue
                wall.append(elapsed * 1000)
                # Step times have millisecond precision (a run's created_at may only have seconds).
                first = dt.datetime.fromisoformat(body["steps"][0]["started_at"])
                last = dt.datetime.fromisoformat(body["steps"][-1]["completed_at"])
                server_side.append((last - first).total_seconds() * 1000)

        await asyncio.gather(*(activate_next() for _ in range(concurrency)))
    return wall, server_side, parked


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="activations to time")
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "STRATUM_DATA_DIR": data_dir,
            "STRATUM_PUBLIC_URL": base,
            "STRATUM_PORT": str(port),
            "STRATUM_LOG_LEVEL": "warning",
        }
        cli = [sys.executable, "-m", "apis.cli"]
        token = subprocess.run(
            [*cli, "token", "--scope", "system:read process:run process:read"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.strip()
        with running_server(env, base):
            wall, server_side, parked = asyncio.run(run(base, token, args.runs, args.concurrency))

    if not wall:
        raise SystemExit("no activation completed")
    print(
        f"project activation, default setup (SQLite, in-process worker and sandboxes), {len(wall)} runs, "
        f"concurrency {args.concurrency}, {os.cpu_count()} cores; parked, not timed: {parked or 'none'}"
    )
    print(f"{'measure':<26} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8} {'mean ms':>8}")
    for name, values in (("POST to completed (caller)", wall), ("first to last step (run)", server_side)):
        print(
            f"{name:<26} {_percentile(values, 50):8.1f} {_percentile(values, 90):8.1f} {max(values):8.1f} "
            f"{statistics.fmean(values):8.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
