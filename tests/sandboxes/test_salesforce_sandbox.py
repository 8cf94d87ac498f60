"""The Salesforce sandbox on the wire: what a Salesforce client would notice, plus the SOQL and seed units."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from sandboxes.faults import FaultRule, Receive, Scope, Send
from sandboxes.salesforce import SalesforceSandbox, SalesforceSandboxSettings, create_salesforce_sandbox
from sandboxes.salesforce.data import (
    BIG_ACCOUNT_ID,
    BIG_ACCOUNT_OPPORTUNITY_COUNT,
    CLOSED_LOST_OPPORTUNITY_ID,
    DEMO_ACCOUNT_ID,
    MISSING_BILLING_MODEL_OPPORTUNITY_ID,
    MISSING_CURRENCY_OPPORTUNITY_ID,
    MISSING_LEGAL_ENTITY_OPPORTUNITY_ID,
    NO_TAX_JURISDICTION_ACCOUNT_ID,
    NO_TAX_JURISDICTION_OPPORTUNITY_ID,
    NULL_AMOUNT_OPPORTUNITY_ID,
    OPEN_OPPORTUNITY_ID,
    READY_OPPORTUNITY_ID,
    READY_OPPORTUNITY_IDS,
    SCHEMAS,
    SUBSIDIARY_ACCOUNT_ID,
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
async def test_other_api_versions_are_not_found() -> None:
    async with org() as sf:
        response = await sf.api("GET", f"/services/data/v58.0/sobjects/Account/{DEMO_ACCOUNT_ID}")
        versions = await sf.client.get("/services/data/")
    error = assert_error(response, 404, "NOT_FOUND")
    assert error["message"] == "The requested resource does not exist"
    assert "sforce-limit-info" in response.headers
    assert versions.json() == [{"label": "Summer '24", "url": "/services/data/v61.0", "version": "61.0"}]


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
async def test_reading_selected_fields_and_15_character_ids() -> None:
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
    assert query_all.json()["totalSize"] == 8


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
    assert widened["totalSize"] == 8
    assert [r["Id"] for r in exact["records"]] == [DEMO_ACCOUNT_ID]
    assert [r["Id"] for r in like["records"]] == [DEMO_ACCOUNT_ID]
    assert no_like["totalSize"] == 0


# ---------------------------------------------------------------------------------------------------------
# SOQL evaluation (in process)
# ---------------------------------------------------------------------------------------------------------

SEED = build_seed(42)


def run(soql: str) -> list[Record]:
    bound = compile_query(soql, SCHEMAS)
    return [bound.project(row) for row in bound.execute(SEED[bound.schema.name].values())]


def test_soql_conditions() -> None:
    no_tax = run("SELECT Name FROM Account WHERE Tax_Jurisdiction__c = NULL")
    assert no_tax == [{"Name": "Hooli Media Inc"}]
    # As in Salesforce (unlike SQL), != includes nulls.
    assert len(run("SELECT Id FROM Account WHERE Tax_Jurisdiction__c != 'US-NY'")) == 7
    assert run("SELECT Name FROM Account WHERE name = 'NORTHWIND health systems'") == [
        {"Name": "Northwind Health Systems"}
    ]
    european = run("SELECT Name FROM Account WHERE BillingCountry IN ('Germany', 'united kingdom')")
    assert {r["Name"] for r in european} == {
        "Initech Software GmbH",
        "Umbrella Life Sciences Ltd",
        "Globex Professional Services UK Ltd",
    }
    assert len(run("SELECT Id FROM Account WHERE BillingCountry NOT IN ('United States')")) == 3
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
    assert 6 <= len(accounts) <= 10
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
