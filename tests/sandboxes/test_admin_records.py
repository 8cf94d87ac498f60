"""``GET /__sandbox/records/{type}`` on every sandbox: stored records as held, filtered by equality."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from sandboxes.admin_records import filter_records
from sandboxes.faults import FaultRule, Receive, Scope, Send
from sandboxes.kantata import create_kantata_sandbox
from sandboxes.kantata.data import ARCHIVED_WORKSPACE_ID, DEMO_OPPORTUNITY_ID, DEMO_WORKSPACE_ID
from sandboxes.netsuite import (
    DEV_CERTIFICATE_ID,
    DEV_CLIENT_ID,
    create_netsuite_sandbox,
    dev_private_key_pem,
)
from sandboxes.netsuite.data import (
    GLOBEX_CUSTOMER_ID,
    MILESTONE_BILLING_SCHEDULE_ID,
    MILESTONE_PROJECT_ID,
)
from sandboxes.salesforce import create_salesforce_sandbox
from sandboxes.salesforce.data import BIG_ACCOUNT_ID, GERMAN_ACCOUNT_ID, READY_OPPORTUNITY_ID

ADMIN = "/__sandbox/records"
NETSUITE = "https://123456-sb1.suitetalk.api.netsuite.test"
NETSUITE_TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
KANTATA_TOKEN = "stratum-kantata-sandbox-token"


def client(app: Any, base_url: str = "http://sandbox.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


def mount(prefix: str, app: Any) -> Any:
    """What the gateway does: strip the prefix from the path and record it in root_path."""

    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        scope = {
            **scope,
            "root_path": scope.get("root_path", "") + prefix,
            "path": path[len(prefix) :] or "/",
        }
        await app(scope, receive, send)

    return mounted


async def listed(http: httpx.AsyncClient, record_type: str, **params: str) -> list[dict[str, Any]]:
    response = await http.get(f"{ADMIN}/{record_type}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"items", "count"}
    assert body["count"] == len(body["items"])
    items: list[dict[str, Any]] = body["items"]
    return items


async def assert_unknown(http: httpx.AsyncClient, stores: dict[str, Any]) -> None:
    response = await http.get(f"{ADMIN}/NoSuchThing", params={"id": "1"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": "unknown record type", "known": list(stores)}


# ---------------------------------------------------------------------------------------------------------
# The shared filter
# ---------------------------------------------------------------------------------------------------------


def test_filter_compares_top_level_fields_as_text() -> None:
    records: list[dict[str, Any]] = [
        {"id": "1", "n": 3, "flag": True, "ref": None},
        {"id": "2", "n": 3.5, "flag": False, "ref": "7"},
        {"id": "3", "nested": {"id": "7"}},
    ]

    def ids(*params: tuple[str, str]) -> list[Any]:
        return [record["id"] for record in filter_records(records, params)]

    assert ids() == ["1", "2", "3"]
    assert ids(("n", "3")) == ["1"]
    assert ids(("n", "3.5")) == ["2"]
    assert ids(("flag", "True")) == ids(("flag", "true")) == ["1"]
    assert ids(("flag", "false")) == ["2"]
    # Missing and null read as None (or JSON's null).
    assert ids(("ref", "None")) == ids(("ref", "null")) == ["1", "3"]
    assert ids(("flag", "true"), ("ref", "7")) == []
    assert ids(("ref", "7"), ("ref", "8")) == []
    assert ids(("nested", "7")) == []


# ---------------------------------------------------------------------------------------------------------
# NetSuite
# ---------------------------------------------------------------------------------------------------------


def netsuite_assertion(aud: str) -> str:
    now = int(time.time())
    claims = {"iss": DEV_CLIENT_ID, "aud": aud, "iat": now, "exp": now + 300, "scope": ["rest_webservices"]}
    key = ECKey.import_key(dev_private_key_pem())
    return jwt.encode(
        {"alg": "ES256", "kid": DEV_CERTIFICATE_ID, "typ": "JWT"}, claims, key, algorithms=["ES256"]
    )


async def netsuite_token(http: httpx.AsyncClient) -> str:
    response = await http.post(
        NETSUITE_TOKEN_PATH,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": netsuite_assertion(NETSUITE + NETSUITE_TOKEN_PATH),
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def test_netsuite_lists_and_filters_seeded_records_without_auth() -> None:
    app = create_netsuite_sandbox()
    stores = app.state.sandbox.records
    async with client(app) as http:
        customers = await listed(http, "customer")
        globex = await listed(http, "customer", externalId=BIG_ACCOUNT_ID)
        schedules = await listed(http, "billingSchedule", project=MILESTONE_PROJECT_ID)
        active = await listed(http, "billingschedule", project=MILESTONE_PROJECT_ID, isInactive="false")
        voided = await listed(http, "billingSchedule", project=MILESTONE_PROJECT_ID, isInactive="true")
        jobs = await listed(http, "job", parent=GLOBEX_CUSTOMER_ID)
        for record_type in stores:
            await listed(http, record_type)  # every stored type serialises
        await assert_unknown(http, stores)
    assert [c["id"] for c in customers] == list(stores["customer"])
    assert customers[0] == stores["customer"][customers[0]["id"]]  # as held, not as rendered
    assert [c["id"] for c in globex] == [GLOBEX_CUSTOMER_ID]
    assert [s["id"] for s in schedules] == [s["id"] for s in active] == [MILESTONE_BILLING_SCHEDULE_ID]
    assert voided == []
    assert jobs
    assert all(job["parent"] == GLOBEX_CUSTOMER_ID for job in jobs)
    assert {"customer", "job", "billingSchedule", "invoice"} <= set(stores)


async def test_netsuite_records_created_through_the_api_appear() -> None:
    app = create_netsuite_sandbox()
    async with client(app, NETSUITE) as http:
        before = await listed(http, "customer", externalId=GERMAN_ACCOUNT_ID)
        token = await netsuite_token(http)
        body = {
            "companyName": "Initech Software GmbH",
            "externalId": GERMAN_ACCOUNT_ID,
            "subsidiary": {"id": "3"},
        }
        created = await http.post(
            "/services/rest/record/v1/customer", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code == 204, created.text
        # Admin routes are never faulted, even by a rule that matches every path.
        app.state.faults.add(FaultRule(kind="error", status=503))
        after = await listed(http, "customer", externalId=GERMAN_ACCOUNT_ID)
    assert before == []
    assert len(after) == 1
    assert after[0]["id"] == created.headers["location"].rsplit("/", 1)[-1]
    assert after[0]["companyName"] == "Initech Software GmbH"


# ---------------------------------------------------------------------------------------------------------
# Kantata
# ---------------------------------------------------------------------------------------------------------


async def test_kantata_lists_and_filters_seeded_records_without_auth() -> None:
    app = create_kantata_sandbox()
    stores = app.state.sandbox.records
    async with client(app) as http:
        workspaces = await listed(http, "workspaces")
        archived = await listed(http, "workspaces", archived="true")
        references = await listed(
            http, "external_references", subject_type="Workspace", service_model_ref=DEMO_OPPORTUNITY_ID
        )
        resources = await listed(http, "workspace_resources", workspace_id=DEMO_WORKSPACE_ID)
        for record_type in stores:
            await listed(http, record_type)
        await assert_unknown(http, stores)
    assert [w["id"] for w in workspaces] == list(stores["workspaces"])  # archived ones too
    assert ARCHIVED_WORKSPACE_ID in {w["id"] for w in archived}
    assert all(w["archived"] is True for w in archived)
    assert [r["subject_id"] for r in references] == [DEMO_WORKSPACE_ID]
    assert resources
    assert all(r["workspace_id"] == DEMO_WORKSPACE_ID for r in resources)


async def test_kantata_records_created_through_the_api_appear() -> None:
    key = "006Dn00000AdminRecAAA"
    reference = {"service_name": "Stratum", "service_model": "Opportunity", "service_model_ref": key}
    workspace = {
        "title": "Admin Records Co - Rollout",
        "creator_role": "maven",
        "currency": "USD",
        "external_references_attributes": [reference],
    }
    auth = {"Authorization": f"Bearer {KANTATA_TOKEN}"}
    app = create_kantata_sandbox()
    async with client(app) as http:
        created = await http.post("/api/v1/workspaces.json", json={"workspace": workspace}, headers=auth)
        assert created.status_code == 200, created.text
        workspace_id = created.json()["results"][0]["id"]
        demand = {"workspace_id": workspace_id, "role_id": next(iter(app.state.sandbox.records["roles"]))}
        staffed = await http.post(
            "/api/v1/workspace_resources", json={"workspace_resource": demand}, headers=auth
        )
        assert staffed.status_code == 200, staffed.text
        references = await listed(http, "external_references", service_model_ref=key)
        resources = await listed(http, "workspace_resources", workspace_id=workspace_id)
        workspaces = await listed(http, "workspaces", id=workspace_id)
    assert [(r["subject_type"], r["subject_id"]) for r in references] == [("Workspace", workspace_id)]
    assert [r["id"] for r in resources] == [staffed.json()["results"][0]["id"]]
    assert [w["archived"] for w in workspaces] == [False]


# ---------------------------------------------------------------------------------------------------------
# Salesforce
# ---------------------------------------------------------------------------------------------------------


async def salesforce_token(http: httpx.AsyncClient) -> str:
    response = await http.post(
        "/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "stratum-sandbox",
            "client_secret": "stratum-sandbox-secret",
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def test_salesforce_lists_filters_and_sees_api_writes() -> None:
    app = create_salesforce_sandbox()
    stores = app.state.sandbox.records
    data = "/services/data/v61.0/sobjects"
    # Mounted as `stratum serve` mounts it: the admin path is relative to the mount.
    async with client(
        mount("/sandboxes/salesforce", app), "http://gateway.test/sandboxes/salesforce"
    ) as http:
        opportunities = await listed(http, "Opportunity")
        ready = await listed(http, "opportunity", Id=READY_OPPORTUNITY_ID)
        for record_type in stores:
            await listed(http, record_type)
        await assert_unknown(http, stores)
        auth = {"Authorization": f"Bearer {await salesforce_token(http)}"}
        updated = await http.patch(
            f"{data}/Opportunity/{READY_OPPORTUNITY_ID}",
            json={"Activation_Status__c": "Activated", "Project_Id__c": "31800099"},
            headers=auth,
        )
        assert updated.status_code == 204, updated.text
        account = await http.post(f"{data}/Account", json={"Name": "Admin Records Ltd"}, headers=auth)
        assert account.status_code == 201, account.text
        activated = await listed(http, "Opportunity", Activation_Status__c="Activated")
        accounts = await listed(http, "Account", Name="Admin Records Ltd")
    assert [o["Id"] for o in opportunities] == list(stores["Opportunity"])
    assert [(o["Id"], o["Activation_Status__c"]) for o in ready] == [(READY_OPPORTUNITY_ID, None)]
    assert [(o["Id"], o["Project_Id__c"]) for o in activated] == [(READY_OPPORTUNITY_ID, "31800099")]
    assert [a["Id"] for a in accounts] == [account.json()["id"]]
    assert {"Account", "Opportunity", "Rate_Card_Line__c"} <= set(stores)


@pytest.mark.parametrize(
    "factory", [create_salesforce_sandbox, create_kantata_sandbox, create_netsuite_sandbox]
)
async def test_admin_reads_are_not_logged_or_metered(factory: Any) -> None:
    app = factory()
    async with client(app) as http:
        await listed(http, next(iter(app.state.sandbox.records)))
        stats = (await http.get("/__sandbox/stats")).json()
    assert stats["requests"] == []
