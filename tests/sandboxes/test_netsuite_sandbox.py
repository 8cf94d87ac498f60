"""The NetSuite sandbox on the wire: what a SuiteTalk REST client would notice; query and seed units."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from sandboxes.faults import FaultRule, Receive, Scope, Send
from sandboxes.netsuite import (
    DEV_CERTIFICATE_ID,
    DEV_CLIENT_ID,
    NetSuiteClient,
    NetSuiteSandbox,
    NetSuiteSandboxSettings,
    create_netsuite_sandbox,
    dev_private_key_pem,
)
from sandboxes.netsuite.data import (
    ACCOUNT_TIME_ZONE,
    APOSTROPHE_CUSTOMER_ID,
    CHILD_CUSTOMER_ID,
    DE_CUSTOMER_ID,
    DEMO_CUSTOMER_ID,
    DEMO_PROJECT_ID,
    DUPLICATE_CUSTOMER_ID,
    GLOBEX_CUSTOMER_ID,
    INACTIVE_CUSTOMER_ID,
    INVOICE_COUNT,
    MILESTONE_BILLING_SCHEDULE_ID,
    OPEN_INVOICE_ID,
    OVERDUE_INVOICE_ID,
    PAID_INVOICE_ID,
    PARTIAL_PAYMENT_ID,
    PARTIALLY_PAID_INVOICE_ID,
    PAYMENT_ID,
    RECORD_TYPES,
    SEED_DATE,
    TIME_BILL_ID,
    UK_CUSTOMER_ID,
    build_seed,
)
from sandboxes.netsuite.suiteql import SuiteQlError, build_tables, compile_suiteql, format_number
from sandboxes.salesforce import data as salesforce

BASE = "https://123456-sb1.suitetalk.api.netsuite.test"
REST = "/services/rest"
TOKEN_PATH = f"{REST}/auth/oauth2/v1/token"
RECORDS = f"{REST}/record/v1"
SUITEQL = f"{REST}/query/v1/suiteql"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ERROR_TYPES = {
    400: ("https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1", "Bad Request"),
    401: ("https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.2", "Unauthorized"),
    404: ("https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.5", "Not Found"),
    405: ("https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.6", "Method Not Allowed"),
    429: ("https://www.rfc-editor.org/rfc/rfc6585.html#section-4", "Too Many Requests"),
}

DEV_KEY = ECKey.import_key(dev_private_key_pem())


def assertion(
    *,
    aud: Any = f"{BASE}{TOKEN_PATH}",
    key: Any = DEV_KEY,
    alg: str = "ES256",
    kid: str = DEV_CERTIFICATE_ID,
    iss: str = DEV_CLIENT_ID,
    scope: Any = ("rest_webservices",),
    lifetime: int = 300,
    issued_at: int | None = None,
) -> str:
    now = int(time.time()) if issued_at is None else issued_at
    claims: dict[str, Any] = {"iss": iss, "aud": aud, "iat": now, "exp": now + lifetime}
    if scope is not None:
        claims["scope"] = list(scope) if isinstance(scope, tuple) else scope
    return jwt.encode({"alg": alg, "kid": kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def token_form(client_assertion: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion,
    }


class Account:
    """A client on one sandbox app, logged in lazily, with the raw app at hand for admin calls."""

    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.client = client
        self.app = app
        self.token: str | None = None

    @property
    def sandbox(self) -> NetSuiteSandbox:
        sandbox: NetSuiteSandbox = self.app.state.sandbox
        return sandbox

    async def login(self) -> dict[str, Any]:
        response = await self.client.post(TOKEN_PATH, data=token_form(assertion()))
        assert response.status_code == 200, response.text
        payload: dict[str, Any] = response.json()
        self.token = payload["access_token"]
        return payload

    async def api(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self.token is None:
            await self.login()
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return await self.client.request(method, url, headers=headers, **kwargs)

    async def record(self, record_type: str, record_id: str, **params: str) -> dict[str, Any]:
        response = await self.api("GET", f"{RECORDS}/{record_type}/{record_id}", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def suiteql(self, query: str, **params: Any) -> httpx.Response:
        return await self.api(
            "POST", SUITEQL, json={"q": query}, params=params, headers={"Prefer": "transient"}
        )

    async def rows(self, query: str) -> list[dict[str, Any]]:
        response = await self.suiteql(query)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


_APPS: dict[tuple[tuple[str, Any], ...], Any] = {}


@asynccontextmanager
async def account(**settings: Any) -> AsyncIterator[Account]:
    """A fresh account; apps are reused after a reset, which is the isolation the sandbox promises."""
    key = tuple(sorted(settings.items()))
    app: Any = _APPS.get(key)
    if app is None:
        app = _APPS[key] = create_netsuite_sandbox(NetSuiteSandboxSettings(**settings))
    else:
        app.state.sandbox.reset()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield Account(client, app)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/vnd.oracle.resource+json")
    body = response.json()
    assert (body["type"], body["title"]) == ERROR_TYPES[status]
    assert body["status"] == status
    assert len(body["o:errorDetails"]) == 1
    detail: dict[str, Any] = body["o:errorDetails"][0]
    assert detail["o:errorCode"] == code
    assert isinstance(detail["detail"], str)
    assert "Traceback" not in detail["detail"]
    return detail


def record_id_of(location: str) -> str:
    return location.rsplit("/", 1)[-1]


# ---------------------------------------------------------------------------------------------------------
# OAuth 2.0 client credentials with a JWT client assertion
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_valid_client_assertion_gets_a_bearer_token() -> None:
    async with account() as ns:
        response = await ns.client.post(TOKEN_PATH, data=token_form(assertion()))
        token = response.json()["access_token"]
        customer = await ns.client.get(
            f"{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200
    assert response.json() == {"access_token": token, "expires_in": "3600", "token_type": "bearer"}
    assert response.headers["cache-control"] == "no-store"
    assert customer.status_code == 200


@pytest.mark.asyncio
async def test_scope_as_a_string_and_the_accounts_real_token_url_are_accepted() -> None:
    real_token_url = f"https://123456-sb1.suitetalk.api.netsuite.com{TOKEN_PATH}"
    async with account() as ns:
        as_string = await ns.client.post(
            TOKEN_PATH, data=token_form(assertion(scope="restlets,rest_webservices"))
        )
        real_aud = await ns.client.post(TOKEN_PATH, data=token_form(assertion(aud=[real_token_url])))
    assert as_string.status_code == 200, as_string.text
    assert real_aud.status_code == 200, real_aud.text


def _other_keys() -> tuple[Any, str, Any, str]:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def public_pem(private: Any) -> str:
        return str(
            private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def private_pem(private: Any) -> str:
        return str(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode()
        )

    return (
        ECKey.import_key(private_pem(ec_key)),
        public_pem(ec_key),
        RSAKey.import_key(private_pem(rsa_key)),
        public_pem(rsa_key),
    )


OTHER_EC_KEY, OTHER_EC_PUBLIC, RSA_KEY, RSA_PUBLIC = _other_keys()
RSA_CLIENT = NetSuiteClient(client_id="rsa-integration", certificate_id="rsa-cert", public_key_pem=RSA_PUBLIC)


@pytest.mark.asyncio
async def test_registered_rsa_clients_sign_with_ps256_but_not_rs256() -> None:
    def rsa_form(alg: str) -> dict[str, str]:
        return token_form(assertion(key=RSA_KEY, alg=alg, kid="rsa-cert", iss="rsa-integration"))

    async with account(clients=(RSA_CLIENT,)) as ns:
        ps256 = await ns.client.post(TOKEN_PATH, data=rsa_form("PS256"))
        rs256 = await ns.client.post(TOKEN_PATH, data=rsa_form("RS256"))
    async with account(clients=(RSA_CLIENT,), signing_algorithms=("PS256", "RS256")) as ns:
        legacy = await ns.client.post(TOKEN_PATH, data=rsa_form("RS256"))
    assert ps256.status_code == 200, ps256.text
    assert rs256.status_code == 400
    assert rs256.json()["error"] == "invalid_request"
    assert legacy.status_code == 200, legacy.text


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("make", "error"),
    [
        pytest.param(lambda: assertion(key=OTHER_EC_KEY), "invalid_client", id="bad-signature"),
        pytest.param(lambda: assertion(kid="no-such-certificate"), "invalid_client", id="unknown-kid"),
        pytest.param(lambda: assertion(iss="someone-else"), "invalid_client", id="wrong-issuer"),
        pytest.param(lambda: assertion(aud="https://evil.example/token"), "invalid_grant", id="wrong-aud"),
        pytest.param(lambda: assertion(lifetime=3601), "invalid_grant", id="exp-too-far"),
        pytest.param(
            lambda: assertion(issued_at=int(time.time()) - 7200, lifetime=600), "invalid_grant", id="expired"
        ),
        pytest.param(lambda: assertion(scope=None), "invalid_scope", id="missing-scope"),
        pytest.param(lambda: assertion(scope=["restlets"]), "invalid_scope", id="wrong-scope"),
        pytest.param(lambda: "not.a.jwt", "invalid_request", id="not-a-jwt"),
        pytest.param(
            lambda: jwt.encode(
                {"alg": "HS256", "kid": DEV_CERTIFICATE_ID},
                {"iss": DEV_CLIENT_ID},
                OctKey.import_key("s" * 32),
            ),
            "invalid_request",
            id="hs256",
        ),
    ],
)
async def test_bad_client_assertions_are_refused(make: Any, error: str) -> None:
    async with account() as ns:
        response = await ns.client.post(TOKEN_PATH, data=token_form(make()))
        stats = (await ns.client.get("/__sandbox/stats")).json()
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert stats["active_tokens"] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({**token_form("x"), "grant_type": "password"}, "unsupported_grant_type"),
        ({**token_form("x"), "client_assertion_type": "urn:other"}, "invalid_request"),
        ({"grant_type": "client_credentials"}, "invalid_request"),
    ],
)
async def test_malformed_token_requests(form: dict[str, str], error: str) -> None:
    async with account() as ns:
        response = await ns.client.post(TOKEN_PATH, data=form)
    assert response.status_code == 400
    assert response.json()["error"] == error


@pytest.mark.asyncio
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic c3RyYXR1bTpzZWNyZXQ="])
async def test_api_calls_without_a_valid_token_get_401(authorization: str | None) -> None:
    async with account() as ns:
        headers = {} if authorization is None else {"Authorization": authorization}
        response = await ns.client.get(f"{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}", headers=headers)
        unrouted = await ns.client.get(f"{REST}/no/such/thing", headers=headers)
    detail = assert_error(response, 401, "INVALID_LOGIN")
    assert detail["detail"].startswith("Invalid login attempt.")
    assert response.headers["www-authenticate"] == 'Bearer realm="123456_SB1", error="invalid_token"'
    assert unrouted.status_code == 401


@pytest.mark.asyncio
async def test_tokens_expire_and_can_be_revoked() -> None:
    async with account(token_ttl_seconds=0) as ns:
        assert_error(await ns.api("GET", f"{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}"), 401, "INVALID_LOGIN")
    async with account() as ns:
        assert (await ns.api("GET", f"{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}")).status_code == 200
        assert (await ns.client.post("/__sandbox/tokens/expire")).status_code == 204
        assert_error(await ns.api("GET", f"{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}"), 401, "INVALID_LOGIN")


# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_reading_a_record_with_links_and_references() -> None:
    async with account() as ns:
        customer = await ns.record("customer", GLOBEX_CUSTOMER_ID)
        child = await ns.record("customer", CHILD_CUSTOMER_ID)
        by_eid = await ns.record("customer", f"eid:{salesforce.BIG_ACCOUNT_ID}")
    assert next(iter(customer)) == "links"
    assert customer["links"] == [{"rel": "self", "href": f"{BASE}{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}"}]
    assert customer["id"] == GLOBEX_CUSTOMER_ID
    assert customer["companyName"] == "Globex Professional Services"
    assert customer["externalId"] == salesforce.BIG_ACCOUNT_ID
    assert customer["subsidiary"] == {
        "links": [{"rel": "self", "href": f"{BASE}{RECORDS}/subsidiary/1"}],
        "id": "1",
        "refName": "Stratum Consulting Inc.",
    }
    assert customer["currency"]["id"] == "1"
    assert customer["lastModifiedDate"].endswith("Z")
    assert "parent" not in customer  # empty fields are left out, as NetSuite does
    assert child["parent"]["id"] == GLOBEX_CUSTOMER_ID
    assert by_eid == customer


@pytest.mark.asyncio
async def test_sublists_are_links_unless_expanded() -> None:
    async with account() as ns:
        collapsed = await ns.record("invoice", OPEN_INVOICE_ID)
        expanded = await ns.record("invoice", OPEN_INVOICE_ID, expandSubResources="true")
        sublist = await ns.api("GET", f"{RECORDS}/invoice/{OPEN_INVOICE_ID}/item")
        selected = await ns.record("invoice", OPEN_INVOICE_ID, fields="total,amountRemaining")
    invoice_url = f"{BASE}{RECORDS}/invoice/{OPEN_INVOICE_ID}"
    assert collapsed["item"] == {"links": [{"rel": "self", "href": f"{invoice_url}/item"}]}
    lines = expanded["item"]["items"]
    assert [line["amount"] for line in lines] == [27000.0, 2800.0]
    assert lines[0]["item"]["refName"] == "PS-CONSULT"
    assert lines[0]["links"] == [{"rel": "self", "href": f"{invoice_url}/item/1"}]
    assert expanded["total"] == 29800.0
    assert expanded["amountRemaining"] == 29800.0
    assert expanded["status"] == {"id": "A", "refName": "Open"}
    assert sublist.json()["items"] == lines
    assert set(selected) == {"links", "id", "total", "amountRemaining"}


@pytest.mark.asyncio
async def test_create_answers_204_with_a_location_and_no_body() -> None:
    body = {
        "companyName": "Initech Software GmbH",
        "externalId": salesforce.GERMAN_ACCOUNT_ID,
        "subsidiary": {"id": "3"},
        "email": "ap@initech-software.example",
        "terms": {"id": "2"},
    }
    async with account() as ns:
        response = await ns.api("POST", f"{RECORDS}/customer", json=body)
        created = await ns.record("customer", record_id_of(response.headers["location"]))
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["location"].startswith(f"{BASE}{RECORDS}/customer/")
    assert created["companyName"] == "Initech Software GmbH"
    assert created["currency"]["refName"] == "Euro"  # the subsidiary's base currency by default
    assert created["entityId"] == f"C{created['id']}"
    assert created["lastModifiedDate"] > "2026-03-02T09:30:00Z"


@pytest.mark.asyncio
async def test_patch_updates_and_null_clears_a_field() -> None:
    url = f"{RECORDS}/customer/{DEMO_CUSTOMER_ID}"
    async with account() as ns:
        before = await ns.record("customer", DEMO_CUSTOMER_ID)
        response = await ns.api("PATCH", url, json={"phone": None, "email": "finance@contoso-pharma.example"})
        after = await ns.record("customer", DEMO_CUSTOMER_ID)
    assert response.status_code == 204
    assert response.content == b""
    assert "phone" in before
    assert "phone" not in after
    assert after["email"] == "finance@contoso-pharma.example"
    assert after["lastModifiedDate"] > before["lastModifiedDate"]
    assert after["dateCreated"] == before["dateCreated"]


@pytest.mark.asyncio
async def test_put_by_external_id_creates_then_updates() -> None:
    url = f"{RECORDS}/job/eid:{salesforce.READY_OPPORTUNITY_ID}"
    body = {
        "companyName": "Northwind Health - EHR Integration Phase 2",
        "parent": {"id": DEMO_CUSTOMER_ID},
        "jobBillingType": {"id": "TM"},
        "startDate": "2026-03-09",
    }
    async with account() as ns:
        created = await ns.api("PUT", url, json=body)
        updated = await ns.api("PUT", url, json={"projectedEndDate": "2026-09-30"})
        job = await ns.record("job", f"eid:{salesforce.READY_OPPORTUNITY_ID}")
        q = f'externalId IS "{salesforce.READY_OPPORTUNITY_ID}"'
        listed = await ns.api("GET", f"{RECORDS}/job", params={"q": q})
    assert created.status_code == 204
    assert created.headers["location"] == f"{BASE}{RECORDS}/job/{job['id']}"
    assert updated.status_code == 204
    assert "location" not in updated.headers
    assert job["externalId"] == salesforce.READY_OPPORTUNITY_ID
    assert (job["startDate"], job["projectedEndDate"]) == ("2026-03-09", "2026-09-30")
    assert job["jobBillingType"] == {"id": "TM", "refName": "Time and Materials"}
    assert job["currency"]["id"] == "1"  # inherited from the customer
    assert listed.json()["totalResults"] == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "error_path"),
    [
        ("POST", "customer", {"subsidiary": {"id": "1"}}, 400, "USER_ERROR", "companyName"),
        ("POST", "customer", {"companyName": "x", "subsidiary": {"id": "99"}}, 400, "INVALID_KEY_OR_REF",
         "subsidiary"),
        ("POST", "customer", {"companyName": "x" * 84, "subsidiary": {"id": "1"}}, 400, "USER_ERROR",
         "companyName"),
        ("POST", "customer", {"companyName": 42, "subsidiary": {"id": "1"}}, 400, "INVALID_CONTENT",
         "companyName"),
        ("POST", "customer", {"companyName": "x", "subsidiary": {"id": "1"},
                              "externalId": salesforce.BIG_ACCOUNT_ID}, 400, "USER_ERROR", "externalId"),
        ("PATCH", f"customer/{GLOBEX_CUSTOMER_ID}", {"companyName": None}, 400, "USER_ERROR", "companyName"),
        ("PATCH", f"customer/{GLOBEX_CUSTOMER_ID}", {"lastModifiedDate": "2020-01-01T00:00:00Z"}, 400,
         "USER_ERROR", "lastModifiedDate"),
        ("PATCH", "customer/424242", {"phone": "1"}, 404, "NONEXISTENT_ID", "id"),
        ("PATCH", f"invoice/{OPEN_INVOICE_ID}", {"item": {"items": [{"quantity": 1}]}}, 400, "USER_ERROR",
         "item.items[0]"),
        ("PATCH", f"job/{DEMO_PROJECT_ID}", {"jobBillingType": {"id": "XX"}}, 400, "INVALID_KEY_OR_REF",
         "jobBillingType"),
        ("PUT", f"customer/{GLOBEX_CUSTOMER_ID}", {"phone": "1"}, 400, "INVALID_PARAMETER", None),
        ("POST", "subsidiary", {"name": "x"}, 400, "USER_ERROR", None),
    ],
)
async def test_write_validation_errors(
    method: str, path: str, body: Any, status: int, code: str, error_path: str | None
) -> None:
    async with account() as ns:
        before = (await ns.client.get("/__sandbox/stats")).json()["records"]
        response = await ns.api(method, f"{RECORDS}/{path}", json=body)
        after = (await ns.client.get("/__sandbox/stats")).json()["records"]
        customer = await ns.record("customer", GLOBEX_CUSTOMER_ID)
    detail = assert_error(response, status, code)
    assert detail.get("o:errorPath") == error_path
    assert after == before
    assert customer["companyName"] == "Globex Professional Services"


@pytest.mark.asyncio
async def test_unknown_body_properties_follow_the_property_name_validation_level() -> None:
    body = {"companyName": "Shoe Size Ltd", "subsidiary": {"id": "1"}, "shoeSize": 9}
    line = {"item": {"items": [{"item": {"id": "101"}, "quantity": 1, "rate": 10, "colour": "red"}]}}
    async with account() as ns:
        default = await ns.api("POST", f"{RECORDS}/customer", json=body)
        strict = await ns.api(
            "POST", f"{RECORDS}/customer", json=body, headers={"X-NetSuite-PropertyNameValidation": "Error"}
        )
        silent = await ns.api(
            "POST", f"{RECORDS}/customer", json=body, headers={"X-NetSuite-PropertyNameValidation": "Ignore"}
        )
        bad_level = await ns.api(
            "POST", f"{RECORDS}/customer", json=body, headers={"X-NetSuite-PropertyNameValidation": "Loud"}
        )
        sublist = await ns.api("PATCH", f"{RECORDS}/invoice/{OPEN_INVOICE_ID}", json=line)
        made = await ns.api("GET", f"{RECORDS}/customer", params={"q": 'companyName IS "Shoe Size Ltd"'})
        stored = await ns.record("customer", record_id_from(default))
    # NetSuite's default level (Warning) accepts the write, drops the property and warns; Error refuses.
    assert default.status_code == 204
    assert "shoeSize" in default.headers["warning"]
    assert "shoeSize" not in stored
    detail = assert_error(strict, 400, "INVALID_CONTENT")
    assert detail["o:errorPath"] == "shoeSize"
    assert silent.status_code == 204
    assert "warning" not in silent.headers
    assert_error(bad_level, 400, "INVALID_HEADER")
    assert sublist.status_code == 204
    assert "colour" in sublist.headers["warning"]
    assert made.json()["totalResults"] == 2


def record_id_from(response: httpx.Response) -> str:
    return response.headers["location"].rsplit("/", 1)[1]


@pytest.mark.asyncio
async def test_unknown_records_and_types() -> None:
    async with account() as ns:
        missing = await ns.api("GET", f"{RECORDS}/customer/424242")
        missing_eid = await ns.api("GET", f"{RECORDS}/customer/eid:nope")
        bad_type = await ns.api("GET", f"{RECORDS}/spaceship/1")
        bad_json = await ns.api(
            "POST", f"{RECORDS}/customer", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        wrong_method = await ns.api("POST", f"{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}", json={})
    detail = assert_error(missing, 404, "NONEXISTENT_ID")
    assert detail["detail"] == "The record instance does not exist. Provide a valid record instance ID."
    assert_error(missing_eid, 404, "NONEXISTENT_ID")
    assert_error(bad_type, 404, "NONEXISTENT_ID")
    assert_error(bad_json, 400, "INVALID_CONTENT")
    assert_error(wrong_method, 405, "INVALID_METHOD")


@pytest.mark.asyncio
async def test_a_payment_settles_the_invoices_it_applies_to() -> None:
    async with account() as ns:
        response = await ns.api(
            "POST",
            f"{RECORDS}/customerPayment",
            json={
                "customer": {"id": DEMO_CUSTOMER_ID},
                "payment": 30000.0,
                "apply": {"items": [{"doc": {"id": OPEN_INVOICE_ID}, "amount": 29800.0}]},
            },
        )
        invoice = await ns.record("invoice", OPEN_INVOICE_ID)
        payment = await ns.record("customerPayment", record_id_of(response.headers["location"]))
        too_much = await ns.api(
            "POST",
            f"{RECORDS}/customerPayment",
            json={"customer": {"id": UK_CUSTOMER_ID}, "payment": 99999.0,
                  "apply": {"items": [{"doc": {"id": PARTIALLY_PAID_INVOICE_ID}, "amount": 99999.0}]}},
        )
        delete_paid = await ns.api("DELETE", f"{RECORDS}/invoice/{OPEN_INVOICE_ID}")
        await ns.api("DELETE", f"{RECORDS}/customerPayment/{payment['id']}")
        reopened = await ns.record("invoice", OPEN_INVOICE_ID)
    assert response.status_code == 204
    assert (invoice["amountRemaining"], invoice["status"]["refName"]) == (0.0, "Paid In Full")
    assert (payment["applied"], payment["unapplied"]) == (29800.0, 200.0)
    assert_error(too_much, 400, "USER_ERROR")
    assert_error(delete_paid, 400, "USER_ERROR")
    assert (reopened["amountRemaining"], reopened["status"]["id"]) == (29800.0, "A")


# ---------------------------------------------------------------------------------------------------------
# Lists: paging and "q"
# ---------------------------------------------------------------------------------------------------------


def links_of(page: dict[str, Any]) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in page["links"]}


@pytest.mark.asyncio
async def test_listing_pages_with_links() -> None:
    async with account() as ns:
        pages = [(await ns.api("GET", f"{RECORDS}/invoice", params={"limit": 50})).json()]
        while pages[-1]["hasMore"]:
            response = await ns.api("GET", links_of(pages[-1])["next"])
            assert response.status_code == 200
            pages.append(response.json())
        default = (await ns.api("GET", f"{RECORDS}/invoice")).json()
    assert [page["count"] for page in pages] == [50] * 6
    assert [page["offset"] for page in pages] == [0, 50, 100, 150, 200, 250]
    assert {page["totalResults"] for page in pages} == {INVOICE_COUNT}
    first, middle, last = links_of(pages[0]), links_of(pages[2]), links_of(pages[-1])
    assert set(first) == {"next", "last", "self"}
    assert first["next"] == f"{BASE}{RECORDS}/invoice?limit=50&offset=50"
    assert first["last"] == f"{BASE}{RECORDS}/invoice?limit=50&offset=250"
    assert set(middle) == {"previous", "first", "next", "last", "self"}
    assert set(last) == {"previous", "first", "self"}
    ids = [item["id"] for page in pages for item in page["items"]]
    assert len(set(ids)) == INVOICE_COUNT
    assert ids == sorted(ids, key=int)
    item = pages[0]["items"][0]
    item_url = f"{BASE}{RECORDS}/invoice/{item['id']}"
    assert item == {"links": [{"rel": "self", "href": item_url}], "id": item["id"]}
    assert (default["count"], default["hasMore"]) == (INVOICE_COUNT, False)


@pytest.mark.asyncio
async def test_bad_paging_parameters() -> None:
    async with account() as ns:
        too_big = await ns.api("GET", f"{RECORDS}/invoice", params={"limit": 1001})
        not_a_number = await ns.api("GET", f"{RECORDS}/invoice", params={"offset": "x"})
    assert_error(too_big, 400, "INVALID_PARAMETER")
    assert_error(not_a_number, 400, "INVALID_PARAMETER")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("record_type", "q", "expected"),
    [
        ("customer", 'companyName IS "globex professional services"', {GLOBEX_CUSTOMER_ID}),
        ("customer", 'companyName START_WITH "Globex"', {GLOBEX_CUSTOMER_ID, CHILD_CUSTOMER_ID}),
        ("customer", 'companyName CONTAIN "Söhne"', {DE_CUSTOMER_ID}),
        ("customer", "isInactive IS true", {INACTIVE_CUSTOMER_ID}),
        ("customer", f"parent ANY_OF [{GLOBEX_CUSTOMER_ID}]", {CHILD_CUSTOMER_ID}),
        ("customer", f"id ANY_OF [{GLOBEX_CUSTOMER_ID}, {UK_CUSTOMER_ID}] AND subsidiary ANY_OF 2",
         {UK_CUSTOMER_ID}),
        ("customer", 'companyName START_WITH "O\'Neill" OR companyName END_WITH "L.L.C."',
         {APOSTROPHE_CUSTOMER_ID, DUPLICATE_CUSTOMER_ID}),
        ("invoice",
         f"entity ANY_OF [{DE_CUSTOMER_ID}] AND dueDate BEFORE 2026-01-21 AND amountRemaining GREATER 0",
         {OVERDUE_INVOICE_ID}),
        ("invoice", f'tranDate ON "2/20/2026" AND entity ANY_OF {DEMO_CUSTOMER_ID}', {OPEN_INVOICE_ID}),
        ("customerPayment",
         f"customer ANY_OF [{UK_CUSTOMER_ID}] AND payment BETWEEN_INCLUSIVE [22356, 22356]",
         {PARTIAL_PAYMENT_ID}),
    ],
)
async def test_list_filters_with_q(record_type: str, q: str, expected: set[str]) -> None:
    async with account() as ns:
        response = await ns.api("GET", f"{RECORDS}/{record_type}", params={"q": q, "limit": 1000})
    assert response.status_code == 200, response.text
    page = response.json()
    found = {item["id"] for item in page["items"]}
    if record_type == "invoice" and expected:
        assert expected <= found
    else:
        assert found == expected
    assert parse_qs(urlsplit(links_of(page)["self"]).query)["q"] == [q]


@pytest.mark.asyncio
async def test_q_on_dates_and_modification_time() -> None:
    async with account() as ns:
        await ns.api("PATCH", f"{RECORDS}/invoice/{OVERDUE_INVOICE_ID}", json={"memo": "chased"})
        changed = await ns.api(
            "GET", f"{RECORDS}/invoice", params={"q": "lastModifiedDate AFTER 2026-03-02T09:30:00Z"}
        )
        overdue = await ns.api(
            "GET", f"{RECORDS}/invoice",
            params={"q": f"dueDate BEFORE {SEED_DATE.isoformat()} AND amountRemaining GREATER 0"},
        )
    assert [item["id"] for item in changed.json()["items"]] == [OVERDUE_INVOICE_ID]
    seed = build_seed(42)["invoice"]
    expected = {
        record_id for record_id, invoice in seed.items()
        if invoice["dueDate"] < SEED_DATE.isoformat() and invoice["amountRemaining"] > 0
    }
    assert {item["id"] for item in overdue.json()["items"]} == expected
    assert OVERDUE_INVOICE_ID in expected


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "q",
    [
        "companyName",
        "companyName LIKE x",
        'nosuchfield IS "x"',
        "isInactive CONTAIN true",
        "creditLimit GREATER lots",
        "dateCreated AFTER yesterday",
        'companyName IS "a" AND',
        'companyName IS "a" XOR email EMPTY',
        "creditLimit BETWEEN [1]",
    ],
)
async def test_bad_q_filters(q: str) -> None:
    async with account() as ns:
        response = await ns.api("GET", f"{RECORDS}/customer", params={"q": q})
    detail = assert_error(response, 400, "INVALID_PARAMETER")
    assert detail["o:errorPath"] == "q"


# ---------------------------------------------------------------------------------------------------------
# Metadata catalog (https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_1540810174.html)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_metadata_catalog_lists_record_types_and_describes_one() -> None:
    async with account() as ns:
        catalog = await ns.api("GET", f"{RECORDS}/metadata-catalog")
        narrowed = await ns.api("GET", f"{RECORDS}/metadata-catalog", params={"select": "customer,invoice"})
        customer = await ns.api(
            "GET", f"{RECORDS}/metadata-catalog/customer", headers={"Accept": "application/schema+json"}
        )
        swagger = await ns.api(
            "GET", f"{RECORDS}/metadata-catalog/customer", headers={"Accept": "application/swagger+json"}
        )
        unknown = await ns.api("GET", f"{RECORDS}/metadata-catalog/nosuchrecord")
        anonymous = await ns.client.get(f"{RECORDS}/metadata-catalog")
    assert catalog.status_code == 200, catalog.text
    entries = {item["name"]: item for item in catalog.json()["items"]}
    assert set(entries) == set(RECORD_TYPES)
    rels = {(link["rel"], link.get("mediaType")) for link in entries["customer"]["links"]}
    assert ("canonical", "application/json") in rels
    assert ("describes", None) in rels
    assert [item["name"] for item in narrowed.json()["items"]] == ["customer", "invoice"]
    assert customer.status_code == 200, customer.text
    schema = customer.json()
    assert "companyName" in schema["required"]
    assert schema["properties"]["companyName"]["maxLength"] == 83
    assert schema["properties"]["subsidiary"]["properties"]["id"] == {"type": "string"}
    assert schema["properties"]["lastModifiedDate"] == {
        "type": "string",
        "format": "date-time",
        "title": "Last Modified",
        "readOnly": True,
    }
    assert swagger.status_code == 406
    assert_error(unknown, 404, "NONEXISTENT_ID")
    assert anonymous.status_code == 401


# ---------------------------------------------------------------------------------------------------------
# SuiteQL
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_suiteql_needs_prefer_transient() -> None:
    async with account() as ns:
        response = await ns.api("POST", SUITEQL, json={"q": "SELECT id FROM customer"})
    detail = assert_error(response, 400, "INVALID_HEADER")
    assert "Prefer: transient" in detail["detail"]


@pytest.mark.asyncio
async def test_suiteql_returns_strings_and_pages() -> None:
    query = (
        "SELECT t.id, t.tranid, t.foreigntotal AS total, t.foreignamountremaining, t.trandate, t.externalid "
        f"FROM transaction t WHERE t.type = 'CustInvc' AND t.id IN ({OPEN_INVOICE_ID}, {PAID_INVOICE_ID}) "
        "ORDER BY t.id"
    )
    async with account() as ns:
        response = await ns.suiteql(query)
        first = await ns.suiteql("SELECT id FROM transaction WHERE type = 'CustInvc' ORDER BY id", limit=100)
        second = await ns.api("POST", links_of(first.json())["next"], json={"q": "SELECT id FROM transaction "
                              "WHERE type = 'CustInvc' ORDER BY id"}, headers={"Prefer": "transient"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.oracle.resource+json")
    body = response.json()
    assert body["items"] == [
        {"links": [], "id": OPEN_INVOICE_ID, "tranid": f"INV{OPEN_INVOICE_ID}", "total": "29800",
         "foreignamountremaining": "29800", "trandate": "2/20/2026"},
        {"links": [], "id": PAID_INVOICE_ID, "tranid": f"INV{PAID_INVOICE_ID}", "total": "21712.5",
         "foreignamountremaining": "0", "trandate": "1/21/2026"},
    ]
    assert (body["count"], body["hasMore"], body["offset"], body["totalResults"]) == (2, False, 0, 2)
    page = first.json()
    assert (page["count"], page["hasMore"], page["totalResults"]) == (100, True, INVOICE_COUNT)
    assert links_of(page)["next"].endswith(f"{SUITEQL}?limit=100&offset=100")
    assert second.json()["items"][0]["id"] == str(int(OPEN_INVOICE_ID) + 100)


@pytest.mark.asyncio
async def test_suiteql_polls_on_lastmodifieddate() -> None:
    cursor = "TO_TIMESTAMP('2026-03-02 09:30:00', 'YYYY-MM-DD HH24:MI:SS')"
    query = (
        "SELECT id, TO_CHAR(lastmodifieddate, 'YYYY-MM-DD\"T\"HH24:MI:SS') AS modified FROM transaction "
        f"WHERE lastmodifieddate > {cursor} ORDER BY lastmodifieddate"
    )
    async with account() as ns:
        before = await ns.rows(query)
        await ns.api("PATCH", f"{RECORDS}/invoice/{OVERDUE_INVOICE_ID}", json={"memo": "Dunning letter 2"})
        after = await ns.rows(query)
    assert before == []
    assert [row["id"] for row in after] == [OVERDUE_INVOICE_ID]
    assert after[0]["modified"] > "2026-03-02T09:30:00"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "query",
    [
        "SELECT FROM customer",
        "SELECT id customer",
        "SELECT id FROM customer WHERE",
        "SELECT id FROM customer WHERE companyname = 'unterminated",
        "SELECT id FROM customer; DELETE FROM customer",
        "SELECT id FROM customer WHERE (id = 1",
        "SELECT id FROM nosuchtable",
        "SELECT shoesize FROM customer",
        "SELECT c.id FROM customer c JOIN job j ON j.nope = c.id",
        "SELECT id FROM customer c JOIN job j ON j.parent = c.id",
        "SELECT BUILTIN.CONSOLIDATE(foreigntotal, 'LEDGER', 'DEFAULT', 'DEFAULT', 1, 0, 'DEFAULT') "
        "FROM transaction",
        "SELECT id FROM customer WHERE id = 'abc'",
        "SELECT id FROM transaction WHERE trandate > 'yesterday'",
    ],
)
async def test_bad_suiteql_is_invalid_parameter(query: str) -> None:
    async with account() as ns:
        response = await ns.suiteql(query)
    detail = assert_error(response, 400, "INVALID_PARAMETER")
    assert detail["detail"].startswith("Invalid search query.")
    assert "File " not in detail["detail"]


@pytest.mark.asyncio
async def test_an_injection_inside_a_quoted_literal_is_only_data() -> None:
    injected = "SELECT id FROM customer WHERE companyname = 'x'' OR ''1''=''1'"
    unescaped = "SELECT id FROM customer WHERE companyname = 'x' OR '1'='1'"
    async with account() as ns:
        quoted = await ns.rows(injected)
        widened = await ns.rows(unescaped)
        apostrophe = await ns.rows("SELECT id FROM customer WHERE companyname = 'O''Neill & Partners LLP'")
    assert quoted == []
    assert len(widened) == 40  # what the same text does unescaped: why adapters must double quotes
    assert apostrophe == [{"links": [], "id": APOSTROPHE_CUSTOMER_ID}]


# ---------------------------------------------------------------------------------------------------------
# Asynchronous requests and idempotency keys
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_idempotent_async_create() -> None:
    key = str(uuid.uuid4())
    body = {"companyName": "Umbrella Life Sciences Ltd", "subsidiary": {"id": "2"},
            "externalId": salesforce.UK_ACCOUNT_ID}
    headers = {"Prefer": "respond-async", "X-NetSuite-Idempotency-Key": key}
    async with account(async_pending_polls=1) as ns:
        accepted = await ns.api("POST", f"{RECORDS}/customer", json=body, headers=headers)
        job_url = accepted.headers["location"]
        pending = (await ns.api("GET", job_url)).json()
        done = (await ns.api("GET", job_url)).json()
        tasks_url = done["task"]["links"][0]["href"]
        tasks = (await ns.api("GET", tasks_url)).json()
        task_url = tasks["items"][0]["links"][0]["href"]
        task = (await ns.api("GET", task_url)).json()
        result = await ns.api("GET", f"{task_url}/result")
        retried = await ns.api("POST", f"{RECORDS}/customer", json=body, headers=headers)
        matches = await ns.api(
            "GET", f"{RECORDS}/customer", params={"q": f'externalId IS "{salesforce.UK_ACCOUNT_ID}"'}
        )
    assert accepted.status_code == 202
    assert accepted.content == b""
    assert accepted.headers["preference-applied"] == "respond-async"
    assert job_url == f"{BASE}{REST}/async/v1/job/1"
    assert (pending["completed"], pending["progress"]) == (False, "pending")
    assert (done["id"], done["completed"], done["progress"]) == ("1", True, "succeeded")
    assert done["links"] == [{"rel": "self", "href": job_url}]
    assert done["task"]["links"] == [{"rel": "self", "href": f"{job_url}/task"}]
    assert [item["id"] for item in tasks["items"]] == ["1"]
    assert task_url == f"{job_url}/task/1"
    assert task["completed"] is True
    assert {"rel": "related", "href": f"{task_url}/result"} in task["links"]
    assert result.status_code == 204
    assert result.headers["location"].startswith(f"{BASE}{RECORDS}/customer/")
    assert retried.status_code == 400
    refusal = retried.json()
    assert (refusal["status"], refusal["title"]) == (400, "Conflict")  # as in Oracle's example
    assert refusal["o:errorDetails"][0]["o:errorCode"] == "IDEMPOTENCY_ERROR"
    # The first job is named by the Location header (Oracle's documented answer), not by the text.
    assert retried.headers["location"] == job_url
    assert retried.headers["preference-applied"] == "respond-async"
    assert matches.json()["totalResults"] == 1


@pytest.mark.asyncio
async def test_async_failures_and_key_rules() -> None:
    async with account() as ns:
        failed = await ns.api(
            "POST", f"{RECORDS}/customer", json={"companyName": "No subsidiary"},
            headers={"Prefer": "respond-async", "X-NetSuite-Idempotency-Key": str(uuid.uuid4())},
        )
        job = (await ns.api("GET", failed.headers["location"])).json()
        tasks = (await ns.api("GET", job["task"]["links"][0]["href"])).json()
        result = await ns.api("GET", f"{tasks['items'][0]['links'][0]['href']}/result")
        sync_key = str(uuid.uuid4())
        sync_body = {"companyName": "Sync Key Ltd", "subsidiary": {"id": "1"}}
        key_only = [
            await ns.api(
                "POST",
                f"{RECORDS}/customer",
                json=sync_body,
                headers={"X-NetSuite-Idempotency-Key": sync_key},
            )
            for _ in range(2)
        ]
        sync_made = await ns.api("GET", f"{RECORDS}/customer", params={"q": 'companyName IS "Sync Key Ltd"'})
        not_a_uuid = await ns.api(
            "PATCH", f"{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}", json={"phone": "1"},
            headers={"Prefer": "respond-async", "X-NetSuite-Idempotency-Key": "retry-1"},
        )
        without_key = await ns.api(
            "PATCH", f"{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}", json={"phone": "+1 555 0100"},
            headers={"Prefer": "respond-async"},
        )
        contact = {"lastName": "Temp", "company": {"id": DEMO_CUSTOMER_ID}}
        created = await ns.api("POST", f"{RECORDS}/contact", json=contact)
        deleted = await ns.api("DELETE", created.headers["location"], headers={"Prefer": "respond-async"})
        deletion = (await ns.api("GET", deleted.headers["location"])).json()
        gone = await ns.api("GET", created.headers["location"])
        missing_job = await ns.api("GET", f"{REST}/async/v1/job/999")
        customer = await ns.record("customer", GLOBEX_CUSTOMER_ID)
    assert failed.status_code == 202
    assert (job["completed"], job["progress"]) == (True, "failed")
    assert_error(result, 400, "USER_ERROR")
    # On a synchronous request NetSuite ignores the key: both POSTs create a customer, no dedupe.
    assert [response.status_code for response in key_only] == [204, 204]
    assert "preference-applied" not in key_only[0].headers
    assert key_only[0].headers["location"] != key_only[1].headers["location"]
    assert sync_made.json()["totalResults"] == 2
    assert_error(not_a_uuid, 400, "INVALID_HEADER")
    assert without_key.status_code == 202
    assert customer["phone"] == "+1 555 0100"
    assert (deleted.status_code, deletion["progress"]) == (202, "succeeded")
    assert_error(gone, 404, "NONEXISTENT_ID")
    assert_error(missing_job, 404, "NONEXISTENT_ID")


# ---------------------------------------------------------------------------------------------------------
# Governance, mounting, admin and faults
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_more_requests_in_flight_than_the_limit_get_429() -> None:
    async with account(concurrency_limit=3) as ns:
        await ns.login()
        ns.sandbox.faults.add(FaultRule(kind="latency", latency_ms=150, path_pattern="/record/v1/customer/"))
        responses = await asyncio.gather(
            *(ns.api("GET", f"{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}") for _ in range(5))
        )
        ns.sandbox.faults.clear()
        afterwards = await ns.api("GET", f"{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}")
        stats = (await ns.client.get("/__sandbox/stats")).json()
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 200, 200, 429, 429]
    throttled = next(response for response in responses if response.status_code == 429)
    assert_error(throttled, 429, "CONCURRENCY_LIMIT_EXCEEDED")
    assert afterwards.status_code == 200
    assert (stats["throttled"], stats["peak_in_flight"], stats["in_flight"]) == (2, 3, 0)


def mount(prefix: str, app: Any) -> Any:
    """What the gateway does: strip the prefix from the path and record it in root_path."""

    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        assert path.startswith(prefix)
        root_path = scope.get("root_path", "") + prefix
        scope = {**scope, "root_path": root_path, "path": path[len(prefix) :] or "/"}
        await app(scope, receive, send)

    return mounted


@pytest.mark.asyncio
async def test_mounted_under_a_prefix_every_url_carries_it() -> None:
    app = create_netsuite_sandbox()
    root = "http://gateway.test/sandboxes/netsuite"
    transport = httpx.ASGITransport(app=mount("/sandboxes/netsuite", app))
    async with httpx.AsyncClient(transport=transport, base_url=root) as client:
        token = await client.post(TOKEN_PATH, data=token_form(assertion(aud=f"{root}{TOKEN_PATH}")))
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        created = await client.post(
            f"{RECORDS}/customer",
            json={"companyName": "Mounted Co", "subsidiary": {"id": "1"}},
            headers=headers,
        )
        location = created.headers["location"]
        record = (await client.get(location, headers=headers)).json()
        page = (await client.get(f"{RECORDS}/invoice", params={"limit": 100}, headers=headers)).json()
        job = await client.patch(
            location, json={"phone": "1"}, headers={**headers, "Prefer": "respond-async"}
        )
        wrong_aud = await client.post(TOKEN_PATH, data=token_form(assertion(aud=f"http://gateway.test{TOKEN_PATH}")))
    assert location.startswith(f"{root}{RECORDS}/customer/")
    assert record["links"][0]["href"] == location
    assert record["subsidiary"]["links"][0]["href"] == f"{root}{RECORDS}/subsidiary/1"
    assert links_of(page)["next"] == f"{root}{RECORDS}/invoice?limit=100&offset=100"
    assert page["items"][0]["links"][0]["href"].startswith(f"{root}{RECORDS}/invoice/")
    assert job.headers["location"].startswith(f"{root}{REST}/async/v1/job/")
    assert wrong_aud.json()["error"] == "invalid_grant"


@pytest.mark.asyncio
async def test_faults_apply_to_vendor_paths_and_reset_clears_them() -> None:
    async with account() as ns:
        await ns.login()
        rule = {
            "kind": "error",
            "path_pattern": "/query/v1/suiteql",
            "status": 503,
            "body": json.dumps(
                {"type": "x", "title": "Service Unavailable", "status": 503,
                 "o:errorDetails": [{"detail": "Maintenance", "o:errorCode": "UNEXPECTED_ERROR"}]}
            ),
            "headers": {"Retry-After": "2"},
            "times": 1,
        }
        assert (await ns.client.post("/__sandbox/faults", json=rule)).status_code == 201
        faulted = await ns.suiteql("SELECT id FROM customer")
        recovered = await ns.suiteql("SELECT id FROM customer")
        ns.sandbox.faults.add(FaultRule(kind="malformed", path_pattern="/record/v1/"))
        malformed = await ns.api("GET", f"{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}")
        assert (await ns.client.post("/__sandbox/reset")).status_code == 204
        remaining_faults = (await ns.client.get("/__sandbox/faults")).json()["faults"]
        stats = (await ns.client.get("/__sandbox/stats")).json()
    assert faulted.status_code == 503
    assert faulted.headers["retry-after"] == "2"
    assert recovered.status_code == 200
    assert malformed.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed.content)
    assert remaining_faults == []
    assert (stats["requests"], stats["active_tokens"]) == ([], 0)


@pytest.mark.asyncio
async def test_reset_restores_the_seed_and_stats_list_requests() -> None:
    async with account() as ns:
        await ns.api("PATCH", f"{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}", json={"companyName": "Changed"})
        await ns.client.get(f"{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}")
        stats = (await ns.client.get("/__sandbox/stats")).json()
        assert (await ns.client.post("/__sandbox/reset")).status_code == 204
        restored = await ns.api("GET", f"{RECORDS}/customer/{GLOBEX_CUSTOMER_ID}")
    assert [(entry["method"], entry["status"]) for entry in stats["requests"]] == [
        ("POST", 200), ("PATCH", 204), ("GET", 401)
    ]
    assert stats["records"]["invoice"] == INVOICE_COUNT
    assert restored.status_code == 401  # tokens are gone too
    async with account() as ns:
        restored_name = (await ns.record("customer", GLOBEX_CUSTOMER_ID))["companyName"]
    assert restored_name == "Globex Professional Services"


# ---------------------------------------------------------------------------------------------------------
# SuiteQL evaluation (in process)
# ---------------------------------------------------------------------------------------------------------

SEED = build_seed(42)
TABLES = build_tables(SEED, RECORD_TYPES)


def run(query: str) -> list[dict[str, str]]:
    return compile_suiteql(query, TABLES).run()


def test_suiteql_conditions_and_null_logic() -> None:
    assert run("SELECT companyname FROM customer WHERE isinactive = 'T'") == [
        {"companyname": "Tyrell Advisory Corp"}
    ]
    # SQL, not Salesforce: != leaves NULLs out, and NOT IN with a NULL is never true.
    with_parent = run(f"SELECT id FROM customer WHERE parent != 0 OR parent = {GLOBEX_CUSTOMER_ID}")
    assert with_parent == [{"id": CHILD_CUSTOMER_ID}]
    assert run("SELECT id FROM customer WHERE id NOT IN (1001, NULL)") == []
    assert len(run("SELECT id FROM customer WHERE parent IS NULL")) == 39
    assert run("SELECT id FROM customer WHERE companyname LIKE 'globex%'") == []  # case-sensitive
    assert len(run("SELECT id FROM customer WHERE UPPER(companyname) LIKE 'GLOBEX%'")) == 2
    assert run("SELECT id FROM customer WHERE companyname LIKE '%\\_%' ESCAPE '\\'") == []
    between = run(
        "SELECT id FROM transaction WHERE type = 'CustInvc' AND foreigntotal BETWEEN 29800 AND 29800"
    )
    assert {"id": OPEN_INVOICE_ID} in between
    assert run("SELECT id FROM customer WHERE email = ''") == []  # '' is NULL, as in Oracle
    mixed = run(
        "SELECT id FROM customer WHERE (subsidiary = 2 OR subsidiary = 3) AND NOT isinactive = 'T' "
        "AND companyname LIKE '%GmbH' ORDER BY id FETCH FIRST 2 ROWS ONLY"
    )
    assert len(mixed) == 2
    assert all(int(row["id"]) > 1000 for row in mixed)


def test_suiteql_output_formats() -> None:
    rows = run(
        f"SELECT TOP 1 foreigntotal, trandate, TO_CHAR(trandate, 'YYYY-MM-DD') AS iso, memo, 0.5 AS half, "
        f"NVL(memo, 'none') FROM transaction WHERE id = {OPEN_INVOICE_ID}"
    )
    assert rows == [{"foreigntotal": "29800", "trandate": "2/20/2026", "iso": "2026-02-20", "half": ".5",
                     "expr1": "none"}]
    assert format_number(-0.25) == "-.25"
    assert format_number(1250.5) == "1250.5"
    star = run(f"SELECT * FROM timebill WHERE id = {TIME_BILL_ID}")[0]
    assert (star["hours"], star["isbillable"], star["approvalstatus"]) == ("7.5", "T", "2")


def test_suiteql_order_by() -> None:
    names = [row["name"] for row in run("SELECT companyname AS name FROM customer ORDER BY name DESC")]
    assert names == sorted(names, reverse=True)
    by_position = run("SELECT id, companyname FROM customer ORDER BY 2")
    assert [row["companyname"] for row in by_position] == sorted(row["companyname"] for row in by_position)
    due = [row.get("duedate") for row in run("SELECT duedate FROM transaction ORDER BY duedate NULLS FIRST")]
    assert due[0] is None
    assert due[-1] is not None
    assert len(run("SELECT DISTINCT subsidiary FROM customer")) == 3


def test_suiteql_errors_name_the_problem() -> None:
    with pytest.raises(SuiteQlError, match="Field 'nope' for record 'customer' was not found"):
        compile_suiteql("SELECT nope FROM customer", TABLES)
    with pytest.raises(SuiteQlError, match="Parse of query failed at position 33"):
        compile_suiteql("SELECT id FROM customer WHERE = 1", TABLES)
    with pytest.raises(SuiteQlError, match="SOUNDEX is not supported"):
        compile_suiteql("SELECT SOUNDEX(companyname) FROM customer", TABLES)
    with pytest.raises(SuiteQlError, match="Field 'id' is ambiguous"):
        compile_suiteql("SELECT id FROM customer c JOIN job j ON j.parent = c.id", TABLES)
    with pytest.raises(SuiteQlError, match="Only SELECT"):
        compile_suiteql("DELETE FROM customer", TABLES)


def test_suiteql_joins_a_transaction_to_its_lines_and_customer() -> None:
    # The join Oracle's SuiteQL examples use: transaction to transactionline on tl.transaction = t.id, the
    # header's "main line" left out. Sales lines carry the posting's sign, so the invoice's own is negated.
    rows = run(
        "SELECT t.tranid, c.companyname, tl.linesequencenumber AS line, BUILTIN.DF(tl.item) AS item, "
        "-tl.foreignamount AS amount FROM transaction t "
        "INNER JOIN transactionline tl ON tl.transaction = t.id "
        "JOIN customer c ON c.id = t.entity "
        f"WHERE t.id = {OPEN_INVOICE_ID} AND tl.mainline = 'F' ORDER BY tl.linesequencenumber"
    )
    invoice = SEED["invoice"][OPEN_INVOICE_ID]
    customer = SEED["customer"][invoice["entity"]]
    assert [row["line"] for row in rows] == [str(n) for n in range(1, len(invoice["item"]) + 1)]
    assert {row["companyname"] for row in rows} == {customer["companyName"]}
    assert [row["item"] for row in rows] == [
        SEED["serviceItem"][line["item"]]["itemId"] for line in invoice["item"]
    ]
    assert sum(Decimal(row["amount"]) for row in rows) == Decimal(str(invoice["total"]))
    # A LEFT JOIN keeps a customer without transactions, with the joined columns NULL (so left out).
    # A LEFT JOIN keeps customers without projects, with the project's columns NULL (so left out).
    rows = run(
        "SELECT c.id, j.id AS project FROM customer c LEFT JOIN job j ON j.customer = c.id "
        "ORDER BY c.id, j.id"
    )
    with_projects = {record["parent"] for record in SEED["job"].values()}
    idle = [cid for cid in SEED["customer"] if cid not in with_projects]
    assert idle
    assert sorted((row["id"] for row in rows if "project" not in row), key=int) == sorted(idle, key=int)
    assert len(rows) == len(idle) + len(SEED["job"])


def test_suiteql_group_by_and_aggregates() -> None:
    rows = run(
        "SELECT entity, COUNT(*) AS invoices, SUM(foreigntotal) AS total, MAX(trandate) AS latest "
        "FROM transaction WHERE type = 'CustInvc' GROUP BY entity HAVING COUNT(*) >= 2 ORDER BY entity"
    )
    expected: dict[str, list[dict[str, Any]]] = {}
    for invoice in SEED["invoice"].values():
        expected.setdefault(invoice["entity"], []).append(invoice)
    wanted = {entity: items for entity, items in expected.items() if len(items) >= 2}
    assert [row["entity"] for row in rows] == sorted(wanted, key=int)
    for row in rows:
        items = wanted[row["entity"]]
        assert row["invoices"] == str(len(items))
        assert Decimal(row["total"]) == sum(Decimal(str(item["total"])) for item in items)
        latest = max(item["tranDate"] for item in items)
        assert row["latest"] == f"{int(latest[5:7])}/{int(latest[8:10])}/{latest[:4]}"
    assert run("SELECT COUNT(*) FROM customer") == [{"expr1": str(len(SEED["customer"]))}]


def test_suiteql_row_limits_rownum_top_and_fetch_first() -> None:
    ordered = [row["id"] for row in run("SELECT id FROM customer ORDER BY companyname DESC")]
    assert [row["id"] for row in run("SELECT TOP 3 id FROM customer ORDER BY companyname DESC")] == ordered[
        :3
    ]
    fetched = run("SELECT id FROM customer ORDER BY companyname DESC FETCH FIRST 3 ROWS ONLY")
    assert [row["id"] for row in fetched] == ordered[:3]
    # Oracle's classic top-n: order in a subquery, ROWNUM outside.
    classic = run("SELECT * FROM (SELECT id FROM customer ORDER BY companyname DESC) WHERE ROWNUM <= 3")
    assert [row["id"] for row in classic] == ordered[:3]
    assert len(run("SELECT id FROM customer WHERE ROWNUM < 5")) == 4
    with pytest.raises(SuiteQlError, match="ROWNUM"):
        run("SELECT ROWNUM, id FROM customer")


def test_builtin_df_gives_the_display_value_of_list_and_record_fields() -> None:
    # https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/article_1029114613.html
    paid, open_ = SEED["invoice"][PAID_INVOICE_ID], SEED["invoice"][OPEN_INVOICE_ID]
    customer = SEED["customer"][paid["entity"]]
    rows = run(
        "SELECT id, entity, BUILTIN.DF(entity) AS customer, status, BUILTIN.DF(status) AS statustext, "
        f"BUILTIN.DF(type) AS typename, BUILTIN.DF(currency) AS currencyname FROM transaction "
        f"WHERE id IN ({OPEN_INVOICE_ID}, {PAID_INVOICE_ID}) ORDER BY id"
    )
    assert rows[1]["customer"] == f"{customer['entityId']} {customer['companyName']}"
    assert (rows[0]["status"], rows[0]["statustext"]) == (open_["status"], "Invoice : Open")
    assert (rows[1]["status"], rows[1]["statustext"]) == (paid["status"], "Invoice : Paid In Full")
    assert rows[0]["typename"] == "Invoice"
    assert rows[0]["currencyname"] == SEED["currency"][open_["currency"]]["name"]
    job = run(
        "SELECT BUILTIN.DF(entitystatus) AS status, BUILTIN.DF(customer) AS c FROM job "
        f"WHERE id = {DEMO_PROJECT_ID}"
    )
    project = SEED["job"][DEMO_PROJECT_ID]
    assert (
        job[0]["status"]
        == {"1": "Closed", "2": "In Progress", "3": "Not Awarded", "4": "Pending"}[project["entityStatus"]]
    )
    # DF of a plain field is the field's value; a filter on it works like any expression.
    assert run(f"SELECT BUILTIN.DF(companyname) AS n FROM customer WHERE id = {GLOBEX_CUSTOMER_ID}") == [
        {"n": SEED["customer"][GLOBEX_CUSTOMER_ID]["companyName"]}
    ]
    named = run("SELECT id FROM transaction WHERE BUILTIN.DF(status) = 'Invoice : Paid In Full'")
    assert {"id": PAID_INVOICE_ID} in named
    assert all(SEED["invoice"][row["id"]]["status"] == "B" for row in named)


def test_suiteql_oracle_functions_still_run() -> None:
    row = run(
        "SELECT NVL(memo, 'none') AS a, COALESCE(NULL, otherrefnum, 'x') AS b, TO_NUMBER('12.50') AS n, "
        "TO_CHAR(TO_DATE('03/01/2026', 'MM/DD/YYYY'), 'YYYY-MM-DD') AS d, UPPER(tranid) AS u, "
        "tranid || '-' || NULL AS joined, foreigntotal / 4 AS quarter "
        f"FROM transaction WHERE id = {OPEN_INVOICE_ID}"
    )[0]
    assert (row["n"], row["d"], row["u"], row["joined"]) == (
        "12.5",
        "2026-03-01",
        f"INV{OPEN_INVOICE_ID}",
        f"INV{OPEN_INVOICE_ID}-",
    )
    assert row["quarter"] == "7450"
    # Oracle's DECODE, NVL2, SUBSTR and INSTR, which sqlglot writes for SQLite.
    decoded = run(
        "SELECT id, DECODE(status, 'A', 'open', 'B', 'paid', 'other') AS d, "
        "NVL2(otherrefnum, 'y', 'n') AS po, SUBSTR(tranid, 1, 3) AS prefix, INSTR(tranid, 'V') AS v "
        "FROM transaction "
        f"WHERE id IN ({OPEN_INVOICE_ID}, {PAID_INVOICE_ID}) ORDER BY id"
    )
    assert [(row["d"], row["prefix"], row["v"]) for row in decoded] == [
        ("open", "INV", "3"),
        ("paid", "INV", "3"),
    ]
    assert decoded[0]["po"] == ("y" if SEED["invoice"][OPEN_INVOICE_ID]["otherRefNum"] else "n")
    with pytest.raises(SuiteQlError, match="does not match the format"):
        run("SELECT TO_DATE('March 1', 'MM/DD/YYYY') FROM customer")
    with pytest.raises(SuiteQlError, match="Invalid number"):
        run("SELECT TO_NUMBER(companyname) FROM customer")


def test_suiteql_shows_and_reads_times_in_the_accounts_time_zone() -> None:
    # The sandbox account keeps Pacific time (ACCOUNT_TIME_ZONE); records hold UTC, as REST bodies show.
    assert ACCOUNT_TIME_ZONE == "America/Los_Angeles"
    records = copy.deepcopy(SEED)
    records["customer"][GLOBEX_CUSTOMER_ID]["lastModifiedDate"] = "2026-03-02T23:30:00Z"  # 15:30 PST
    records["customer"][UK_CUSTOMER_ID]["lastModifiedDate"] = "2026-03-03T03:30:00Z"  # 19:30 PST, 3/2
    records["customer"][DE_CUSTOMER_ID]["lastModifiedDate"] = "2026-07-01T16:00:00Z"  # 09:00 PDT
    tables = build_tables(records, RECORD_TYPES)

    def rows(query: str) -> list[dict[str, str]]:
        return compile_suiteql(query, tables).run()

    shown = rows(
        "SELECT id, lastmodifieddate AS day, TO_CHAR(lastmodifieddate, 'YYYY-MM-DD HH24:MI') AS local "
        f"FROM customer WHERE id IN ({GLOBEX_CUSTOMER_ID}, {UK_CUSTOMER_ID}, {DE_CUSTOMER_ID}) ORDER BY id"
    )
    assert {row["id"]: (row["day"], row["local"]) for row in shown} == {
        GLOBEX_CUSTOMER_ID: ("3/2/2026", "2026-03-02 15:30"),
        UK_CUSTOMER_ID: ("3/2/2026", "2026-03-02 19:30"),  # the next day in UTC, not in the account
        DE_CUSTOMER_ID: ("7/1/2026", "2026-07-01 09:00"),  # summer: UTC-7
    }
    # Literals are read in the account's time too: 19:30 local is 03:30 UTC the next day.
    cursor = "TO_TIMESTAMP('2026-03-02 19:30:00', 'YYYY-MM-DD HH24:MI:SS')"
    since = rows(f"SELECT id FROM customer WHERE lastmodifieddate >= {cursor} ORDER BY lastmodifieddate")
    assert since == [{"id": UK_CUSTOMER_ID}, {"id": DE_CUSTOMER_ID}]
    assert rows(f"SELECT id FROM customer WHERE lastmodifieddate > {cursor} AND id = {UK_CUSTOMER_ID}") == []
    # A date string compared with a timestamp is the account's midnight.
    on_the_day = rows(
        "SELECT id FROM customer WHERE lastmodifieddate >= '3/2/2026' AND lastmodifieddate < '3/3/2026'"
    )
    assert {GLOBEX_CUSTOMER_ID, UK_CUSTOMER_ID} <= {row["id"] for row in on_the_day}


# ---------------------------------------------------------------------------------------------------------
# Seed data
# ---------------------------------------------------------------------------------------------------------


def _normalized(name: str) -> str:
    words = "".join(char if char.isalnum() else " " for char in name.lower()).split()
    suffixes = {"inc", "llc", "l", "c", "ltd", "plc", "gmbh", "llp"}
    return " ".join(word for word in words if word not in suffixes)


def test_seed_lines_up_with_salesforce() -> None:
    sf = salesforce.build_seed(42)
    accounts, opportunities = sf["Account"], sf["Opportunity"]
    linked = {customer["externalId"] for customer in SEED["customer"].values() if customer["externalId"]}
    assert linked == {salesforce.BIG_ACCOUNT_ID}
    # Accounts behind the well-known ready and failing deals have no linked customer to find.
    for opportunity_id in (*salesforce.READY_OPPORTUNITY_IDS, salesforce.NO_TAX_JURISDICTION_OPPORTUNITY_ID,
                           salesforce.MISSING_LEGAL_ENTITY_OPPORTUNITY_ID):
        assert opportunities[opportunity_id]["AccountId"] not in linked
    duplicate = SEED["customer"][DUPLICATE_CUSTOMER_ID]
    wayne = next(account for account in accounts.values() if account["Name"].startswith("Wayne"))
    assert duplicate["externalId"] is None
    assert _normalized(duplicate["companyName"]) == _normalized(wayne["Name"])
    assert duplicate["vatRegNumber"] == wayne["Tax_Id__c"]
    assert urlsplit(duplicate["url"]).hostname == urlsplit(wayne["Website"]).hostname.removeprefix("www.")
    # Globex deals that closed three weeks before the seed date are projects, keyed by Opportunity Id.
    projects = {job["externalId"]: job for job in SEED["job"].values() if job["externalId"]}
    won = [o for o in opportunities.values() if o["AccountId"] == salesforce.BIG_ACCOUNT_ID and o["IsWon"]]
    activated = {o["Id"] for o in won if o["CloseDate"] <= "2026-02-09"}
    assert set(projects) == activated
    assert len(activated) < len(won)
    assert all(projects[key]["parent"] == GLOBEX_CUSTOMER_ID for key in projects)


def test_seed_invoices_and_payments_are_consistent() -> None:
    invoices, payments = SEED["invoice"], SEED["customerPayment"]
    assert len(invoices) == INVOICE_COUNT
    applied: dict[str, float] = {}
    for payment in payments.values():
        for line in payment["apply"]:
            applied[line["doc"]] = applied.get(line["doc"], 0.0) + line["amount"]
        assert payment["tranDate"] <= SEED_DATE.isoformat()
        assert payment["customer"] == invoices[payment["apply"][0]["doc"]]["entity"]
    states = {"open": 0, "partial": 0, "paid": 0, "overdue": 0}
    for invoice in invoices.values():
        total = round(sum(line["amount"] for line in invoice["item"]), 2)
        assert invoice["total"] == total
        assert round(applied.get(invoice["id"], 0.0), 2) == invoice["amountPaid"]
        assert round(invoice["amountPaid"] + invoice["amountRemaining"], 2) == total
        assert invoice["status"] == ("B" if invoice["amountRemaining"] == 0 else "A")
        assert invoice["currency"] == SEED["customer"][invoice["entity"]]["currency"]
        assert invoice["lastModifiedDate"] <= "2026-03-02T09:30:00Z"
        if invoice["amountRemaining"] == 0:
            states["paid"] += 1
        elif invoice["amountPaid"] > 0:
            states["partial"] += 1
        else:
            states["open"] += 1
        if invoice["amountRemaining"] > 0 and invoice["dueDate"] < SEED_DATE.isoformat():
            states["overdue"] += 1
    assert all(count >= 10 for count in states.values()), states
    assert invoices[PAID_INVOICE_ID]["amountRemaining"] == 0
    assert payments[PAYMENT_ID]["apply"][0]["doc"] == PAID_INVOICE_ID
    partial = invoices[PARTIALLY_PAID_INVOICE_ID]
    assert 0 < partial["amountRemaining"] < partial["total"]
    assert invoices[OVERDUE_INVOICE_ID]["dueDate"] < SEED_DATE.isoformat()
    assert invoices[OPEN_INVOICE_ID]["dueDate"] > SEED_DATE.isoformat()


def test_seed_shape_and_determinism() -> None:
    assert 38 <= len(SEED["customer"]) <= 42
    assert {SEED["subsidiary"][sid]["externalId"] for sid in SEED["subsidiary"]} == {"US01", "GB01", "DE01"}
    assert len(SEED["timeBill"]) > 100
    schedule = SEED["billingSchedule"][MILESTONE_BILLING_SCHEDULE_ID]
    assert sum(line["milestoneAmount"] for line in schedule["milestones"]) == 100
    for records in SEED.values():
        for record in records.values():
            assert record["lastModifiedDate"].endswith("Z")
    assert build_seed(42) == SEED
    other = build_seed(7)
    assert other != SEED
    for customer_id in (GLOBEX_CUSTOMER_ID, DUPLICATE_CUSTOMER_ID, DEMO_CUSTOMER_ID):
        assert other["customer"][customer_id] == SEED["customer"][customer_id]
    for invoice_id in (OPEN_INVOICE_ID, PAID_INVOICE_ID, PARTIALLY_PAID_INVOICE_ID, OVERDUE_INVOICE_ID):
        assert other["invoice"][invoice_id] == SEED["invoice"][invoice_id]
