"""Billing runs: how long one project with many approved time entries, and many projects in one period, take.

The whole gateway in process (SQLite run database, in-process workflow worker and state store, the vendor
sandboxes, NetSuite for every legal entity), as the tests run it. Seeding is not measured: won deals are
activated by the activation workflow, each deal's rate card gets the role the entries are booked as, and
the time entries are entered through the Kantata sandbox's API and approved in one batch. Measured: from
the billing run's POST to every project run completed (wall), and each project run's own time (queued to
completed).

    python bench/billing.py --entries 2000           # one project, 2,000 approved time entries
    python bench/billing.py --projects 200 --per-project 5   # 200 projects in one period

``--json`` prints one JSON object as the last line (``{"entries": 2000, "p50_s": ..., "runs": 3}``, with the
projects' figures when ``--projects`` is given) for ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apis.config import load_settings  # noqa: E402
from apis.edge import Edge  # noqa: E402
from apis.gateway import build_gateway  # noqa: E402
from bench.serving import salesforce_sandbox_token  # noqa: E402
from sandboxes.kantata.data import DEMO_USER_ID  # noqa: E402

# The role the entries are booked as: Kantata names it by id on a time entry, the rate card by name.
ROLE = "4202"
ROLE_NAME = "Project Manager"


def _last_month() -> str:
    first = dt.datetime.now(dt.UTC).date().replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


class Bench:
    def __init__(self, data_dir: str, **overrides: Any) -> None:
        settings = load_settings(
            {},
            data_dir=data_dir,
            log_level="warning",
            workflows={"poll_interval_seconds": 0.05, "step_backoff_base_seconds": 0.05},
            erp_vendor="netsuite",
            kantata={"requests_per_second": 100_000},
            **overrides,
        )
        self.gateway = build_gateway(settings)
        self.app = Edge(self.gateway)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://bench", timeout=120
        )

    async def __aenter__(self) -> Bench:
        await self.gateway.runtime.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.client.aclose()
        await self.gateway.runtime.stop()

    def auth(self, scope: str) -> dict[str, str]:
        server = self.gateway.runtime.dev_server
        assert server is not None  # embedded defaults: the gateway's own development issuer
        token = server.issue_token("stratum-demo", scope)
        return {"Authorization": f"Bearer {token}"}

    def sandbox(self, vendor: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=f"http://bench/sandboxes/{vendor}"
        )

    def state(self, vendor: str) -> Any:
        mount = next(m for m in self.gateway.mounts if m.prefix == f"/sandboxes/{vendor}")
        return mount.app.state.sandbox

    def clone_deals(self, template_id: str, count: int, first: int = 0) -> list[str]:
        """``count`` won deals like ``template_id`` (same account, terms and rate card), put in the CRM
        sandbox's store as seed data: the seed has only a handful of time-and-materials deals."""
        from sandboxes.salesforce.data import salesforce_id

        records = self.state("salesforce").records
        template = records["Opportunity"][template_id]
        lines = [r for r in records["Rate_Card_Line__c"].values() if r["Opportunity__c"] == template_id]
        made: list[str] = []
        for n in range(count):
            deal_id = salesforce_id("006", 900_000 + first + n)
            records["Opportunity"][deal_id] = {**template, "Id": deal_id, "Name": f"{template['Name']} #{n}"}
            for m, line in enumerate(lines):
                line_id = salesforce_id("a02", 900_000 + (first + n) * 10 + m)
                records["Rate_Card_Line__c"][line_id] = {**line, "Id": line_id, "Opportunity__c": deal_id}
            made.append(deal_id)
        return made

    async def activate(self, opportunity_id: str) -> str | None:
        response = await self.client.post(
            "/process/v1/project-activations",
            json={"opportunity_id": opportunity_id},
            headers={**self.auth("process:run"), "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=60"},
        )
        run = response.json()
        if run.get("state") != "completed":
            return None
        project: str = run["result"]["psa_project_id"]
        return project

    async def add_rate(self, opportunity_id: str) -> None:
        async with self.sandbox("salesforce") as sf:
            token = await salesforce_sandbox_token(sf, "/services/oauth2/token")
            await sf.post(
                "/services/data/v61.0/sobjects/Rate_Card_Line__c",
                json={
                    "Opportunity__c": opportunity_id,
                    "Role__c": ROLE_NAME,
                    "Rate__c": 50.0,
                    "Unit__c": "Hour",
                },
                headers={"Authorization": f"Bearer {token}"},
            )

    async def time_entries(self, project_id: str, period: str, count: int) -> None:
        # Seeding (not measured) goes through the sandbox's own create, which validates as its API does,
        # without the sandbox's request rate limit (2,000 POSTs would mostly wait on it).
        kantata = self.state("kantata")
        ids: list[str] = []
        for n in range(count):
            body = {
                "time_entry": {
                    "workspace_id": project_id,
                    "date_performed": f"{period}-{1 + n % 28:02d}",
                    "time_in_minutes": 15,  # small, so the invoice stays within budget and threshold
                    "user_id": DEMO_USER_ID,
                    "role_id": ROLE,
                    "billable": True,
                }
            }
            created = kantata.create(kantata.resource("time_entries"), body)
            ids += [ref["id"] for ref in created["results"]]
        kantata.approve_time(ids)

    async def bill(self, project_ids: list[str], period: str) -> tuple[float, list[float], dict[str, int]]:
        started = time.perf_counter()
        response = await self.client.post(
            "/process/v1/billing-runs",
            json={"legal_entity": "US01", "period": period, "project_ids": project_ids},
            headers={**self.auth("process:run"), "Idempotency-Key": uuid.uuid4().hex},
        )
        run_id = response.json()["run"]["id"]
        while True:
            view = (
                await self.client.get(f"/process/v1/billing-runs/{run_id}", headers=self.auth("process:read"))
            ).json()
            if view["run"]["state"] == "completed" or (
                len(view["projects"]) == len(project_ids)
                and all(r["state"] in ("completed", "exception", "dead_letter") for r in view["projects"])
            ):
                break
            await asyncio.sleep(0.02)
        wall = time.perf_counter() - started
        own = [
            (
                dt.datetime.fromisoformat(r["completed_at"]) - dt.datetime.fromisoformat(r["created_at"])
            ).total_seconds()
            for r in view["projects"]
            if r.get("completed_at")
        ]
        states: dict[str, int] = {}
        for r in view["projects"]:
            states[r["state"]] = states.get(r["state"], 0) + 1
            if r.get("issue"):
                states[f"parked: {r['issue']['code']}"] = states.get(f"parked: {r['issue']['code']}", 0) + 1
            billed = (r.get("result") or {}).get("time_entries", 0)
            states["time entries invoiced"] = states.get("time entries invoiced", 0) + billed
        return wall, own, states


async def main(entries: int, projects: int, per_project: int, repeat: int) -> dict[str, Any]:
    period = _last_month()
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as data_dir:
        async with Bench(data_dir) as bench:
            from sandboxes.salesforce.data import READY_OPPORTUNITY_ID

            # Every project bills the same kind of deal: clones of the ready time-and-materials deal (its
            # account, terms and rate card, with the role the entries are booked as).
            await bench.add_rate(READY_OPPORTUNITY_ID)
            if entries:
                walls: list[float] = []
                for deal in bench.clone_deals(READY_OPPORTUNITY_ID, repeat, first=0):
                    project = await bench.activate(deal)
                    assert project is not None, f"{deal} was not activated"
                    await bench.time_entries(project, period, entries)
                    wall, own, states = await bench.bill([project], period)
                    walls.append(wall)
                    del own  # run timestamps are whole seconds: only the wall tells at this size
                    print(f"one project, {entries} entries: wall {wall:.2f} s, {states}")
                print(
                    f"one project, {entries} approved time entries, POST to completed project run: "
                    f"median {statistics.median(walls):.2f} s over {len(walls)} runs "
                    f"(min {min(walls):.2f} s, max {max(walls):.2f} s)"
                )
                summary.update(entries=entries, p50_s=round(statistics.median(walls), 3), runs=len(walls))
            if projects:
                clones = bench.clone_deals(READY_OPPORTUNITY_ID, projects, first=1_000)
                chosen: list[str] = []
                gate = asyncio.Semaphore(8)

                async def seed(deal: str) -> None:
                    async with gate:
                        project = await bench.activate(deal)
                        if project is not None:
                            await bench.time_entries(project, period, per_project)
                            chosen.append(project)

                await asyncio.gather(*(seed(deal) for deal in clones))
                wall, own, states = await bench.bill(chosen, period)
                print(
                    f"{len(chosen)} projects x {per_project} entries: wall {wall:.2f} s, "
                    f"median project run {statistics.median(own) if own else float('nan'):.2f} s, {states}"
                )
                summary.update(projects=len(chosen), per_project=per_project, projects_wall_s=round(wall, 3))
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=0, help="time entries on one project (0: skip)")
    parser.add_argument("--projects", type=int, default=0, help="projects in one period (0: skip)")
    parser.add_argument("--per-project", type=int, default=5)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of the one-project bill (each a new project)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    summary = asyncio.run(main(args.entries, args.projects, args.per_project, args.repeat))
    if args.json:
        print(json.dumps(summary))
