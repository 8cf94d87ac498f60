"""The Business Central sandbox on the wire: what an API v2.0 client would notice; $filter units."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest

from sandboxes.business_central import (
    BC_SCOPE,
    DE_COMPANY_ID,
    DEV_CLIENT_ID,
    DEV_CLIENT_SECRET,
    TENANT_ID,
    UK_COMPANY_ID,
    BusinessCentralSandbox,
    BusinessCentralSandboxSettings,
    api_root,
    create_business_central_sandbox,
)
from sandboxes.business_central.data import (
    APOSTROPHE_CUSTOMER_ID,
    BLOCKED_CUSTOMER_ID,
    CUSTOMER_COUNT_DE,
    DRAFT_INVOICE_ID,
    DUPLICATE_CUSTOMER_ID,
    INITECH_CUSTOMER_ID,
    INVOICE_COUNT_DE,
    MUELLER_CUSTOMER_ID,
    OPEN_INVOICE_ID,
    PAID_INVOICE_ID,
    PARTIAL_PAYMENT_ID,
    PARTIALLY_PAID_INVOICE_ID,
    PAYMENT_ID,
    build_seed,
    tax_area_id,
)
from sandboxes.business_central.odata import ODataError, compile_filter
from sandboxes.faults import FaultRule
from sandboxes.salesforce import data as salesforce

BASE = "https://api.businesscentral.test"
TOKEN_PATH = f"/{TENANT_ID}/oauth2/v2.0/token"
API = api_root()
DE = f"{API}/companies({DE_COMPANY_ID})"
DECIMALS = msgspec.json.Decoder(float_hook=Decimal)


def token_form(**overrides: str | None) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": DEV_CLIENT_ID,
        "client_secret": DEV_CLIENT_SECRET,
        "scope": BC_SCOPE,
        **overrides,
    }
    return {key: value for key, value in form.items() if value is not None}


def body(response: httpx.Response) -> Any:
    """The JSON body with numbers as Decimal, as a float-free client reads it."""
    return DECIMALS.decode(response.content)


class Client:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        self.token: str | None = None

    @property
    def sandbox(self) -> BusinessCentralSandbox:
        sandbox: BusinessCentralSandbox = self.app.state.sandbox
        return sandbox

    async def login(self) -> str:
        response = await self.http.post(TOKEN_PATH, data=token_form())
        assert response.status_code == 200, response.text
        self.token = str(response.json()["access_token"])
        return self.token

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self.token is None:
            await self.login()
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return await self.http.request(method, url, headers=headers, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    client = Client(create_business_central_sandbox())
    yield client
    await client.http.aclose()


def settings_app(**settings: Any) -> Client:
    return Client(create_business_central_sandbox(BusinessCentralSandboxSettings(**settings)))


# ---------------------------------------------------------------------------------------------------------
# Entra ID token endpoint
# ---------------------------------------------------------------------------------------------------------


async def test_client_credentials_give_a_bearer_token(client: Client) -> None:
    response = await client.http.post(TOKEN_PATH, data=token_form())
    basic = base64.b64encode(f"{DEV_CLIENT_ID}:{DEV_CLIENT_SECRET}".encode()).decode()
    by_basic = await client.http.post(
        TOKEN_PATH,
        data=token_form(client_id=None, client_secret=None),
        headers={"Authorization": f"Basic {basic}"},
    )
    payload = response.json()
    assert response.status_code == 200
    assert response.headers["cache-control"].startswith("no-store")
    assert payload["token_type"] == "Bearer"
    assert payload["expires_in"] == 3599
    assert payload["access_token"]
    assert by_basic.status_code == 200


@pytest.mark.parametrize(
    ("form", "status", "error", "aadsts"),
    [
        (token_form(client_secret="wrong"), 401, "invalid_client", 7000215),
        (token_form(client_secret=None), 401, "invalid_client", 7000218),
        (token_form(client_id="00000000-0000-0000-0000-000000000001"), 400, "unauthorized_client", 700016),
        (token_form(grant_type="password"), 400, "unsupported_grant_type", 70003),
        (token_form(grant_type=None), 400, "invalid_request", 900144),
        (
            token_form(scope="https://api.businesscentral.dynamics.com/user_impersonation"),
            400,
            "invalid_scope",
            1002012,
        ),
        (token_form(scope="https://graph.microsoft.com/.default"), 400, "invalid_resource", 500011),
    ],
)
async def test_token_errors_have_entras_shape(
    client: Client, form: dict[str, str], status: int, error: str, aadsts: int
) -> None:
    response = await client.http.post(TOKEN_PATH, data=form)
    payload = response.json()
    assert response.status_code == status
    assert payload["error"] == error
    assert payload["error_codes"] == [aadsts]
    assert payload["error_description"].startswith(f"AADSTS{aadsts}: ")
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(payload)


async def test_an_unknown_tenant_has_no_token_endpoint(client: Client) -> None:
    response = await client.http.post("/contoso.example/oauth2/v2.0/token", data=token_form())
    assert response.status_code == 400
    assert response.json()["error_codes"] == [90002]


# ---------------------------------------------------------------------------------------------------------
# Authentication and the API's error shape
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic abc"])
async def test_api_calls_without_a_valid_token_are_401(client: Client, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.http.get(f"{DE}/customers", headers=headers)
    error = response.json()["error"]
    assert response.status_code == 401
    assert error["code"] == "Authentication_InvalidCredentials"
    assert "CorrelationId" in error["message"]
    assert response.headers["www-authenticate"].startswith("Bearer authorization_uri=")


async def test_expired_tokens_are_refused(client: Client) -> None:
    await client.login()
    assert (await client.get(f"{API}/companies")).status_code == 200
    client.sandbox.tokens.clear()
    assert (await client.get(f"{API}/companies")).status_code == 401


async def test_unknown_ids_and_segments_are_404_with_the_error_body(client: Client) -> None:
    missing = await client.get(f"{DE}/customers(00000000-0000-0000-0000-00000000abcd)")
    segment = await client.get(f"{DE}/vendorsAndThings")
    company = await client.get(f"{API}/companies(00000000-0000-0000-0000-00000000abcd)/customers")
    for response in (missing, segment, company):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "BadRequest_NotFound"
    assert set(missing.json()) == {"error"}
    assert set(missing.json()["error"]) == {"code", "message"}


# ---------------------------------------------------------------------------------------------------------
# Reading: companies, lists, paging, query options
# ---------------------------------------------------------------------------------------------------------


async def test_companies_map_legal_entities_by_name(client: Client) -> None:
    response = await client.get(f"{API}/companies")
    companies = {company["name"]: company for company in response.json()["value"]}
    assert response.status_code == 200
    assert response.headers["odata-version"] == "4.0"
    assert response.json()["@odata.context"].endswith("/api/v2.0/$metadata#companies")
    assert companies["CRONUS DE"]["id"] == DE_COMPANY_ID
    assert companies["CRONUS UK"]["id"] == UK_COMPANY_ID
    assert all(company["@odata.etag"].startswith('W/"Jz') for company in companies.values())


async def test_paging_through_every_customer_follows_next_links(client: Client) -> None:
    numbers: list[str] = []
    url: str | None = f"{BASE}{DE}/customers"
    pages = 0
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200
        page = response.json()
        numbers += [customer["number"] for customer in page["value"]]
        url = page.get("@odata.nextLink")
        pages += 1
    assert pages == 3  # 100 + 100 + 60
    assert len(numbers) == len(set(numbers)) == CUSTOMER_COUNT_DE
    assert numbers == sorted(numbers)


async def test_max_page_size_preference_and_count(client: Client) -> None:
    response = await client.get(
        f"{DE}/customers", params={"$count": "true"}, headers={"Prefer": "odata.maxpagesize=40"}
    )
    page = response.json()
    assert response.headers["preference-applied"] == "odata.maxpagesize=40"
    assert page["@odata.count"] == CUSTOMER_COUNT_DE
    assert len(page["value"]) == 40
    assert "$skiptoken=" in page["@odata.nextLink"]


async def test_dollar_count_is_plain_text(client: Client) -> None:
    everything = await client.get(f"{DE}/customers/$count")
    filtered = await client.get(f"{DE}/salesInvoices/$count", params={"$filter": "status eq 'Paid'"})
    paid = [
        invoice
        for invoice in client.sandbox.records["salesInvoices"].values()
        if invoice["companyId"] == DE_COMPANY_ID and invoice["status"] == "Paid"
    ]
    assert everything.status_code == 200
    assert everything.headers["content-type"].startswith("text/plain")
    assert everything.content.decode("utf-8-sig") == str(CUSTOMER_COUNT_DE)
    assert filtered.content.decode("utf-8-sig") == str(len(paid))
    assert len(paid) > 0


async def test_top_skip_select_and_orderby(client: Client) -> None:
    first = await client.get(f"{DE}/customers", params={"$top": "5", "$select": "number,displayName"})
    second = await client.get(f"{DE}/customers", params={"$top": "5", "$skip": "5", "$select": "number"})
    newest = await client.get(
        f"{DE}/salesInvoices",
        params={"$orderby": "invoiceDate desc,number", "$top": "3", "$select": "invoiceDate"},
    )
    rows = first.json()["value"]
    assert len(rows) == 5
    assert set(rows[0]) == {"@odata.etag", "number", "displayName"}
    assert "@odata.nextLink" not in first.json()
    assert not {row["number"] for row in rows} & {row["number"] for row in second.json()["value"]}
    dates = [row["invoiceDate"] for row in newest.json()["value"]]
    assert dates == sorted(dates, reverse=True)


async def test_top_limits_the_paged_window(client: Client) -> None:
    response = await client.get(f"{DE}/customers", params={"$top": "150"})
    page = response.json()
    follow = await client.get(page["@odata.nextLink"])
    assert len(page["value"]) == 100
    assert len(follow.json()["value"]) == 50
    assert "@odata.nextLink" not in follow.json()


async def test_filters_the_adapter_sends(client: Client) -> None:
    quoted = await client.get(
        f"{DE}/customers", params={"$filter": "displayName eq 'Anna''s Backstube GmbH'"}
    )
    by_number = await client.get(
        f"{DE}/customers", params={"$filter": f"number eq '{salesforce.GERMAN_ACCOUNT_ID.lower()}'"}
    )
    by_guid = await client.get(
        f"{DE}/customerPayments", params={"$filter": f"appliesToInvoiceId eq {PARTIALLY_PAID_INVOICE_ID}"}
    )
    # One filter per property: Business Central refuses "or" across distinct fields (known limitations).
    starts = await client.get(f"{DE}/customers", params={"$filter": "startswith(displayName,'Contoso')"})
    website = await client.get(
        f"{DE}/customers", params={"$filter": "contains(website,'initech-software.example')"}
    )
    tax = await client.get(f"{DE}/customers", params={"$filter": "taxRegistrationNumber eq 'DE 298 765 431'"})
    dated = await client.get(
        f"{DE}/salesInvoices",
        params={
            "$filter": "status eq 'Open' and dueDate lt 2026-02-01 and remainingAmount gt 0",
            "$select": "id",
        },
    )
    modified = await client.get(
        f"{DE}/customers/$count", params={"$filter": "lastModifiedDateTime ge 2026-03-01T00:00:00Z"}
    )
    assert [row["id"] for row in quoted.json()["value"]] == [APOSTROPHE_CUSTOMER_ID]
    assert [row["id"] for row in by_number.json()["value"]] == [INITECH_CUSTOMER_ID]
    assert [row["id"] for row in by_guid.json()["value"]] == [PARTIAL_PAYMENT_ID]
    found = {row["id"] for row in starts.json()["value"] + website.json()["value"]}
    assert found == {DUPLICATE_CUSTOMER_ID, INITECH_CUSTOMER_ID}
    assert [row["id"] for row in tax.json()["value"]] == [DUPLICATE_CUSTOMER_ID]
    assert dated.status_code == 200
    assert modified.content.decode("utf-8-sig") == "0"


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("nonsense eq 1", "Could not find a property named 'nonsense'"),
        ("displayName eq 5", "incompatible types"),
        ("frobnicate(displayName) eq 'x'", "unknown function"),
        # Business Central has no AL approximation for these, "an error is reported" (filter expressions doc).
        ("year(lastModifiedDateTime) eq 2026", "cannot be translated"),
        ("balanceDue add 1 gt 5", "cannot be translated"),
        ("DisplayName eq 'x'", "Could not find a property named 'DisplayName'"),  # names are case-sensitive
        ("lastModifiedDateTime gt 2026-02-30", "Unrecognized 'Edm.Date' literal"),
        ("displayName eq 'open", "unterminated string"),
        ("displayName eq", "Expression expected"),
        ("displayName eq 'a' )", "Syntax error"),
    ],
)
async def test_bad_filters_are_400_bad_request(client: Client, expression: str, fragment: str) -> None:
    response = await client.get(f"{DE}/customers", params={"$filter": expression})
    error = response.json()["error"]
    assert response.status_code == 400
    assert error["code"] == "BadRequest"
    assert fragment in error["message"]


async def test_bad_query_options_are_400(client: Client) -> None:
    for params in ({"$top": "-1"}, {"$select": "nope"}, {"$expand": "customer"}, {"$skiptoken": "zzz"}):
        response = await client.get(f"{DE}/customers", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "BadRequest"


async def test_invoices_carry_lines_by_expand_and_navigation(client: Client) -> None:
    expanded = await client.get(
        f"{DE}/salesInvoices({OPEN_INVOICE_ID})", params={"$expand": "salesInvoiceLines"}
    )
    lines = await client.get(f"{DE}/salesInvoices({OPEN_INVOICE_ID})/salesInvoiceLines")
    invoice = body(expanded)
    assert invoice["status"] == "Open"
    assert invoice["customerId"] == MUELLER_CUSTOMER_ID
    assert invoice["currencyCode"] == "EUR"
    # 14,440.50 net and 19 % VAT (2,743.695, rounded once for the document).
    assert invoice["totalAmountExcludingTax"] == Decimal("14440.50")
    assert invoice["totalTaxAmount"] == Decimal("2743.70")
    assert invoice["totalAmountIncludingTax"] == Decimal("17184.20")
    assert [line["quantity"] for line in invoice["salesInvoiceLines"]] == [Decimal(80), Decimal(1)]
    assert (
        sum(line["amountExcludingTax"] for line in invoice["salesInvoiceLines"])
        == invoice["totalAmountExcludingTax"]
    )
    assert [line["id"] for line in lines.json()["value"]] == [
        line["id"] for line in invoice["salesInvoiceLines"]
    ]
    assert b'"unitPrice":165.00' in lines.content  # money is a JSON number on the wire


async def test_seed_invoices_and_payments_line_up() -> None:
    seed = build_seed(42)
    invoices = [i for i in seed["salesInvoices"].values() if i["companyId"] == DE_COMPANY_ID]
    payments = seed["customerPayments"]
    assert len(invoices) == INVOICE_COUNT_DE
    assert seed["salesInvoices"][PAID_INVOICE_ID]["status"] == "Paid"
    assert payments[PAYMENT_ID]["appliesToInvoiceId"] == PAID_INVOICE_ID
    partly = seed["salesInvoices"][PARTIALLY_PAID_INVOICE_ID]
    assert 0 < partly["remainingAmount"] < partly["totalAmountIncludingTax"]
    assert seed["salesInvoices"][DRAFT_INVOICE_ID]["status"] == "Draft"
    for invoice in invoices:
        applied = sum(-p["amount"] for p in payments.values() if p["appliesToInvoiceId"] == invoice["id"])
        if invoice["status"] != "Draft":
            assert invoice["remainingAmount"] == invoice["totalAmountIncludingTax"] - applied
    assert {i["status"] for i in invoices} == {"Draft", "Open", "Paid"}
    assert build_seed(42) == build_seed(42)


# ---------------------------------------------------------------------------------------------------------
# Writing: create, etags, conflicts, delete
# ---------------------------------------------------------------------------------------------------------


async def test_create_answers_201_with_the_entity_and_location(client: Client) -> None:
    response = await client.request(
        "POST",
        f"{DE}/customers",
        json={
            "displayName": "Neue Kunde GmbH",
            "number": "x-100",
            "country": "DE",
            "taxRegistrationNumber": "DE1",
        },
    )
    created = response.json()
    read = await client.get(response.headers["location"])
    assert response.status_code == 201
    assert created["number"] == "X-100"  # a Code field: stored uppercase
    assert created["currencyCode"] == "EUR"
    assert created["blocked"] == "_x0020_"
    assert response.headers["location"] == f"{BASE}{DE}/customers({created['id']})"
    assert read.json()["id"] == created["id"]
    assert read.json()["@odata.etag"] == created["@odata.etag"]


async def test_a_number_already_in_use_is_refused(client: Client) -> None:
    response = await client.request(
        "POST", f"{DE}/customers", json={"displayName": "Clash", "number": "10000"}
    )
    error = response.json()["error"]
    assert response.status_code == 400
    assert error["code"] == "Internal_EntityWithSameKeyExists"
    assert "No.='10000'" in error["message"]


async def test_unknown_and_read_only_properties_are_refused(client: Client) -> None:
    unknown = await client.request("POST", f"{DE}/customers", json={"displayName": "X", "externalId": "1"})
    read_only = await client.request("POST", f"{DE}/customers", json={"displayName": "X", "balanceDue": 5})
    too_long = await client.request("POST", f"{DE}/projects", json={"number": "P" * 21})
    assert unknown.status_code == read_only.status_code == too_long.status_code == 400
    assert "does not exist on type 'Microsoft.NAV.customer'" in unknown.json()["error"]["message"]
    assert too_long.json()["error"]["code"] == "Application_StringExceededLength"


async def test_update_needs_the_current_etag(client: Client) -> None:
    url = f"{DE}/customers({MUELLER_CUSTOMER_ID})"
    etag = (await client.get(url)).json()["@odata.etag"]
    missing = await client.request("PATCH", url, json={"phoneNumber": "+49 711 1"})
    updated = await client.request(
        "PATCH", url, json={"phoneNumber": "+49 711 2"}, headers={"If-Match": etag}
    )
    stale = await client.request("PATCH", url, json={"phoneNumber": "+49 711 3"}, headers={"If-Match": etag})
    star = await client.request("PATCH", url, json={"phoneNumber": "+49 711 4"}, headers={"If-Match": "*"})
    assert missing.status_code == 400
    assert "If-Match" in missing.json()["error"]["message"]
    assert updated.status_code == 200
    assert updated.json()["phoneNumber"] == "+49 711 2"
    assert updated.json()["@odata.etag"] != etag
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "Request_EntityChanged"
    assert star.status_code == 200
    assert client.sandbox.records["customers"][MUELLER_CUSTOMER_ID]["phoneNumber"] == "+49 711 4"


async def test_delete_with_if_match_is_204(client: Client) -> None:
    created = (await client.request("POST", f"{DE}/projects", json={"displayName": "Scratch"})).json()
    url = f"{DE}/projects({created['id']})"
    refused = await client.request("DELETE", url, headers={"If-Match": 'W/"JzE7MDsn"'})
    deleted = await client.request("DELETE", url, headers={"If-Match": created["@odata.etag"]})
    gone = await client.get(url)
    busy = await client.request("DELETE", f"{DE}/customers({MUELLER_CUSTOMER_ID})", headers={"If-Match": "*"})
    assert created["number"].startswith("PR")
    assert refused.status_code == 412
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert gone.status_code == 404
    assert busy.status_code == 400


async def test_an_invoice_is_drafted_with_lines_then_posted(client: Client) -> None:
    response = await client.request(
        "POST",
        f"{DE}/salesInvoices",
        content=b'{"customerNumber":"10000","externalDocumentNumber":"run-7.mueller","invoiceDate":"2026-03-02",'
        b'"salesInvoiceLines":[{"lineType":"Account","lineObjectNumber":"8400","description":"Consulting",'
        b'"quantity":7.5,"unitPrice":150.10}]}',
        headers={"Content-Type": "application/json"},
    )
    draft = body(response)
    url = f"{DE}/salesInvoices({draft['id']})"
    posted = await client.request("POST", f"{url}/Microsoft.NAV.post")
    again = await client.request("POST", f"{url}/Microsoft.NAV.post")
    after = body(await client.get(url))
    by_key = await client.get(
        f"{DE}/salesInvoices", params={"$filter": "externalDocumentNumber eq 'RUN-7.MUELLER'"}
    )
    assert response.status_code == 201
    assert draft["status"] == "Draft"
    assert draft["number"].startswith("S-INV")
    assert draft["externalDocumentNumber"] == "RUN-7.MUELLER"
    assert draft["dueDate"] == "2026-04-01"
    assert draft["totalAmountExcludingTax"] == Decimal("1125.75")
    assert draft["salesInvoiceLines"][0]["amountExcludingTax"] == Decimal("1125.75")
    assert posted.status_code == 204
    assert again.status_code == 400
    assert after["status"] == "Open"
    assert after["number"].isdigit()
    assert after["remainingAmount"] == Decimal("1339.64")  # 1,125.75 and 19 % VAT (213.8925)
    assert [row["id"] for row in by_key.json()["value"]] == [draft["id"]]


async def test_invoices_for_blocked_customers_are_refused(client: Client) -> None:
    response = await client.request("POST", f"{DE}/salesInvoices", json={"customerId": BLOCKED_CUSTOMER_ID})
    assert response.status_code == 400
    assert "blocked" in response.json()["error"]["message"]


async def test_a_payment_settles_the_invoice_it_applies_to(client: Client) -> None:
    invoice = body(await client.get(f"{DE}/salesInvoices({OPEN_INVOICE_ID})"))
    response = await client.request(
        "POST",
        f"{DE}/customerPayments",
        json={
            "customerNumber": "10000",
            "amount": -float(invoice["remainingAmount"]),
            "appliesToInvoiceId": OPEN_INVOICE_ID,
        },
    )
    settled = body(await client.get(f"{DE}/salesInvoices({OPEN_INVOICE_ID})"))
    positive = await client.request(
        "POST", f"{DE}/customerPayments", json={"customerNumber": "10000", "amount": 5}
    )
    assert response.status_code == 201
    assert response.json()["appliesToInvoiceNumber"] == invoice["number"]
    assert settled["status"] == "Paid"
    assert settled["remainingAmount"] == 0
    assert positive.status_code == 400


# ---------------------------------------------------------------------------------------------------------
# Limits, faults, administration
# ---------------------------------------------------------------------------------------------------------


async def test_over_the_rate_limit_is_429_with_retry_after() -> None:
    now = [1_000_000.0]
    app = create_business_central_sandbox(
        BusinessCentralSandboxSettings(rate_limit_requests=3, rate_limit_window_seconds=60),
        clock=lambda: now[0],
    )
    client = Client(app)
    statuses = [(await client.get(f"{API}/companies")).status_code for _ in range(4)]
    limited = await client.get(f"{API}/companies")
    now[0] += 61
    later = await client.get(f"{API}/companies")
    await client.http.aclose()
    assert statuses == [200, 200, 200, 429]
    assert limited.json()["error"]["code"] == "TooManyRequests"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert later.status_code == 200


async def test_faults_and_admin_endpoints(client: Client) -> None:
    added = await client.http.post(
        "/__sandbox/faults", json={"kind": "error", "status": 503, "path_pattern": "/customers", "times": 1}
    )
    faulted = await client.get(f"{DE}/customers")
    healthy = await client.get(f"{DE}/customers")
    records = await client.http.get("/__sandbox/records/customers", params={"number": "10000"})
    stats = await client.http.get("/__sandbox/stats")
    client.sandbox.faults.add(FaultRule(kind="error", status=500))
    reset = await client.http.post("/__sandbox/reset")
    assert added.status_code == 201
    assert faulted.status_code == 503
    assert healthy.status_code == 200
    assert {item["id"] for item in records.json()["items"]} == {MUELLER_CUSTOMER_ID, _uk_10000(client)}
    assert stats.json()["records"]["customers"] == len(client.sandbox.records["customers"])
    assert reset.status_code == 204
    assert client.sandbox.faults.rules == ()


def _uk_10000(client: Client) -> str:
    return next(
        c["id"]
        for c in client.sandbox.records["customers"].values()
        if c["companyId"] == UK_COMPANY_ID and c["number"] == "10000"
    )


# ---------------------------------------------------------------------------------------------------------
# $filter units
# ---------------------------------------------------------------------------------------------------------

FIELDS: Any = {
    "name": "text",
    "number": "code",
    "amount": "decimal",
    "id": "guid",
    "due": "date",
    "ok": "boolean",
}


def matches(expression: str, record: dict[str, Any]) -> bool:
    # The grammar's semantics; Business Central's refusal of "or" across fields has its own test.
    return compile_filter(expression, FIELDS, "thing", or_across_fields=True)(record)


def test_filter_semantics() -> None:
    record = {
        "name": "O'Neill",
        "number": "AB1",
        "amount": Decimal("10.50"),
        "id": DE_COMPANY_ID,
        "due": "2026-01-31",
        "ok": True,
    }
    assert matches("name eq 'O''Neill'", record)
    assert matches("number eq 'ab1'", record)  # Code comparisons uppercase the literal
    assert not matches("name eq 'o''neill'", record)  # text is case-sensitive here
    assert matches("amount ge 10.5 and amount lt 11", record)
    assert matches(f"id eq {DE_COMPANY_ID.upper()}", record)
    assert matches("due le 2026-01-31 and not (due lt 2026-01-31)", record)
    assert matches("ok and startswith(name, 'O''') or name eq 'x'", record)
    assert matches("10 lt amount", record)
    with pytest.raises(ODataError):
        matches("amount eq 'ten'", record)


# Filters the hand-written parser refused or answered wrongly, as Business Central's docs describe them:
# "Using filter expressions in OData URIs" (learn.microsoft.com/dynamics365/business-central/dev-itpro/
# webservices/use-filter-expressions-in-odata-uris) and "Known limitations with Business Central OData"
# (.../webservices/odata-known-limitations).


async def ids(client: Client, entity_set: str, expression: str) -> list[str]:
    response = await client.get(f"{DE}/{entity_set}", params={"$filter": expression, "$top": "500"})
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["value"]]


async def test_in_a_list_of_values_as_the_filter_doc_shows(client: Client) -> None:
    # "$filter=EntryNo in (610, 612, 614)"; a one-item list is "(x)" in OData, without a trailing comma.
    assert set(await ids(client, "customers", "number in ('10020', '001DN0000093TTWIAM')")) == {
        APOSTROPHE_CUSTOMER_ID,
        INITECH_CUSTOMER_ID,
    }
    assert await ids(client, "customers", "number in ('10020')") == [APOSTROPHE_CUSTOMER_ID]
    assert await ids(client, "customers", "number in ('10020',)") == [APOSTROPHE_CUSTOMER_ID]


async def test_tolower_and_toupper_compare_without_case_as_documented(client: Client) -> None:
    # "tolower and toupper disable case sensitivity in comparisons" (filters without AL equivalents).
    expected = [APOSTROPHE_CUSTOMER_ID]
    assert await ids(client, "customers", "tolower(displayName) eq 'anna''s backstube gmbh'") == expected
    assert await ids(client, "customers", "toupper(displayName) eq 'Anna''s BACKSTUBE GmbH'") == expected
    assert await ids(client, "customers", "displayName eq 'anna''s backstube gmbh'") == []
    # Nested function calls ("contains(tolower(field), 'some')", the doc's "Nested function calls").
    assert await ids(client, "customers", "contains(tolower(displayName), 'BACKSTUBE')") == expected


async def test_substring_as_the_filter_doc_shows(client: Client) -> None:
    # "$filter=substring(Location_Code, 5) eq 'RED'": OData's substring counts from 0.
    assert await ids(client, "customers", "substring(displayName, 7) eq 'Backstube GmbH'") == [
        APOSTROPHE_CUSTOMER_ID
    ]


async def test_a_filter_with_a_lambda_operator_is_ignored(client: Client) -> None:
    # "If lambda operators are used, the filter expression will be ignored" (known limitations).
    every = await ids(client, "salesInvoices", "status ne 'nothing'")
    assert await ids(client, "salesInvoices", "salesInvoiceLines/any(l: l/quantity gt 100000)") == every
    assert len(every) == INVOICE_COUNT_DE


async def test_or_across_distinct_fields_is_refused_as_business_central_does() -> None:
    # "The 'OR' operator is not supported on distinct fields on an OData filter." (known limitations)
    strict = settings_app()
    try:
        refused = await strict.get(
            f"{DE}/customers", params={"$filter": "number eq '10020' or displayName eq 'x'"}
        )
        same_field = await strict.get(
            f"{DE}/customers", params={"$filter": "number eq '10020' or number eq '10030'"}
        )
    finally:
        await strict.http.aclose()
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "BadRequest"
    assert "The 'OR' operator is not supported on distinct fields" in refused.json()["error"]["message"]
    assert same_field.status_code == 200
    assert len(same_field.json()["value"]) == 2


def test_filter_literals_keep_their_exact_values() -> None:
    record = {
        "name": "Abc",
        "number": "AB1",
        "amount": Decimal("10.10"),
        "id": DE_COMPANY_ID,
        "due": "2026-01-31",
        "ok": False,
    }
    # A float would make 10.1 and 10.100000000000000001 equal; OData's decimals are exact.
    assert matches("amount eq 10.1", record)
    assert not matches("amount eq 10.100000000000000001", record)
    assert matches(f"id eq '{DE_COMPANY_ID}'", record)  # a GUID may also be quoted
    assert matches("not ok and number in ('ab1', 'x')", record)  # Code literals uppercased in lists too
    assert matches("endswith(name, 'bc') and not startswith(name, 'ab')", record)  # case-sensitive
    assert matches("amount gt -1 and amount lt 1e3", record)
    with pytest.raises(ODataError, match=r"Edm\.DateTimeOffset"):
        compile_filter("stamp gt 2026-01-31T10:00:00", {"stamp": "datetime"}, "thing")  # no offset


def test_datetimes_compare_as_instants_whatever_their_offset() -> None:
    record = {"stamp": "2026-03-02T09:30:00Z"}
    kinds: Any = {"stamp": "datetime"}
    assert compile_filter("stamp eq 2026-03-02T10:30:00+01:00", kinds, "thing")(record)
    assert compile_filter("stamp gt 2026-03-02T09:29:59.9999999Z", kinds, "thing")(record)
    assert compile_filter("stamp ge 2026-03-02", kinds, "thing")(record)  # a date: its midnight (UTC)


async def test_read_only_tax_areas_take_no_writes(client: Client) -> None:
    # API v2.0 taxAreas are read-only here (finance sets them up in the client): no POST, PATCH or DELETE.
    area = f"{DE}/taxAreas({tax_area_id(DE_COMPANY_ID, 'DE-BY')})"
    current = await client.get(area)
    assert current.status_code == 200
    etag = {"If-Match": current.json()["@odata.etag"]}
    answers = [
        await client.request("POST", f"{DE}/taxAreas", json={"code": "XX"}),
        await client.request("PATCH", area, json={}, headers=etag),
        await client.request("DELETE", area, headers=etag),
    ]
    assert [answer.status_code for answer in answers] == [405, 405, 405]
    assert {answer.json()["error"]["code"] for answer in answers} == {"BadRequest_MethodNotAllowed"}
    assert (await client.get(area)).json() == current.json()
