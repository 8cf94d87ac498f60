"""The Salesforce sandbox on the wire: what a Salesforce client would notice, plus the SOQL and seed units."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import functools
import hashlib
import hmac
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from sandboxes.faults import FaultRule, Receive, Scope, Send
from sandboxes.salesforce import (
    DEV_JWT_CONSUMER_KEY,
    SalesforceSandbox,
    SalesforceSandboxSettings,
    create_salesforce_sandbox,
    dev_jwt_private_key_pem,
    dev_jwt_public_key_pem,
)
from sandboxes.salesforce.data import (
    BIG_ACCOUNT_ID,
    BIG_ACCOUNT_OPPORTUNITY_COUNT,
    CLOSED_LOST_OPPORTUNITY_ID,
    CONTRACT_STATUSES,
    DEMO_ACCOUNT_ID,
    DEMO_CONTACT_ID,
    DEMO_CONTRACT_ID,
    DUPLICATE_CONTACT_EXTERNAL_ID,
    DUPLICATE_CONTACT_IDS,
    GERMAN_ACCOUNT_ID,
    GROUP_PARENT_ACCOUNT_ID,
    INTEGRATION_USER_ID,
    INTEGRATION_USERNAME,
    MISSING_BILLING_MODEL_OPPORTUNITY_ID,
    MISSING_CURRENCY_OPPORTUNITY_ID,
    MISSING_LEGAL_ENTITY_OPPORTUNITY_ID,
    NO_TAX_JURISDICTION_ACCOUNT_ID,
    NO_TAX_JURISDICTION_OPPORTUNITY_ID,
    NULL_AMOUNT_OPPORTUNITY_ID,
    OPEN_OPPORTUNITY_ID,
    ORG_ID,
    ORG_NAME,
    PSE_RESOURCE_IDS,
    READY_FIXED_FEE_OPPORTUNITY_ID,
    READY_MILESTONE_OPPORTUNITY_ID,
    READY_OPPORTUNITY_ID,
    READY_OPPORTUNITY_IDS,
    READY_RETAINER_OPPORTUNITY_ID,
    SCHEMAS,
    SUBSIDIARY_ACCOUNT_ID,
    UK_ACCOUNT_ID,
    USERNAMES,
    ZERO_AMOUNT_OPPORTUNITY_ID,
    Record,
    build_seed,
    normalize_salesforce_id,
    salesforce_id,
)
from sandboxes.salesforce.soql import SoqlError, compile_query

BASE = "https://acme.my.salesforce.test"
DATA = "/services/data/v61.0"
CLIENT_ID = "stratum-sandbox"
CLIENT_SECRET = "stratum-sandbox-secret"
TOKEN_KEYS = {"access_token", "instance_url", "id", "token_type", "issued_at", "signature", "scope"}
SF_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")


class Org:
    """A client on one sandbox app, logged in lazily, with the raw app at hand for admin calls."""

    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.client = client
        self.app = app
        self.token: str | None = None

    @property
    def sandbox(self) -> SalesforceSandbox:
        sandbox: SalesforceSandbox = self.app.state.sandbox
        return sandbox

    async def login(self) -> dict[str, Any]:
        response = await self.client.post(
            "/services/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        )
        assert response.status_code == 200, response.text
        payload: dict[str, Any] = response.json()
        self.token = payload["access_token"]
        return payload

    async def api(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self.token is None:
            await self.login()
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return await self.client.request(method, url, headers=headers, **kwargs)

    async def query(self, soql: str, **kwargs: Any) -> httpx.Response:
        return await self.api("GET", f"{DATA}/query/", params={"q": soql}, **kwargs)

    async def query_all_pages(self, soql: str, **kwargs: Any) -> list[dict[str, Any]]:
        response = await self.query(soql, **kwargs)
        pages = [response.json()]
        while not pages[-1]["done"]:
            response = await self.api("GET", pages[-1]["nextRecordsUrl"])
            assert response.status_code == 200, response.text
            pages.append(response.json())
        return pages


_APPS: dict[tuple[tuple[str, Any], ...], Any] = {}


@asynccontextmanager
async def org(**settings: Any) -> AsyncIterator[Org]:
    """A fresh org. Building a Litestar app dominates test time, so apps are reused after a reset,
    which is exactly the isolation the sandbox promises its other users."""
    key = tuple(sorted(settings.items()))
    app: Any = _APPS.get(key)
    if app is None:
        app = _APPS[key] = create_salesforce_sandbox(SalesforceSandboxSettings(**settings))
    else:
        app.state.sandbox.reset()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield Org(client, app)


def assert_error(response: httpx.Response, status: int, error_code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list)
    assert len(body) == 1
    assert body[0]["errorCode"] == error_code
    assert isinstance(body[0]["message"], str)
    error: dict[str, Any] = body[0]
    return error


# ---------------------------------------------------------------------------------------------------------
# OAuth
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_client_credentials_in_the_form_body() -> None:
    async with org() as sf:
        payload = await sf.login()
    assert set(payload) == TOKEN_KEYS
    assert payload["token_type"] == "Bearer"
    assert payload["scope"] == "api"
    assert payload["instance_url"] == BASE
    assert re.fullmatch(r"\d{13}", payload["issued_at"])
    # The signature is what Salesforce documents: HMAC-SHA256 of id + issued_at, keyed by the secret.
    expected = hmac.new(
        CLIENT_SECRET.encode(), (payload["id"] + payload["issued_at"]).encode(), hashlib.sha256
    ).digest()
    assert base64.b64decode(payload["signature"]) == expected


@pytest.mark.asyncio
async def test_client_credentials_with_http_basic() -> None:
    async with org() as sf:
        response = await sf.client.post(
            "/services/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
        assert response.status_code == 200
        token = response.json()["access_token"]
        limits = await sf.client.get(f"{DATA}/limits/", headers={"Authorization": f"Bearer {token}"})
    assert limits.status_code == 200


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("data", "auth", "error"),
    [
        (
            {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "nope"},
            None,
            "invalid_client",
        ),
        (
            {"grant_type": "client_credentials", "client_id": "who", "client_secret": CLIENT_SECRET},
            None,
            "invalid_client",
        ),
        ({"grant_type": "client_credentials"}, None, "invalid_client"),
        ({"grant_type": "client_credentials"}, (CLIENT_ID, "wrong"), "invalid_client"),
        (
            {"grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
            None,
            "unsupported_grant_type",
        ),
        ({}, (CLIENT_ID, CLIENT_SECRET), "unsupported_grant_type"),
    ],
)
async def test_token_errors_use_the_oauth_shape(
    data: dict[str, str], auth: tuple[str, str] | None, error: str
) -> None:
    async with org() as sf:
        basic = httpx.USE_CLIENT_DEFAULT if auth is None else httpx.BasicAuth(*auth)
        response = await sf.client.post("/services/oauth2/token", data=data, auth=basic)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    if error == "invalid_client":
        assert body["error_description"] == "invalid client credentials"


@pytest.mark.asyncio
async def test_a_json_token_request_is_not_understood() -> None:
    async with org() as sf:
        response = await sf.client.post(
            "/services/oauth2/token",
            json={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


# ---------------------------------------------------------------------------------------------------------
# Sessions and limits
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic c3RyYXR1bTpzZWNyZXQ="])
async def test_calls_without_a_valid_session_get_invalid_session_id(authorization: str | None) -> None:
    async with org() as sf:
        headers = {} if authorization is None else {"Authorization": authorization}
        response = await sf.client.get(f"{DATA}/limits/", headers=headers)
    error = assert_error(response, 401, "INVALID_SESSION_ID")
    assert error["message"] == "Session expired or invalid"
    assert response.headers["sforce-limit-info"] == "api-usage=0/5000"


@pytest.mark.asyncio
async def test_expired_sessions_force_a_relogin() -> None:
    async with org() as sf:
        await sf.login()
        assert (await sf.api("GET", f"{DATA}/limits/")).status_code == 200
        assert (await sf.client.post("/__sandbox/sessions/expire")).status_code == 204
        assert_error(await sf.api("GET", f"{DATA}/limits/"), 401, "INVALID_SESSION_ID")
        await sf.login()
        assert (await sf.api("GET", f"{DATA}/limits/")).status_code == 200


@pytest.mark.asyncio
async def test_sessions_expire_after_their_ttl() -> None:
    async with org(session_ttl_seconds=0) as sf:
        await sf.login()
        assert_error(await sf.api("GET", f"{DATA}/limits/"), 401, "INVALID_SESSION_ID")


@pytest.mark.asyncio
async def test_every_data_response_reports_api_usage() -> None:
    async with org() as sf:
        first = await sf.api("GET", f"{DATA}/limits/")
        second = await sf.api("GET", f"{DATA}/sobjects/Account/{DEMO_ACCOUNT_ID}")
        missing = await sf.api("GET", f"{DATA}/sobjects/Account/{salesforce_id('001', 999)}")
        unknown_path = await sf.api("GET", f"{DATA}/no/such/resource")
        limits = await sf.api("GET", f"{DATA}/limits")
    assert first.headers["sforce-limit-info"] == "api-usage=1/5000"
    assert first.json()["DailyApiRequests"] == {"Max": 5000, "Remaining": 4999}
    assert second.headers["sforce-limit-info"] == "api-usage=2/5000"
    assert missing.headers["sforce-limit-info"] == "api-usage=3/5000"
    assert_error(unknown_path, 404, "NOT_FOUND")
    assert unknown_path.headers["sforce-limit-info"] == "api-usage=4/5000"
    assert limits.json()["DailyApiRequests"] == {"Max": 5000, "Remaining": 4995}


@pytest.mark.asyncio
async def test_the_daily_limit_answers_request_limit_exceeded() -> None:
    async with org(daily_api_limit=3) as sf:
        usages = [(await sf.api("GET", f"{DATA}/limits/")).headers["sforce-limit-info"] for _ in range(3)]
        over = await sf.api("GET", f"{DATA}/limits/")
        # Logging in is not an API call: a client can still get a token, just not use it.
        await sf.login()
        still_over = await sf.api("GET", f"{DATA}/sobjects/Account/{DEMO_ACCOUNT_ID}")
        await sf.client.post("/__sandbox/reset")
        await sf.login()
        after_reset = await sf.api("GET", f"{DATA}/limits/")
    assert usages == ["api-usage=1/3", "api-usage=2/3", "api-usage=3/3"]
    error = assert_error(over, 403, "REQUEST_LIMIT_EXCEEDED")
    assert error["message"] == "TotalRequests Limit exceeded."
    assert over.headers["sforce-limit-info"] == "api-usage=3/3"
    assert_error(still_over, 403, "REQUEST_LIMIT_EXCEEDED")
    assert after_reset.status_code == 200
    assert after_reset.headers["sforce-limit-info"] == "api-usage=1/3"


@pytest.mark.asyncio
async def test_unknown_api_versions_are_not_found() -> None:
    # Was: only v61.0 was served. A real org serves every current version (REST API Developer Guide,
    # "Versions": GET /services/data/), so only retired or future versions answer 404.
    async with org() as sf:
        retired = await sf.api("GET", f"/services/data/v30.0/sobjects/Account/{DEMO_ACCOUNT_ID}")
        future = await sf.api("GET", f"/services/data/v99.0/sobjects/Account/{DEMO_ACCOUNT_ID}")
        garbage = await sf.api("GET", f"/services/data/latest/sobjects/Account/{DEMO_ACCOUNT_ID}")
        older = await sf.api("GET", f"/services/data/v58.0/sobjects/Account/{DEMO_ACCOUNT_ID}")
        versions = await sf.client.get("/services/data/")
    for response in (retired, future, garbage):
        error = assert_error(response, 404, "NOT_FOUND")
        assert error["message"] == "The requested resource does not exist"
        assert "sforce-limit-info" in response.headers
    assert older.status_code == 200
    # A record's URL repeats the version the client asked for, as Salesforce's do.
    assert older.json()["attributes"]["url"] == f"/services/data/v58.0/sobjects/Account/{DEMO_ACCOUNT_ID}"
    listed = versions.json()
    assert {"label": "Summer '24", "url": "/services/data/v61.0", "version": "61.0"} in listed
    assert [entry["version"] for entry in listed] == [f"{number}.0" for number in range(31, 63)]


@pytest.mark.asyncio
async def test_wrong_methods_are_salesforce_errors() -> None:
    async with org() as sf:
        response = await sf.api("DELETE", f"{DATA}/limits/")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")


# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_reading_a_record() -> None:
    async with org() as sf:
        response = await sf.api("GET", f"{DATA}/sobjects/Opportunity/{READY_OPPORTUNITY_ID}")
    assert response.status_code == 200
    record = response.json()
    assert next(iter(record)) == "attributes"
    assert record["attributes"] == {
        "type": "Opportunity",
        "url": f"{DATA}/sobjects/Opportunity/{READY_OPPORTUNITY_ID}",
    }
    assert set(record) - {"attributes"} == {spec.name for spec in SCHEMAS["Opportunity"].fields}
    assert record["Amount"] == 125000.5
    assert (record["StageName"], record["IsWon"], record["IsClosed"]) == ("Closed Won", True, True)
    assert record["Project_Id__c"] is None
    assert SF_DATETIME.match(record["LastModifiedDate"])


@pytest.mark.asyncio
async def test_if_modified_since_answers_304_until_the_record_changes() -> None:
    # REST API Developer Guide, sObject Rows, "Conditional Requests": If-Modified-Since answers
    # 304 Not Modified, no body, when LastModifiedDate is not after the given HTTP-date.
    url = f"{DATA}/sobjects/Account/{DEMO_ACCOUNT_ID}"
    async with org() as sf:
        record = (await sf.api("GET", url)).json()
        modified = dt.datetime.fromisoformat(record["LastModifiedDate"])
        at_modification = email.utils.format_datetime(modified.replace(microsecond=0), usegmt=True)
        before = email.utils.format_datetime(modified - dt.timedelta(seconds=1), usegmt=True)
        unchanged = await sf.api("GET", url, headers={"If-Modified-Since": at_modification})
        older = await sf.api("GET", url, headers={"If-Modified-Since": before})
        garbage = await sf.api("GET", url, headers={"If-Modified-Since": "yesterday-ish"})
        await sf.api("PATCH", url, json={"Name": "Renamed"})
        changed = await sf.api("GET", url, headers={"If-Modified-Since": at_modification})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert (older.status_code, older.json()["Id"]) == (200, DEMO_ACCOUNT_ID)
    assert garbage.status_code == 200
    assert (changed.status_code, changed.json()["Name"]) == (200, "Renamed")


@pytest.mark.asyncio
async def test_if_modified_since_on_describe_answers_304_while_the_metadata_is_unchanged() -> None:
    # REST API Developer Guide, Describe Global and sObject Describe: If-Modified-Since answers 304 Not
    # Modified, no body, when the metadata has not changed since the given date.
    later = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1), usegmt=True)
    long_ago = "Mon, 01 Jan 2001 00:00:00 GMT"
    async with org() as sf:
        answers = {
            (path, since): await sf.api("GET", f"{DATA}/{path}", headers={"If-Modified-Since": since})
            for path in ("sobjects/", "sobjects/Account/describe/")
            for since in (later, long_ago)
        }
    for (_, since), response in answers.items():
        if since == later:
            assert (response.status_code, response.content) == (304, b"")
        else:
            assert response.status_code == 200
            assert response.json()



    async with org() as sf:
        response = await sf.api(
            "GET",
            f"{DATA}/sobjects/account/{DEMO_ACCOUNT_ID[:15]}",
            params={"fields": "Name,tax_jurisdiction__c"},
        )
        bad_field = await sf.api(
            "GET", f"{DATA}/sobjects/Account/{DEMO_ACCOUNT_ID}", params={"fields": "Nope"}
        )
    assert response.json() == {
        "attributes": {"type": "Account", "url": f"{DATA}/sobjects/Account/{DEMO_ACCOUNT_ID}"},
        "Name": "Northwind Health Systems",
        "Tax_Jurisdiction__c": "US-NY",
    }
    assert_error(bad_field, 400, "INVALID_FIELD")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path",
    [
        f"/sobjects/Opportunity/{salesforce_id('006', 4242)}",
        f"/sobjects/Opportunity/{DEMO_ACCOUNT_ID}",
        "/sobjects/Opportunity/not-an-id",
        f"/sobjects/Invoice__c/{READY_OPPORTUNITY_ID}",
    ],
)
async def test_unknown_records_and_types_are_not_found(path: str) -> None:
    async with org() as sf:
        response = await sf.api("GET", DATA + path)
    error = assert_error(response, 404, "NOT_FOUND")
    assert error["message"] == "The requested resource does not exist"


@pytest.mark.asyncio
async def test_patching_a_record() -> None:
    async with org() as sf:
        before = (await sf.api("GET", f"{DATA}/sobjects/Opportunity/{READY_OPPORTUNITY_ID}")).json()
        response = await sf.api(
            "PATCH",
            f"{DATA}/sobjects/Opportunity/{READY_OPPORTUNITY_ID}",
            json={"project_id__c": "PRJ-0042", "Activation_Status__c": "Activated", "Amount": 130000.456},
        )
        after = (await sf.api("GET", f"{DATA}/sobjects/Opportunity/{READY_OPPORTUNITY_ID}")).json()
    assert response.status_code == 204
    assert response.content == b""
    assert "sforce-limit-info" in response.headers
    assert (after["Project_Id__c"], after["Activation_Status__c"], after["Amount"]) == (
        "PRJ-0042",
        "Activated",
        130000.46,
    )
    assert after["LastModifiedDate"] > before["LastModifiedDate"]
    assert after["SystemModstamp"] == after["LastModifiedDate"]
    assert after["CreatedDate"] == before["CreatedDate"]


@pytest.mark.asyncio
async def test_changing_the_stage_recomputes_the_derived_fields() -> None:
    async with org() as sf:
        url = f"{DATA}/sobjects/Opportunity/{OPEN_OPPORTUNITY_ID}"
        opened = (await sf.api("GET", url)).json()
        assert (await sf.api("PATCH", url, json={"StageName": "Closed Won"})).status_code == 204
        won = (await sf.api("GET", url)).json()
        assert (await sf.api("PATCH", url, json={"StageName": "Closed Lost"})).status_code == 204
        lost = (await sf.api("GET", url)).json()
    assert (opened["IsWon"], opened["IsClosed"], opened["Probability"]) == (False, False, 90.0)
    assert (won["IsWon"], won["IsClosed"], won["Probability"]) == (True, True, 100.0)
    assert (lost["IsWon"], lost["IsClosed"], lost["Probability"]) == (False, True, 0.0)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "status", "error_code", "fields"),
    [
        ({"Colour__c": "red"}, 400, "INVALID_FIELD", ["Colour__c"]),
        ({"IsWon": True}, 400, "INVALID_FIELD_FOR_INSERT_UPDATE", ["IsWon"]),
        (
            {"Id": READY_OPPORTUNITY_ID, "isclosed": True, "Name": "x"},
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["Id", "IsClosed"],
        ),
        (
            {"CreatedDate": "2026-01-01T00:00:00.000+0000"},
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["CreatedDate"],
        ),
        ({"LastModifiedDate": None}, 400, "INVALID_FIELD_FOR_INSERT_UPDATE", ["LastModifiedDate"]),
        ({"SystemModstamp": None}, 400, "INVALID_FIELD_FOR_INSERT_UPDATE", ["SystemModstamp"]),
        ({"StageName": "Won-ish"}, 400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["StageName"]),
        ({"StageName": None}, 400, "REQUIRED_FIELD_MISSING", ["StageName"]),
        ({"Name": "x" * 121}, 400, "STRING_TOO_LONG", ["Name"]),
        ({"AccountId": "001xyz"}, 400, "MALFORMED_ID", ["AccountId"]),
        ({"AccountId": salesforce_id("001", 777)}, 400, "INVALID_CROSS_REFERENCE_KEY", ["AccountId"]),
        ({"Amount": "lots"}, 400, "JSON_PARSER_ERROR", None),
        ({"CloseDate": "31/03/2026"}, 400, "JSON_PARSER_ERROR", None),
        ([{"Name": "x"}], 400, "JSON_PARSER_ERROR", None),
    ],
)
async def test_patch_validation_errors(
    body: Any, status: int, error_code: str, fields: list[str] | None
) -> None:
    async with org() as sf:
        url = f"{DATA}/sobjects/Opportunity/{READY_OPPORTUNITY_ID}"
        before = (await sf.api("GET", url)).json()
        response = await sf.api("PATCH", url, json=body)
        after = (await sf.api("GET", url)).json()
    error = assert_error(response, status, error_code)
    assert error.get("fields") == fields
    assert after == before  # nothing is applied when any part of the body is rejected


@pytest.mark.asyncio
async def test_patch_with_a_body_that_is_not_json() -> None:
    async with org() as sf:
        response = await sf.api(
            "PATCH",
            f"{DATA}/sobjects/Opportunity/{READY_OPPORTUNITY_ID}",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        missing = await sf.api("PATCH", f"{DATA}/sobjects/Opportunity/{salesforce_id('006', 4242)}", json={})
    assert_error(response, 400, "JSON_PARSER_ERROR")
    assert_error(missing, 404, "NOT_FOUND")


# ---------------------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_query_returns_only_the_selected_fields() -> None:
    async with org() as sf:
        response = await sf.query(f"select name, amount from opportunity where id = '{READY_OPPORTUNITY_ID}'")
    assert response.status_code == 200
    assert response.json() == {
        "totalSize": 1,
        "done": True,
        "records": [
            {
                "attributes": {
                    "type": "Opportunity",
                    "url": f"{DATA}/sobjects/Opportunity/{READY_OPPORTUNITY_ID}",
                },
                "Name": "Northwind Health - EHR Integration Phase 2",
                "Amount": 125000.5,
            }
        ],
    }


@pytest.mark.asyncio
async def test_query_pages_with_next_records_url() -> None:
    soql = f"SELECT Id, Name FROM Opportunity WHERE AccountId = '{BIG_ACCOUNT_ID}' ORDER BY Name"
    async with org() as sf:
        pages = await sf.query_all_pages(soql, headers={"Sforce-Query-Options": "batchSize=200"})
        without_slash = await sf.api("GET", f"{DATA}/query", params={"q": soql})
    assert [len(page["records"]) for page in pages] == [200, 30]
    assert [page["totalSize"] for page in pages] == [BIG_ACCOUNT_OPPORTUNITY_COUNT] * 2
    assert re.fullmatch(rf"{re.escape(DATA)}/query/01g[0-9A-Za-z]{{15}}-200", pages[0]["nextRecordsUrl"])
    assert "nextRecordsUrl" not in pages[1]
    ids = [record["Id"] for page in pages for record in page["records"]]
    assert len(set(ids)) == BIG_ACCOUNT_OPPORTUNITY_COUNT
    names = [record["Name"] for page in pages for record in page["records"]]
    assert names == sorted(names, key=str.casefold)
    # Without the header the default batch of 2000 holds everything.
    assert without_slash.json()["done"] is True
    assert len(without_slash.json()["records"]) == BIG_ACCOUNT_OPPORTUNITY_COUNT


@pytest.mark.asyncio
async def test_batch_size_is_clamped_and_capped_by_settings() -> None:
    soql = f"SELECT Id FROM Opportunity WHERE AccountId = '{BIG_ACCOUNT_ID}'"
    async with org(max_batch_size=50) as sf:
        capped = await sf.query_all_pages(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    async with org() as sf:
        clamped = await sf.query_all_pages(soql, headers={"Sforce-Query-Options": "batchSize=10"})
        garbage = await sf.query_all_pages(soql, headers={"Sforce-Query-Options": "batchSize=lots"})
    assert [len(page["records"]) for page in capped] == [50, 50, 50, 50, 30]
    assert len({record["Id"] for page in capped for record in page["records"]}) == 230
    assert [len(page["records"]) for page in clamped] == [200, 30]
    assert [len(page["records"]) for page in garbage] == [230]


@pytest.mark.asyncio
async def test_query_results_are_a_snapshot() -> None:
    soql = f"SELECT Id, Name FROM Opportunity WHERE AccountId = '{BIG_ACCOUNT_ID}'"
    async with org(max_batch_size=200) as sf:
        first = (await sf.query(soql)).json()
        last_id = (await sf.query(soql + " ORDER BY Id DESC LIMIT 1")).json()["records"][0]["Id"]
        await sf.api("PATCH", f"{DATA}/sobjects/Opportunity/{last_id}", json={"Name": "Renamed mid-query"})
        second = (await sf.api("GET", first["nextRecordsUrl"])).json()
    assert "Renamed mid-query" not in {record["Name"] for record in second["records"]}


@pytest.mark.asyncio
@pytest.mark.parametrize("locator", ["01gDn00000zzzzzAAA-200", "garbage", "01gDn00000zzzzzAAA-x"])
async def test_unknown_query_locators(locator: str) -> None:
    async with org() as sf:
        response = await sf.api("GET", f"{DATA}/query/{locator}")
    assert_error(response, 400, "INVALID_QUERY_LOCATOR")


@pytest.mark.asyncio
async def test_count_limit_offset_and_query_all() -> None:
    async with org() as sf:
        count = (
            await sf.query(f"SELECT COUNT() FROM Opportunity WHERE AccountId = '{BIG_ACCOUNT_ID}'")
        ).json()
        limited = (await sf.query("SELECT Id FROM Opportunity ORDER BY Id LIMIT 5 OFFSET 2")).json()
        everything = (await sf.query("SELECT Id FROM Opportunity ORDER BY Id")).json()
        query_all = await sf.api("GET", f"{DATA}/queryAll/", params={"q": "SELECT Id FROM Account"})
    assert count == {"totalSize": BIG_ACCOUNT_OPPORTUNITY_COUNT, "done": True, "records": []}
    assert limited["totalSize"] == 5
    assert [r["Id"] for r in limited["records"]] == [r["Id"] for r in everything["records"][2:7]]
    assert query_all.json()["totalSize"] == ACCOUNT_COUNT


@pytest.mark.asyncio
async def test_count_of_a_field_grouped_answers_aggregate_results() -> None:
    # SOQL reference, "COUNT() and COUNT(fieldName)" and "GROUP BY": AggregateResult records, unnamed
    # aggregates called expr0, expr1, ...; COUNT(field) skips nulls; every plain field must be grouped.
    async with org() as sf:
        grouped = "SELECT StageName, COUNT(Id) FROM Opportunity GROUP BY StageName ORDER BY StageName"
        by_stage = (await sf.query(grouped)).json()
        counts = "SELECT COUNT(Id) total, COUNT(Tax_Jurisdiction__c) FROM Account"
        named = (await sf.query(counts)).json()
        ungrouped = await sf.query("SELECT Name, COUNT(Id) FROM Account")
        misordered = await sf.query("SELECT Industry, COUNT(Id) FROM Account GROUP BY Industry ORDER BY Name")
    stages = Counter(o["StageName"] for o in SEED["Opportunity"].values())
    assert by_stage["totalSize"] == len(stages)
    assert by_stage["records"] == [
        {"attributes": {"type": "AggregateResult"}, "StageName": stage, "expr0": stages[stage]}
        for stage in sorted(stages)
    ]
    with_jurisdiction = sum(1 for a in SEED["Account"].values() if a["Tax_Jurisdiction__c"] is not None)
    assert named["records"] == [
        {"attributes": {"type": "AggregateResult"}, "total": ACCOUNT_COUNT, "expr0": with_jurisdiction}
    ]
    assert_error(ungrouped, 400, "MALFORMED_QUERY")
    assert_error(misordered, 400, "MALFORMED_QUERY")


@pytest.mark.asyncio
async def test_relationship_fields_nest_the_parent_or_null() -> None:
    # SOQL reference, "Relationship Queries" (child-to-parent): the parent's fields under the
    # relationship name with its own attributes; null when the lookup is empty; usable in WHERE.
    async with org() as sf:
        result = (
            await sf.query(
                "SELECT Name, Account.Name, Account.Parent.Name FROM Opportunity "
                f"WHERE Account.ParentId = '{BIG_ACCOUNT_ID}' ORDER BY Name LIMIT 1"
            )
        ).json()
        orphans = (await sf.query("SELECT Name, Parent.Name FROM Account WHERE Parent.Name = null")).json()
        bad = await sf.query("SELECT Acount.Name FROM Opportunity")
    [record] = result["records"]
    assert record["Account"] == {
        "attributes": {"type": "Account", "url": f"{DATA}/sobjects/Account/{SUBSIDIARY_ACCOUNT_ID}"},
        "Name": SEED["Account"][SUBSIDIARY_ACCOUNT_ID]["Name"],
        "Parent": {
            "attributes": {"type": "Account", "url": f"{DATA}/sobjects/Account/{BIG_ACCOUNT_ID}"},
            "Name": SEED["Account"][BIG_ACCOUNT_ID]["Name"],
        },
    }
    assert orphans["totalSize"] == sum(1 for a in SEED["Account"].values() if a["ParentId"] is None)
    assert all(r["Parent"] is None for r in orphans["records"])
    assert_error(bad, 400, "INVALID_FIELD")


@pytest.mark.asyncio
async def test_parent_to_child_subqueries_use_the_described_relationship_names() -> None:
    # SOQL reference, "Relationship Queries" (parent-to-child): the children as a nested query
    # result under the child relationship name describe reports, or null when there are none.
    async with org() as sf:
        described = (await sf.api("GET", f"{DATA}/sobjects/Account/describe/")).json()
        result = (
            await sf.query(
                "SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName), "
                "(SELECT Id FROM Opportunities WHERE IsWon = true) FROM Account ORDER BY Name"
            )
        ).json()
        hierarchy = f"SELECT (SELECT Id FROM ChildAccounts) FROM Account WHERE Id = '{BIG_ACCOUNT_ID}'"
        group = (await sf.query(hierarchy)).json()
        unknown = await sf.query("SELECT Name, (SELECT Id FROM Kontakts) FROM Account")
    names = {c["relationshipName"] for c in described["childRelationships"]}
    assert {"ChildAccounts", "Contacts", "Opportunities"} <= names
    demo = next(r for r in result["records"] if r["attributes"]["url"].endswith(DEMO_ACCOUNT_ID))
    demo_contacts = [c for c in SEED["Contact"].values() if c["AccountId"] == DEMO_ACCOUNT_ID]
    contacts = sorted((c["LastName"] for c in demo_contacts), key=str.casefold)
    assert demo["Contacts"]["totalSize"] == len(contacts) > 0
    assert demo["Contacts"]["done"] is True
    assert [c["LastName"] for c in demo["Contacts"]["records"]] == contacts
    assert demo["Contacts"]["records"][0]["attributes"]["type"] == "Contact"
    won = {o["AccountId"] for o in SEED["Opportunity"].values() if o["IsWon"]}
    for record in result["records"]:
        account_id = record["attributes"]["url"].rsplit("/", 1)[1]
        assert (record["Opportunities"] is not None) == (account_id in won)
    assert [r["Id"] for r in group["records"][0]["ChildAccounts"]["records"]] == [SUBSIDIARY_ACCOUNT_ID]
    assert_error(unknown, 400, "INVALID_TYPE")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("soql", "error_code"),
    [
        ("", "MALFORMED_QUERY"),
        ("SELECT FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = 'unterminated", "MALFORMED_QUERY"),
        ('SELECT Id FROM Account WHERE Name = "double"', "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = 'a' AND Type = 'b' OR Industry = 'c'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE (Name = 'a'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account LIMIT -1", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account LIMIT 5 ORDER BY Name", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account; DELETE FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = 'bad \\q escape'", "MALFORMED_QUERY"),
        ("SELECT Id, id FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE CreatedDate > 2026-13-45", "MALFORMED_QUERY"),
        ("SELECT Shoe_Size__c FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Shoe_Size__c = 'x'", "INVALID_FIELD"),
        ("SELECT Id FROM Account ORDER BY Shoe_Size__c", "INVALID_FIELD"),
        ("SELECT Id FROM Invoice__c", "INVALID_TYPE"),
        ("SELECT Id FROM Opportunity WHERE Amount > '5'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Opportunity WHERE CloseDate > '2026-01-01'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Opportunity WHERE AccountId = 'Globex'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Opportunity WHERE Amount LIKE '5%'", "INVALID_QUERY_FILTER_OPERATOR"),
    ],
)
async def test_bad_queries_are_rejected(soql: str, error_code: str) -> None:
    async with org() as sf:
        response = await sf.query(soql)
    error = assert_error(response, 400, error_code)
    assert "fields" not in error


@pytest.mark.asyncio
async def test_an_injection_shaped_literal_is_only_data() -> None:
    escaped = "SELECT Id FROM Account WHERE Name = 'x\\' OR Name != \\'y'"
    unescaped = "SELECT Id FROM Account WHERE Name = 'x' OR Name != 'y'"
    async with org() as sf:
        injected = (await sf.query(escaped)).json()
        # What the same text does when the quotes are not escaped: why adapters must escape.
        widened = (await sf.query(unescaped)).json()
        tricky_name = "O'Brien \\ Partners 50% _Ltd_"
        await sf.api("PATCH", f"{DATA}/sobjects/Account/{DEMO_ACCOUNT_ID}", json={"Name": tricky_name})
        literal = "'" + tricky_name.replace("\\", "\\\\").replace("'", "\\'") + "'"
        exact = (await sf.query(f"SELECT Id FROM Account WHERE Name = {literal}")).json()
        like = (await sf.query("SELECT Id FROM Account WHERE Name LIKE '%50\\% \\_Ltd\\_'")).json()
        no_like = (await sf.query("SELECT Id FROM Account WHERE Name LIKE '%50\\% \\_Lt\\_'")).json()
    assert injected["totalSize"] == 0
    assert widened["totalSize"] == ACCOUNT_COUNT
    assert [r["Id"] for r in exact["records"]] == [DEMO_ACCOUNT_ID]
    assert [r["Id"] for r in like["records"]] == [DEMO_ACCOUNT_ID]
    assert no_like["totalSize"] == 0


# ---------------------------------------------------------------------------------------------------------
# SOQL evaluation (in process)
# ---------------------------------------------------------------------------------------------------------

SEED = build_seed(42)
ACCOUNT_COUNT = len(SEED["Account"])


def run(soql: str) -> list[Record]:
    bound = compile_query(soql, SCHEMAS)
    return [bound.project(row) for row in bound.execute(SEED[bound.schema.name].values())]


def test_soql_conditions() -> None:
    no_tax = run("SELECT Name FROM Account WHERE Tax_Jurisdiction__c = NULL")
    assert no_tax == [{"Name": "Hooli Media Inc"}]
    # As in Salesforce (unlike SQL), != includes nulls.
    assert len(run("SELECT Id FROM Account WHERE Tax_Jurisdiction__c != 'US-NY'")) == ACCOUNT_COUNT - 1
    assert run("SELECT Name FROM Account WHERE name = 'NORTHWIND health systems'") == [
        {"Name": "Northwind Health Systems"}
    ]
    european = run("SELECT Name FROM Account WHERE BillingCountry IN ('Germany', 'united kingdom')")
    assert {r["Name"] for r in european} >= {
        "Initech Software GmbH",
        "Umbrella Life Sciences Ltd",
        "Globex Professional Services UK Ltd",
    }
    assert {r["Name"] for r in european} == {
        a["Name"] for a in SEED["Account"].values() if a["BillingCountry"] != "United States"
    }
    assert len(run("SELECT Id FROM Account WHERE BillingCountry NOT IN ('United States')")) == len(european)
    assert run(f"SELECT Id FROM Account WHERE ParentId = '{BIG_ACCOUNT_ID[:15]}'") == [
        {"Id": SUBSIDIARY_ACCOUNT_ID}
    ]
    zero_or_null = run(
        "SELECT Id FROM Opportunity WHERE IsWon = true AND (Amount = 0 OR Amount = null) ORDER BY Amount"
    )
    assert zero_or_null == [{"Id": NULL_AMOUNT_OPPORTUNITY_ID}, {"Id": ZERO_AMOUNT_OPPORTUNITY_ID}]
    assert run("SELECT Id FROM Opportunity WHERE NOT (IsClosed = true OR Amount < 1000000) LIMIT 3") == []
    recent = run(
        "SELECT CloseDate FROM Opportunity WHERE CloseDate >= 2026-02-01 AND CloseDate < 2026-03-01 "
        "AND LastModifiedDate > 2025-01-01T00:00:00Z AND StageName LIKE 'closed%' ORDER BY CloseDate DESC"
    )
    dates = [r["CloseDate"] for r in recent]
    assert dates
    assert dates == sorted(dates, reverse=True)
    assert all("2026-02-01" <= d < "2026-03-01" for d in dates)


def test_soql_date_literals_are_ranges_of_days() -> None:
    # SOQL and SOSL Reference, "Date Formats and Date Literals": each literal is a range of days around
    # today; = matches inside it, < before its start, > after its end; LAST_N_DAYS:n includes today,
    # NEXT_N_DAYS:n starts tomorrow. The fiscal year is the calendar year.
    today = dt.date(2026, 5, 15)
    days = [today + dt.timedelta(days=offset) for offset in range(-500, 500)]
    schema = SCHEMAS["Opportunity"]

    def matching(condition: str, field: str = "CloseDate") -> list[dt.date]:
        bound = compile_query(f"SELECT Id FROM Opportunity WHERE {condition}", SCHEMAS, today)
        rows: list[Record] = []
        for day in days:
            value = day.isoformat() if field == "CloseDate" else f"{day.isoformat()}T12:00:00.000+0000"
            rows.append({spec.name: None for spec in schema.fields} | {"Id": day.isoformat(), field: value})
        return [dt.date.fromisoformat(row["Id"]) for row in bound.execute(rows)]

    def span(first: dt.date, last: dt.date) -> list[dt.date]:
        return [day for day in days if first <= day <= last]

    assert matching("CloseDate = TODAY") == [today]
    assert matching("CloseDate = YESTERDAY") == [dt.date(2026, 5, 14)]
    assert matching("CloseDate = LAST_N_DAYS:2") == span(dt.date(2026, 5, 13), today)
    assert matching("CloseDate = NEXT_N_DAYS:2") == span(dt.date(2026, 5, 16), dt.date(2026, 5, 17))
    assert matching("CloseDate = THIS_MONTH") == span(dt.date(2026, 5, 1), dt.date(2026, 5, 31))
    assert matching("CloseDate = LAST_MONTH") == span(dt.date(2026, 4, 1), dt.date(2026, 4, 30))
    assert matching("CloseDate = THIS_QUARTER") == span(dt.date(2026, 4, 1), dt.date(2026, 6, 30))
    assert matching("CloseDate = LAST_QUARTER") == span(dt.date(2026, 1, 1), dt.date(2026, 3, 31))
    assert matching("CloseDate = THIS_YEAR") == span(dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    assert matching("CloseDate < THIS_YEAR") == span(days[0], dt.date(2025, 12, 31))
    assert matching("CloseDate > THIS_MONTH") == span(dt.date(2026, 6, 1), days[-1])
    assert matching("CloseDate >= TODAY AND CloseDate <= NEXT_N_DAYS:1") == [today, dt.date(2026, 5, 16)]
    assert matching("CloseDate IN (YESTERDAY, TODAY)") == [dt.date(2026, 5, 14), today]
    assert len(matching("CloseDate != TODAY")) == len(days) - 1
    # A datetime field compares against the same days, from 00:00 UTC.
    recent = matching("LastModifiedDate = last_n_days:1", "LastModifiedDate")
    assert recent == span(dt.date(2026, 5, 14), today)
    assert matching("LastModifiedDate = LAST_QUARTER", "LastModifiedDate") == span(
        dt.date(2026, 1, 1), dt.date(2026, 3, 31)
    )
    # January's last month and quarter are in the year before.
    january = compile_query(
        "SELECT Id FROM Opportunity WHERE CloseDate = LAST_QUARTER", SCHEMAS, dt.date(2026, 1, 9)
    )
    december, new_year = {"Id": "x", "CloseDate": "2025-12-31"}, {"Id": "y", "CloseDate": "2026-01-01"}
    assert january.execute([december, new_year]) == [december]
    wrong_uses = ("Amount = TODAY", "Name = THIS_YEAR", "CloseDate = LAST_N_DAYS", "CloseDate = X_N_DAYS:3")
    for wrong in wrong_uses:
        with pytest.raises(SoqlError) as caught:
            compile_query(f"SELECT Id FROM Opportunity WHERE {wrong}", SCHEMAS, today)
        assert caught.value.code in {"INVALID_QUERY_FILTER_OPERATOR", "MALFORMED_QUERY"}


@pytest.mark.asyncio
async def test_date_literals_count_from_the_org_clock() -> None:
    async with org() as sf:
        await sf.api("PATCH", f"{DATA}/sobjects/Account/{DEMO_ACCOUNT_ID}", json={"Name": "Touched"})
        touched = (await sf.query("SELECT Id FROM Account WHERE LastModifiedDate = TODAY")).json()
    assert DEMO_ACCOUNT_ID in [r["Id"] for r in touched["records"]]


def test_soql_order_by_nulls_and_multiple_keys() -> None:
    ascending = run("SELECT Tax_Jurisdiction__c FROM Account ORDER BY Tax_Jurisdiction__c")
    assert ascending[0]["Tax_Jurisdiction__c"] is None
    last = run("SELECT Tax_Jurisdiction__c FROM Account ORDER BY Tax_Jurisdiction__c ASC NULLS LAST")
    assert last[-1]["Tax_Jurisdiction__c"] is None
    descending = run("SELECT Tax_Jurisdiction__c FROM Account ORDER BY Tax_Jurisdiction__c DESC")
    assert descending[-1]["Tax_Jurisdiction__c"] is None
    rows = run("SELECT BillingCountry, Name FROM Account ORDER BY BillingCountry DESC, Name ASC")
    by_name = sorted(rows, key=lambda r: r["Name"].casefold())
    assert rows == sorted(by_name, key=lambda r: r["BillingCountry"].casefold(), reverse=True)


def test_soql_errors_point_at_the_offending_token() -> None:
    with pytest.raises(SoqlError) as caught:
        compile_query("SELECT Id\nFROM Account WHERE Nme = 'x'", SCHEMAS)
    assert caught.value.code == "INVALID_FIELD"
    assert "ERROR at Row:2:Column:20" in caught.value.message
    assert "No such column 'Nme' on entity 'Account'" in caught.value.message


# ---------------------------------------------------------------------------------------------------------
# Mounting, admin and faults
# ---------------------------------------------------------------------------------------------------------


def mount(prefix: str, app: Any) -> Any:
    """What the gateway does: strip the prefix from the path and record it in root_path."""

    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        assert path.startswith(prefix)
        scope = {
            **scope,
            "root_path": scope.get("root_path", "") + prefix,
            "path": path[len(prefix) :] or "/",
        }
        await app(scope, receive, send)

    return mounted


@pytest.mark.asyncio
async def test_mounted_under_a_prefix() -> None:
    app = create_salesforce_sandbox(SalesforceSandboxSettings(max_batch_size=200))
    transport = httpx.ASGITransport(app=mount("/sandboxes/salesforce", app))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        token = await client.post(
            "/sandboxes/salesforce/services/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
        instance_url = token.json()["instance_url"]
        assert instance_url == "http://gateway.test/sandboxes/salesforce"
        # A Salesforce client from here on only knows instance_url and joins server-relative URLs onto it.
        api = httpx.AsyncClient(
            transport=transport,
            base_url=instance_url,
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        async with api:
            soql = f"SELECT Id FROM Opportunity WHERE AccountId = '{BIG_ACCOUNT_ID}'"
            page = (await api.get(f"{DATA}/query/", params={"q": soql})).json()
            ids = [r["Id"] for r in page["records"]]
            record_url = page["records"][0]["attributes"]["url"]
            assert record_url.startswith(f"{DATA}/sobjects/Opportunity/")
            assert urlsplit(page["nextRecordsUrl"]).path.startswith(f"{DATA}/query/01g")
            while not page["done"]:
                response = await api.get(instance_url + page["nextRecordsUrl"])
                assert response.status_code == 200
                page = response.json()
                ids += [r["Id"] for r in page["records"]]
            record = await api.get(instance_url + record_url)
    assert len(set(ids)) == BIG_ACCOUNT_OPPORTUNITY_COUNT
    assert record.status_code == 200


@pytest.mark.asyncio
async def test_reset_restores_the_seed() -> None:
    async with org() as sf:
        url = f"{DATA}/sobjects/Account/{DEMO_ACCOUNT_ID}"
        await sf.api("PATCH", url, json={"Name": "Changed"})
        assert (await sf.client.post("/__sandbox/reset")).status_code == 204
        assert_error(await sf.api("GET", url), 401, "INVALID_SESSION_ID")  # sessions are gone too
        await sf.login()
        restored = await sf.api("GET", url)
    assert restored.json()["Name"] == "Northwind Health Systems"
    assert restored.headers["sforce-limit-info"] == "api-usage=1/5000"


@pytest.mark.asyncio
async def test_stats_lists_recent_requests() -> None:
    async with org() as sf:
        await sf.api("GET", f"{DATA}/limits/")
        await sf.client.get(f"{DATA}/limits/")
        stats = (await sf.client.get("/__sandbox/stats")).json()
    assert stats["api_usage"] == 1
    assert stats["requests"] == [
        {"method": "POST", "path": "/services/oauth2/token", "status": 200},
        {"method": "GET", "path": f"{DATA}/limits/", "status": 200},
        {"method": "GET", "path": f"{DATA}/limits/", "status": 401},
    ]


@pytest.mark.asyncio
async def test_faults_apply_to_vendor_paths_and_reset_clears_them() -> None:
    async with org() as sf:
        await sf.login()
        rule = {
            "kind": "error",
            "path_pattern": "/query",
            "status": 503,
            "body": '[{"message":"Server unavailable","errorCode":"SERVER_UNAVAILABLE"}]',
            "headers": {"Retry-After": "2"},
            "times": 1,
        }
        assert (await sf.client.post("/__sandbox/faults", json=rule)).status_code == 201
        faulted = await sf.query("SELECT Id FROM Account")
        recovered = await sf.query("SELECT Id FROM Account")
        sf.sandbox.faults.add(FaultRule(kind="malformed", path_pattern="/sobjects/"))
        malformed = await sf.api("GET", f"{DATA}/sobjects/Account/{DEMO_ACCOUNT_ID}")
        assert (await sf.client.post("/__sandbox/reset")).status_code == 204
        remaining_faults = (await sf.client.get("/__sandbox/faults")).json()["faults"]
        stats = (await sf.client.get("/__sandbox/stats")).json()
    assert_error(faulted, 503, "SERVER_UNAVAILABLE")
    assert faulted.headers["retry-after"] == "2"
    assert recovered.status_code == 200
    assert malformed.status_code == 200
    assert malformed.headers["sforce-limit-info"] == "api-usage=2/5000"
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed.content)
    assert remaining_faults == []
    assert (stats["api_usage"], stats["requests"]) == (0, [])


# ---------------------------------------------------------------------------------------------------------
# Seed data
# ---------------------------------------------------------------------------------------------------------


def test_salesforce_ids_are_real_18_character_ids() -> None:
    # A documented 15 -> 18 example: the suffix encodes which characters are upper case.
    assert normalize_salesforce_id("0015000000Gv7qJ") == "0015000000Gv7qJAAR"
    assert normalize_salesforce_id("0015000000gv7qjaar") == "0015000000Gv7qJAAR"
    assert normalize_salesforce_id("0015000000Gv7qJ!") is None
    ids = [salesforce_id("006", n) for n in range(2000)]
    assert len(set(ids)) == 2000
    assert all(len(i) == 18 and i.startswith("006") and normalize_salesforce_id(i) == i for i in ids)
    assert all(normalize_salesforce_id(i[:15]) == i for i in ids)


def activation_problems(opportunity: Record, accounts: dict[str, Record]) -> set[str]:
    """The activation rules the seed is built to exercise (the real ones live in the process tier)."""
    problems = set()
    if not opportunity["Amount"]:
        problems.add("amount")
    if opportunity["CurrencyIsoCode"] is None:
        problems.add("currency")
    if opportunity["Billing_Model__c"] is None:
        problems.add("billing_model")
    if opportunity["Legal_Entity__c"] is None:
        problems.add("legal_entity")
    if accounts[opportunity["AccountId"]]["Tax_Jurisdiction__c"] is None:
        problems.add("tax_jurisdiction")
    return problems


def test_seed_activation_cases() -> None:
    seed = build_seed(42)
    accounts, opportunities = seed["Account"], seed["Opportunity"]
    expected = {
        ZERO_AMOUNT_OPPORTUNITY_ID: {"amount"},
        NULL_AMOUNT_OPPORTUNITY_ID: {"amount"},
        MISSING_CURRENCY_OPPORTUNITY_ID: {"currency"},
        MISSING_BILLING_MODEL_OPPORTUNITY_ID: {"billing_model"},
        MISSING_LEGAL_ENTITY_OPPORTUNITY_ID: {"legal_entity"},
        NO_TAX_JURISDICTION_OPPORTUNITY_ID: {"tax_jurisdiction"},
    }
    won = [o for o in opportunities.values() if o["StageName"] == "Closed Won"]
    assert len(won) > 20
    for opportunity in won:
        assert (opportunity["IsWon"], opportunity["IsClosed"]) == (True, True)
        assert activation_problems(opportunity, accounts) == expected.get(opportunity["Id"], set())
    for ready in READY_OPPORTUNITY_IDS:
        assert opportunities[ready]["StageName"] == "Closed Won"
    assert accounts[NO_TAX_JURISDICTION_ACCOUNT_ID]["Tax_Jurisdiction__c"] is None
    assert opportunities[OPEN_OPPORTUNITY_ID]["IsClosed"] is False
    assert activation_problems(opportunities[OPEN_OPPORTUNITY_ID], accounts) == set()
    assert opportunities[CLOSED_LOST_OPPORTUNITY_ID]["IsWon"] is False


def test_seed_shape() -> None:
    seed = build_seed(42)
    accounts, opportunities = seed["Account"], seed["Opportunity"]
    assert len(accounts) == ACCOUNT_COUNT == 36
    assert accounts[SUBSIDIARY_ACCOUNT_ID]["ParentId"] == BIG_ACCOUNT_ID
    per_account = Counter(o["AccountId"] for o in opportunities.values())
    assert per_account.pop(BIG_ACCOUNT_ID) == BIG_ACCOUNT_OPPORTUNITY_COUNT
    assert all(3 <= count <= 10 for count in per_account.values())
    assert set(per_account) | {BIG_ACCOUNT_ID} == set(accounts)
    assert {o["StageName"] for o in opportunities.values()} == {
        "Prospecting",
        "Qualification",
        "Needs Analysis",
        "Proposal/Price Quote",
        "Negotiation/Review",
        "Closed Won",
        "Closed Lost",
    }
    assert {o["Billing_Model__c"] for o in opportunities.values()} - {None} == {
        "Time and Materials",
        "Fixed Fee",
        "Milestone",
        "Retainer",
    }
    for record in [*accounts.values(), *opportunities.values()]:
        for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            assert SF_DATETIME.match(record[name])
        assert record["CreatedDate"] <= record["LastModifiedDate"]
    for opportunity in opportunities.values():
        assert (opportunity["Project_Id__c"], opportunity["Activation_Status__c"]) == (None, None)
        amount = opportunity["Amount"]
        assert amount is None or round(amount, 2) == amount


def test_seed_is_deterministic_and_only_filler_depends_on_the_seed() -> None:
    default = build_seed(42)
    assert build_seed(42) == default
    other = build_seed(7)
    assert other != default
    assert set(other["Opportunity"]) == set(default["Opportunity"])
    assert other["Account"] == default["Account"]
    well_known = [
        *READY_OPPORTUNITY_IDS,
        ZERO_AMOUNT_OPPORTUNITY_ID,
        OPEN_OPPORTUNITY_ID,
        CLOSED_LOST_OPPORTUNITY_ID,
    ]
    for known in well_known:
        assert other["Opportunity"][known] == default["Opportunity"][known]


# ---------------------------------------------------------------------------------------------------------
# JWT bearer flow
# ---------------------------------------------------------------------------------------------------------

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_TOKEN_KEYS = {"access_token", "instance_url", "id", "token_type", "scope"}
PRIYA = "priya.raman@stratum-sandbox.example"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@functools.cache
def dev_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(dev_jwt_private_key_pem().encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@functools.cache
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwt_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": DEV_JWT_CONSUMER_KEY,
        "sub": INTEGRATION_USERNAME,
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 180,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def jwt_assertion(
    claims: dict[str, Any], *, key: rsa.RSAPrivateKey | None = None, header: dict[str, Any] | None = None
) -> str:
    signing_input = (
        f"{b64url(json.dumps(header or {'alg': 'RS256'}).encode())}.{b64url(json.dumps(claims).encode())}"
    )
    signature = (key or dev_key()).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


async def jwt_login(sf: Org, assertion: str) -> httpx.Response:
    return await sf.client.post(
        "/services/oauth2/token", data={"grant_type": JWT_BEARER, "assertion": assertion}
    )


def test_the_dev_jwt_key_is_deterministic_and_2048_bit() -> None:
    assert dev_key().key_size == 2048
    assert dev_jwt_private_key_pem() == dev_jwt_private_key_pem()
    public = serialization.load_pem_public_key(dev_jwt_public_key_pem().encode())
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == dev_key().public_key().public_numbers()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "audience", ["https://login.salesforce.com", "https://test.salesforce.com", BASE, [BASE, "other"]]
)
async def test_jwt_bearer_grant(audience: Any) -> None:
    async with org() as sf:
        response = await jwt_login(sf, jwt_assertion(jwt_claims(aud=audience, sub=PRIYA)))
        assert response.status_code == 200, response.text
        payload = response.json()
        sf.token = payload["access_token"]
        created = await sf.api("POST", f"{DATA}/sobjects/Account/", json={"Name": "JWT Co"})
        owner = (await sf.api("GET", f"{DATA}/sobjects/Account/{created.json()['id']}")).json()["OwnerId"]
    assert set(payload) == JWT_TOKEN_KEYS
    assert (payload["token_type"], payload["instance_url"]) == ("Bearer", BASE)
    assert payload["id"].endswith(f"/{USERNAMES[PRIYA]}")
    assert response.headers["cache-control"].startswith("no-cache")
    # The session acts as the user the assertion named: records it creates are theirs.
    assert owner == USERNAMES[PRIYA]


@pytest.mark.asyncio
async def test_jwt_expiry_may_be_a_string_of_digits() -> None:
    # Salesforce's own example and simple-salesforce send "exp" as a string.
    async with org() as sf:
        response = await jwt_login(sf, jwt_assertion(jwt_claims(exp=str(int(time.time()) + 120))))
    assert response.status_code == 200, response.text


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("assertion", "error", "description"),
    [
        pytest.param(
            lambda: jwt_assertion(jwt_claims(iss="who")),
            "invalid_client_id",
            "client identifier invalid",
            id="unknown-iss",
        ),
        pytest.param(
            lambda: jwt_assertion(jwt_claims(iss=None)),
            "invalid_client_id",
            "client identifier invalid",
            id="no-iss",
        ),
        pytest.param(
            lambda: jwt_assertion(jwt_claims(), key=other_key()),
            "invalid_grant",
            "invalid assertion",
            id="wrong-key",
        ),
        pytest.param(
            lambda: jwt_assertion(jwt_claims(), header={"alg": "RS512"}),
            "invalid_grant",
            "invalid assertion",
            id="alg",
        ),
        pytest.param(
            lambda: jwt_assertion(jwt_claims()).rsplit(".", 1)[0] + ".",
            "invalid_grant",
            "invalid assertion",
            id="alg-none-unsigned",
        ),
        pytest.param(lambda: "not.a-jwt", "invalid_grant", "invalid assertion", id="garbage"),
        pytest.param(lambda: "", "invalid_grant", "invalid assertion", id="empty"),
        pytest.param(
            lambda: jwt_assertion(jwt_claims(aud="https://evil.example")),
            "invalid_grant",
            "audience is invalid",
            id="aud",
        ),
        pytest.param(
            lambda: jwt_assertion(jwt_claims(exp=int(time.time()) - 5)),
            "invalid_grant",
            "expired access/refresh token",
            id="expired",
        ),
        pytest.param(
            lambda: jwt_assertion(jwt_claims(exp=int(time.time()) + 3600)),
            "invalid_grant",
            "invalid assertion",
            id="exp-too-far",
        ),
        pytest.param(
            lambda: jwt_assertion(jwt_claims(exp="soon")), "invalid_grant", "invalid assertion", id="exp-text"
        ),
        pytest.param(
            lambda: jwt_assertion(jwt_claims(sub="nobody@stratum-sandbox.example")),
            "invalid_grant",
            "user hasn't approved this consumer",
            id="sub",
        ),
    ],
)
async def test_jwt_bearer_failures(assertion: Any, error: str, description: str) -> None:
    async with org() as sf:
        response = await jwt_login(sf, assertion())
        usable = await sf.client.get(f"{DATA}/limits/", headers={"Authorization": "Bearer x"})
    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}
    assert usable.status_code == 401
    assert sf.sandbox.sessions == {}


def hs256_with_the_public_key() -> str:
    # The classic confusion attack: an HMAC "signed" with the RSA public key's PEM text.
    header = b64url(json.dumps({"alg": "HS256"}).encode())
    claims = b64url(json.dumps(jwt_claims()).encode())
    mac = hmac.new(dev_jwt_public_key_pem().encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64url(mac)}"


@pytest.mark.asyncio
async def test_jwt_hs256_signed_with_the_public_key_is_refused() -> None:
    async with org() as sf:
        response = await jwt_login(sf, hs256_with_the_public_key())
    assert response.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


def self_signed_certificate(key: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stratum-test-app")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.asyncio
async def test_registered_jwt_clients_replace_the_dev_client() -> None:
    settings = SalesforceSandboxSettings(
        jwt_clients={"partner-app": self_signed_certificate(other_key())},
        usernames={"ops@partner.example": INTEGRATION_USER_ID},
        instance_url="https://acme.my.salesforce.com",
    )
    app: Any = create_salesforce_sandbox(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        sf = Org(client, app)
        partner = jwt_claims(iss="partner-app", sub="ops@partner.example")
        accepted = await jwt_login(sf, jwt_assertion(partner, key=other_key()))
        dev_client = await jwt_login(sf, jwt_assertion(jwt_claims(sub="ops@partner.example")))
        unapproved = await jwt_login(
            sf, jwt_assertion({**partner, "sub": INTEGRATION_USERNAME}, key=other_key())
        )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["instance_url"] == "https://acme.my.salesforce.com"
    assert dev_client.json()["error"] == "invalid_client_id"
    assert unapproved.json()["error_description"] == "user hasn't approved this consumer"


def test_settings_refuse_usernames_of_unknown_users_and_bad_keys() -> None:
    with pytest.raises(ValueError, match="unknown user ids"):
        SalesforceSandboxSettings(usernames={"x@example.com": salesforce_id("005", 99)})
    with pytest.raises(ValueError, match=r"PEM|key"):
        SalesforceSandbox(SalesforceSandboxSettings(jwt_clients={"app": "not a pem"}))


# ---------------------------------------------------------------------------------------------------------
# Creating records
# ---------------------------------------------------------------------------------------------------------


async def create(sf: Org, sobject: str, body: Any) -> httpx.Response:
    return await sf.api("POST", f"{DATA}/sobjects/{sobject}/", json=body)


async def read(sf: Org, sobject: str, record_id: str) -> dict[str, Any]:
    response = await sf.api("GET", f"{DATA}/sobjects/{sobject}/{record_id}")
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


@pytest.mark.asyncio
async def test_creating_an_account() -> None:
    async with org() as sf:
        response = await create(
            sf, "account", {"Name": "Tailwind Holdings", "BillingCountry": "United States"}
        )
        record = await read(sf, "Account", response.json()["id"])
    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "success": True, "errors": []}
    assert response.headers["location"] == f"{DATA}/sobjects/Account/{body['id']}"
    assert "sforce-limit-info" in response.headers
    assert normalize_salesforce_id(body["id"]) == body["id"]
    assert body["id"].startswith("001")
    # Defaults: the running user owns it, the user's currency, and the audit fields.
    assert (record["OwnerId"], record["CurrencyIsoCode"], record["IsDeleted"]) == (
        INTEGRATION_USER_ID,
        "USD",
        False,
    )
    assert record["CreatedDate"] == record["LastModifiedDate"] == record["SystemModstamp"]
    assert SF_DATETIME.match(record["CreatedDate"])
    assert (record["Stratum_Id__c"], record["ParentId"]) == (None, None)


@pytest.mark.asyncio
async def test_creating_derives_what_salesforce_derives() -> None:
    async with org() as sf:
        contact = await create(
            sf, "Contact", {"FirstName": "Ada", "LastName": "Okafor", "AccountId": DEMO_ACCOUNT_ID[:15]}
        )
        opportunity = await create(
            sf,
            "Opportunity",
            {"Name": "Northwind - Phase 3", "StageName": "Proposal/Price Quote", "CloseDate": "2026-06-30"},
        )
        contract = await create(
            sf, "Contract", {"AccountId": DEMO_ACCOUNT_ID, "StartDate": "2026-01-31", "ContractTerm": 1}
        )
        milestone = await create(
            sf,
            "Opportunity_Milestone__c",
            {"Name": "Kick-off", "Opportunity__c": READY_MILESTONE_OPPORTUNITY_ID, "Amount__c": 1000},
        )
        line = await create(
            sf,
            "Rate_Card_Line__c",
            {"Opportunity__c": READY_FIXED_FEE_OPPORTUNITY_ID, "Role__c": "PM", "Rate__c": 90},
        )
        records = {
            name: await read(sf, name, response.json()["id"])
            for name, response in (
                ("Contact", contact),
                ("Opportunity", opportunity),
                ("Contract", contract),
                ("Opportunity_Milestone__c", milestone),
                ("Rate_Card_Line__c", line),
            )
        }
        url = f"{DATA}/sobjects/Contract/{contract.json()['id']}"
        assert (
            await sf.api("PATCH", url, json={"Status": "Activated", "ContractTerm": 24})
        ).status_code == 204
        activated = await read(sf, "Contract", contract.json()["id"])
    assert (records["Contact"]["Name"], records["Contact"]["AccountId"]) == ("Ada Okafor", DEMO_ACCOUNT_ID)
    won = records["Opportunity"]
    assert (won["IsWon"], won["IsClosed"], won["Probability"]) == (False, False, 75.0)
    new_contract = records["Contract"]
    assert (new_contract["Status"], new_contract["EndDate"], new_contract["ActivatedDate"]) == (
        "Draft",
        "2026-02-27",
        None,
    )
    seeded_numbers = {int(c["ContractNumber"]) for c in SEED["Contract"].values()}
    assert int(new_contract["ContractNumber"]) == max(seeded_numbers) + 1
    # Master-detail children take the master's currency.
    assert records["Opportunity_Milestone__c"]["CurrencyIsoCode"] == "GBP"
    assert records["Rate_Card_Line__c"]["CurrencyIsoCode"] == "EUR"
    seeded_lines = [int(r["Name"].removeprefix("RCL-")) for r in SEED["Rate_Card_Line__c"].values()]
    assert records["Rate_Card_Line__c"]["Name"] == f"RCL-{max(seeded_lines) + 1:06d}"
    assert (activated["Status"], activated["EndDate"]) == ("Activated", "2028-01-30")
    assert SF_DATETIME.match(activated["ActivatedDate"])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("sobject", "body", "error_code", "fields"),
    [
        ("Opportunity", {}, "REQUIRED_FIELD_MISSING", ["Name", "StageName", "CloseDate"]),
        ("Contact", {"FirstName": "x"}, "REQUIRED_FIELD_MISSING", ["LastName"]),
        ("Contact", {"LastName": None}, "REQUIRED_FIELD_MISSING", ["LastName"]),
        ("Contract", {"Status": "Draft"}, "REQUIRED_FIELD_MISSING", ["AccountId"]),
        ("Opportunity_Milestone__c", {"Name": "x"}, "REQUIRED_FIELD_MISSING", ["Opportunity__c"]),
        ("Account", {"Name": "x", "CurrencyIsoCode": None}, "REQUIRED_FIELD_MISSING", ["CurrencyIsoCode"]),
        ("Contact", {"LastName": "x", "Shoe_Size__c": 9}, "INVALID_FIELD", ["Shoe_Size__c"]),
        ("Contact", {"LastName": "x" * 81}, "STRING_TOO_LONG", ["LastName"]),
        ("Contact", {"LastName": "x", "Email": "not an address"}, "INVALID_EMAIL_ADDRESS", ["Email"]),
        ("Contact", {"LastName": "x", "Name": "y"}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["Name"]),
        ("Account", {"Name": "x", "Id": DEMO_ACCOUNT_ID}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["Id"]),
        (
            "Contract",
            {"AccountId": DEMO_ACCOUNT_ID, "EndDate": "2027-01-01"},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["EndDate"],
        ),
        (
            "Contract",
            {"AccountId": DEMO_ACCOUNT_ID, "Status": "Signed"},
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            ["Status"],
        ),
        (
            "Contract",
            {"AccountId": DEMO_ACCOUNT_ID, "Status": "Activated"},
            "FIELD_INTEGRITY_EXCEPTION",
            ["Status"],
        ),
        ("Contact", {"LastName": "x", "AccountId": "001xyz"}, "MALFORMED_ID", ["AccountId"]),
        ("Contact", {"LastName": "x", "AccountId": READY_OPPORTUNITY_ID}, "MALFORMED_ID", ["AccountId"]),
        (
            "Contact",
            {"LastName": "x", "AccountId": salesforce_id("001", 4444)},
            "INVALID_CROSS_REFERENCE_KEY",
            ["AccountId"],
        ),
        ("Contract", {"AccountId": DEMO_ACCOUNT_ID, "ContractTerm": 12.5}, "JSON_PARSER_ERROR", None),
        ("Contract", {"AccountId": DEMO_ACCOUNT_ID, "StartDate": "1 April 2026"}, "JSON_PARSER_ERROR", None),
        ("Opportunity", [{"Name": "x"}], "JSON_PARSER_ERROR", None),
    ],
)
async def test_create_validation_errors(
    sobject: str, body: Any, error_code: str, fields: list[str] | None
) -> None:
    async with org() as sf:
        before = {name: len(records) for name, records in sf.sandbox.records.items()}
        response = await create(sf, sobject, body)
        after = {name: len(records) for name, records in sf.sandbox.records.items()}
    error = assert_error(response, 400, error_code)
    assert error.get("fields") == fields
    assert after == before


@pytest.mark.asyncio
async def test_create_needs_a_known_object_and_a_json_body() -> None:
    async with org() as sf:
        unknown = await create(sf, "Invoice__c", {"Name": "x"})
        empty = await sf.api(
            "POST", f"{DATA}/sobjects/Contact/", content=b"", headers={"Content-Type": "application/json"}
        )
    assert_error(unknown, 404, "NOT_FOUND")
    assert_error(empty, 400, "JSON_PARSER_ERROR")


@pytest.mark.asyncio
async def test_unique_external_ids_refuse_duplicates() -> None:
    async with org() as sf:
        first = await create(sf, "Account", {"Name": "One", "Stratum_Id__c": "cust-1"})
        second = await create(sf, "Account", {"Name": "Two", "Stratum_Id__c": "CUST-1"})
        other = await create(sf, "Account", {"Name": "Two", "Stratum_Id__c": "cust-2"})
        clash = await sf.api(
            "PATCH", f"{DATA}/sobjects/Account/{other.json()['id']}", json={"Stratum_Id__c": "cust-1"}
        )
    assert first.status_code == 201
    error = assert_error(second, 400, "DUPLICATE_VALUE")
    assert error["fields"] == ["Stratum_Id__c"]
    assert first.json()["id"] in error["message"]
    assert_error(clash, 400, "DUPLICATE_VALUE")


# ---------------------------------------------------------------------------------------------------------
# Upsert by external id
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_upsert_creates_then_updates() -> None:
    async with org() as sf:
        url = f"{DATA}/sobjects/Contact/External_Id__c/X-1"
        created = await sf.api("PATCH", url, json={"LastName": "Ng", "AccountId": DEMO_ACCOUNT_ID})
        # Same key, other casing: text external ids match case-insensitively.
        updated = await sf.api("PATCH", url.replace("X-1", "x-1"), json={"Title": "CFO"})
        by_key = await sf.api("GET", url)
    assert created.status_code == 201
    record_id = created.json()["id"]
    assert created.json() == {"id": record_id, "success": True, "errors": [], "created": True}
    assert created.headers["location"] == f"{DATA}/sobjects/Contact/{record_id}"
    assert updated.status_code == 200
    assert updated.json() == {"id": record_id, "success": True, "errors": [], "created": False}
    record = by_key.json()
    assert (record["Id"], record["LastName"], record["Title"], record["External_Id__c"]) == (
        record_id,
        "Ng",
        "CFO",
        "X-1",
    )


@pytest.mark.asyncio
async def test_upsert_on_a_duplicated_external_id_answers_300() -> None:
    async with org() as sf:
        url = f"{DATA}/sobjects/Contact/External_Id__c/{DUPLICATE_CONTACT_EXTERNAL_ID}"
        before = [dict(sf.sandbox.records["Contact"][i]) for i in DUPLICATE_CONTACT_IDS]
        upsert = await sf.api("PATCH", url, json={"Title": "Buyer"})
        read_by_key = await sf.api("GET", url)
        after = [sf.sandbox.records["Contact"][i] for i in DUPLICATE_CONTACT_IDS]
    expected = sorted(f"{DATA}/sobjects/Contact/{record_id}" for record_id in DUPLICATE_CONTACT_IDS)
    assert upsert.status_code == 300
    assert sorted(upsert.json()) == expected
    assert (read_by_key.status_code, sorted(read_by_key.json())) == (300, expected)
    assert after == before


@pytest.mark.asyncio
async def test_upsert_update_only() -> None:
    async with org() as sf:
        missing = await sf.api(
            "PATCH",
            f"{DATA}/sobjects/Contact/External_Id__c/NEW-1",
            params={"updateOnly": "true"},
            json={"LastName": "x"},
        )
        count = len(sf.sandbox.records["Contact"])
        await sf.api("PATCH", f"{DATA}/sobjects/Contact/External_Id__c/NEW-2", json={"LastName": "x"})
        existing = await sf.api(
            "PATCH", f"{DATA}/sobjects/Contact/External_Id__c/NEW-2?updateOnly=true", json={"LastName": "y"}
        )
    assert_error(missing, 404, "NOT_FOUND")
    assert count == len(SEED["Contact"])
    assert (existing.status_code, existing.json()["created"]) == (200, False)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "body", "status", "error_code"),
    [
        ("Contact/Nope__c/1", {"LastName": "x"}, 404, "NOT_FOUND"),
        ("Contact/LastName/Ng", {"LastName": "x"}, 400, "INVALID_FIELD"),
        ("Contact/External_Id__c/X-9", {"External_Id__c": "X-8", "LastName": "x"}, 400, "INVALID_FIELD"),
        ("Contact/External_Id__c/X-9", {"FirstName": "x"}, 400, "REQUIRED_FIELD_MISSING"),
        ("Contact/External_Id__c/X-9", ["x"], 400, "JSON_PARSER_ERROR"),
        ("Invoice__c/External_Id__c/X-9", {}, 404, "NOT_FOUND"),
        (f"Opportunity/Id/{salesforce_id('006', 4242)}", {"Name": "x"}, 404, "NOT_FOUND"),
    ],
)
async def test_upsert_errors(path: str, body: Any, status: int, error_code: str) -> None:
    async with org() as sf:
        response = await sf.api("PATCH", f"{DATA}/sobjects/{path}", json=body)
        counts = {name: len(records) for name, records in sf.sandbox.records.items()}
    assert_error(response, status, error_code)
    assert counts == {name: len(records) for name, records in SEED.items()}


@pytest.mark.asyncio
async def test_upsert_by_the_gateways_own_id_and_by_salesforce_id() -> None:
    async with org() as sf:
        body = {
            "Name": "Gateway deal",
            "StageName": "Prospecting",
            "CloseDate": "2026-09-30",
            "AccountId": DEMO_ACCOUNT_ID,
        }
        url = f"{DATA}/sobjects/Opportunity/Stratum_Id__c/opp-7f3a"
        first = await sf.api("PATCH", url, json=body)
        retried = await sf.api("PATCH", url, json=body)  # a retried create: the same record, not a duplicate
        by_id = await sf.api(
            "PATCH", f"{DATA}/sobjects/Opportunity/Id/{OPEN_OPPORTUNITY_ID}", json={"Amount": 1}
        )
        matching = (await sf.query("SELECT Id FROM Opportunity WHERE Stratum_Id__c = 'opp-7f3a'")).json()
    assert (first.status_code, retried.status_code) == (201, 200)
    assert first.json()["id"] == retried.json()["id"]
    assert matching["totalSize"] == 1
    assert (by_id.status_code, by_id.json()["id"]) == (200, OPEN_OPPORTUNITY_ID)


# ---------------------------------------------------------------------------------------------------------
# Contacts, contracts and deal terms
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_contacts_and_contracts_are_readable_and_queryable() -> None:
    async with org() as sf:
        contact = await read(sf, "Contact", DEMO_CONTACT_ID)
        contract = await read(sf, "Contract", DEMO_CONTRACT_ID)
        contacts = (
            await sf.query(f"SELECT Id, Email FROM Contact WHERE AccountId = '{DEMO_ACCOUNT_ID}'")
        ).json()
        long_contracts = (
            await sf.query(
                "SELECT Id, ContractTerm FROM Contract WHERE ContractTerm >= 24 AND Status = 'Activated'"
            )
        ).json()
        terms = (
            await sf.query(
                "SELECT Name, Amount__c FROM Opportunity_Milestone__c "
                f"WHERE Opportunity__c = '{READY_MILESTONE_OPPORTUNITY_ID}' ORDER BY Due_Date__c"
            )
        ).json()
    assert (contact["Name"], contact["Email"], contact["AccountId"]) == (
        "Dana Whitfield",
        "dana.whitfield@northwind-health.example",
        DEMO_ACCOUNT_ID,
    )
    assert (contract["Status"], contract["StartDate"], contract["EndDate"], contract["Opportunity__c"]) == (
        "Activated",
        "2026-03-01",
        "2028-02-29",
        READY_OPPORTUNITY_ID,
    )
    assert contract["ContractNumber"] == "00000100"
    assert DEMO_CONTACT_ID in {r["Id"] for r in contacts["records"]}
    assert all("@" in r["Email"] for r in contacts["records"])
    assert long_contracts["totalSize"] > 0
    assert all(r["ContractTerm"] >= 24 for r in long_contracts["records"])
    assert terms["records"][0]["Name"] == "Discovery and design sign-off"
    assert sum(Decimal(str(r["Amount__c"])) for r in terms["records"]) == Decimal("310500.75")


def test_seed_accounts_contacts_and_hierarchies() -> None:
    accounts, contacts = SEED["Account"], SEED["Contact"]
    assert Counter(a["BillingCountry"] for a in accounts.values()) == {
        "United States": 18,
        "United Kingdom": 9,
        "Germany": 9,
    }
    currency_of = {"United States": "USD", "United Kingdom": "GBP", "Germany": "EUR"}
    assert all(a["CurrencyIsoCode"] == currency_of[a["BillingCountry"]] for a in accounts.values())
    children = {a["Id"] for a in accounts.values() if a["ParentId"] == GROUP_PARENT_ACCOUNT_ID}
    assert {accounts[i]["BillingCountry"] for i in children} == {"United States", "Germany"}
    grandchildren = [a for a in accounts.values() if a["ParentId"] in children]
    assert grandchildren
    assert accounts[GROUP_PARENT_ACCOUNT_ID]["BillingCountry"] == "United Kingdom"
    assert all(a["ParentId"] is None or a["ParentId"] in accounts for a in accounts.values())
    # Every client contact is on a seeded account; the only contacts without one are the firm's own people,
    # Certinia PSA's resources (Certinia resources are Contacts; see test_salesforce_certinia.py).
    assert {c["Id"] for c in contacts.values() if c["AccountId"] is None} == set(PSE_RESOURCE_IDS)
    per_account = Counter(c["AccountId"] for c in contacts.values() if c["AccountId"] is not None)
    assert set(per_account) == set(accounts)
    assert all(count >= 2 for count in per_account.values())
    assert all(c["Name"] == f"{c['FirstName']} {c['LastName']}" for c in contacts.values())
    with_external_ids = {c["Id"] for c in contacts.values() if c["External_Id__c"] is not None}
    assert with_external_ids == set(DUPLICATE_CONTACT_IDS)
    assert {contacts[i]["External_Id__c"] for i in DUPLICATE_CONTACT_IDS} == {DUPLICATE_CONTACT_EXTERNAL_ID}
    assert all(r["Stratum_Id__c"] is None for r in [*accounts.values(), *SEED["Opportunity"].values()])


def test_seed_contracts() -> None:
    contracts, opportunities = SEED["Contract"], SEED["Opportunity"]
    assert {c["Status"] for c in contracts.values()} == set(CONTRACT_STATUSES)
    today = dt.date(2026, 3, 2)
    for contract in contracts.values():
        start, end = dt.date.fromisoformat(contract["StartDate"]), dt.date.fromisoformat(contract["EndDate"])
        assert start < end
        if contract["Status"] == "Activated":
            assert start <= today <= end
        elif contract["Status"] == "Expired":
            assert end < today
        elif contract["Status"] in ("Draft", "InApproval"):
            assert today < start
            assert contract["ActivatedDate"] is None
        linked = contract["Opportunity__c"]
        assert linked is None or opportunities[linked]["AccountId"] == contract["AccountId"]
    assert len({c["ContractNumber"] for c in contracts.values()}) == len(contracts)


def test_seed_deal_terms_follow_the_billing_model() -> None:
    opportunities = SEED["Opportunity"]
    milestones: dict[str, list[Record]] = {}
    for milestone in SEED["Opportunity_Milestone__c"].values():
        milestones.setdefault(milestone["Opportunity__c"], []).append(milestone)
    rate_cards: dict[str, list[Record]] = {}
    for line in SEED["Rate_Card_Line__c"].values():
        rate_cards.setdefault(line["Opportunity__c"], []).append(line)
    won = [o for o in opportunities.values() if o["StageName"] == "Closed Won" and o["Billing_Model__c"]]
    for deal in won:
        model = deal["Billing_Model__c"]
        assert deal["Contract_Terms__c"], deal["Id"]
        if model in ("Fixed Fee", "Milestone") and deal["Amount"]:
            parts = [Decimal(str(m["Amount__c"])) for m in milestones[deal["Id"]]]
            assert sum(parts) == Decimal(str(deal["Amount"])), deal["Id"]
            assert all(m["CurrencyIsoCode"] == deal["CurrencyIsoCode"] for m in milestones[deal["Id"]])
        else:
            assert deal["Id"] not in milestones
        if model == "Fixed Fee":
            assert deal["Id"] not in rate_cards
        else:
            assert rate_cards[deal["Id"]], deal["Id"]
            assert all(r["CurrencyIsoCode"] == deal["CurrencyIsoCode"] for r in rate_cards[deal["Id"]])
    assert len(milestones[READY_MILESTONE_OPPORTUNITY_ID]) == 4
    assert len(milestones[READY_FIXED_FEE_OPPORTUNITY_ID]) == 2
    assert [r["Role__c"] for r in rate_cards[READY_OPPORTUNITY_ID]] == [
        "Engagement Manager",
        "Senior Consultant",
        "Consultant",
        "Business Analyst",
    ]
    assert len(rate_cards[READY_RETAINER_OPPORTUNITY_ID]) == 2
    assert len(rate_cards[READY_MILESTONE_OPPORTUNITY_ID]) == 2
    # German deals are priced by the day.
    assert {r["Unit__c"] for r in SEED["Rate_Card_Line__c"].values() if r["CurrencyIsoCode"] == "EUR"} == {
        "Day"
    }
    assert all(o["AccountId"] != GERMAN_ACCOUNT_ID or o["CurrencyIsoCode"] == "EUR" for o in won)
    assert opportunities[READY_MILESTONE_OPPORTUNITY_ID]["AccountId"] == UK_ACCOUNT_ID


# ---------------------------------------------------------------------------------------------------------
# Deleting, queryAll and the change feeds
# ---------------------------------------------------------------------------------------------------------


class Clock:
    """Epoch seconds a test moves on by hand: the change feeds cover whole minutes only."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta).total_seconds()


T0 = dt.datetime(2026, 11, 2, 10, 0, 30, tzinfo=dt.UTC)


_CLOCK = Clock(T0)
_CLOCKED_APP: list[Any] = []


@asynccontextmanager
async def clocked_org() -> AsyncIterator[tuple[Org, Clock]]:
    """A fresh org whose clock starts at `T0` (one app, reset, like `org`)."""
    clock = _CLOCK
    clock.now = T0.timestamp()
    if not _CLOCKED_APP:
        _CLOCKED_APP.append(create_salesforce_sandbox(clock=clock))
    app = _CLOCKED_APP[0]
    app.state.sandbox.reset()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield Org(client, app), clock


def window(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    return {"start": start.isoformat(), "end": end.isoformat()}


@pytest.mark.asyncio
async def test_deleting_a_deal_takes_its_children_and_clears_lookups() -> None:
    async with org() as sf:
        url = f"{DATA}/sobjects/Opportunity/{READY_OPPORTUNITY_ID}"
        deleted = await sf.api("DELETE", url)
        again = await sf.api("DELETE", url)
        gone = await sf.api("GET", url)
        children = (
            f"SELECT Id, IsDeleted FROM Rate_Card_Line__c WHERE Opportunity__c = '{READY_OPPORTUNITY_ID}'"
        )
        live = (await sf.query(children)).json()
        everything = (await sf.api("GET", f"{DATA}/queryAll/", params={"q": children})).json()
        contract = await read(sf, "Contract", DEMO_CONTRACT_ID)
        missing = await sf.api("DELETE", f"{DATA}/sobjects/Opportunity/{salesforce_id('006', 4242)}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert_error(again, 404, "ENTITY_IS_DELETED")
    assert_error(gone, 404, "ENTITY_IS_DELETED")
    assert live["totalSize"] == 0
    assert everything["totalSize"] == 4
    assert all(r["IsDeleted"] is True for r in everything["records"])
    assert contract["Opportunity__c"] is None  # a lookup is cleared, not cascaded
    assert_error(missing, 404, "NOT_FOUND")


@pytest.mark.asyncio
async def test_updated_and_deleted_feeds() -> None:
    async with clocked_org() as (sf, clock):
        await sf.api("PATCH", f"{DATA}/sobjects/Contact/{DEMO_CONTACT_ID}", json={"Title": "CFO"})
        created = (await create(sf, "Contact", {"LastName": "New"})).json()["id"]
        doomed = (await create(sf, "Contact", {"LastName": "Doomed"})).json()["id"]
        await sf.api("DELETE", f"{DATA}/sobjects/Contact/{doomed}")
        params = window(T0 - dt.timedelta(minutes=10), T0 + dt.timedelta(hours=1))
        too_soon = (await sf.api("GET", f"{DATA}/sobjects/Contact/updated/", params=params)).json()
        clock.advance(minutes=2)
        updated = (await sf.api("GET", f"{DATA}/sobjects/Contact/updated/", params=params)).json()
        deleted = (await sf.api("GET", f"{DATA}/sobjects/Contact/deleted", params=params)).json()
        other_object = (await sf.api("GET", f"{DATA}/sobjects/Account/updated/", params=params)).json()
        later = window(T0 + dt.timedelta(minutes=1), T0 + dt.timedelta(hours=1))
        after_the_changes = (await sf.api("GET", f"{DATA}/sobjects/Contact/updated/", params=later)).json()
    # The minute the changes happened in is not covered until it is over.
    assert too_soon == {"ids": [], "latestDateCovered": "2026-11-02T10:00:00.000+0000"}
    assert updated == {"ids": [DEMO_CONTACT_ID, created], "latestDateCovered": "2026-11-02T10:02:00.000+0000"}
    assert deleted == {
        "deletedRecords": [{"id": doomed, "deletedDate": "2026-11-02T10:00:30.000+0000"}],
        "earliestDateAvailable": "2026-11-02T10:00:00.000+0000",
        "latestDateCovered": "2026-11-02T10:02:00.000+0000",
    }
    assert other_object["ids"] == []
    assert after_the_changes["ids"] == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("params", "error_code"),
    [
        ({"start": "2026-11-02T09:00:00+00:00"}, "MISSING_ARGUMENT"),
        ({"end": "2026-11-02T09:00:00+00:00"}, "MISSING_ARGUMENT"),
        ({"start": "yesterday", "end": "2026-11-02T09:00:00+00:00"}, "INVALID_REPLICATION_DATE"),
        ({"start": "2026-11-02T09:00:00", "end": "2026-11-02T10:00:00+00:00"}, "INVALID_REPLICATION_DATE"),
        (
            {"start": "2026-11-02T09:00:00+00:00", "end": "2026-11-02T08:00:00+00:00"},
            "INVALID_REPLICATION_DATE",
        ),
        (
            {"start": "2026-09-01T09:00:00+00:00", "end": "2026-11-02T08:00:00+00:00"},
            "INVALID_REPLICATION_DATE",
        ),
    ],
)
async def test_change_feed_errors(params: dict[str, str], error_code: str) -> None:
    async with clocked_org() as (sf, _):
        response = await sf.api("GET", f"{DATA}/sobjects/Opportunity/updated/", params=params)
    assert_error(response, 400, error_code)


@pytest.mark.asyncio
async def test_change_feed_dates_as_clients_encode_them() -> None:
    async with clocked_org() as (sf, clock):
        await sf.api(
            "PATCH", f"{DATA}/sobjects/Account/{DEMO_ACCOUNT_ID}", json={"Website": "https://n.example"}
        )
        clock.advance(minutes=1)
        # simple-salesforce percent-encodes ":" and "+"; a hand-written URL often leaves "+" as is.
        encoded = await sf.api(
            "GET",
            f"{DATA}/sobjects/Account/updated/?start=2026-11-02T09%3A59%3A00%2B00%3A00&end=2026-11-02T11%3A00%3A00Z",
        )
        raw_plus = await sf.api(
            "GET",
            f"{DATA}/sobjects/Account/updated/?start=2026-11-02T11:59:00+02:00&end=2026-11-02T13:00:00+02:00",
        )
    assert encoded.json()["ids"] == [DEMO_ACCOUNT_ID]
    assert raw_plus.json()["ids"] == [DEMO_ACCOUNT_ID]


# ---------------------------------------------------------------------------------------------------------
# Composite
# ---------------------------------------------------------------------------------------------------------


def sub(method: str, url: str, reference_id: str, body: Any = None) -> dict[str, Any]:
    request: dict[str, Any] = {"method": method, "url": DATA + url, "referenceId": reference_id}
    if body is not None:
        request["body"] = body
    return request


async def composite(sf: Org, *subrequests: dict[str, Any], all_or_none: bool = False) -> httpx.Response:
    body = {"allOrNone": all_or_none, "compositeRequest": list(subrequests)}
    return await sf.api("POST", f"{DATA}/composite", json=body)


@pytest.mark.asyncio
async def test_composite_with_references() -> None:
    async with org() as sf:
        await sf.login()
        response = await composite(
            sf,
            sub("POST", "/sobjects/Account", "newAccount", {"Name": "Composite Co"}),
            sub(
                "POST",
                "/sobjects/Contact",
                "newContact",
                {"LastName": "Ref", "AccountId": "@{newAccount.id}"},
            ),
            sub(
                "GET", "/query/?q=SELECT+Id,Name+FROM+Contact+WHERE+AccountId='@{newAccount.id}'", "contacts"
            ),
            sub("PATCH", "/sobjects/Contact/@{contacts.records[0].Id}", "retitle", {"Title": "Buyer"}),
            sub("GET", "/sobjects/Contact/@{newContact.id}?fields=Title,AccountId", "check"),
            sub("GET", "/sobjects/Account/Stratum_Id__c/none", "missing"),
        )
        stats = (await sf.client.get("/__sandbox/stats")).json()
    assert response.status_code == 200
    assert response.headers["sforce-limit-info"] == "api-usage=1/5000"  # one call, however many subrequests
    results = response.json()["compositeResponse"]
    assert [r["referenceId"] for r in results] == [
        "newAccount",
        "newContact",
        "contacts",
        "retitle",
        "check",
        "missing",
    ]
    assert [r["httpStatusCode"] for r in results] == [201, 201, 200, 204, 200, 404]
    account_id = results[0]["body"]["id"]
    assert results[0]["httpHeaders"] == {"Location": f"{DATA}/sobjects/Account/{account_id}"}
    assert results[2]["body"]["records"][0]["Id"] == results[1]["body"]["id"]
    assert (results[3]["body"], results[3]["httpHeaders"]) == (None, {})
    assert {k: v for k, v in results[4]["body"].items() if k != "attributes"} == {
        "Title": "Buyer",
        "AccountId": account_id,
    }
    assert results[5]["body"][0]["errorCode"] == "NOT_FOUND"
    assert stats["api_usage"] == 1


@pytest.mark.asyncio
async def test_composite_all_or_none_rolls_back() -> None:
    async with org() as sf:
        before = {name: len(records) for name, records in sf.sandbox.records.items()}
        response = await composite(
            sf,
            sub("POST", "/sobjects/Account", "account", {"Name": "Rolled back"}),
            sub("PATCH", f"/sobjects/Opportunity/{OPEN_OPPORTUNITY_ID}", "won", {"StageName": "Closed Won"}),
            sub(
                "POST",
                "/sobjects/Contact",
                "contact",
                {"FirstName": "No last name", "AccountId": "@{account.id}"},
            ),
            sub("GET", f"/sobjects/Account/{DEMO_ACCOUNT_ID}", "never"),
            all_or_none=True,
        )
        after = {name: len(records) for name, records in sf.sandbox.records.items()}
        opportunity = await read(sf, "Opportunity", OPEN_OPPORTUNITY_ID)
        rolled_back = (await sf.query("SELECT Id FROM Account WHERE Name = 'Rolled back'")).json()
        next_account = (await create(sf, "Account", {"Name": "After"})).json()["id"]
    assert response.status_code == 200
    results = response.json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in results] == [400, 400, 400, 400]
    codes = [r["body"][0]["errorCode"] for r in results]
    assert codes == ["PROCESSING_HALTED", "PROCESSING_HALTED", "REQUIRED_FIELD_MISSING", "PROCESSING_HALTED"]
    assert results[0]["body"][0]["message"] == (
        "The transaction was rolled back since another operation in the same transaction failed."
    )
    assert after == before
    assert opportunity["StageName"] == "Negotiation/Review"
    assert rolled_back["totalSize"] == 0
    assert next_account.startswith("001")


@pytest.mark.asyncio
async def test_composite_without_all_or_none_keeps_what_succeeded() -> None:
    async with org() as sf:
        response = await composite(
            sf,
            sub("POST", "/sobjects/Account", "account", {"Name": "Kept"}),
            sub("POST", "/sobjects/Contact", "bad", {"FirstName": "No last name"}),
            sub("PATCH", "/sobjects/Contact/@{bad.id}", "dependent", {"Title": "x"}),
            sub(
                "PATCH",
                f"/sobjects/Contact/External_Id__c/{DUPLICATE_CONTACT_EXTERNAL_ID}",
                "ambiguous",
                {"Title": "x"},
            ),
            sub("DELETE", "/limits", "wrong_method"),
            sub("GET", "/nowhere", "unknown"),
            sub("GET", "/sobjects/Account/@{account.Id}", "bad_path"),
        )
        kept = (await sf.query("SELECT Id FROM Account WHERE Name = 'Kept'")).json()
    results = response.json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in results] == [201, 400, 400, 300, 405, 404, 400]
    assert results[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert "bad.id" in results[2]["body"][0]["message"]
    assert sorted(results[3]["body"]) == sorted(f"{DATA}/sobjects/Contact/{i}" for i in DUPLICATE_CONTACT_IDS)
    assert results[4]["body"][0]["errorCode"] == "METHOD_NOT_ALLOWED"
    assert results[6]["body"][0]["errorCode"] == "PROCESSING_HALTED"  # references are case-sensitive paths
    assert kept["totalSize"] == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "error_code"),
    [
        ({"allOrNone": True}, "JSON_PARSER_ERROR"),
        ({"compositeRequest": []}, "JSON_PARSER_ERROR"),
        ([], "JSON_PARSER_ERROR"),
        ({"compositeRequest": [{"method": "GET", "url": f"{DATA}/limits"}]}, "JSON_PARSER_ERROR"),
        ({"compositeRequest": [sub("GET", "/limits", "a"), sub("GET", "/limits", "a")]}, "INVALID_INPUT"),
        ({"compositeRequest": [sub("GET", "/limits", "not-ok")]}, "INVALID_INPUT"),
        ({"compositeRequest": [sub("GET", "/limits", f"r{i}") for i in range(26)]}, "LIMIT_EXCEEDED"),
        (
            {"compositeRequest": [sub("GET", "/query/?q=SELECT+Id+FROM+Account", f"q{i}") for i in range(6)]},
            "LIMIT_EXCEEDED",
        ),
    ],
)
async def test_composite_request_errors(body: Any, error_code: str) -> None:
    async with org() as sf:
        response = await sf.api("POST", f"{DATA}/composite", json=body)
    assert_error(response, 400, error_code)


# ---------------------------------------------------------------------------------------------------------
# Limits on the new calls
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_writes_count_against_the_daily_limit() -> None:
    async with org(daily_api_limit=3) as sf:
        created = await create(sf, "Contact", {"LastName": "One"})
        upserted = await sf.api(
            "PATCH", f"{DATA}/sobjects/Contact/External_Id__c/L-1", json={"LastName": "Two"}
        )
        batch = await composite(sf, sub("POST", "/sobjects/Contact", "c", {"LastName": "Three"}))
        over = await create(sf, "Contact", {"LastName": "Four"})
        over_composite = await composite(sf, sub("GET", "/limits", "l"))
        contacts = len(sf.sandbox.records["Contact"])
    assert [r.headers["sforce-limit-info"] for r in (created, upserted, batch)] == [
        "api-usage=1/3",
        "api-usage=2/3",
        "api-usage=3/3",
    ]
    assert_error(over, 403, "REQUEST_LIMIT_EXCEEDED")
    assert_error(over_composite, 403, "REQUEST_LIMIT_EXCEEDED")
    assert over.headers["sforce-limit-info"] == "api-usage=3/3"
    assert contacts == len(SEED["Contact"]) + 3


def test_seed_contacts_and_accounts_do_not_depend_on_the_seed() -> None:
    other = build_seed(7)
    assert other["Contact"] == SEED["Contact"]
    assert set(other["Contract"]) == set(SEED["Contract"])
    assert other["Contract"][DEMO_CONTRACT_ID] == SEED["Contract"][DEMO_CONTRACT_ID]
    ready_children = {
        record_id: record
        for record_id, record in SEED["Opportunity_Milestone__c"].items()
        if record["Opportunity__c"] in READY_OPPORTUNITY_IDS
    }
    assert all(other["Opportunity_Milestone__c"][i] == r for i, r in ready_children.items())
    assert msgspec.json.encode(build_seed(42)) == msgspec.json.encode(SEED)


@pytest.mark.asyncio
async def test_composite_subrequests_reach_describe_and_keep_their_own_version() -> None:
    # Composite subrequests name their version in their URLs (REST API Developer Guide, "Composite"): the
    # answers repeat it, and an unknown one is NOT_FOUND for that subrequest only.
    async with org() as sf:
        response = await composite(
            sf,
            {"method": "GET", "url": "/services/data/v59.0/sobjects/", "referenceId": "global"},
            {
                "method": "GET",
                "url": "/services/data/v59.0/sobjects/Contract/describe",
                "referenceId": "describe",
            },
            {"method": "GET", "url": "/services/data/v59.0/sobjects/Contract", "referenceId": "basics"},
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Account",
                "referenceId": "created",
                "body": {"Name": "Versioned Co"},
            },
            {"method": "GET", "url": "/services/data/v99.0/limits", "referenceId": "future"},
        )
    results = response.json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in results] == [200, 200, 200, 201, 404]
    assert {entry["name"] for entry in results[0]["body"]["sobjects"]} == set(SCHEMAS)
    assert [f["name"] for f in results[1]["body"]["fields"]] == [s.name for s in SCHEMAS["Contract"].fields]
    assert results[2]["body"]["objectDescribe"]["urls"]["sobject"] == "/services/data/v59.0/sobjects/Contract"
    account_id = results[3]["body"]["id"]
    assert results[3]["httpHeaders"] == {"Location": f"/services/data/v59.0/sobjects/Account/{account_id}"}
    assert results[4]["body"][0]["errorCode"] == "NOT_FOUND"


@pytest.mark.asyncio
async def test_organization_cannot_be_written_or_deleted() -> None:
    async with org() as sf:
        update = await sf.api("PATCH", f"{DATA}/sobjects/Organization/{ORG_ID}", json={"Name": "Renamed"})
        removal = await sf.api("DELETE", f"{DATA}/sobjects/Organization/{ORG_ID}")
        creation = await sf.api("POST", f"{DATA}/sobjects/Organization", json={"Name": "Another"})
        read = await sf.api("GET", f"{DATA}/sobjects/Organization/{ORG_ID}")
    for refused in (update, removal, creation):
        assert_error(refused, 405, "METHOD_NOT_ALLOWED")
    assert read.json()["Name"] == ORG_NAME


def test_state_saved_before_organization_existed_still_restores() -> None:
    # A data directory written by an older sandbox has no Organization records: the org still has its one.
    older = SalesforceSandbox(SalesforceSandboxSettings())
    account = older.create(SCHEMAS["Account"], {"Name": "Kept Co"}, INTEGRATION_USER_ID)
    state = older.durable_state()
    del state.data.records["Organization"]
    del state.data.recycle_bin["Organization"]
    saved = msgspec.json.encode(state)
    restored = SalesforceSandbox(SalesforceSandboxSettings())
    restored.restore_durable_state(msgspec.json.decode(saved, type=SalesforceSandbox.durable_type))
    assert restored.read(SCHEMAS["Account"], account)["Name"] == "Kept Co"
    assert restored.read(SCHEMAS["Organization"], ORG_ID)["Name"] == ORG_NAME
    assert restored.query("query", "SELECT Id FROM Organization", 2000)["totalSize"] == 1
