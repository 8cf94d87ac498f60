"""Role views: each view's p50 against the p50 of the slowest of its sources, measured through the gateway in
one run.

The whole gateway in process (embedded defaults, the vendor sandboxes mounted), as the tests run it. Seeding
is not measured: a won deal is activated, a month of approved time is entered in Kantata and billed for US01,
so the finance and delivery views have invoices, items and a project to show. Then every vendor call is
made ``--vendor-latency-ms`` late (the sandboxes' fault injector), as across a network: in process every
tier shares one event loop, so only waiting can overlap, as it does in a deployment.

Each round calls every view once through the whole gateway (token, scope check, rate limit, the tier's
handler, its calls to the tiers below through their own governance, the sandboxes). A view's answer says in
``Server-Timing`` how long each of its sections took, from the moment it could start: a section's time is
its sources' cost as the view pays it (for a section reading several calls, e.g. one per project, their
cost together). Reported per view: its p50 (measured by the caller), the p50 of its slowest section, and
the critical path: the slowest chain of sections its ``after`` declarations make, each at its p50. A view
that costs about its critical path overlaps everything its declaration allows; one that costs the sum of
its sections reads them one after another.

The sales view's sources are also called directly, alone, in the same rounds, as a check on the
section timings.

    python bench/experience_views.py [--rounds 100] [--vendor-latency-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.billing import Bench, _last_month  # noqa: E402
from experience_apis.compose import View, registered_views  # noqa: E402
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID, READY_OPPORTUNITY_ID  # noqa: E402

VENDORS = ("salesforce", "kantata", "netsuite", "business-central", "anaplan")


@dataclass
class Call:
    """One request through the gateway, and what it cost each time."""

    name: str
    method: str
    path: str
    scope: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)
    sections: dict[str, list[float]] = field(default_factory=dict)

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
        for name, duration in _server_timing(response.headers.get("server-timing", "")).items():
            self.sections.setdefault(name, []).append(duration)

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    def section_p50(self) -> dict[str, float]:
        return {name: statistics.median(values) for name, values in self.sections.items() if name != "view"}


def _server_timing(header: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for metric in filter(None, (part.strip() for part in header.split(","))):
        name, *params = (p.strip() for p in metric.split(";"))
        for param in params:
            if param.startswith("dur="):
                found[name] = float(param[4:])
    return found


def _critical_path(view: View[Any], p50: dict[str, float]) -> tuple[float, list[str]]:
    """The slowest chain of sections (each after the one before it), at their p50s."""
    best: dict[str, tuple[float, list[str]]] = {}
    for section in view.sections:  # declared in an order where every `after` comes first
        before = max((best[name] for name in section.after), default=(0.0, []), key=lambda c: c[0])
        best[section.name] = (before[0] + p50.get(section.name, 0.0), [*before[1], section.name])
    return max(best.values(), key=lambda c: c[0])


def _views(context: dict[str, str]) -> list[Call]:
    return [
        Call("sales.account", "GET", f"/experience/v1/sales/accounts/{DEMO_ACCOUNT_ID}", "experience:sales"),
        Call("finance.unbilled", "GET", "/experience/v1/finance/unbilled", "experience:finance"),
        Call("finance.receivables", "GET", "/experience/v1/finance/receivables", "experience:finance"),
        Call(
            "finance.invoice-lineage",
            "GET",
            f"/experience/v1/finance/invoices/{context['erp_invoice_id']}",
            "experience:finance",
        ),
        Call("finance.approvals", "GET", "/experience/v1/finance/approvals", "experience:finance"),
        Call(
            "delivery.project",
            "GET",
            f"/experience/v1/delivery/projects/{context['project']}",
            "experience:delivery",
        ),
        Call("delivery.portfolio", "GET", "/experience/v1/delivery/projects", "experience:delivery"),
        Call("ops.overview", "GET", "/experience/v1/ops/overview", "experience:ops"),
        Call("ops.exceptions", "GET", "/experience/v1/ops/exceptions", "experience:ops"),
        Call("ops.dead_letters", "GET", "/experience/v1/ops/dead-letters", "experience:ops"),
    ]


def _sales_sources(context: dict[str, str]) -> dict[str, Call]:
    """The sales view's sources called directly: the account, the opportunity page, one readiness check."""
    account = DEMO_ACCOUNT_ID
    return {
        "account": Call("account", "GET", f"/system/v1/crm/accounts/{account}", "system:read"),
        "opportunities": Call(
            "opportunities",
            "GET",
            f"/system/v1/crm/accounts/{account}/opportunities",
            "system:read",
            params={"limit": 25},
        ),
        "readiness": Call(
            "readiness",
            "POST",
            "/process/v1/activation-readiness",
            "process:run",
            json={"opportunity_id": context["won_deal"]},
        ),
    }


SCOPES = (
    "experience:sales",
    "experience:finance",
    "experience:delivery",
    "experience:ops",
    "system:read",
    "process:run",
)


async def _seed(bench: Bench) -> dict[str, str]:
    period = _last_month()
    project = await bench.activate(READY_OPPORTUNITY_ID)
    if project is None:
        raise SystemExit("the demo deal did not activate")
    await bench.add_rate(READY_OPPORTUNITY_ID)
    await bench.time_entries(project, period, 20)
    _, _, _ = await bench.bill([project], period)
    runs = (await bench.client.get("/process/v1/billing-runs", headers=bench.auth("process:read"))).json()
    billing = (
        await bench.client.get(
            f"/process/v1/billing-runs/{runs['items'][0]['id']}", headers=bench.auth("process:read")
        )
    ).json()
    invoice = next(
        p["result"]["erp_invoice_id"]
        for p in billing["projects"]
        if (p.get("result") or {}).get("erp_invoice_id")
    )
    opportunities = (
        await bench.client.get(
            f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}/opportunities",
            params={"limit": 25},
            headers=bench.auth("system:read"),
        )
    ).json()["items"]
    won = next(o["id"] for o in opportunities if o["is_won"] and not o.get("project_id"))
    return {"project": project, "period": period, "won_deal": won, "erp_invoice_id": invoice}


async def _vendor_latency(bench: Bench, latency_ms: int) -> None:
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
        # What is measured is the views, not the budgets: Stratum's own per-client limits and the sandboxes'
        # vendor limits (Kantata 200 a second, Anaplan 600 a minute) are lifted, since the portfolio and
        # unbilled views read every project's items with no think time between rounds.
        unmetered = "1000000/minute"
        async with Bench(
            data_dir,
            rate_limit_system=unmetered,
            rate_limit_process=unmetered,
            rate_limit_experience=unmetered,
            rate_limit_system_inner=unmetered,
            rate_limit_process_inner=unmetered,
            sandbox_kantata_requests_per_second=1_000_000,
            sandbox_anaplan_requests_per_minute=1_000_000,
        ) as bench:
            context = await _seed(bench)
            await _vendor_latency(bench, latency_ms)
            headers = {scope: bench.auth(scope) for scope in SCOPES}
            views = _views(context)
            sources = _sales_sources(context)
            calls = [*views, *sources.values()]
            for _ in range(warmup):
                for call in calls:
                    await call.run(bench, headers)
            for call in calls:
                call.samples.clear()
                call.sections.clear()
            for _ in range(rounds):
                for call in calls:
                    await call.run(bench, headers)
    _report(views, sources, rounds, latency_ms)


def _report(views: list[Call], sources: dict[str, Call], rounds: int, latency_ms: int) -> None:
    declared = {view.name: view for view in registered_views()}
    print(f"{rounds} rounds, every vendor call {latency_ms} ms late; p50 in ms, through the whole gateway\n")
    columns = ("view", 26), ("view", 9), ("slowest section", 34), ("critical path", 15), ("view-path", 11)
    print(
        "".join(f"{n:<{w}}" if i == 0 else f"{n:>{w}}" for i, (n, w) in enumerate(columns)) + "  view/slowest"
    )
    for call in views:
        p50 = call.section_p50()
        slowest = max(p50, key=lambda name: p50[name])
        path, chain = _critical_path(declared[call.name], p50)
        print(
            f"{call.name:<26}{call.p50:>9.1f}{f'{slowest} {p50[slowest]:.1f}':>34}{path:>15.1f}"
            f"{call.p50 - path:>11.1f}{call.p50 / p50[slowest]:>14.2f}"
        )
    print("\nsections (p50 ms; a chain is the critical path):")
    for call in views:
        p50 = call.section_p50()
        _, chain = _critical_path(declared[call.name], p50)
        listed = ", ".join(f"{name} {value:.1f}" for name, value in p50.items())
        print(f"  {call.name}: {listed}  [chain: {' > '.join(chain)}]")
    print(
        "\nthe sales view's sources called alone (p50 ms): "
        + ", ".join(f"{n} {c.p50:.1f}" for n, c in sources.items())
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--vendor-latency-ms", type=int, default=20, help="added to every vendor call (0: none)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.warmup, args.vendor_latency_ms))
