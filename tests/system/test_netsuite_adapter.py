"""The NetSuite adapter: its auth and concurrency cap over ``httpx.MockTransport``, then everything else
against the NetSuite sandbox in process over ``httpx.ASGITransport``.

Against the sandbox, what the adapter does is observable the way it would be against the real service: the
token flow, records and SuiteQL, the idempotent writes (counted in the sandbox's own records), async jobs,
governance (429) and injected faults.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from litestar import Litestar
from structlog.testing import capture_logs

from apis.config import NetSuiteSettings, load_settings
from contracts.models import (
    BillingModel,
    BillingScheduleCreate,
    BillingScheduleLine,
    CustomerUpsert,
    InvoiceCreate,
    InvoiceLineInput,
    InvoiceStatus,
    ProjectCreate,
)
from sandboxes.netsuite import (
    DEV_CERTIFICATE_ID,
    DEV_CLIENT_ID,
    NetSuiteSandbox,
    NetSuiteSandboxSettings,
    create_netsuite_sandbox,
    dev_private_key_pem,
)
from sandboxes.netsuite.data import (
    ACCOUNT_TIME_ZONE,
    CHILD_CUSTOMER_ID,
    DEMO_CUSTOMER_ID,
    DEMO_PROJECT_ID,
    GLOBEX_CUSTOMER_ID,
    MILESTONE_BILLING_SCHEDULE_ID,
    MILESTONE_PROJECT_ID,
    OPEN_INVOICE_ID,
    PAID_INVOICE_ID,
    PARTIAL_PAYMENT_ID,
    PARTIALLY_PAID_INVOICE_ID,
    PAYMENT_ID,
    UK_CUSTOMER_ID,
)
from sandboxes.salesforce import data as salesforce
from system_apis.erp.netsuite import (
    InvalidCursor,
    NetSuiteErp,
    decode_cursor,
    encode_cursor,
    invoice_idempotency_key,
)
from system_apis.erp.netsuite_auth import ASSERTION_TYPE, NetSuiteClientAssertionAuth, load_signing_key
from system_apis.erp.netsuite_mapping import invoice_query, invoice_status
from system_apis.erp.port import ErpPort, InvoiceFilter
from system_apis.errors import (
    NotFound,
    VendorBadResponse,
    VendorRejected,
    VendorTimeout,
    VendorUnavailable,
)
from system_apis.vendor_http import BreakerPolicy, RetryPolicy

ORIGIN = "http://netsuite.test"
API = f"{ORIGIN}/services/rest"
REST = "/services/rest"
TOKEN_URL = f"{API}/auth/oauth2/v1/token"
DEV_KEY_PEM = dev_private_key_pem()
# A line from the middle of the key: if any of it shows up in a log or a repr, the key leaked.
KEY_FRAGMENT = DEV_KEY_PEM.splitlines()[2]


def settings(**overrides: Any) -> NetSuiteSettings:
    values: dict[str, Any] = {
        "base_url": API,
        "client_id": DEV_CLIENT_ID,
        "certificate_id": DEV_CERTIFICATE_ID,
        "time_zone": ACCOUNT_TIME_ZONE,  # the sandbox account's
    }
    return NetSuiteSettings(**{**values, **overrides})


def problem(status: int, code: str, detail: str) -> dict[str, Any]:
    return {
        "type": "https://www.rfc-editor.org/rfc/rfc9110.html",
        "title": "Error",
        "status": status,
        "o:errorDetails": [{"detail": detail, "o:errorCode": code}],
    }


# =========================================================================================================
# Unit tests over httpx.MockTransport: the auth flow and the concurrency cap
# =========================================================================================================


class FakeNetSuite:
    """A token endpoint that checks the assertion like NetSuite, and one record; counts what it sees."""

    def __init__(self, public_key: ECKey | RSAKey, *, token_ttl: int | str = "3600") -> None:
        self.public_key = public_key
        self.token_ttl = token_ttl
        self.assertions: list[jwt.Token] = []
        self.valid_tokens: set[str] = set()
        self.data_calls: list[httpx.Request] = []
        self.token_status = 200

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/oauth2/v1/token"):
            if self.token_status != 200:
                return httpx.Response(self.token_status, json={"error": "invalid_client"})
            form = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
            assert form["grant_type"] == "client_credentials"
            assert form["client_assertion_type"] == ASSERTION_TYPE
            assert {"client_id", "client_secret"}.isdisjoint(form)  # the JWT is the credential
            self.assertions.append(
                jwt.decode(form["client_assertion"], self.public_key, algorithms=["ES256", "PS256"])
            )
            token = f"token-{len(self.assertions)}"
            self.valid_tokens.add(token)
            return httpx.Response(
                200, json={"access_token": token, "expires_in": self.token_ttl, "token_type": "bearer"}
            )
        self.data_calls.append(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.valid_tokens:
            return httpx.Response(401, json=problem(401, "INVALID_LOGIN", "Invalid login attempt."))
        return httpx.Response(200, json={"id": "1003", "companyName": "Contoso Pharmaceuticals Inc"})


def ec_pem() -> tuple[str, ECKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, ECKey.import_key(key.public_key())


async def no_sleep(_: float) -> None:
    return None


def mock_erp(fake: FakeNetSuite, pem: str, **overrides: Any) -> NetSuiteErp:
    return NetSuiteErp(
        settings(**overrides.pop("settings", {})),
        transport=httpx.MockTransport(fake.handler),
        private_key_pem=pem,
        sleep=no_sleep,
        breaker=BreakerPolicy(failure_threshold=0),
        **overrides,
    )


async def test_the_client_assertion_is_what_netsuite_asks_for() -> None:
    pem, public = ec_pem()
    fake = FakeNetSuite(public)
    erp = mock_erp(fake, pem)
    await erp.get_customer("1003")
    await erp.close()
    (token,) = fake.assertions
    assert token.header == {"alg": "ES256", "kid": DEV_CERTIFICATE_ID, "typ": "JWT"}
    claims = token.claims
    assert claims["iss"] == DEV_CLIENT_ID
    assert claims["aud"] == TOKEN_URL
    assert claims["scope"] == ["rest_webservices"]
    assert 0 < claims["exp"] - claims["iat"] <= 3600
    assert claims["jti"]


async def test_ps256_with_an_rsa_certificate() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    fake = FakeNetSuite(RSAKey.import_key(key.public_key()))
    erp = mock_erp(fake, pem, settings={"algorithm": "PS256"})
    await erp.get_customer("1003")
    await erp.close()
    assert fake.assertions[0].header["alg"] == "PS256"


async def test_the_token_is_reused_until_shortly_before_it_expires() -> None:
    pem, public = ec_pem()
    fake = FakeNetSuite(public, token_ttl=3600)
    now = [1000.0]
    auth = NetSuiteClientAssertionAuth(
        token_url=TOKEN_URL, client_id=DEV_CLIENT_ID, certificate_id=DEV_CERTIFICATE_ID, private_key_pem=pem,
        transport=httpx.MockTransport(fake.handler), clock=lambda: now[0],
    )  # fmt: skip
    assert await auth.access_token() == "token-1"
    now[0] += 3000
    assert await auth.access_token() == "token-1"
    now[0] += 545  # 55 s before expiry: inside the refresh margin
    assert await auth.access_token() == "token-2"
    await auth.aclose()


async def test_a_401_refetches_the_token_once() -> None:
    pem, public = ec_pem()
    fake = FakeNetSuite(public)
    erp = mock_erp(fake, pem)
    await erp.get_customer("1003")
    fake.valid_tokens.clear()  # NetSuite revoked it (or it expired early)
    customer = await erp.get_customer("1003")
    await erp.close()
    assert customer.name == "Contoso Pharmaceuticals Inc"
    assert len(fake.assertions) == 2
    reads = [call for call in fake.data_calls if call.url.path.endswith("/record/v1/customer/1003")]
    assert len(reads) == 3  # ok, 401, retried ok


async def test_a_401_with_a_fresh_token_is_not_refetched_again() -> None:
    pem, public = ec_pem()
    fake = FakeNetSuite(public)

    def never_valid(request: httpx.Request) -> httpx.Response:
        response = fake.handler(request)
        fake.valid_tokens.clear()  # every token NetSuite hands out is refused at once
        return response

    erp = NetSuiteErp(
        settings(),
        transport=httpx.MockTransport(never_valid),
        private_key_pem=pem,
        sleep=no_sleep,
        breaker=BreakerPolicy(failure_threshold=0),
    )
    with pytest.raises(VendorUnavailable, match="credentials rejected"):
        await erp.get_customer("1003")
    await erp.close()
    assert len(fake.assertions) == 2  # the first fetch and the one refetch: no loop
    assert len(fake.data_calls) == 2


async def test_a_refused_client_is_unavailable_not_retried() -> None:
    pem, public = ec_pem()
    fake = FakeNetSuite(public)
    fake.token_status = 401
    erp = mock_erp(fake, pem, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(VendorUnavailable, match="credentials rejected"):
        await erp.get_customer("1003")
    assert fake.data_calls == []
    await erp.close()


async def test_the_private_key_never_reaches_a_log_or_a_repr() -> None:
    pem, public = ec_pem()
    fake = FakeNetSuite(public)
    fragment = pem.splitlines()[2]
    with capture_logs() as logs:
        erp = mock_erp(fake, pem)
        await erp.get_customer("1003")
        fake.token_status = 400
        fake.valid_tokens.clear()
        with pytest.raises(VendorUnavailable):
            await erp.get_customer("1003")
    assert logs  # the token fetch and the failure were logged
    assert fragment not in repr(logs)
    assert fragment not in repr(erp)
    assert fragment not in repr(erp.auth)
    await erp.close()


def test_a_key_that_does_not_fit_the_algorithm_is_refused_without_quoting_it() -> None:
    pem, _ = ec_pem()
    with pytest.raises(ValueError, match="not a usable PS256 private key") as raised:
        NetSuiteErp(settings(algorithm="PS256"), private_key_pem=pem)
    assert pem.splitlines()[2] not in str(raised.value)
    with pytest.raises(ValueError, match="not a usable ES256 private key"):
        NetSuiteErp(
            settings(), private_key_pem="-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----"
        )


def test_configuration_is_checked_up_front(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="base_url"):
        NetSuiteErp(settings(base_url=None), private_key_pem=DEV_KEY_PEM)
    with pytest.raises(ValueError, match="client_id"):
        NetSuiteErp(settings(client_id=None), private_key_pem=DEV_KEY_PEM)
    with pytest.raises(ValueError, match="private key"):
        NetSuiteErp(settings())
    key_file = tmp_path / "netsuite.pem"
    key_file.write_text(DEV_KEY_PEM)
    assert NetSuiteErp(settings(private_key_file=str(key_file))).vendor == "netsuite"


async def test_no_more_requests_in_flight_than_the_cap() -> None:
    pem, public = ec_pem()
    fake = FakeNetSuite(public)
    cap = 3
    in_flight = 0
    peak = 0
    gate = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        if request.url.path.endswith("/token"):
            return fake.handler(request)
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight >= cap:
            gate.set()
        # Hold every call until the cap is reached: without a cap, all twelve would be in here at once.
        await gate.wait()
        await asyncio.sleep(0)
        in_flight -= 1
        return fake.handler(request)

    erp = NetSuiteErp(
        settings(), transport=httpx.MockTransport(handler), private_key_pem=pem, max_concurrent_requests=cap
    )
    customers = await asyncio.gather(*(erp.get_customer("1003") for _ in range(12)))
    await erp.close()
    assert len(customers) == 12
    assert peak == cap


async def test_async_job_polling_backs_off_and_is_bounded() -> None:
    pem, public = ec_pem()
    fake = FakeNetSuite(public)
    sleeps: list[float] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/token"):
            return fake.handler(request)
        if path.endswith("/invoice/eid:run-1"):
            return httpx.Response(
                404, json=problem(404, "NONEXISTENT_ID", "The record instance does not exist.")
            )
        if path.endswith("/query/v1/suiteql"):
            query = json.loads(request.content)["q"]
            rows = [{"id": "1", "code": "USD"}] if "currency" in query else [{"id": "1", "code": "US01"}]
            return httpx.Response(200, json={"items": rows, "hasMore": False})
        if path.endswith("/record/v1/serviceItem"):
            return httpx.Response(200, json={"items": [{"id": "101"}], "hasMore": False})
        if path.endswith("/record/v1/invoice"):
            return httpx.Response(202, headers={"Location": f"{API}/async/v1/job/7"})
        if path.endswith("/async/v1/job/7"):
            return httpx.Response(200, json={"id": "7", "completed": False, "progress": "pending"})
        raise AssertionError(f"unexpected {request.method} {path}")

    erp = NetSuiteErp(
        settings(), transport=httpx.MockTransport(handler), private_key_pem=pem, sleep=record_sleep
    )
    with pytest.raises(VendorTimeout, match="job 7 is still running"):
        await erp.create_invoice(invoice_command("run-1"))
    await erp.close()
    assert sleeps[:5] == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert max(sleeps) == 5.0
    assert len(sleeps) == 12


# =========================================================================================================
# Against the sandbox
# =========================================================================================================


class Sandbox:
    """The sandbox app, an admin client, and adapters pointed at it."""

    def __init__(self, app: Litestar) -> None:
        self.app = app
        self.transport = httpx.ASGITransport(app=app)
        self.admin = httpx.AsyncClient(transport=self.transport, base_url=ORIGIN)
        self.sleeps: list[float] = []
        self.adapters: list[NetSuiteErp] = []

    @property
    def state(self) -> NetSuiteSandbox:
        sandbox: NetSuiteSandbox = self.app.state.sandbox
        return sandbox

    async def no_sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def erp(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        private_key_pem: str = DEV_KEY_PEM,
        **options: Any,
    ) -> NetSuiteErp:
        erp = NetSuiteErp(
            settings(**options.pop("settings", {})),
            transport=transport or self.transport,
            private_key_pem=private_key_pem,
            retry=retry or RetryPolicy(max_attempts=3),
            breaker=BreakerPolicy(failure_threshold=0),
            sleep=self.no_sleep,
            **options,
        )
        self.adapters.append(erp)
        return erp

    async def fault(self, **rule: Any) -> None:
        response = await self.admin.post("/__sandbox/faults", json=rule)
        assert response.status_code == 201, response.text

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self.admin.get("/__sandbox/stats")).json()
        return stats

    async def requests(self, path_part: str = "", method: str | None = None) -> list[tuple[str, str, int]]:
        return [
            (r["method"], r["path"], r["status"])
            for r in (await self.stats())["requests"]
            if path_part in r["path"] and (method is None or r["method"] == method)
        ]

    def records(self, record_type: str, **where: Any) -> list[dict[str, Any]]:
        return [
            record
            for record in self.state.records[record_type].values()
            if all(record.get(key) == value for key, value in where.items())
        ]

    async def close(self) -> None:
        for erp in self.adapters:
            await erp.close()
        await self.admin.aclose()


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = Sandbox(create_netsuite_sandbox())
    yield box
    await box.close()


@pytest.fixture
def erp(sandbox: Sandbox) -> NetSuiteErp:
    return sandbox.erp()


def invoice_command(key: str, **overrides: Any) -> InvoiceCreate:
    fields: dict[str, Any] = {
        "external_key": key,
        "customer_id": DEMO_CUSTOMER_ID,
        "currency": "USD",
        "issue_date": dt.date(2026, 3, 1),
        "due_date": dt.date(2026, 3, 31),
        "project_id": DEMO_PROJECT_ID,
        "lines": [
            InvoiceLineInput(
                description="Consulting, February", quantity=Decimal("7.5"), unit_price=Decimal("225.10")
            ),
            InvoiceLineInput(description="Data migration", quantity=Decimal("1"), unit_price=Decimal("0.10")),
        ],
    }
    return InvoiceCreate(**{**fields, **overrides})


class LoseResponses(httpx.AsyncBaseTransport):
    """Fault injection on the wire: NetSuite gets the request and acts on it, its answer never arrives."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, method: str, path: str, times: int = 1) -> None:
        self.inner = inner
        self.method = method
        self.path = path
        self.remaining = times

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.remaining and request.method == self.method and request.url.path.endswith(self.path):
            self.remaining -= 1
            await response.aread()
            await response.aclose()
            raise httpx.ReadTimeout("the answer was lost on the way back", request=request)
        return response


# --- the port, auth ----------------------------------------------------------------------------------


async def test_the_adapter_is_an_erp_port(erp: NetSuiteErp) -> None:
    assert isinstance(erp, ErpPort)
    assert erp.vendor == "netsuite"


async def test_token_flow_and_a_revoked_token(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    await erp.get_customer(DEMO_CUSTOMER_ID)
    assert (await sandbox.stats())["active_tokens"] == 1
    assert (await sandbox.admin.post("/__sandbox/tokens/expire")).status_code == 204
    customer = await erp.get_customer(DEMO_CUSTOMER_ID)
    assert customer.id == DEMO_CUSTOMER_ID
    token_calls = await sandbox.requests("/auth/oauth2/v1/token")
    assert [status for *_, status in token_calls] == [200, 200]
    assert [status for *_, status in await sandbox.requests("/record/v1/customer/")] == [200, 401, 200]


async def test_an_unregistered_key_is_refused(sandbox: Sandbox) -> None:
    stranger, _ = ec_pem()
    erp = sandbox.erp(private_key_pem=stranger)
    with pytest.raises(VendorUnavailable, match="credentials rejected"):
        await erp.get_customer(DEMO_CUSTOMER_ID)
    assert await sandbox.requests("/record/v1/") == []


# --- customers ---------------------------------------------------------------------------------------


async def test_get_and_find_customers(erp: NetSuiteErp) -> None:
    globex = await erp.get_customer(GLOBEX_CUSTOMER_ID)
    assert globex.name == "Globex Professional Services"
    assert (globex.legal_entity, globex.currency, globex.tax_id) == ("US01", "USD", "94-3216547")
    assert globex.system_ids.crm == salesforce.BIG_ACCOUNT_ID
    assert (await erp.get_customer(UK_CUSTOMER_ID)).currency == "GBP"
    assert (await erp.get_customer(CHILD_CUSTOMER_ID)).parent_id == GLOBEX_CUSTOMER_ID
    found = await erp.find_customer(salesforce.BIG_ACCOUNT_ID)
    assert found is not None
    assert found.id == GLOBEX_CUSTOMER_ID
    assert await erp.find_customer(salesforce.DEMO_ACCOUNT_ID) is None  # not mastered in NetSuite yet


@pytest.mark.parametrize("bad_id", ["", "abc", "1003/../1004", "eid:x", "1003 OR 1=1"])
async def test_malformed_ids_are_not_found_without_calling_netsuite(
    sandbox: Sandbox, erp: NetSuiteErp, bad_id: str
) -> None:
    for read in (erp.get_customer, erp.get_project, erp.get_invoice, erp.get_billing_schedule):
        with pytest.raises(NotFound):
            await read(bad_id)
    assert await erp.find_customer("x' OR '1'='1") is None
    assert await sandbox.requests() == []


async def test_unknown_records_are_not_found(erp: NetSuiteErp) -> None:
    with pytest.raises(NotFound, match="NONEXISTENT_ID"):
        await erp.get_invoice("99999")
    with pytest.raises(NotFound):
        await erp.get_customer("99999")
    with pytest.raises(NotFound):
        await erp.get_billing_schedule("99999")


async def test_list_customers_pages_through_all_of_them(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await erp.list_customers(limit=15, cursor=cursor)
        seen.extend(customer.id for customer in page.items)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(sandbox.state.records["customer"], key=int)
    with pytest.raises(InvalidCursor):
        await erp.list_customers(limit=10, cursor=encode_cursor(15, 15, "0" * 16))


async def test_list_customers_modified_since(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    since = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)  # the seed's "now": nothing is newer yet
    assert (await erp.list_customers(limit=50, modified_since=since)).items == []
    await erp.upsert_customer(CustomerUpsert(crm_customer_id=salesforce.BIG_ACCOUNT_ID, name="Globex PS"))
    changed = await erp.list_customers(limit=50, modified_since=since)
    assert [customer.id for customer in changed.items] == [GLOBEX_CUSTOMER_ID]
    # A cursor is bound to its filter
    first = await erp.list_customers(limit=10)
    assert first.next_cursor is not None
    with pytest.raises(InvalidCursor, match="another list or filter"):
        await erp.list_customers(limit=10, cursor=first.next_cursor, modified_since=since)


def northwind(**overrides: Any) -> CustomerUpsert:
    fields: dict[str, Any] = {
        "crm_customer_id": salesforce.DEMO_ACCOUNT_ID,
        "name": "Northwind Health Systems",
        "legal_entity": "US01",
        "currency": "USD",
        "tax_id": "13-5551234",
        "website": "https://www.northwind-health.example",
    }
    return CustomerUpsert(**{**fields, **overrides})


async def test_upsert_twice_is_one_customer_created_then_updated(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    first, created = await erp.upsert_customer(northwind())
    assert created is True
    assert first.system_ids.crm == salesforce.DEMO_ACCOUNT_ID
    assert (first.legal_entity, first.currency, first.tax_id) == ("US01", "USD", "13-5551234")
    again, created_again = await erp.upsert_customer(northwind(name="Northwind Health Systems Inc"))
    assert created_again is False
    assert again.id == first.id
    assert again.name == "Northwind Health Systems Inc"
    assert len(sandbox.records("customer", externalId=salesforce.DEMO_ACCOUNT_ID)) == 1
    # Both writes were upserts by external id (retry-safe), never a plain create
    assert await sandbox.requests("/record/v1/customer", method="POST") == []
    assert len(await sandbox.requests(f"/customer/eid:{salesforce.DEMO_ACCOUNT_ID}", method="PUT")) == 2


async def test_a_lost_upsert_answer_is_retried_into_the_same_customer(sandbox: Sandbox) -> None:
    path = f"/customer/eid:{salesforce.DEMO_ACCOUNT_ID}"
    erp = sandbox.erp(transport=LoseResponses(sandbox.transport, method="PUT", path=path))
    customer, created = await erp.upsert_customer(northwind())
    assert created is True
    assert [status for *_, status in await sandbox.requests(path, method="PUT")] == [204, 204]
    assert [
        record["id"] for record in sandbox.records("customer", externalId=salesforce.DEMO_ACCOUNT_ID)
    ] == [customer.id]


async def test_survivorship_crm_owns_name_and_hierarchy_erp_owns_billing_and_tax(
    sandbox: Sandbox, erp: NetSuiteErp
) -> None:
    command = CustomerUpsert(
        crm_customer_id=salesforce.BIG_ACCOUNT_ID,
        name="Globex Professional Services LLC",
        legal_entity="GB01",
        currency="GBP",
        tax_id="00-0000000",
        website="https://globex.example",
        parent_crm_customer_id=None,
    )
    customer, created = await erp.upsert_customer(command)
    assert created is False
    assert customer.id == GLOBEX_CUSTOMER_ID
    assert customer.name == "Globex Professional Services LLC"  # the CRM's
    # Billing and tax stay as finance keyed them in NetSuite
    assert (customer.legal_entity, customer.currency, customer.tax_id) == ("US01", "USD", "94-3216547")
    assert customer.website == "https://www.globex-ps.example"
    # A field the ERP did not have yet is filled from the CRM
    sandbox.state.records["customer"][GLOBEX_CUSTOMER_ID]["vatRegNumber"] = None
    refilled, _ = await erp.upsert_customer(command)
    assert refilled.tax_id == "00-0000000"


async def test_the_crm_hierarchy_is_written_and_cleared(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    child, _ = await erp.upsert_customer(northwind(parent_crm_customer_id=salesforce.BIG_ACCOUNT_ID))
    assert child.parent_id == GLOBEX_CUSTOMER_ID
    orphan, _ = await erp.upsert_customer(northwind())
    assert orphan.parent_id is None
    with pytest.raises(NotFound, match="not in NetSuite yet"):
        await erp.upsert_customer(northwind(parent_crm_customer_id=salesforce.SUBSIDIARY_ACCOUNT_ID))


async def test_a_new_customer_without_a_legal_entity_is_rejected_by_netsuite(erp: NetSuiteErp) -> None:
    with pytest.raises(VendorRejected) as rejected:
        await erp.upsert_customer(northwind(legal_entity=None, currency=None))
    assert rejected.value.vendor_code == "USER_ERROR"
    assert "Subsidiary" in rejected.value.message
    with pytest.raises(VendorRejected, match="legal entity 'FR01'") as unknown:
        await erp.upsert_customer(northwind(legal_entity="FR01"))
    assert unknown.value.vendor_code == "INVALID_KEY_OR_REF"


# --- projects and billing schedules ------------------------------------------------------------------


def project_command(customer_id: str, **overrides: Any) -> ProjectCreate:
    fields: dict[str, Any] = {
        "external_key": salesforce.READY_OPPORTUNITY_ID,
        "name": "Northwind - EHR Integration",
        "customer_id": customer_id,
        "currency": "USD",
        "billing_model": BillingModel.MILESTONE,
        "legal_entity": "US01",
        "start_date": dt.date(2026, 3, 9),
        "end_date": dt.date(2026, 9, 30),
    }
    return ProjectCreate(**{**fields, **overrides})


async def test_one_project_per_key(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    project, created = await erp.create_project(project_command(DEMO_CUSTOMER_ID))
    assert created is True
    assert (project.customer_id, project.external_key) == (DEMO_CUSTOMER_ID, salesforce.READY_OPPORTUNITY_ID)
    assert project.billing_model is BillingModel.MILESTONE
    assert (project.start_date, project.end_date, project.currency) == (
        dt.date(2026, 3, 9),
        dt.date(2026, 9, 30),
        "USD",
    )
    again, created_again = await erp.create_project(project_command(DEMO_CUSTOMER_ID, name="Renamed"))
    assert created_again is False
    assert again.id == project.id
    assert again.name == "Northwind - EHR Integration"  # the first project, untouched
    assert len(sandbox.records("job", externalId=salesforce.READY_OPPORTUNITY_ID)) == 1
    assert (await erp.get_project(project.id)).id == project.id


async def test_a_project_for_an_unknown_customer_is_rejected(erp: NetSuiteErp) -> None:
    with pytest.raises(VendorRejected) as rejected:
        await erp.create_project(project_command("99999"))
    assert rejected.value.vendor_code == "INVALID_KEY_OR_REF"


def schedule_command(key: str = "act-7:schedule") -> BillingScheduleCreate:
    return BillingScheduleCreate(
        external_key=key,
        billing_model=BillingModel.MILESTONE,
        currency="USD",
        lines=[
            BillingScheduleLine(
                date=dt.date(2026, 4, 30), description="Design signed off", amount=Decimal("30000")
            ),
            BillingScheduleLine(date=dt.date(2026, 6, 30), description="Go-live", amount=Decimal("45000")),
            BillingScheduleLine(date=dt.date(2026, 9, 30), description="Hypercare", amount=Decimal("25000")),
        ],
    )


async def test_one_billing_schedule_per_key_attached_to_the_project(
    sandbox: Sandbox, erp: NetSuiteErp
) -> None:
    project, _ = await erp.create_project(project_command(DEMO_CUSTOMER_ID))
    schedule, created = await erp.create_billing_schedule(project.id, schedule_command())
    assert created is True
    assert (schedule.project_id, schedule.billing_model, schedule.currency) == (
        project.id,
        BillingModel.MILESTONE,
        "USD",
    )
    assert [line.description for line in schedule.lines] == ["Design signed off", "Go-live", "Hypercare"]
    again, created_again = await erp.create_billing_schedule(project.id, schedule_command())
    assert (again.id, created_again) == (schedule.id, False)
    (stored,) = sandbox.records("billingSchedule", externalId="act-7:schedule")
    assert [line["milestoneAmount"] for line in stored["milestones"]] == [30.0, 45.0, 25.0]
    assert sandbox.state.records["job"][project.id]["billingSchedule"] == schedule.id
    assert await erp.get_billing_schedule(schedule.id) == schedule


async def test_a_schedule_key_of_another_project_is_refused(erp: NetSuiteErp) -> None:
    project, _ = await erp.create_project(project_command(DEMO_CUSTOMER_ID))
    await erp.create_billing_schedule(project.id, schedule_command())
    with pytest.raises(VendorRejected, match="already belongs to project"):
        await erp.create_billing_schedule(DEMO_PROJECT_ID, schedule_command())
    with pytest.raises(NotFound):
        await erp.create_billing_schedule("99999", schedule_command("another"))


async def test_voiding_a_schedule_stops_it_and_twice_is_harmless(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    voided = await erp.void_billing_schedule(MILESTONE_BILLING_SCHEDULE_ID)
    assert voided.voided is True
    assert voided.currency == "GBP"
    assert sandbox.state.records["billingSchedule"][MILESTONE_BILLING_SCHEDULE_ID]["isInactive"] is True
    assert sandbox.state.records["job"][MILESTONE_PROJECT_ID]["billingSchedule"] is None
    writes = len(await sandbox.requests(method="PATCH"))
    assert (await erp.void_billing_schedule(MILESTONE_BILLING_SCHEDULE_ID)).voided is True
    assert len(await sandbox.requests(method="PATCH")) == writes  # nothing left to change


# --- invoices ----------------------------------------------------------------------------------------


async def test_get_invoice_with_lines_and_exact_money(erp: NetSuiteErp) -> None:
    invoice = await erp.get_invoice(PARTIALLY_PAID_INVOICE_ID)
    assert invoice.status is InvoiceStatus.PARTIALLY_PAID
    assert (invoice.customer_id, invoice.project_id, invoice.currency) == (
        UK_CUSTOMER_ID,
        MILESTONE_PROJECT_ID,
        "GBP",
    )
    assert invoice.total.amount == Decimal("55890.00")
    assert invoice.balance.amount == Decimal("33534.00")
    assert len(invoice.lines) == 1
    assert (await erp.get_invoice(PAID_INVOICE_ID)).status is InvoiceStatus.PAID
    assert (await erp.get_invoice(OPEN_INVOICE_ID)).status is InvoiceStatus.POSTED


async def test_create_invoice_twice_is_one_invoice(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    invoice, created = await erp.create_invoice(invoice_command("billing-run-8:2026-03"))
    assert created is True
    assert invoice.external_key == "billing-run-8:2026-03"
    assert (invoice.customer_id, invoice.project_id) == (DEMO_CUSTOMER_ID, DEMO_PROJECT_ID)
    assert invoice.total.amount == Decimal("1688.35")  # 7.5 x 225.10 + 0.10, to the cent
    assert [line.amount for line in invoice.lines] == [Decimal("1688.25"), Decimal("0.10")]
    assert invoice.status is InvoiceStatus.POSTED
    again, created_again = await erp.create_invoice(invoice_command("billing-run-8:2026-03"))
    assert (again.id, created_again) == (invoice.id, False)
    assert len(sandbox.records("invoice", externalId="billing-run-8:2026-03")) == 1
    # The create was asynchronous with the key derived from the business key, and the replay sent none
    assert invoice_idempotency_key("billing-run-8:2026-03") in sandbox.state.idempotency_keys
    assert len(await sandbox.requests("/record/v1/invoice", method="POST")) == 1


async def test_a_lost_create_answer_then_a_retry_makes_exactly_one_invoice(sandbox: Sandbox) -> None:
    erp = sandbox.erp(transport=LoseResponses(sandbox.transport, method="POST", path="/record/v1/invoice"))
    invoice, created = await erp.create_invoice(invoice_command("billing-run-9:2026-03"))
    (stored,) = sandbox.records("invoice", externalId="billing-run-9:2026-03")
    assert invoice.id == stored["id"]
    assert invoice.total.amount == Decimal("1688.35")
    # The first POST created the job (its 202 was lost); the retry with the same key was refused
    posts = await sandbox.requests("/record/v1/invoice", method="POST")
    assert [status for *_, status in posts] == [202, 400]
    assert created is False  # an earlier attempt with this key made it
    assert len(sandbox.state.jobs) == 1


async def test_the_first_job_is_found_from_the_location_of_the_refusal() -> None:
    # NetSuite names the first job only in the Location header of the IDEMPOTENCY_ERROR answer (its text
    # says "See the Location header"): after a lost 202 the retry must wait for that job, not guess.
    box = Sandbox(create_netsuite_sandbox(NetSuiteSandboxSettings(async_pending_polls=1)))
    try:
        erp = box.erp(transport=LoseResponses(box.transport, method="POST", path="/record/v1/invoice"))
        with capture_logs() as logs:
            invoice, created = await erp.create_invoice(invoice_command("billing-run-15:2026-03"))
        reused = [line for line in logs if line["event"] == "netsuite_idempotency_key_reused"]
        assert [line["job_id"] for line in reused] == ["1"]
        assert created is False
        assert [record["id"] for record in box.records("invoice", externalId="billing-run-15:2026-03")] == [
            invoice.id
        ]
        assert [status for *_, status in await box.requests("/async/v1/job/1")] == [200, 200]
        assert len(box.state.jobs) == 1
    finally:
        await box.close()


async def test_a_refusal_without_a_location_is_not_read_from_its_text() -> None:
    # An IDEMPOTENCY_ERROR whose Location is missing: the adapter does not fish a job id out of the detail.
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/oauth2/v1/token"):
            token = {"access_token": "t", "expires_in": "3600", "token_type": "Bearer"}
            return httpx.Response(200, json=token)
        if request.method == "POST" and request.url.path.endswith("/record/v1/invoice"):
            detail = f"The idempotency key was used by asynchronous job 7 ({API}/async/v1/job/7)."
            return httpx.Response(400, json=problem(400, "IDEMPOTENCY_ERROR", detail))
        if request.url.path.endswith("/query/v1/suiteql"):
            return httpx.Response(
                200, json={"items": [{"id": "1", "code": "USD"}], "hasMore": False, "count": 1, "offset": 0}
            )
        if request.url.path.endswith("/record/v1/serviceItem"):
            return httpx.Response(200, json={"items": [{"id": "101"}], "hasMore": False})
        return httpx.Response(404, json=problem(404, "NONEXISTENT_ID", "no such record"))

    erp = NetSuiteErp(
        settings(),
        transport=httpx.MockTransport(handler),
        private_key_pem=DEV_KEY_PEM,
        sleep=no_sleep,
        breaker=BreakerPolicy(failure_threshold=0),
    )
    try:
        with pytest.raises(VendorRejected) as refused:
            await erp.create_invoice(invoice_command("billing-run-16:2026-03"))
    finally:
        await erp.close()
    assert refused.value.vendor_code == "IDEMPOTENCY_ERROR"


async def test_the_invoice_item_and_the_subsidiaries_are_settings(sandbox: Sandbox) -> None:
    missing_item = sandbox.erp(settings={"invoice_item": "NOT-AN-ITEM"})
    with pytest.raises(VendorRejected, match="NOT-AN-ITEM"):
        await missing_item.create_invoice(invoice_command("billing-run-17:2026-03"))
    # The legal entity -> subsidiary mapping is the account's setup, not a convention of the sandbox's.
    subsidiary = customer_subsidiary(sandbox, DEMO_CUSTOMER_ID)
    assert subsidiary is not None
    remapped = sandbox.erp(settings={"subsidiaries": {"NL01": subsidiary}})
    assert (await remapped.get_customer(DEMO_CUSTOMER_ID)).legal_entity == "NL01"
    with pytest.raises(ValueError, match="internal id"):
        sandbox.erp(settings={"subsidiaries": {"US01": "US"}})


def test_the_account_setup_is_read_from_the_environment() -> None:
    environ = {
        "STRATUM_NETSUITE__SUBSIDIARIES": '{"US01": "7", "NL01": "9"}',
        "STRATUM_NETSUITE__INVOICE_ITEM": "SVC-CONSULTING",
        "STRATUM_NETSUITE__ALGORITHM": "PS384",
    }
    netsuite = load_settings(environ).netsuite
    assert (netsuite.subsidiaries, netsuite.invoice_item) == ({"US01": "7", "NL01": "9"}, "SVC-CONSULTING")
    assert netsuite.algorithm == "PS384"
    assert load_settings({}).netsuite.subsidiaries == {"US01": "1", "GB01": "2", "DE01": "3"}


def customer_subsidiary(sandbox: Sandbox, customer_id: str) -> str | None:
    (record,) = sandbox.records("customer", id=customer_id)
    subsidiary: str | None = record["subsidiary"]
    return subsidiary


async def test_a_property_netsuite_drops_with_a_warning_is_logged(erp: NetSuiteErp) -> None:
    with capture_logs() as logs:
        await erp._patch("customer", DEMO_CUSTOMER_ID, {"shoeSize": 9})
    (warned,) = [line for line in logs if line["event"] == "netsuite_warning"]
    assert warned["log_level"] == "warning"
    assert "shoeSize" in warned["warning"]


def test_rs256_is_not_an_algorithm_netsuite_accepts() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"algorithm": "RS256"}, NetSuiteSettings)
    with pytest.raises(ValueError, match="does not accept"):
        load_signing_key(DEV_KEY_PEM, "RS256")  # type: ignore[arg-type]


async def test_es384_assertions_are_signed_with_a_p384_key() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    auth = NetSuiteClientAssertionAuth(
        token_url=f"{API}/auth/oauth2/v1/token",
        client_id="c",
        certificate_id="k",
        private_key_pem=pem,
        algorithm="ES384",
    )
    token = jwt.decode(auth.client_assertion(), ECKey.import_key(key.public_key()), algorithms=["ES384"])
    assert token.header["alg"] == "ES384"
    await auth.aclose()
    with pytest.raises(ValueError, match="not a usable ES256"):
        load_signing_key(pem, "ES256")


async def test_a_reused_key_waits_for_the_first_job() -> None:
    box = Sandbox(create_netsuite_sandbox(NetSuiteSandboxSettings(async_pending_polls=2)))
    try:
        erp = box.erp(transport=LoseResponses(box.transport, method="POST", path="/record/v1/invoice"))
        invoice, _ = await erp.create_invoice(invoice_command("billing-run-10:2026-03"))
        assert [record["id"] for record in box.records("invoice", externalId="billing-run-10:2026-03")] == [
            invoice.id
        ]
        job_polls = await box.requests("/async/v1/job/1")
        assert len(job_polls) == 3  # pending, pending, succeeded
        assert box.sleeps[-2:] == [0.25, 0.5]
    finally:
        await box.close()


async def test_a_failed_create_reports_netsuites_error(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    with pytest.raises(VendorRejected) as rejected:
        await erp.create_invoice(
            invoice_command("billing-run-11:2026-03", customer_id="99999", project_id=None)
        )
    assert rejected.value.vendor_code == "INVALID_KEY_OR_REF"
    assert sandbox.records("invoice", externalId="billing-run-11:2026-03") == []
    with pytest.raises(VendorRejected, match="project does not belong"):
        await erp.create_invoice(invoice_command("billing-run-12:2026-03", customer_id=UK_CUSTOMER_ID))


async def test_a_key_whose_job_failed_is_not_stuck_on_that_failure(
    sandbox: Sandbox, erp: NetSuiteErp
) -> None:
    key = "billing-run-14:2026-03"
    bad = invoice_command(key, customer_id="99999", project_id=None)
    with pytest.raises(VendorRejected, match="INVALID_KEY_OR_REF"):
        await erp.create_invoice(bad)
    # A replay finds the first key spent on a failed job, moves on to the next key and fails afresh.
    with pytest.raises(VendorRejected, match="INVALID_KEY_OR_REF"):
        await erp.create_invoice(bad)
    # Once the data is right, the same business key goes through, once.
    invoice, created = await erp.create_invoice(invoice_command(key))
    assert created is True
    assert [record["id"] for record in sandbox.records("invoice", externalId=key)] == [invoice.id]
    assert [status for *_, status in await sandbox.requests("/record/v1/invoice", method="POST")] == [
        202,  # job 1 (fails)
        400,  # key 1 again: IDEMPOTENCY_ERROR -> job 1 failed, made nothing
        202,  # key 2, derived from key 1's failed job: job 2 (fails)
        400,  # key 1: spent
        400,  # key 2: spent
        202,  # key 3: job 3 creates the invoice
    ]
    assert invoice_idempotency_key(key, "2") in sandbox.state.idempotency_keys
    again, created_again = await erp.create_invoice(invoice_command(key))
    assert (again.id, created_again) == (invoice.id, False)


async def test_list_invoices_by_customer_and_status_with_paging(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    def expected(customer_id: str, status: InvoiceStatus | None = None) -> list[str]:
        ids = []
        for record in sandbox.records("invoice", entity=customer_id):
            actual = invoice_status(
                record["status"],
                None,
                total=Decimal(repr(record["total"])),
                remaining=Decimal(repr(record["amountRemaining"])),
            )
            if status is None or actual is status:
                ids.append(record["id"])
        return sorted(ids, key=int)

    async def all_pages(query: InvoiceFilter, limit: int) -> tuple[list[str], int]:
        ids: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = await erp.list_invoices(query, limit=limit, cursor=cursor)
            pages += 1
            for invoice in page.items:
                assert invoice.customer_id == query.customer_id
                assert query.status is None or invoice.status is query.status
            ids.extend(invoice.id for invoice in page.items)
            cursor = page.next_cursor
            if cursor is None:
                return ids, pages

    everything, pages = await all_pages(InvoiceFilter(customer_id=DEMO_CUSTOMER_ID), limit=4)
    assert everything == expected(DEMO_CUSTOMER_ID)
    assert pages == -(-len(everything) // 4) > 2
    for status in InvoiceStatus:
        ids, _ = await all_pages(InvoiceFilter(customer_id=DEMO_CUSTOMER_ID, status=status), limit=5)
        assert ids == expected(DEMO_CUSTOMER_ID, status), status
    partially_paid, _ = await all_pages(
        InvoiceFilter(customer_id=UK_CUSTOMER_ID, status=InvoiceStatus.PARTIALLY_PAID), limit=5
    )
    assert PARTIALLY_PAID_INVOICE_ID in partially_paid


async def test_invoice_cursors_are_bound_to_filter_and_page_size(erp: NetSuiteErp) -> None:
    query = InvoiceFilter(customer_id=DEMO_CUSTOMER_ID)
    first = await erp.list_invoices(query, limit=5)
    assert first.next_cursor is not None
    second = await erp.list_invoices(query, limit=5, cursor=first.next_cursor)
    assert {i.id for i in first.items}.isdisjoint(i.id for i in second.items)
    for other_query, limit in (
        (InvoiceFilter(customer_id=UK_CUSTOMER_ID), 5),
        (query, 6),
        (InvoiceFilter(), 5),
    ):
        with pytest.raises(InvalidCursor):
            await erp.list_invoices(other_query, limit=limit, cursor=first.next_cursor)
    for garbage in ("", "not base64!", encode_cursor(7, 5, "0" * 16) + "x", "MTAuNS5hYmM"):
        with pytest.raises(InvalidCursor):
            await erp.list_invoices(query, limit=5, cursor=garbage)


def test_cursor_round_trip() -> None:
    cursor = encode_cursor(150, 50, "0123456789abcdef")
    assert decode_cursor(cursor, limit=50, fingerprint="0123456789abcdef") == 150
    with pytest.raises(InvalidCursor, match="page size"):
        decode_cursor(cursor, limit=25, fingerprint="0123456789abcdef")
    with pytest.raises(InvalidCursor):
        decode_cursor(encode_cursor(151, 50, "0123456789abcdef"), limit=50, fingerprint="0123456789abcdef")


async def test_injection_attempts_through_filters_are_harmless(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    injected = f"{DEMO_CUSTOMER_ID}' OR '1'='1"
    assert (await erp.list_invoices(InvoiceFilter(customer_id=injected), limit=50)).items == []
    assert (await erp.list_payments(customer_id=injected, limit=50)).items == []
    with pytest.raises(ValueError, match="is not a valid InvoiceStatus"):
        await erp.list_invoices(InvoiceFilter(status="paid') OR ('1'='1"), limit=50)  # type: ignore[arg-type]
    assert await sandbox.requests("/query/v1/suiteql") == []
    # And had such a value reached NetSuite, the quoting keeps it one literal: no rows, never all of them.
    token = await erp.auth.access_token()
    statement = invoice_query(customer_id=f"{DEMO_CUSTOMER_ID}') OR (type = 'CustInvc")
    response = await sandbox.admin.post(
        f"{REST}/query/v1/suiteql",
        json={"q": statement},
        headers={"Authorization": f"Bearer {token}", "Prefer": "transient"},
    )
    assert response.status_code == 400  # not a customer id: NetSuite refuses the literal as a number
    text_statement = statement.replace("entity = ", "tranid = ")
    response = await sandbox.admin.post(
        f"{REST}/query/v1/suiteql",
        json={"q": text_statement},
        headers={"Authorization": f"Bearer {token}", "Prefer": "transient"},
    )
    assert response.status_code == 200
    assert response.json()["items"] == []


# --- payments ----------------------------------------------------------------------------------------


async def test_payments_by_customer_and_by_invoice(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    (payment,) = (await erp.list_payments(invoice_id=PAID_INVOICE_ID, limit=10)).items
    assert payment.id == PAYMENT_ID
    assert payment.invoice_ids == [PAID_INVOICE_ID]
    assert payment.amount.amount == (await erp.get_invoice(PAID_INVOICE_ID)).total.amount
    (partial,) = (await erp.list_payments(invoice_id=PARTIALLY_PAID_INVOICE_ID, limit=10)).items
    assert partial.id == PARTIAL_PAYMENT_ID
    assert partial.amount.currency == "GBP"
    assert (await erp.list_payments(invoice_id=OPEN_INVOICE_ID, limit=10)).items == []
    assert (
        await erp.list_payments(customer_id=UK_CUSTOMER_ID, invoice_id=PAID_INVOICE_ID, limit=10)
    ).items == []
    with pytest.raises(NotFound):
        await erp.list_payments(invoice_id="99999", limit=10)

    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = await erp.list_payments(customer_id=DEMO_CUSTOMER_ID, limit=4, cursor=cursor)
        assert all(p.customer_id == DEMO_CUSTOMER_ID for p in page.items)
        ids.extend(p.id for p in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert ids == sorted(
        (r["id"] for r in sandbox.records("customerPayment", customer=DEMO_CUSTOMER_ID)), key=int
    )
    assert len(ids) > 4


# --- limits and faults -------------------------------------------------------------------------------


async def test_the_cap_keeps_the_account_below_its_concurrency_limit() -> None:
    box = Sandbox(create_netsuite_sandbox(NetSuiteSandboxSettings(concurrency_limit=2)))
    try:
        erp = box.erp(max_concurrent_requests=2)
        await erp.get_customer(DEMO_CUSTOMER_ID)  # token and setup data, one at a time
        await box.fault(kind="latency", latency_ms=20, path_pattern="/record/v1/customer/")
        customers = await asyncio.gather(*(erp.get_customer(GLOBEX_CUSTOMER_ID) for _ in range(8)))
        stats = await box.stats()
        assert len(customers) == 8
        assert stats["throttled"] == 0
        assert stats["peak_in_flight"] == 2
    finally:
        await box.close()


async def test_over_the_accounts_limit_429s_are_retried_then_unavailable(sandbox: Sandbox) -> None:
    body = json.dumps(problem(429, "CONCURRENCY_LIMIT_EXCEEDED", "Concurrent request limit exceeded."))
    erp = sandbox.erp()
    await sandbox.fault(kind="error", status=429, body=body, path_pattern="/record/v1/customer/", times=1)
    assert (await erp.get_customer(DEMO_CUSTOMER_ID)).id == DEMO_CUSTOMER_ID
    assert [s for *_, s in await sandbox.requests("/record/v1/customer/")] == [429, 200]
    await sandbox.fault(
        kind="error", status=429, body=body, path_pattern="/record/v1/customer/", headers={"Retry-After": "1"}
    )
    with pytest.raises(VendorUnavailable, match="CONCURRENCY_LIMIT_EXCEEDED") as unavailable:
        await erp.get_customer(DEMO_CUSTOMER_ID)
    assert unavailable.value.retry_after == 1.0
    assert [s for *_, s in await sandbox.requests("/record/v1/customer/")] == [429, 200, 429, 429, 429]


async def test_a_real_429_from_governance_is_unavailable_when_not_retried() -> None:
    box = Sandbox(create_netsuite_sandbox(NetSuiteSandboxSettings(concurrency_limit=1)))
    try:
        erp = box.erp(max_concurrent_requests=6, retry=RetryPolicy(max_attempts=1))
        await erp.get_customer(DEMO_CUSTOMER_ID)
        await box.fault(kind="latency", latency_ms=20, path_pattern="/record/v1/customer/")
        results = await asyncio.gather(
            *(erp.get_customer(GLOBEX_CUSTOMER_ID) for _ in range(4)), return_exceptions=True
        )
        assert sum(isinstance(result, VendorUnavailable) for result in results) == 3
        assert (await box.stats())["throttled"] == 3
    finally:
        await box.close()


async def test_malformed_body_is_a_bad_response(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    await erp.get_customer(DEMO_CUSTOMER_ID)
    await sandbox.fault(kind="malformed", path_pattern="/record/v1/customer/")
    with pytest.raises(VendorBadResponse, match="unusable customer"):
        await erp.get_customer(DEMO_CUSTOMER_ID)
    await sandbox.admin.delete("/__sandbox/faults")
    await sandbox.fault(kind="malformed", path_pattern="/query/v1/suiteql")
    with pytest.raises(VendorBadResponse, match="unusable SuiteQL result"):
        await erp.list_invoices(InvoiceFilter(), limit=5)


async def test_an_outage_is_unavailable(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    await sandbox.fault(kind="outage", status=503, path_pattern="^/services/rest/(record|query)/")
    with pytest.raises(VendorUnavailable, match="HTTP 503"):
        await erp.get_customer(DEMO_CUSTOMER_ID)
    assert len(await sandbox.requests("/record/v1/customer/")) == 3  # a read is retried, then given up


async def test_a_hang_is_a_timeout(sandbox: Sandbox) -> None:
    erp = sandbox.erp(settings={"timeout_seconds": 0.05}, retry=RetryPolicy(max_attempts=2))
    await erp.get_customer(DEMO_CUSTOMER_ID)
    await sandbox.fault(kind="hang", latency_ms=5_000, path_pattern="/record/v1/invoice/")
    with pytest.raises(VendorTimeout):
        await erp.get_invoice(OPEN_INVOICE_ID)


async def test_a_server_error_document_keeps_netsuites_code(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    body = json.dumps(problem(500, "UNEXPECTED_ERROR", "An unexpected error occurred. Error ID: abc"))
    await sandbox.fault(kind="error", status=500, body=body, path_pattern="/record/v1/job/")
    with pytest.raises(VendorBadResponse, match="UNEXPECTED_ERROR"):
        await erp.get_project(DEMO_PROJECT_ID)


async def test_the_dev_key_never_reaches_the_logs(sandbox: Sandbox) -> None:
    with capture_logs() as logs:
        erp = sandbox.erp()
        await erp.create_invoice(invoice_command("billing-run-13:2026-03"))
        await sandbox.fault(kind="outage", status=503, path_pattern="/record/v1/")
        with pytest.raises(VendorUnavailable):
            await erp.get_customer(DEMO_CUSTOMER_ID)
    assert logs
    assert KEY_FRAGMENT not in repr(logs)


async def test_correlation_ids_travel_with_every_call(sandbox: Sandbox) -> None:
    seen: list[str | None] = []

    class Spy(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if "/record/v1/" in request.url.path:
                seen.append(request.headers.get("X-Correlation-ID"))
            return await sandbox.transport.handle_async_request(request)

    erp = sandbox.erp(transport=Spy(), correlation_id=lambda: "corr-123")
    await erp.get_customer(DEMO_CUSTOMER_ID)
    assert seen == ["corr-123"]


# ---------------------------------------------------------------------------------------------------------
# The account's time zone: SuiteQL shows and reads times in it (sandboxes.netsuite.data.ACCOUNT_TIME_ZONE)
# ---------------------------------------------------------------------------------------------------------


def test_the_account_time_zone_is_required_and_must_be_a_real_one() -> None:
    with pytest.raises(ValueError, match=r"settings\.time_zone, the account's time zone"):
        NetSuiteErp(settings(time_zone=None), private_key_pem=DEV_KEY_PEM)
    with pytest.raises(ValueError, match="not an IANA time zone"):
        NetSuiteErp(settings(time_zone="Mars/Olympus_Mons"), private_key_pem=DEV_KEY_PEM)


def stamp_customers(sandbox: Sandbox, moments: Sequence[dt.datetime]) -> dict[str, dt.datetime]:
    """Give the first customers these last-modified moments (the rest stay older); id -> moment."""
    ids = sorted(sandbox.state.records["customer"], key=int)[: len(moments)]
    for customer_id, moment in zip(ids, moments, strict=True):
        record = sandbox.state.records["customer"][customer_id]
        record["lastModifiedDate"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return dict(zip(ids, moments, strict=True))


async def test_a_change_late_in_the_utc_day_keeps_its_instant(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    # 23:30 UTC is 15:30 the same day in Los Angeles, 03:30 UTC the next day is still the day before there:
    # SuiteQL's TO_CHAR gives the account's wall-clock time, which the adapter reads back as the instant.
    late = dt.datetime(2026, 3, 2, 23, 30, tzinfo=dt.UTC)
    next_utc_day = dt.datetime(2026, 3, 3, 3, 30, tzinfo=dt.UTC)
    stamped = stamp_customers(sandbox, [late, next_utc_day])
    page = await erp.list_customers(limit=50, modified_since=late)
    assert {customer.id: customer.updated_at for customer in page.items} == stamped


async def test_a_watermark_read_across_dst_changes_loses_and_duplicates_nothing(
    sandbox: Sandbox, erp: NetSuiteErp
) -> None:
    utc = dt.UTC
    moments = [
        dt.datetime(2026, 3, 8, 9, 30, tzinfo=utc),  # 01:30 PST, just before the clocks go forward
        dt.datetime(2026, 3, 8, 10, 15, tzinfo=utc),  # 03:15 PDT: 02:xx never happened that night
        dt.datetime(2026, 11, 1, 7, 30, tzinfo=utc),  # 00:30 PDT
        dt.datetime(2026, 11, 1, 8, 30, tzinfo=utc),  # 01:30 PDT, the first of the two 01:30s
        dt.datetime(2026, 11, 1, 10, 30, tzinfo=utc),  # 02:30 PST, after the clocks went back
    ]
    stamped = stamp_customers(sandbox, moments)
    for watermark in moments:
        page = await erp.list_customers(limit=50, modified_since=watermark)
        read = {customer.id: customer.updated_at for customer in page.items}
        # Exactly the changes at or after the watermark: none lost, none from before it read again.
        assert read == {cid: moment for cid, moment in stamped.items() if moment >= watermark}
    # The second 01:30 of the night the clocks go back is the same text as the first: SuiteQL's wall-clock
    # time cannot tell them apart, so both sides read it as the earlier one. A watermark there re-reads up
    # to that hour but never skips a change.
    second_half_hour = dt.datetime(2026, 11, 1, 9, 30, tzinfo=utc)  # 01:30 PST
    (ambiguous_id,) = stamp_customers(sandbox, [*moments, second_half_hour]).keys() - stamped.keys()
    page = await erp.list_customers(limit=50, modified_since=second_half_hour)
    read = {customer.id: customer.updated_at for customer in page.items}
    assert ambiguous_id in read
    assert read[ambiguous_id] == second_half_hour - dt.timedelta(hours=1)
    assert set(read) >= {cid for cid, moment in stamped.items() if moment >= second_half_hour}
