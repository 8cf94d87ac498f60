"""A won deal has ONE PSA project, whoever made it first: the README's system-tier write, Stratum's
activation, or the CRM's own Kantata integration; and the project names its customer."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID, READY_OPPORTUNITY_ID
from tests.process.test_activation_runs import ACTIVATIONS, _settings, _until

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return await make_gateway(_settings(make_settings))


def _readme_project_body() -> dict[str, Any]:
    """The body of the README's `POST /system/v1/psa/projects` example, as a reader would send it."""
    text = README.read_text(encoding="utf-8")
    command = text[text.index("/system/v1/psa/projects \\") :]
    match = re.search(r"-d '(\{.*?\})'", command, re.DOTALL)
    assert match is not None, "the README's PSA project example has no -d body"
    body: dict[str, Any] = json.loads(match.group(1))
    return body


def _workspace_ids(gw: Any) -> set[str]:
    return {str(w["id"]) for w in gw.sandbox_state("kantata").records["workspaces"].values()}


async def _activate(gw: Any, opportunity_id: str) -> dict[str, Any]:
    headers = {**gw.auth("process:run"), "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=30"}
    response = await gw.client.post(ACTIVATIONS, json={"opportunity_id": opportunity_id}, headers=headers)
    assert response.status_code == 202, response.text
    return await _until(gw, response.json()["id"], "completed")


async def test_the_readme_write_then_activating_the_deal_leaves_one_workspace(gw: Any) -> None:
    body = _readme_project_body()
    # The README writes the project of the deal it activates next, for that deal's account.
    assert body["customer_id"] == DEMO_ACCOUNT_ID
    before = _workspace_ids(gw)

    headers = {**gw.auth("system:write"), "Idempotency-Key": uuid.uuid4().hex}
    created = await gw.client.post("/system/v1/psa/projects", json=body, headers=headers)
    assert created.status_code == 201, created.text
    run = await _activate(gw, READY_OPPORTUNITY_ID)

    made = _workspace_ids(gw) - before
    assert made == {created.json()["id"]}
    assert run["result"]["psa_project_id"] == created.json()["id"]


async def test_a_psa_project_names_its_customer_when_read_back(gw: Any) -> None:
    run = await _activate(gw, READY_OPPORTUNITY_ID)
    project_id = run["result"]["psa_project_id"]

    read = await gw.client.get(f"/system/v1/psa/projects/{project_id}", headers=gw.auth("system:read"))
    assert read.status_code == 200, read.text
    assert read.json()["customer_id"] == DEMO_ACCOUNT_ID
    # Kantata holds the link itself, as an external reference to the CRM account on the workspace.
    references = gw.sandbox_state("kantata").records["external_references"].values()
    assert [
        (r["service_name"], r["service_model_ref"])
        for r in references
        if (r["subject_type"], str(r["subject_id"]), r["service_model"])
        == ("Workspace", project_id, "Account")
    ] == [("Stratum", DEMO_ACCOUNT_ID)]


async def test_activation_adopts_the_workspace_the_crms_own_integration_linked_to_the_deal(gw: Any) -> None:
    # Kantata's Salesforce integration made the deal's workspace first, linked by its own reference.
    headers = {**gw.auth("system:read")}
    async with gw.sandbox("kantata") as kantata:
        token = {"Authorization": "Bearer " + gw.sandbox_state("kantata").settings.tokens[0]}
        made = await kantata.post(
            "/api/v1/workspaces.json",
            headers=token,
            json={
                "workspace": {
                    "title": "Northwind Health - EHR Integration Phase 2 (from Salesforce)",
                    "creator_role": "maven",
                    "currency": "USD",
                    "external_references_attributes": [
                        {
                            "service_name": "Salesforce",
                            "service_model": "Opportunity",
                            "service_model_ref": READY_OPPORTUNITY_ID,
                        }
                    ],
                }
            },
        )
        assert made.status_code == 200, made.text
    linked = made.json()["results"][0]["id"]
    before = _workspace_ids(gw)

    run = await _activate(gw, READY_OPPORTUNITY_ID)

    assert run["result"]["psa_project_id"] == linked
    assert _workspace_ids(gw) == before  # adopted, not duplicated
    # Adopted under Stratum's key: read back, it is the deal's project and names its customer.
    read = await gw.client.get(f"/system/v1/psa/projects/{linked}", headers=headers)
    assert read.status_code == 200, read.text
    adopted = read.json()
    assert (adopted["external_key"], adopted["customer_id"]) == (READY_OPPORTUNITY_ID, DEMO_ACCOUNT_ID)
