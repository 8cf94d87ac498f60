"""A Salesforce org without one of the gateway's custom fields (issue 10, Salesforce item 4): the gateway
names the field at start-up and its CRM routes answer a problem naming it (with the fix), not a 502 for
every read; once the field is deployed, reads work again without a restart.

The org is the Salesforce sandbox with ``Account.Legal_Entity__c`` taken out of its schemas, as
tests/gateway/test_vendors_check.py does: its describe and its SOQL both follow those schemas (an unknown
column is ``INVALID_FIELD``, as Salesforce answers).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from sandboxes.salesforce.data import SCHEMAS
from system_apis.crm.salesforce_mapping import SELECT_LISTS

ACCOUNTS = "/system/v1/crm/accounts"
OPPORTUNITIES = "/system/v1/crm/opportunities"


def _without(sobject: str, field: str) -> dict[str, Any]:
    schemas = dict(SCHEMAS)
    schema = schemas[sobject]
    schemas[sobject] = dataclasses.replace(schema, fields=tuple(f for f in schema.fields if f.name != field))
    return schemas


def _org(monkeypatch: pytest.MonkeyPatch, schemas: dict[str, Any]) -> None:
    """The org the next gateway starts with (its sandbox takes the schemas when it is built)."""
    monkeypatch.setattr("sandboxes.salesforce.app.SCHEMAS", schemas)


def _redeploy(gw: Any, schemas: dict[str, Any]) -> None:
    """Change the running org's fields, as an admin deploying (or deleting) a field would."""
    gw.sandbox_state("salesforce").schemas = schemas


async def _get(gw: Any, path: str) -> Any:
    return await gw.client.get(path, headers=gw.auth("system:read"))


async def test_a_missing_custom_field_is_named_at_start_up_and_by_the_crm_routes(
    make_gateway: Any, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _org(monkeypatch, _without("Account", "Legal_Entity__c"))

    with capture_logs() as logs:
        gw = await make_gateway(make_settings())

    [lacks] = [line for line in logs if line["event"] == "salesforce_org_lacks"]
    assert lacks["log_level"] == "error"
    assert lacks["field"] == "Account.Legal_Entity__c"
    assert lacks["expected_type"] == "string"
    assert "create Account.Legal_Entity__c as string" in lacks["fix"]

    response = await _get(gw, ACCOUNTS)
    assert response.status_code == 503, response.text
    problem = response.json()
    assert problem["code"] == "vendor-unavailable"
    assert problem["vendor"] == "salesforce"
    assert "Account.Legal_Entity__c" in problem["detail"]
    assert "create Account.Legal_Entity__c as string" in problem["detail"]
    assert int(response.headers["Retry-After"]) >= 1

    # Opportunities do not depend on the Account field: they are still served.
    assert (await _get(gw, OPPORTUNITIES)).status_code == 200


async def test_reads_work_again_once_the_field_is_deployed(
    make_gateway: Any, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _org(monkeypatch, _without("Account", "Legal_Entity__c"))
    gw = await make_gateway(make_settings())
    assert (await _get(gw, ACCOUNTS)).status_code == 503

    # Deployed: the next call past the re-check interval describes the org again.
    _redeploy(gw, dict(SCHEMAS))
    monkeypatch.setattr("system_apis.crm.salesforce._SCHEMA_RECHECK_SECONDS", 0.0)
    with capture_logs() as logs:
        response = await _get(gw, ACCOUNTS)
    assert response.status_code == 200, response.text
    assert response.json()["items"]
    assert any(line["event"] == "salesforce_org_ready" for line in logs)


async def test_a_field_removed_after_start_up_is_named_not_a_bad_gateway(
    make_gateway: Any, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = await make_gateway(make_settings())
    assert (await _get(gw, ACCOUNTS)).status_code == 200

    # Someone deletes the field while the gateway runs: the query meets INVALID_FIELD, the gateway describes
    # the org again and names the field.
    _redeploy(gw, _without("Account", "Legal_Entity__c"))
    with capture_logs() as logs:
        response = await _get(gw, ACCOUNTS)
    assert response.status_code == 503, response.text
    assert "Account.Legal_Entity__c" in response.json()["detail"]
    assert [line["field"] for line in logs if line["event"] == "salesforce_org_lacks"] == [
        "Account.Legal_Entity__c"
    ]


async def test_a_field_the_gateway_only_writes_blocks_only_the_write(
    make_gateway: Any, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Activation_Status__c read-only for the integration user: reads go on, the write-back is refused by name.
    schemas = dict(SCHEMAS)
    schema = schemas["Opportunity"]
    schemas["Opportunity"] = dataclasses.replace(
        schema,
        fields=tuple(
            dataclasses.replace(f, updateable=False) if f.name == "Activation_Status__c" else f
            for f in schema.fields
        ),
    )
    _org(monkeypatch, schemas)
    gw = await make_gateway(make_settings())

    page = await _get(gw, OPPORTUNITIES)
    assert page.status_code == 200, page.text
    opportunity_id = page.json()["items"][0]["id"]
    assert (await _get(gw, f"{OPPORTUNITIES}/{opportunity_id}")).status_code == 200

    response = await gw.client.patch(
        f"{OPPORTUNITIES}/{opportunity_id}/activation",
        json={"activation_status": "in_progress"},
        headers={**gw.auth("system:write"), "Idempotency-Key": "7b0e3c52-4f0e-4d5e-9a43-0c6f0b7e2a11"},
    )
    assert response.status_code == 503, response.text
    assert "Opportunity.Activation_Status__c" in response.json()["detail"]
    assert "grant edit field-level access" in response.json()["detail"]


async def test_salesforce_down_at_start_up_does_not_block_start_up(
    make_gateway: Any, make_settings: Any
) -> None:
    unreachable = {"base_url": "http://127.0.0.1:9", "retry_max_attempts": 1, "breaker_failure_threshold": 0}
    started = time.monotonic()
    with capture_logs() as logs:
        gw = await make_gateway(make_settings(salesforce=unreachable))
    assert time.monotonic() - started < 10
    assert any(line["event"] == "salesforce_schema_unchecked" for line in logs)
    # Nothing is concluded about the org: a read is Salesforce's own failure (unreachable), not a lack.
    response = await _get(gw, ACCOUNTS)
    assert response.status_code == 503
    assert "not set up" not in response.json()["detail"]


async def test_an_invalid_field_describes_the_org_at_most_once_a_minute(
    make_gateway: Any, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An INVALID_FIELD the org's schema does not explain (our own query's fault) stays a 502, and does not
    # cost a describe of every object per request.
    gw = await make_gateway(make_settings())
    broken = "SELECT Nope__c FROM Account"
    monkeypatch.setattr("system_apis.crm.salesforce.customer_query", lambda **_: broken)

    async with gw.sandbox() as sandbox:
        before = (await sandbox.get("/__sandbox/stats")).json()["api_usage"]
    statuses = [(await _get(gw, ACCOUNTS)).status_code for _ in range(3)]
    async with gw.sandbox() as sandbox:
        used = (await sandbox.get("/__sandbox/stats")).json()["api_usage"] - before

    assert statuses == [502, 502, 502]
    # Three queries, and after the first INVALID_FIELD one describe of each object the gateway uses.
    assert used == 3 + len(SELECT_LISTS)
