"""Role views: each view's p50 against the p50 of the slowest of its sources, measured through the gateway in
one run.

The whole gateway in process (embedded defaults, the vendor sandboxes mounted), as the tests run it. Seeding
is not measured: a won deal is activated, a month of approved time is entered in Kantata and billed
for US01, so the finance and delivery views have invoices, items and a project to show. Then, round after
round, each view and each of its sources is called through the whole gateway (token, scope check, rate limit,
the tier's handler, the sandboxes) one after the other, so machine noise hits them alike.

A view's sources are the tier calls its sections make (``GET /experience/v1/views`` lists them); a section
declared ``after`` another cannot start before that one ends, so besides the slowest single source the
report gives the critical path: the slowest chain of sections, each at its source's p50. A view that costs
its critical path plus a little is composed as well as its declaration allows; one that costs the sum of its
sources calls them one after another.

    python bench/experience_views.py [--rounds 200] [--vendor-latency-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.billing import Bench, _last_month  # noqa: E402
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID, READY_OPPORTUNITY_ID  # noqa: E402


@dataclass
class Call:
    """One request through the gateway: a view, or one of its sources."""

    name: str
    method: str
    path: str
    scope: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)

    async def run(self, bench: Bench, headers: dict[str, dict[str, str]]) -> None:
        started = time.perf_counter()
        response = await bench.client.request(
            self.method, self.path, json=self.json, params=self.params, headers=headers[self.scope]
        )
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(
                f"{self.name}: {self.path} answered {response.status_code}: {response.text[:400]}"
            )
        self.samples.append(elapsed * 1000)

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)


@dataclass
class Case:
    """A view, its sources (by section), and the chains its ``after`` declarations make."""

    view: Call
    sources: dict[str, Call]
    chains: list[list[str]]

    def critical_path(self) -> float:
        return max(sum(self.sources[s].p50 for s in chain) for chain in self.chains)

    def slowest(self) -> tuple[str, float]:
        name = max(self.sources, key=lambda s: self.sources[s].p50)
        return name, self.sources[name].p50


def _cases(context: dict[str, str]) -> list[Case]:
    account = DEMO_ACCOUNT_ID
    won = context["won_deal"]
    return [
        Case(
            view=Call("sales.account", "GET", f"/experience/v1/sales/accounts/{account}", "experience:sales"),
            sources={
                "account": Call("account", "GET", f"/system/v1/crm/accounts/{account}", "system:read"),
                "opportunities": Call(
                    "opportunities",
                    "GET",
                    f"/system/v1/crm/accounts/{account}/opportunities",
                    "system:read",
                    params={"limit": 25},
                ),
                # The readiness section checks each won deal of the page at once: one check is its source.
                "readiness": Call(
                    "readiness",
                    "POST",
                    "/process/v1/activation-readiness",
                    "process:run",
                    json={"opportunity_id": won},
                ),
            },
            chains=[["account"], ["opportunities", "readiness"]],
        ),
    ]


SCOPES = (
    "experience:sales",
    "experience:finance",
    "experience:delivery",
    "experience:ops",
    "system:read",
    "process:run",
    "process:read",
)


async def _seed(bench: Bench) -> dict[str, str]:
    period = _last_month()
    project = await bench.activate(READY_OPPORTUNITY_ID)
    if project is None:
        raise SystemExit("the demo deal did not activate")
    await bench.add_rate(READY_OPPORTUNITY_ID)
    await bench.time_entries(project, period, 20)
    await bench.bill([project], period)
    opportunities = (
        await bench.client.get(
            f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}/opportunities",
            params={"limit": 25},
            headers=bench.auth("system:read"),
        )
    ).json()["items"]
    won = next(o["id"] for o in opportunities if o["is_won"] and not o.get("project_id"))
    return {"project": project, "period": period, "won_deal": won}


VENDORS = ("salesforce", "kantata", "netsuite", "business-central", "anaplan")


async def _vendor_latency(bench: Bench, latency_ms: int) -> None:
    """Every sandbox answers ``latency_ms`` later (the fault injector's ``latency``), as a vendor across a
    network does: a source's cost is then mostly waiting, which a view can overlap, not CPU, which it
    cannot (in process, every tier shares one event loop)."""
    if not latency_ms:
        return
    for vendor in VENDORS:
        async with bench.sandbox(vendor) as sandbox:
            response = await sandbox.post(
                "/__sandbox/faults", json={"kind": "latency", "latency_ms": latency_ms}
            )
            if response.status_code != 201:
                raise SystemExit(f"{vendor}: latency fault refused: {response.text[:200]}")


async def main(rounds: int, warmup: int, latency_ms: int) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        async with Bench(data_dir) as bench:
            context = await _seed(bench)
            await _vendor_latency(bench, latency_ms)
            headers = {scope: bench.auth(scope) for scope in SCOPES}
            cases = _cases(context)
            calls: list[Call] = [c for case in cases for c in (case.view, *case.sources.values())]
            for _ in range(warmup):
                for call in calls:
                    await call.run(bench, headers)
            for call in calls:
                call.samples.clear()
            for _ in range(rounds):
                for call in calls:
                    await call.run(bench, headers)
    _report(cases, rounds, latency_ms)


def _report(cases: list[Case], rounds: int, latency_ms: int) -> None:
    print(f"{rounds} rounds, every vendor call {latency_ms} ms late; p50 in ms, through the whole gateway\n")
    header = (
        f"{'view':<24}{'view p50':>10}{'slowest source (p50)':>34}{'critical path':>15}{'view/slowest':>14}"
    )
    print(header)
    for case in cases:
        name, slowest = case.slowest()
        print(
            f"{case.view.name:<24}{case.view.p50:>10.2f}{f'{name} {slowest:.2f}':>34}"
            f"{case.critical_path():>15.2f}{case.view.p50 / slowest:>14.2f}"
        )
    print("\nsources (p50 ms):")
    for case in cases:
        listed: Callable[[str], str] = lambda s, case=case: f"{s} {case.sources[s].p50:.2f}"  # noqa: E731
        print(f"  {case.view.name}: " + ", ".join(listed(s) for s in case.sources))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--vendor-latency-ms", type=int, default=20, help="added to every vendor call (0: none)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.warmup, args.vendor_latency_ms))
