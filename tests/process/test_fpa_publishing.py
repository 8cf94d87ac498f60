"""The workflows write to the FP&A system, on each FP&A vendor: activation publishes the won deal's revenue
baseline under the ERP project (the key the delivery view reads a forecast by first), a project's billing
run publishes its invoiced months as actuals. Read back the way the delivery view reads them, through the
system tier's forecast.

Planning never blocks delivery or billing (process_apis.planning): an FP&A outage is retried, a lost answer
publishes the same figures (imports replace the project's figures), and a refusal or an outage longer than
the retry window completes the run with the issue for finance. Runs started before the step existed never
take it, so their recorded steps keep their places."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.salesforce.data import READY_FIXED_FEE_OPPORTUNITY_ID, READY_OPPORTUNITY_ID
from tests.process.test_activation_runs import STEPS, _activate, _timeline, _until
from tests.process.test_billing_runs import (
    EARLIER,
    PERIOD,
    ROLE_NAME,
    Delivery,
    _day,
    _done,
    _project,
    _start,
    add_rate,
)
from tests.process.test_billing_runs import _until as _billing_until

# Each FP&A vendor, with the sandbox path (or body) of the call that loads figures: Anaplan runs an import
# action as a task (Integration API v2: POST .../imports/{importId}/tasks); Adaptive Planning's XML API
# loads with the importStandardData method (every call a POST to /api/{version}).
FPAS: dict[str, dict[str, Any]] = {
    "anaplan": {"api": "^/2/0/", "load": {"method": "POST", "path_pattern": "/imports/[^/]+/tasks$"}},
    "adaptive": {"api": "^/api/", "load": {"body_pattern": "importStandardData"}},
}
VENDOR = {"retry_max_attempts": 1, "breaker_failure_threshold": 0}
WORKFLOWS = {
    "step_backoff_base_seconds": 0.05,
    "step_backoff_max_seconds": 0.2,
    "step_max_attempts": 6,
    "poll_interval_seconds": 0.1,
}
BASELINE = "fpa.publish_baseline"
ACTUALS = "fpa.publish_actuals"
assert STEPS[-1] == BASELINE
# An activation's steps before the FP&A step existed.
EARLIER_STEPS = STEPS[:-1]


def _settings(make_settings: Callable[..., Settings], fpa: str, **fpa_connection: Any) -> Settings:
    return make_settings(
        workflows=WORKFLOWS,
        netsuite=VENDOR,
        kantata=VENDOR,
        salesforce=VENDOR,
        business_central=VENDOR,
        erp_vendor="netsuite",
        erp_by_legal_entity={"DE01": "business_central"},
        fpa_vendor=fpa,
        **{fpa: {**VENDOR, **fpa_connection}},
    )


@pytest.fixture(params=sorted(FPAS))
def fpa(request: Any) -> str:
    return str(request.param)


async def _gateway(make_gateway: Any, make_settings: Any, fpa: str, **fpa_connection: Any) -> Any:
    return await make_gateway(_settings(make_settings, fpa, **fpa_connection))


async def _forecast(gw: Any, project_id: str) -> Any:
    return await gw.client.get(
        f"/system/v1/fpa/projects/{project_id}/forecast", headers=gw.auth("system:read")
    )


def _months(forecast: dict[str, Any]) -> list[tuple[str, Decimal, str]]:
    return [(m["month"], Decimal(m["amount"]), m["source"]) for m in forecast["months"]]


async def _fault(gw: Any, fpa: str, rule: dict[str, Any]) -> None:
    async with gw.sandbox(fpa) as sandbox:
        response = await sandbox.post("/__sandbox/faults", json=rule)
        assert response.status_code == 201, response.text


async def _faults_left(gw: Any, fpa: str) -> list[Any]:
    async with gw.sandbox(fpa) as sandbox:
        faults: list[Any] = (await sandbox.get("/__sandbox/faults")).json()["faults"]
        return faults


async def _activated(gw: Any, opportunity_id: str = READY_OPPORTUNITY_ID) -> dict[str, Any]:
    response = await _activate(gw, opportunity_id, wait=None)
    assert response.status_code == 202, response.text
    return await _until(gw, response.json()["id"], "completed", seconds=90)


# The ready time-and-materials deal: 125,000.50 USD, closed 2026-02-20, no milestones (so no end date):
# the whole amount is planned in its close month.
TM_BASELINE = [("2026-02", Decimal("125000.50"), "baseline")]


# --- activation: the baseline ------------------------------------------------------------------------------


async def test_activation_publishes_the_deals_baseline_under_the_erp_project(
    fpa: str, make_gateway: Any, make_settings: Any
) -> None:
    gw = await _gateway(make_gateway, make_settings, fpa)
    run = await _activated(gw)
    # The FP&A step is the last one, after the project is set up and announced.
    assert _timeline(run) == [(name, "completed") for name in STEPS]
    erp_project = run["result"]["erp_project_id"]
    assert run["result"]["fpa"] == {
        "kind": "baseline",
        "project_id": erp_project,
        "published": True,
        "months": ["2026-02"],
        "rows_loaded": 1,
    }
    forecast = await _forecast(gw, erp_project)
    assert forecast.status_code == 200, forecast.text
    assert forecast.json()["currency"] == "USD"
    assert _months(forecast.json()) == TM_BASELINE
    # The delivery view finds it under the deal's ERP project.
    view = await gw.client.get(
        f"/experience/v1/delivery/projects/{run['result']['psa_project_id']}",
        headers=gw.auth("experience:delivery"),
    )
    assert view.status_code == 200, view.text
    section = view.json()["forecast"]
    assert section["data"]["project_id"] == erp_project, section
    assert _months(section["data"]) == TM_BASELINE


async def test_a_lost_fpa_answer_publishes_the_same_baseline_once(
    fpa: str, make_gateway: Any, make_settings: Any
) -> None:
    """The load is done, its answer never comes: the step is tried again under the same key with the same
    figures, and the FP&A system (whose import replaces the project's baseline) holds them once."""
    gw = await _gateway(make_gateway, make_settings, fpa, timeout_seconds=0.5)
    await _fault(gw, fpa, {"kind": "lost", "latency_ms": 800, "times": 1, **FPAS[fpa]["load"]})
    run = await _activated(gw)
    assert await _faults_left(gw, fpa) == []  # the answer was lost
    outcomes = [outcome for name, outcome in _timeline(run) if name == BASELINE]
    assert outcomes == ["retried", "completed"], outcomes
    assert run["result"]["fpa"]["published"] is True
    forecast = await _forecast(gw, run["result"]["erp_project_id"])
    assert _months(forecast.json()) == TM_BASELINE


async def test_fpa_down_is_retried_and_the_activation_completes_once_it_is_back(
    fpa: str, make_gateway: Any, make_settings: Any
) -> None:
    gw = await _gateway(make_gateway, make_settings, fpa)
    await _fault(gw, fpa, {"kind": "outage", "path_pattern": FPAS[fpa]["api"], "times": 3})
    run = await _activated(gw)
    outcomes = [outcome for name, outcome in _timeline(run) if name == BASELINE]
    # Each failed attempt used up one fault or more (an attempt may make calls at once): retried, then done.
    assert outcomes[-1] == "completed", outcomes
    assert set(outcomes[:-1]) == {"retried"}, outcomes
    assert await _faults_left(gw, fpa) == []
    forecast = await _forecast(gw, run["result"]["erp_project_id"])
    assert _months(forecast.json()) == TM_BASELINE


async def test_fpa_down_past_the_retry_window_completes_the_activation_with_the_issue_for_finance(
    fpa: str, make_gateway: Any, make_settings: Any
) -> None:
    """Planning never blocks delivery: the project is set up and the run completes; the issue (owner
    finance, with the remedy) is in the result, not in the exception queue."""
    gw = await _gateway(make_gateway, make_settings, fpa)
    await _fault(gw, fpa, {"kind": "outage", "path_pattern": FPAS[fpa]["api"]})
    run = await _activated(gw)
    assert run["state"] == "completed"
    assert [o for n, o in _timeline(run) if n == BASELINE] == ["retried"] * WORKFLOWS["step_max_attempts"]
    fpa_outcome = run["result"]["fpa"]
    assert fpa_outcome["published"] is False
    assert fpa_outcome["issue"]["owner"] == "finance"
    assert "FP&A tool" in fpa_outcome["issue"]["remediation"]
    assert run["result"]["psa_project_id"]
    assert run["result"]["billing_schedule_id"]
    exceptions = await gw.client.get("/process/v1/exceptions", headers=gw.auth("process:read"))
    assert exceptions.json()["items"] == []
    async with gw.sandbox(fpa) as sandbox:
        assert (await sandbox.delete("/__sandbox/faults")).status_code == 204
    assert (await _forecast(gw, run["result"]["erp_project_id"])).status_code == 404


async def test_a_deal_is_planned_in_its_own_currency(fpa: str, make_gateway: Any, make_settings: Any) -> None:
    """The ready fixed-fee deal is in EUR (Business Central's DE01): each milestone in its due month, in EUR
    (Anaplan: a currency per project; Adaptive Planning: the level kept in EUR)."""
    gw = await _gateway(make_gateway, make_settings, fpa)
    run = await _activated(gw, READY_FIXED_FEE_OPPORTUNITY_ID)
    erp_project = run["result"]["erp_project_id"]
    outcome = run["result"]["fpa"]
    assert (outcome["kind"], outcome["project_id"], outcome["published"]) == ("baseline", erp_project, True)
    forecast = (await _forecast(gw, erp_project)).json()
    assert forecast["currency"] == "EUR"
    assert _months(forecast) == [
        ("2026-02", Decimal("42000"), "baseline"),
        ("2026-04", Decimal("42000"), "baseline"),
    ]


async def test_a_baseline_the_fpa_system_refuses_completes_the_activation_with_the_issue_for_finance(
    fpa: str, make_gateway: Any, make_settings: Any
) -> None:
    """A deal closing in 2041 is planned in a month beyond every FP&A sandbox's calendar, which refuses the
    whole baseline (422 vendor-rejected): planning never blocks delivery, so the activation completes, with
    the refusal in its result for finance and nothing in the exception queue."""
    gw = await _gateway(make_gateway, make_settings, fpa)
    gw.sandbox_state("salesforce").records["Opportunity"][READY_OPPORTUNITY_ID]["CloseDate"] = "2041-02-20"
    run = await _activated(gw)
    assert run["state"] == "completed"
    assert [o for n, o in _timeline(run) if n == BASELINE] == ["failed"]
    erp_project = run["result"]["erp_project_id"]
    outcome = run["result"]["fpa"]
    assert (outcome["kind"], outcome["project_id"], outcome["published"]) == ("baseline", erp_project, False)
    issue = outcome["issue"]
    assert (issue["owner"], issue["code"]) == ("finance", "vendor-rejected"), issue
    assert "FP&A tool" in issue["remediation"]
    assert (await _forecast(gw, erp_project)).status_code == 404
    exceptions = await gw.client.get("/process/v1/exceptions", headers=gw.auth("process:read"))
    assert exceptions.json()["items"] == []


async def test_a_run_started_before_the_fpa_step_existed_keeps_the_steps_it_began_with(
    fpa: str, make_gateway: Any, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DBOS numbers a run's steps in order: a run recorded without the FP&A step (started before it
    existed: no FPA_PUBLISHING attribute) never takes it, so its checkpoints line up when it recovers."""
    from process_apis import runs, saga

    started_as = runs._start_attributes

    def attributes_of_an_older_start(subject: str, trigger: str) -> dict[str, Any]:
        attributes = started_as(subject, trigger)
        del attributes[saga.FPA_PUBLISHING]
        return attributes

    monkeypatch.setattr(runs, "_start_attributes", attributes_of_an_older_start)
    gw = await _gateway(make_gateway, make_settings, fpa)
    run = await _activated(gw)
    assert _timeline(run) == [(name, "completed") for name in EARLIER_STEPS]
    assert "fpa" not in run["result"]
    assert (await _forecast(gw, run["result"]["erp_project_id"])).status_code == 404


# --- billing: the actuals ----------------------------------------------------------------------------------


async def _bill(gw: Any, project: str, period: str) -> dict[str, Any]:
    started = await _start(gw, legal_entity="US01", project_ids=[project], period=period)
    view = await _billing_until(gw, started["run"]["id"], _done)
    child = next(r for r in view["projects"] if r["id"] == f"bill-{project}-{period}")
    assert child["state"] == "completed", child
    result: dict[str, Any] = child["result"]
    return result


async def test_a_billing_run_publishes_the_projects_invoiced_months_as_actuals(
    fpa: str, make_gateway: Any, make_settings: Any
) -> None:
    """Each billing run sends every invoiced month of the project (an import replaces the project's
    actuals), so billing an earlier month later keeps the month billed before."""
    gw = await _gateway(make_gateway, make_settings, fpa)
    activation = await _activated(gw)
    project, erp_project = activation["result"]["psa_project_id"], activation["result"]["erp_project_id"]
    await add_rate(gw, READY_OPPORTUNITY_ID, ROLE_NAME, "210", "USD")
    team = Delivery(gw)
    for day in (3, 4):
        await team.time(project, _day(PERIOD, day), 450)

    first = await _bill(gw, project, PERIOD)
    net = Decimal(first["net"])
    assert net == Decimal("3150.00")  # 2 x 7.5 h at 210.00
    assert first["fpa"]["kind"] == "actuals"
    assert first["fpa"]["project_id"] == erp_project
    assert first["fpa"]["published"] is True
    assert first["fpa"]["months"] == [PERIOD]
    forecast = (await _forecast(gw, erp_project)).json()
    assert (PERIOD, net, "actual") in _months(forecast)
    assert ("2026-02", Decimal("125000.50"), "baseline") in _months(forecast)
    assert forecast["as_of"] == PERIOD

    # Work of the month before, approved late, billed by its own run: both months stay actual.
    await team.time(project, _day(EARLIER, 10), 60)
    second = await _bill(gw, project, EARLIER)
    assert second["fpa"]["months"] == sorted([EARLIER, PERIOD])
    months = _months((await _forecast(gw, erp_project)).json())
    assert (PERIOD, net, "actual") in months
    assert (EARLIER, Decimal(second["net"]), "actual") in months


async def test_a_billing_runs_lost_fpa_answer_publishes_the_same_actuals(
    fpa: str, make_gateway: Any, make_settings: Any
) -> None:
    gw = await _gateway(make_gateway, make_settings, fpa, timeout_seconds=0.5)
    activation = await _activated(gw)
    project, erp_project = activation["result"]["psa_project_id"], activation["result"]["erp_project_id"]
    await add_rate(gw, READY_OPPORTUNITY_ID, ROLE_NAME, "210", "USD")
    await Delivery(gw).time(project, _day(PERIOD, 3), 450)
    await _fault(gw, fpa, {"kind": "lost", "latency_ms": 800, "times": 1, **FPAS[fpa]["load"]})
    started = await _start(gw, legal_entity="US01", project_ids=[project])
    view = await _billing_until(gw, started["run"]["id"], _done)
    child = _project(view, project)
    assert child["state"] == "completed", child
    assert await _faults_left(gw, fpa) == []
    outcomes = [s["outcome"] for s in child["steps"] if s["name"] == ACTUALS]
    assert outcomes == ["retried", "completed"], outcomes
    assert child["result"]["fpa"]["published"] is True
    actual = [m for m in _months((await _forecast(gw, erp_project)).json()) if m[2] == "actual"]
    assert actual == [(PERIOD, Decimal("1575.00"), "actual")]  # 7.5 h at 210.00, once


async def test_fpa_down_during_a_billing_run_is_retried_and_the_run_completes(
    fpa: str, make_gateway: Any, make_settings: Any
) -> None:
    gw = await _gateway(make_gateway, make_settings, fpa)
    activation = await _activated(gw)
    project, erp_project = activation["result"]["psa_project_id"], activation["result"]["erp_project_id"]
    await add_rate(gw, READY_OPPORTUNITY_ID, ROLE_NAME, "210", "USD")
    await Delivery(gw).time(project, _day(PERIOD, 3), 450)
    await _fault(gw, fpa, {"kind": "outage", "path_pattern": FPAS[fpa]["api"], "times": 2})
    started = await _start(gw, legal_entity="US01", project_ids=[project])
    view = await _billing_until(gw, started["run"]["id"], _done)
    child = _project(view, project)
    assert child["state"] == "completed", child
    outcomes = [s["outcome"] for s in child["steps"] if s["name"] == ACTUALS]
    assert outcomes[-1] == "completed", outcomes
    assert set(outcomes[:-1]) == {"retried"}, outcomes
    assert await _faults_left(gw, fpa) == []
    # The money part was done before: the invoice was issued and announced first.
    names = [s["name"] for s in child["steps"]]
    assert names.index("events.publish_invoice_issued") < names.index(ACTUALS)
    actual = [m for m in _months((await _forecast(gw, erp_project)).json()) if m[2] == "actual"]
    assert actual == [(PERIOD, Decimal("1575.00"), "actual")]


async def test_cancelling_a_billed_month_takes_its_revenue_back_out_of_the_actuals(
    fpa: str, make_gateway: Any, make_settings: Any
) -> None:
    """The void run sends the project's invoiced months again, the cancelled invoice's month as 0."""
    gw = await _gateway(make_gateway, make_settings, fpa)
    activation = await _activated(gw)
    project, erp_project = activation["result"]["psa_project_id"], activation["result"]["erp_project_id"]
    await add_rate(gw, READY_OPPORTUNITY_ID, ROLE_NAME, "210", "USD")
    await Delivery(gw).time(project, _day(PERIOD, 3), 450)
    started = await _start(gw, legal_entity="US01", project_ids=[project])
    run_id = started["run"]["id"]
    await _billing_until(gw, run_id, _done)
    cancel = await gw.client.post(
        f"/process/v1/billing-runs/{run_id}/cancel",
        headers={**gw.auth("process:read process:admin"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert cancel.status_code == 202, cancel.text
    void_id = f"void-bill-{project}-{PERIOD}"

    def voided(view: dict[str, Any]) -> bool:
        return any(r["id"] == void_id and r["state"] == "completed" for r in view["projects"])

    view = await _billing_until(gw, run_id, voided)
    void = next(r for r in view["projects"] if r["id"] == void_id)
    assert void["result"]["fpa"]["published"] is True, void["result"]
    assert [s["name"] for s in void["steps"]][-1] == ACTUALS
    assert void["result"]["fpa"]["months"] == [PERIOD]
    # The month is published as 0: a zero actual is an empty cell to both FP&A systems, so the month has no
    # actual any more (it forecasts its baseline, where it has one).
    months = _months((await _forecast(gw, erp_project)).json())
    assert [m for m in months if m[2] == "actual"] == []
    assert months == TM_BASELINE
