"""Role views: each view's p50 against the p50 of the slowest of its sources, measured through the gateway in
one run.

The whole gateway in process (embedded defaults, the vendor sandboxes mounted), as the tests run it. Seeding
is not measured: a won deal is activated, a month of approved time is entered in Kantata and billed for US01,
so the finance and delivery views have invoices, items and a project to show. Then every vendor call is
made ``--vendor-latency-ms`` late (the sandboxes' fault injector), as across a network: in process every
tier shares one event loop, so only waiting can overlap, as it does in a deployment.

Each round calls every view once through the whole gateway (token, scope check, rate limit, the tier's
handler, its calls to the tiers below through their own governance, the sandboxes), every paged view at
``limit=25`` (goal 4's page; the seed holds fewer rows than that, so each view shows all it has), and then
each of the views' sources alone.

A *source* is one inner call: one request a view makes to the system or process tier (e.g. one project's
billable items, first page; one readiness check), called directly with the arguments the view gives it. A
section that makes 25 such calls one after another costs 25 sources, not one: only a call that answers the
view's question in one request counts as one source. Reported per view: its p50 (measured by the caller),
the p50 of its slowest source, and the delta between them (goal 4: at most 1 ms). Also printed: each
section's p50 from the view's ``Server-Timing`` (its own time, from the moment it could start) and the
critical path: the slowest chain of sections its ``after`` declarations make. A view that costs about its
critical path overlaps everything its declaration allows; what is left above its slowest source is its
chains and its sections' many calls.

    python bench/experience_views.py [--rounds 100] [--vendor-latency-ms 20] [--json]
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.billing import Bench, _last_month  # noqa: E402
from experience_apis.compose import View, registered_views  # noqa: E402
from process_apis.billing_pricing import billing_key_as_written, run_id_of_billing_key  # noqa: E402
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
    # A lookup the view expects may find nothing (an FP&A system with no plan for the project) answers 404.
    expected: tuple[int, ...] = (200,)
    samples: list[float] = field(default_factory=list)
    sections: dict[str, list[float]] = field(default_factory=dict)

    async def run(self, bench: Bench, headers: dict[str, dict[str, str]]) -> None:
        started = time.perf_counter()
        response = await bench.client.request(
            self.method, self.path, json=self.json, params=self.params, headers=headers[self.scope]
        )
        elapsed = time.perf_counter() - started
        if response.status_code not in self.expected:
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


PAGE = 25  # items per page, as goal 4 measures: every paged view is asked for 25


def _views(context: dict[str, str]) -> list[Call]:
    page = {"limit": PAGE}
    return [
        Call(
            "sales.account",
            "GET",
            f"/experience/v1/sales/accounts/{DEMO_ACCOUNT_ID}",
            "experience:sales",
            params=page,
        ),
        Call("finance.unbilled", "GET", "/experience/v1/finance/unbilled", "experience:finance", params=page),
        Call(
            "finance.receivables",
            "GET",
            "/experience/v1/finance/receivables",
            "experience:finance",
            params=page,
        ),
        Call(
            "finance.invoice-lineage",
            "GET",
            f"/experience/v1/finance/invoices/{context['erp_invoice_id']}",
            "experience:finance",
        ),
        Call(
            "finance.approvals", "GET", "/experience/v1/finance/approvals", "experience:finance", params=page
        ),
        Call(
            "delivery.project",
            "GET",
            f"/experience/v1/delivery/projects/{context['project']}",
            "experience:delivery",
        ),
        Call(
            "delivery.portfolio",
            "GET",
            "/experience/v1/delivery/projects",
            "experience:delivery",
            params=page,
        ),
        Call("ops.overview", "GET", "/experience/v1/ops/overview", "experience:ops"),
        Call("ops.exceptions", "GET", "/experience/v1/ops/exceptions", "experience:ops", params=page),
        Call("ops.dead_letters", "GET", "/experience/v1/ops/dead-letters", "experience:ops", params=page),
    ]


def _sources(context: dict[str, str]) -> dict[str, Call]:
    """Every inner call a view makes, each called alone, with the arguments the view gives it (a listing
    read whole: its first page, at the view's page size). One entry is one call: a source is what one
    inner call costs, not what a section pays for several."""
    project, through = context["project"], context["today"]
    whole = {"limit": 200}
    # Time and expenses are read in pages of 1,000 (the PSA's largest for them), as the delivery views do.
    large = {"limit": 1000}
    calls = [
        Call("crm.account", "GET", f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}", "system:read"),
        # The unbilled page's customers' names in one call, as the view reads them.
        Call(
            "crm.accounts-by-id",
            "GET",
            "/system/v1/crm/accounts",
            "system:read",
            params={"id": context["unbilled_customers"]},
        ),
        Call(
            "crm.account-opportunities",
            "GET",
            f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}/opportunities",
            "system:read",
            params={"limit": PAGE},
        ),
        Call(
            "crm.won-opportunities",
            "GET",
            "/system/v1/crm/opportunities",
            "system:read",
            params={**whole, "stage": "closed_won"},
        ),
        Call("crm.opportunity", "GET", f"/system/v1/crm/opportunities/{context['deal']}", "system:read"),
        Call(
            "crm.opportunity-by-project",
            "GET",
            f"/system/v1/crm/opportunities/by-project/{project}",
            "system:read",
        ),
        Call(
            "process.readiness-by-account",
            "POST",
            "/process/v1/activation-readiness/by-account",
            "process:run",
            json={"account_id": DEMO_ACCOUNT_ID},
        ),
        Call("psa.projects", "GET", "/system/v1/psa/projects", "system:read", params=whole),
        Call("psa.project", "GET", f"/system/v1/psa/projects/{project}", "system:read"),
        Call(
            "psa.time-entries",
            "GET",
            "/system/v1/psa/time-entries",
            "system:read",
            params={**large, "project_id": project},
        ),
        Call(
            "psa.expenses",
            "GET",
            "/system/v1/psa/expenses",
            "system:read",
            params={**large, "project_id": project},
        ),
        # Every project's time and expenses in one listing each, as the portfolio reads them.
        Call(
            "psa.time-entries-of-projects",
            "GET",
            "/system/v1/psa/time-entries",
            "system:read",
            params={**large, "project_ids": context["projects"]},
        ),
        Call(
            "psa.expenses-of-projects",
            "GET",
            "/system/v1/psa/expenses",
            "system:read",
            params={**large, "project_ids": context["projects"]},
        ),
        Call(
            "psa.billable-items",
            "GET",
            f"/system/v1/psa/projects/{project}/billable-items",
            "system:read",
            params={**whole, "through": through},
        ),
        Call(
            "psa.billable-items-of-projects",
            "GET",
            "/system/v1/psa/billable-items",
            "system:read",
            params={**whole, "project_id": context["projects"], "through": through},
        ),
        *(
            # Every project's billable items of one kind, as the unbilled view reads them (kinds at once).
            Call(
                f"psa.billable-items-all-{kind}",
                "GET",
                "/system/v1/psa/billable-items",
                "system:read",
                params={"limit": 1000, "through": through, "kind": kind},
            )
            for kind in ("time", "expense", "milestone")
        ),
        Call("psa.project-invoices", "GET", f"/system/v1/psa/projects/{project}/invoices", "system:read"),
        Call(
            "psa.invoice-by-key",
            "GET",
            "/system/v1/psa/invoices",
            "system:read",
            params={"external_key": context["billing_key"]},
        ),
        Call(
            "psa.staffing-demands",
            "GET",
            f"/system/v1/psa/projects/{project}/staffing-demands",
            "system:read",
        ),
        Call(
            "psa.staffing-demands-of-projects",
            "GET",
            "/system/v1/psa/staffing-demands",
            "system:read",
            params={"project_id": context["projects"]},
        ),
        # A page of 1,000, as the receivables view reads every invoice.
        Call("erp.invoices", "GET", "/system/v1/erp/invoices", "system:read", params={"limit": 1000}),
        Call("erp.invoice", "GET", f"/system/v1/erp/invoices/{context['erp_invoice_id']}", "system:read"),
        Call("erp.customer", "GET", f"/system/v1/erp/customers/{context['erp_customer']}", "system:read"),
        # The receivables page's customers' names in one call, as the view reads them.
        Call(
            "erp.customers-by-id",
            "GET",
            "/system/v1/erp/customers",
            "system:read",
            params={"id": context["receivable_customers"]},
        ),
        Call(
            "erp.payments",
            "GET",
            "/system/v1/erp/payments",
            "system:read",
            params={**whole, "invoice_id": context["erp_invoice_id"]},
        ),
        Call(
            "fpa.forecast",
            "GET",
            f"/system/v1/fpa/projects/{context['forecast_key']}/forecast",
            "system:read",
            expected=(200, 404),
        ),
        Call(
            "process.billing-run", "GET", f"/process/v1/billing-runs/{context['billing_run']}", "process:read"
        ),
        Call(
            "process.running-billing-runs",
            "GET",
            "/process/v1/runs",
            "process:read",
            params={**whole, "workflow": "billing_run", "state": "running"},
        ),
        Call("process.exceptions", "GET", "/process/v1/exceptions", "process:read", params=whole),
        Call("process.dead-letters", "GET", "/process/v1/dead-letters", "process:read", params=whole),
        Call("process.run-stats", "GET", "/process/v1/run-stats", "process:read"),
        Call("process.sync-status", "GET", "/process/v1/sync-status", "process:read"),
        Call("system.vendor-api-budgets", "GET", "/system/v1/vendor-api-budgets", "system:read"),
    ]
    return {call.name: call for call in calls}


# Each view's inner calls (what its sections call, whatever the number of times).
VIEW_SOURCES: dict[str, tuple[str, ...]] = {
    "sales.account": ("crm.account", "crm.account-opportunities", "process.readiness-by-account"),
    "finance.unbilled": (
        "psa.projects",
        "crm.won-opportunities",
        "psa.billable-items-all-time",
        "psa.billable-items-all-expense",
        "psa.billable-items-all-milestone",
        "crm.accounts-by-id",
    ),
    "finance.receivables": ("erp.invoices", "erp.customers-by-id"),
    "finance.invoice-lineage": (
        "erp.invoice",
        "erp.payments",
        "psa.invoice-by-key",
        "psa.project",
        "crm.opportunity-by-project",
        "psa.time-entries",
        "psa.expenses",
        "process.billing-run",
    ),
    "finance.approvals": ("process.running-billing-runs", "process.exceptions"),
    "delivery.project": (
        "psa.project",
        "crm.opportunity-by-project",
        "psa.time-entries",
        "psa.expenses",
        "psa.billable-items",
        "psa.project-invoices",
        "psa.staffing-demands",
        "fpa.forecast",
    ),
    "delivery.portfolio": (
        "psa.projects",
        "crm.won-opportunities",
        "psa.time-entries-of-projects",
        "psa.expenses-of-projects",
        "psa.billable-items-of-projects",
        "psa.staffing-demands-of-projects",
    ),
    "ops.overview": (
        "process.run-stats",
        "process.exceptions",
        "process.dead-letters",
        "process.sync-status",
        "system.vendor-api-budgets",
    ),
    "ops.exceptions": ("process.exceptions",),
    "ops.dead_letters": ("process.dead-letters",),
}


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
    erp_invoice = (
        await bench.client.get(f"/system/v1/erp/invoices/{invoice}", headers=bench.auth("system:read"))
    ).json()
    key = billing_key_as_written(erp_invoice["external_key"])
    deal = (
        await bench.client.get(
            f"/system/v1/crm/opportunities/{READY_OPPORTUNITY_ID}", headers=bench.auth("system:read")
        )
    ).json()
    projects = (
        await bench.client.get(
            "/system/v1/psa/projects", params={"limit": 50}, headers=bench.auth("system:read")
        )
    ).json()["items"]
    receivables = (
        await bench.client.get(
            "/experience/v1/finance/receivables",
            params={"limit": PAGE},
            headers=bench.auth("experience:finance"),
        )
    ).json()
    receivable_customers = sorted({r["customer_id"] for r in receivables["rows"]["items"]})
    unbilled = (
        await bench.client.get(
            "/experience/v1/finance/unbilled",
            params={"limit": PAGE},
            headers=bench.auth("experience:finance"),
        )
    ).json()
    # Every row's customer (the view names the customers of its totals too, not only the page's).
    unbilled_customers = sorted({c["customer_id"] for c in unbilled["by_customer"] if c.get("customer_id")})
    return {
        # The receivables page's customers, whose names the view reads in one call.
        "receivable_customers": ",".join(receivable_customers) or erp_invoice["customer_id"],
        "unbilled_customers": ",".join(unbilled_customers) or DEMO_ACCOUNT_ID,
        # Every project's billable items in one listing, as the unbilled and portfolio views read them.
        "projects": ",".join(p["id"] for p in projects),
        "project": project,
        "period": period,
        "today": dt.datetime.now(dt.UTC).date().isoformat(),
        "deal": READY_OPPORTUNITY_ID,
        "erp_invoice_id": invoice,
        "erp_customer": erp_invoice["customer_id"],
        "billing_key": key,
        "billing_run": run_id_of_billing_key(key) or "",
        # The forecast the delivery view finds first: under the deal's ERP project.
        "forecast_key": (deal.get("system_ids") or {}).get("erp") or project,
    }


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


async def main(rounds: int, warmup: int, latency_ms: int, as_json: bool) -> None:
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
            sources = _sources(context)
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
    _report(views, sources, rounds, latency_ms, as_json)


def _report(views: list[Call], sources: dict[str, Call], rounds: int, latency_ms: int, as_json: bool) -> None:
    declared = {view.name: view for view in registered_views()}
    print(
        f"{rounds} rounds, every vendor call {latency_ms} ms late, {PAGE} items a page; p50 in ms, through "
        "the whole gateway\n"
    )
    print(f"{'view':<26}{'p50':>9}{'slowest source':>40}{'delta':>9}{'critical path':>15}")
    figures: dict[str, dict[str, float]] = {}
    for call in views:
        slowest = max(VIEW_SOURCES[call.name], key=lambda name: sources[name].p50)
        source_p50 = sources[slowest].p50
        path, _ = _critical_path(declared[call.name], call.section_p50())
        figures[call.name] = {
            "p50_ms": round(call.p50, 2),
            "slowest_source_ms": round(source_p50, 2),
            "delta_ms": round(call.p50 - source_p50, 2),
        }
        print(
            f"{call.name:<26}{call.p50:>9.1f}{f'{slowest} {source_p50:.1f}':>40}"
            f"{call.p50 - source_p50:>9.1f}{path:>15.1f}"
        )
    print("\nsections (p50 ms, from Server-Timing; a chain is the critical path):")
    for call in views:
        p50 = call.section_p50()
        _, chain = _critical_path(declared[call.name], p50)
        listed = ", ".join(f"{name} {value:.1f}" for name, value in p50.items())
        print(f"  {call.name}: {listed}  [chain: {' > '.join(chain)}]")
    print("\nsources, each one inner call alone (p50 ms): ")
    for name, call in sources.items():
        print(f"  {name} {call.p50:.1f}")
    if as_json:
        print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--vendor-latency-ms", type=int, default=20, help="added to every vendor call (0: none)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="also print, as the last line, {view: {p50_ms, slowest_source_ms, delta_ms}}",
    )
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.warmup, args.vendor_latency_ms, args.json))
