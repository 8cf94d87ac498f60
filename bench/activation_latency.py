"""Closed-won to activated project: how long project activation takes in the default setup.

Starts ``stratum serve`` with embedded defaults (SQLite run database, in-process workflow worker, in-process
state store, the vendor sandboxes), takes the closed-won opportunities the CRM sandbox holds that pass the
activation rules, and activates them one after another (or ``--concurrency`` at a time) with
``Prefer: wait=60``. For each it records the caller's wall time from the POST to the completed run, and the
run's own time from its first step's start to its last step's end; for the whole timed window, the
activations completed per second.

The seeded CRM has about 60 ready closed-won deals. When ``--runs`` asks for more, the setup (not timed)
clones ready deals, their rate card lines and milestones included, through the Salesforce sandbox's own
REST API, so every timed run activates a deal of its own.

    python bench/activation_latency.py [--runs 20] [--concurrency 1] [--json]

A deal that passes the rules can still park (its account's parent customer not yet in the ERP): it is
counted under ``parked`` and a spare deal takes its place, so ``runs`` activations complete.

``--json`` prints, as its last line, one JSON object: p50_ms, p90_ms (caller), per_second, runs (completed
and timed), concurrency, parked (runs that did not complete, by reason: none expected).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway_overhead import _percentile  # noqa: E402
from bench.serving import (  # noqa: E402
    free_port,
    running_server,
    salesforce_sandbox_token,
    server_env,
    server_token,
    won_deal_ids,
)

_SF = "/sandboxes/salesforce/services/data/v61.0"
# What a clone of a deal copies: everything a person enters (the activation reads these), nothing the
# system derives or the gateway writes back.
_DEAL_FIELDS = (
    "AccountId",
    "StageName",
    "Amount",
    "CurrencyIsoCode",
    "CloseDate",
    "Type",
    "LeadSource",
    "Billing_Model__c",
    "Legal_Entity__c",
    "Contract_Terms__c",
    "Retainer_Monthly_Fee__c",
    "Retainer_Included_Hours__c",
    "Payment_Terms_Days__c",
)
_CHILDREN = {
    "Rate_Card_Line__c": ("Role__c", "Rate__c", "Unit__c"),
    "Opportunity_Milestone__c": ("Name", "Sequence__c", "Amount__c", "Due_Date__c", "Status__c"),
}


async def _ready(client: httpx.AsyncClient, headers: dict[str, str], ids: list[str]) -> list[str]:
    """The deals among ``ids`` that pass every activation rule (the few that break one would park)."""
    ready: list[str] = []
    for opportunity_id in ids:
        response = await client.post(
            "/process/v1/activation-readiness", json={"opportunity_id": opportunity_id}, headers=headers
        )
        response.raise_for_status()
        if response.json()["ready"]:
            ready.append(opportunity_id)
    return ready


async def _salesforce(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {await salesforce_sandbox_token(client)}"}


async def _clone(client: httpx.AsyncClient, sf: dict[str, str], template: str, number: int) -> str:
    """A new closed-won deal with the template's terms (and rate card and milestones), by the CRM's API."""
    deal = (await client.get(f"{_SF}/sobjects/Opportunity/{template}", headers=sf)).raise_for_status().json()
    body = {name: deal[name] for name in _DEAL_FIELDS if deal.get(name) is not None}
    body["Name"] = f"{deal['Name'][:60]} (bench {number})"
    created = await client.post(f"{_SF}/sobjects/Opportunity/", json=body, headers=sf)
    created.raise_for_status()
    clone_id: str = created.json()["id"]
    for sobject, fields in _CHILDREN.items():
        soql = f"SELECT {', '.join(fields)} FROM {sobject} WHERE Opportunity__c = '{template}'"
        rows = (await client.get(f"{_SF}/query", params={"q": soql}, headers=sf)).raise_for_status().json()
        for row in rows["records"]:
            child = {name: row[name] for name in fields if row.get(name) is not None}
            response = await client.post(
                f"{_SF}/sobjects/{sobject}/", json={**child, "Opportunity__c": clone_id}, headers=sf
            )
            response.raise_for_status()
    return clone_id


_SPARE = 6


async def candidates(client: httpx.AsyncClient, headers: dict[str, str], runs: int) -> tuple[list[str], int]:
    """``runs`` ready closed-won deals, seeding clones when the CRM has too few; (ids, how many seeded)."""
    ready = await _ready(client, headers, await won_deal_ids(client, headers))
    if not ready:
        raise SystemExit("the CRM sandbox has no ready closed-won opportunity")
    # A few spare: a ready deal can still park (its account's parent customer not yet in the ERP, say),
    # and the spare ones take the place of those that do.
    seeded = max(0, runs + _SPARE - len(ready))
    if seeded:
        sf = await _salesforce(client)
        ready += [await _clone(client, sf, ready[n % len(ready)], n + 1) for n in range(seeded)]
    return ready[: runs + _SPARE], seeded


class Outcome:
    def __init__(self) -> None:
        self.wall: list[float] = []
        self.server_side: list[float] = []
        self.parked: dict[str, int] = {}
        self.seeded = 0
        self.seconds = 0.0


async def run(base: str, token: str, runs: int, concurrency: int) -> Outcome:
    headers = {"Authorization": f"Bearer {token}"}
    outcome = Outcome()
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    async with httpx.AsyncClient(base_url=base, timeout=90, limits=limits) as client:
        queue, outcome.seeded = await candidates(client, headers, runs)
        in_flight = 0  # activations posted and not answered yet

        async def activate_next() -> None:
            nonlocal in_flight
            while queue and len(outcome.wall) + in_flight < runs:
                opportunity_id = queue.pop(0)
                in_flight += 1
                started = time.perf_counter()
                response = await client.post(
                    "/process/v1/project-activations",
                    json={"opportunity_id": opportunity_id},
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=60"},
                )
                elapsed = time.perf_counter() - started
                in_flight -= 1
                body = response.json()
                if response.status_code != 202 or body.get("state") != "completed":
                    # Parked for a person (say, a probable duplicate customer) or refused: not timed.
                    issue = body.get("issue") or {}
                    reason = (
                        f"{issue.get('code')} at {issue.get('step')}"
                        if issue
                        else body.get("state", f"{response.status_code} {body.get('type', '')}".strip())
                    )
                    if issue:
                        print(f"parked: {opportunity_id}: {reason}: {issue.get('message')}", file=sys.stderr)
                    outcome.parked[reason] = outcome.parked.get(reason, 0) + 1
                    continue
                outcome.wall.append(elapsed * 1000)
                # Step times have millisecond precision (a run's created_at may only have seconds).
                first = dt.datetime.fromisoformat(body["steps"][0]["started_at"])
                last = dt.datetime.fromisoformat(body["steps"][-1]["completed_at"])
                outcome.server_side.append((last - first).total_seconds() * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(activate_next() for _ in range(concurrency)))
        outcome.seconds = time.perf_counter() - started
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="activations to time")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = server_env(data_dir, port)
        token = server_token(env, "system:read process:run process:read")
        with running_server(env, base):
            outcome = asyncio.run(run(base, token, args.runs, args.concurrency))

    wall, server_side, parked = outcome.wall, outcome.server_side, outcome.parked
    if not wall:
        raise SystemExit(f"no activation completed; parked or refused: {parked}")
    per_second = len(wall) / outcome.seconds
    print(
        f"project activation, default setup (SQLite, in-process worker and sandboxes), {len(wall)} runs, "
        f"concurrency {args.concurrency}, {os.cpu_count()} cores; {outcome.seeded} deals seeded; "
        f"parked, not timed: {parked or 'none'}"
    )
    print(f"{'measure':<26} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8} {'mean ms':>8}")
    for name, values in (("POST to completed (caller)", wall), ("first to last step (run)", server_side)):
        print(
            f"{name:<26} {_percentile(values, 50):8.1f} {_percentile(values, 90):8.1f} {max(values):8.1f} "
            f"{statistics.fmean(values):8.1f}"
        )
    print(f"throughput: {per_second:.2f} activations completed per second ({outcome.seconds:.2f} s window)")
    if args.json:
        figures = {
            "p50_ms": round(_percentile(wall, 50), 1),
            "p90_ms": round(_percentile(wall, 90), 1),
            "per_second": round(per_second, 2),
            "runs": len(wall),
            "concurrency": args.concurrency,
            "parked": parked,
        }
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
