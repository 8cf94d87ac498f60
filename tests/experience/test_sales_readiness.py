"""The sales view's readiness: one by-account check of the account's won deals, asked for with the account
and the page, each report put on its deal; a won deal the check did not cover is never shown as ready."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from contracts.models import Customer, Opportunity, OpportunityPage, OpportunityStage
from contracts.models.experience import SalesAccountView, SectionStatus
from contracts.models.process import AccountReadiness, ReadinessReport, RuleResult
from experience_apis.client import ExperienceClients
from experience_apis.sales import get_sales_account_view
from process_apis.client import ProcessApiClient
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID
from system_apis.client import SystemApiClient

VIEW = f"/experience/v1/sales/accounts/{DEMO_ACCOUNT_ID}"
BY_ACCOUNT = "/process/v1/activation-readiness/by-account"


async def _salesforce_paths(gw: Any) -> list[str]:
    async with gw.sandbox("salesforce") as sandbox:
        paths: list[str] = [r["path"] for r in (await sandbox.get("/__sandbox/stats")).json()["requests"]]
    return paths


async def test_each_won_deal_carries_the_accounts_readiness_report(gw: Any) -> None:
    response = await gw.client.get(VIEW, params={"limit": 25}, headers=gw.auth("experience:sales"))
    assert response.status_code == 200, response.text
    view = response.json()
    checked = await gw.client.post(
        BY_ACCOUNT, json={"account_id": DEMO_ACCOUNT_ID}, headers=gw.auth("process:run")
    )
    reports = checked.json()["reports"]
    items = view["opportunities"]["items"]
    assert {i["opportunity"]["id"] for i in items if i["readiness"]["status"] == "ok"} == set(reports)
    for item in items:
        deal, readiness = item["opportunity"], item["readiness"]
        if not deal["is_won"] or deal.get("project_id"):
            assert readiness == {"status": "not_applicable"}
            continue
        report = reports[deal["id"]]
        assert readiness["ready"] is report["ready"]
        assert readiness.get("failed", []) == report["failed"]
    summary = view["summary"]
    assert summary["ready_to_activate"] == sum(1 for r in reports.values() if r["ready"])
    assert summary["blocked"] == sum(1 for r in reports.values() if not r["ready"])
    assert summary["ready_to_activate"] > 0
    assert summary["blocked"] > 0


async def test_the_view_reads_no_deal_one_by_one(gw: Any) -> None:
    before = len(await _salesforce_paths(gw))
    response = await gw.client.get(VIEW, params={"limit": 25}, headers=gw.auth("experience:sales"))
    assert response.status_code == 200, response.text
    asked = (await _salesforce_paths(gw))[before:]
    # The page, and the account's deals with their terms for the readiness check: two queries in all,
    # whatever the number of won deals; no deal read by its id, no child query per deal.
    assert [p for p in asked if "/sobjects/Opportunity/" in p] == []
    assert sum(1 for p in asked if p.endswith("/query/")) == 2


# --- the readiness answer as the view meets it (tier clients on an httpx.MockTransport) -------------------

ACCOUNT = "001Dn000005uXjzIAE"


def _deal(deal_id: str, *, won: bool = True, project_id: str | None = None) -> Opportunity:
    return Opportunity(
        id=deal_id,
        name=f"Deal {deal_id}",
        customer_id=ACCOUNT,
        stage=OpportunityStage.CLOSED_WON if won else OpportunityStage.CLOSED_LOST,
        is_won=won,
        is_closed=True,
        project_id=project_id,
    )


PAGE = OpportunityPage(
    items=[
        _deal("006A00000000001AAA"),  # ready
        _deal("006A00000000002AAA"),  # blocked
        _deal("006A00000000003AAA"),  # won, but no report
        _deal("006A00000000004AAA", won=False),
        _deal("006A00000000005AAA", project_id="4417"),
    ]
)
FAILED = RuleResult(rule="legal_entity", passed=False, message="no legal entity")


def _report(deal_id: str, *, ready: bool) -> ReadinessReport:
    failed = [] if ready else [FAILED]
    return ReadinessReport(
        opportunity_id=deal_id, customer_id=ACCOUNT, ready=ready, checks=failed, failed=failed
    )


def _readiness(*, truncated: bool = False) -> AccountReadiness:
    return AccountReadiness(
        account_id=ACCOUNT,
        reports={
            "006A00000000001AAA": _report("006A00000000001AAA", ready=True),
            "006A00000000002AAA": _report("006A00000000002AAA", ready=False),
        },
        deals_read=200 if truncated else 5,
        truncated=truncated,
    )


async def _view(readiness: AccountReadiness | None) -> tuple[SalesAccountView, list[str]]:
    """The view over tier clients answering the account, ``PAGE`` and ``readiness`` (None: the process tier
    answers 503)."""
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        path = request.url.path
        if path == f"/system/v1/crm/accounts/{ACCOUNT}":
            return httpx.Response(200, content=msgspec.json.encode(Customer(id=ACCOUNT, name="Acme")))
        if path == f"/system/v1/crm/accounts/{ACCOUNT}/opportunities":
            return httpx.Response(200, content=msgspec.json.encode(PAGE))
        if path == BY_ACCOUNT and readiness is not None:
            return httpx.Response(200, content=msgspec.json.encode(readiness))
        if path == BY_ACCOUNT:
            problem = {"type": "about:blank", "title": "down", "status": 503, "code": "tier-unavailable"}
            return httpx.Response(503, json=problem, headers={"Retry-After": "3"})
        return httpx.Response(404, json={"type": "about:blank", "title": "no", "status": 404})

    transport = httpx.MockTransport(answer)
    clients = ExperienceClients(
        system=SystemApiClient(base_url="http://system", auth=httpx.Auth(), transport=transport),
        process=ProcessApiClient(base_url="http://process", auth=httpx.Auth(), transport=transport),
    )
    view: SalesAccountView = await get_sales_account_view.fn(
        account_id=ACCOUNT, clients=clients, limit=25, cursor=None
    )
    return view, asked


def _by_deal(view: SalesAccountView) -> dict[str, Any]:
    assert view.opportunities.items is not None
    return {i.opportunity.id: i.readiness for i in view.opportunities.items}


async def test_reports_land_on_their_deals_and_a_won_deal_without_one_is_not_checked() -> None:
    view, asked = await _view(_readiness())
    assert asked.count(BY_ACCOUNT) == 1
    readiness = _by_deal(view)
    assert (readiness["006A00000000001AAA"].status, readiness["006A00000000001AAA"].ready) == (
        SectionStatus.OK,
        True,
    )
    assert readiness["006A00000000002AAA"].ready is False
    assert readiness["006A00000000002AAA"].failed == [FAILED]
    missing = readiness["006A00000000003AAA"]
    assert missing.status is SectionStatus.UNAVAILABLE
    assert missing.ready is None
    assert missing.error is not None
    assert missing.error.code == "not-checked"
    assert missing.error.source == "process:activation-readiness.by-account"
    assert "changed" in (missing.error.detail or "")
    assert readiness["006A00000000004AAA"].status is SectionStatus.NOT_APPLICABLE
    assert readiness["006A00000000005AAA"].status is SectionStatus.NOT_APPLICABLE
    assert (view.summary.ready_to_activate, view.summary.blocked) == (1, 1)


async def test_a_won_deal_beyond_the_deals_the_check_reads_says_so() -> None:
    view, _ = await _view(_readiness(truncated=True))
    missing = _by_deal(view)["006A00000000003AAA"]
    assert missing.status is SectionStatus.UNAVAILABLE
    assert missing.error is not None
    assert "more than 200 deals" in (missing.error.detail or "")


async def test_the_readiness_check_down_leaves_the_won_deals_unavailable_and_the_rest_filled() -> None:
    view, _ = await _view(None)
    assert view.account.status is SectionStatus.OK
    assert view.opportunities.status is SectionStatus.OK
    readiness = _by_deal(view)
    for deal_id in ("006A00000000001AAA", "006A00000000002AAA", "006A00000000003AAA"):
        assert readiness[deal_id].status is SectionStatus.UNAVAILABLE
        error = readiness[deal_id].error
        assert error is not None
        assert error.source == "process:activation-readiness.by-account"
        assert error.code == "tier-unavailable"
    assert readiness["006A00000000004AAA"].status is SectionStatus.NOT_APPLICABLE
    assert (view.summary.ready_to_activate, view.summary.blocked) == (0, 0)
