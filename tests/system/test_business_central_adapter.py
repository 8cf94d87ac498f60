"""The Business Central adapter against the Business Central sandbox in process (``httpx.ASGITransport``).

What the adapter does is observable the way it would be against the real service: the Entra token flow,
OData reads and paging, the look-before-create writes (counted in the sandbox's own records), etags and
412s, rate limits (429 with Retry-After) and injected faults.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar

from apis.config import BusinessCentralSettings, load_settings
from contracts.models import (
    BillingModel,
    BillingScheduleCreate,
    BillingScheduleLine,
    CustomerMatchQuery,
    CustomerUpsert,
    InvoiceCreate,
    InvoiceLineInput,
    InvoiceStatus,
    ProjectCreate,
)
from contracts.models.crm import Address
from sandboxes.business_central import (
    DE_COMPANY_ID,
    DEV_CLIENT_ID,
    DEV_CLIENT_SECRET,
    TENANT_ID,
    BusinessCentralSandbox,
    BusinessCentralSandboxSettings,
    create_business_central_sandbox,
)
from sandboxes.business_central.data import (
    APOSTROPHE_CUSTOMER_ID,
    CUSTOMER_COUNT_DE,
    DEMO_PROJECT_ID,
    DUPLICATE_CUSTOMER_ID,
    INITECH_CUSTOMER_ID,
    INVOICE_COUNT_DE,
    MUELLER_CUSTOMER_ID,
    OPEN_INVOICE_ID,
    PAID_INVOICE_ID,
    PARTIAL_PAYMENT_ID,
    PARTIALLY_PAID_INVOICE_ID,
    PAYMENT_ID,
)
from sandboxes.salesforce import data as salesforce
from system_apis.erp.business_central import BusinessCentralErp, InvalidCursor
from system_apis.erp.business_central_mapping import business_key, schedule_key
from system_apis.erp.port import ErpPort, InvoiceFilter
from system_apis.errors import NotFound, VendorBadResponse, VendorRejected, VendorTimeout, VendorUnavailable
from system_apis.vendor_http import BreakerPolicy, RetryPolicy

ORIGIN = "http://businesscentral.test"
API = f"/v2.0/{TENANT_ID}/production/api/v2.0"
NEW_ACCOUNT_ID = salesforce.salesforce_id("001", 4711)
CONTOSO_DE_ACCOUNT_ID = salesforce.salesforce_id("001", 11)


def settings(**overrides: Any) -> BusinessCentralSettings:
    values: dict[str, Any] = {
        "base_url": ORIGIN,
        "token_url": f"{ORIGIN}/{TENANT_ID}/oauth2/v2.0/token",
        "client_id": DEV_CLIENT_ID,
        "client_secret": DEV_CLIENT_SECRET,
        "tenant_id": TENANT_ID,
        "company": "CRONUS DE",
    }
    return BusinessCentralSettings(**{**values, **overrides})


class Sandbox:
    """The sandbox in process, its admin API, and the adapters made against it (closed at the end)."""

    def __init__(self, app: Litestar) -> None:
        self.app = app
        self.transport = httpx.ASGITransport(app=app)
        self.admin = httpx.AsyncClient(transport=self.transport, base_url=ORIGIN)
        self.sleeps: list[float] = []
        self.adapters: list[BusinessCentralErp] = []

    @property
    def state(self) -> BusinessCentralSandbox:
        sandbox: BusinessCentralSandbox = self.app.state.sandbox
        return sandbox

    async def no_sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def erp(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        **overrides: Any,
    ) -> BusinessCentralErp:
        erp = BusinessCentralErp(
            settings(**overrides),
            transport=transport or self.transport,
            retry=retry or RetryPolicy(max_attempts=3),
            breaker=BreakerPolicy(failure_threshold=0),
            sleep=self.no_sleep,
        )
        self.adapters.append(erp)
        return erp

    async def fault(self, **rule: Any) -> None:
        response = await self.admin.post("/__sandbox/faults", json=rule)
        assert response.status_code == 201, response.text

    async def requests(self, path_part: str = "", method: str | None = None) -> list[tuple[str, str, int]]:
        stats = (await self.admin.get("/__sandbox/stats")).json()
        return [
            (r["method"], r["path"], r["status"])
            for r in stats["requests"]
            if path_part in r["path"] and (method is None or r["method"] == method)
        ]

    def records(self, entity_set: str, **where: Any) -> list[dict[str, Any]]:
        return [
            record
            for record in self.state.records[entity_set].values()
            if all(record.get(key) == value for key, value in where.items())
        ]

    async def close(self) -> None:
        for erp in self.adapters:
            await erp.close()
        await self.admin.aclose()


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = Sandbox(create_business_central_sandbox())
    yield box
    await box.close()


@pytest.fixture
def erp(sandbox: Sandbox) -> BusinessCentralErp:
    return sandbox.erp()


def new_account(**overrides: Any) -> CustomerUpsert:
    fields: dict[str, Any] = {
        "crm_customer_id": NEW_ACCOUNT_ID,
        "name": "Globex Deutschland GmbH",
        "legal_entity": "DE01",
        "currency": "EUR",
        "tax_id": "DE300400500",
        "website": "https://www.globex-de.example",
        "billing_address": Address(
            street="Maximilianstraße 1", city="München", postal_code="80539", country="Germany"
        ),
    }
    return CustomerUpsert(**{**fields, **overrides})


def invoice_command(key: str, **overrides: Any) -> InvoiceCreate:
    fields: dict[str, Any] = {
        "external_key": key,
        "customer_id": MUELLER_CUSTOMER_ID,
        "currency": "EUR",
        "issue_date": dt.date(2026, 3, 1),
        "due_date": dt.date(2026, 3, 31),
        "lines": [
            InvoiceLineInput(
                description="Consulting, February", quantity=Decimal("7.5"), unit_price=Decimal("225.10")
            ),
            InvoiceLineInput(description="Data migration", quantity=Decimal("1"), unit_price=Decimal("0.10")),
        ],
    }
    return InvoiceCreate(**{**fields, **overrides})


class BeforeEachPatch(httpx.AsyncBaseTransport):
    """Runs ``action`` just before the first ``times`` PATCHes reach Business Central (another user)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, action: Any, times: int = 1) -> None:
        self.inner = inner
        self.action = action
        self.remaining = times

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH" and self.remaining:
            self.remaining -= 1
            self.action()
        return await self.inner.handle_async_request(request)


class LoseThenFail(httpx.AsyncBaseTransport):
    """A POST reaches Business Central but its answer is lost; then the network fails for good."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.lost = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.lost:
            raise httpx.ConnectError("the network is gone", request=request)
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and "/oauth2/" not in request.url.path:
            self.lost = True
            await response.aread()
            await response.aclose()
            raise httpx.ReadTimeout("the answer was lost on the way back", request=request)
        return response


# --- the port, auth ----------------------------------------------------------------------------------


async def test_the_adapter_is_an_erp_port(erp: BusinessCentralErp) -> None:
    assert isinstance(erp, ErpPort)
    assert erp.vendor == "business_central"


async def test_token_flow_and_a_revoked_token(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    await erp.get_customer(MUELLER_CUSTOMER_ID)
    await erp.get_customer(MUELLER_CUSTOMER_ID)
    sandbox.state.tokens.clear()
    await erp.get_customer(MUELLER_CUSTOMER_ID)
    token_calls = await sandbox.requests("/oauth2/v2.0/token")
    assert [status for *_, status in token_calls] == [200, 200]
    assert [s for *_, s in await sandbox.requests(f"/customers({MUELLER_CUSTOMER_ID})")] == [
        200,
        200,
        401,
        200,
    ]


async def test_wrong_credentials_are_unavailable(sandbox: Sandbox) -> None:
    erp = sandbox.erp(client_secret="not-the-secret")
    with pytest.raises(VendorUnavailable, match="credentials"):
        await erp.get_customer(MUELLER_CUSTOMER_ID)


async def test_the_company_is_found_by_name_once(sandbox: Sandbox) -> None:
    erp = sandbox.erp()
    await erp.get_customer(MUELLER_CUSTOMER_ID)
    await erp.get_project(DEMO_PROJECT_ID)
    unknown = sandbox.erp(company="CRONUS FR")
    by_id = sandbox.erp(company=DE_COMPANY_ID.upper())
    with pytest.raises(VendorRejected, match="no company named 'CRONUS FR'"):
        await unknown.get_customer(MUELLER_CUSTOMER_ID)
    assert (await by_id.get_customer(MUELLER_CUSTOMER_ID)).id == MUELLER_CUSTOMER_ID
    lookups = [path for _, path, _ in await sandbox.requests(method="GET") if path == f"{API}/companies"]
    assert len(lookups) == 2  # ours once for three reads, then CRONUS FR's


# --- customers ---------------------------------------------------------------------------------------


async def test_get_and_find_customers(erp: BusinessCentralErp) -> None:
    initech = await erp.get_customer(INITECH_CUSTOMER_ID)
    found = await erp.find_customer(salesforce.GERMAN_ACCOUNT_ID)
    assert initech.name == "Initech Software GmbH"
    assert (initech.legal_entity, initech.currency, initech.tax_id) == ("DE01", "EUR", "DE811234567")
    assert initech.system_ids.crm == salesforce.GERMAN_ACCOUNT_ID  # case restored from the number
    assert initech.billing_address is not None
    assert initech.billing_address.city == "München"
    assert found is not None
    assert found.id == INITECH_CUSTOMER_ID
    assert await erp.find_customer(NEW_ACCOUNT_ID) is None


async def test_malformed_and_unknown_ids_are_not_found(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    with pytest.raises(NotFound):
        await erp.get_customer("1001")
    assert await sandbox.requests("/customers") == []
    with pytest.raises(NotFound, match="BadRequest_NotFound"):
        await erp.get_customer("00000000-0000-0000-0000-00000000abcd")
    with pytest.raises(NotFound):
        await erp.get_invoice("00000000-0000-0000-0000-00000000abcd")


async def test_list_customers_pages_through_all_of_them(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await erp.list_customers(limit=120, cursor=cursor)
        seen += [customer.id for customer in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    first = await erp.list_customers(limit=120)
    assert pages == 3
    assert len(seen) == len(set(seen)) == CUSTOMER_COUNT_DE
    # 121 asked for at a time, 100 a page served: pages 1 and 2 took a @odata.nextLink each.
    assert len(await sandbox.requests(f"companies({DE_COMPANY_ID})/customers", method="GET")) == 2 + 2 + 1 + 2
    with pytest.raises(InvalidCursor):
        await erp.list_customers(limit=50, cursor=first.next_cursor)
    with pytest.raises(InvalidCursor):
        await erp.list_customers(limit=120, cursor="bm9wZQ")


async def test_list_customers_modified_since(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    assert (await erp.list_customers(limit=10, modified_since=before)).items == []
    await erp.upsert_customer(new_account())
    recent = await erp.list_customers(limit=10, modified_since=before)
    assert [customer.system_ids.crm for customer in recent.items] == [NEW_ACCOUNT_ID]


async def test_upsert_twice_is_one_customer_created_then_updated(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    first, created = await erp.upsert_customer(new_account())
    again, created_again = await erp.upsert_customer(new_account(name="Globex Deutschland GmbH & Co. KG"))
    stored = sandbox.records("customers", number=business_key(NEW_ACCOUNT_ID))
    assert created is True
    assert first.system_ids.crm == NEW_ACCOUNT_ID
    assert (first.legal_entity, first.currency, first.tax_id) == ("DE01", "EUR", "DE300400500")
    assert first.billing_address is not None
    assert first.billing_address.country == "DE"
    assert created_again is False
    assert again.id == first.id
    assert again.name == "Globex Deutschland GmbH & Co. KG"
    assert len(stored) == 1
    assert [s for *_, s in await sandbox.requests("/customers", method="POST")] == [201]
    assert [s for *_, s in await sandbox.requests(f"/customers({first.id})", method="PATCH")] == [200]


async def test_survivorship_crm_owns_the_name_erp_owns_tax_and_address(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    command = CustomerUpsert(
        crm_customer_id=salesforce.GERMAN_ACCOUNT_ID,
        name="Initech Software GmbH (Munich)",
        legal_entity="DE01",
        currency="USD",
        tax_id="DE999999999",
        website="https://elsewhere.example",
    )
    customer, created = await erp.upsert_customer(command)
    unchanged, _ = await erp.upsert_customer(command)
    assert created is False
    assert customer.id == INITECH_CUSTOMER_ID
    assert customer.name == "Initech Software GmbH (Munich)"
    assert (customer.tax_id, customer.website, customer.currency) == (
        "DE811234567",
        "https://www.initech-software.example",
        "EUR",
    )
    assert unchanged == customer
    # The second upsert had nothing to change, so it wrote nothing.
    assert len(await sandbox.requests(f"/customers({INITECH_CUSTOMER_ID})", method="PATCH")) == 1


async def test_a_lost_create_answer_is_found_and_not_made_twice(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    await sandbox.fault(kind="lost", method="POST", path_pattern="/customers$", latency_ms=10, times=1)
    customer, created = await erp.upsert_customer(new_account())
    again, created_again = await erp.upsert_customer(new_account())
    assert created is True
    assert created_again is False
    assert again.id == customer.id
    assert [s for *_, s in await sandbox.requests("/customers", method="POST")] == [504]
    assert len(sandbox.records("customers", number=business_key(NEW_ACCOUNT_ID))) == 1


async def test_a_customer_for_another_legal_entity_is_refused(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    with pytest.raises(VendorRejected) as refused:
        await erp.upsert_customer(new_account(legal_entity="GB01"))
    assert refused.value.vendor_code == "WrongCompany"
    assert await sandbox.requests("/customers", method="POST") == []


async def test_a_stale_etag_is_reread_and_the_update_tried_once_more(sandbox: Sandbox) -> None:
    def someone_edits() -> None:
        record = sandbox.state.records["customers"][MUELLER_CUSTOMER_ID]
        record["phoneNumber"] = "+49 711 000"
        sandbox.state.bump(record)

    command = CustomerUpsert(crm_customer_id="legacy-10000", name="Müller & Söhne Maschinenbau AG")
    # Link Müller to a CRM id first (its number is the key), so the upsert updates it.
    sandbox.state.records["customers"][MUELLER_CUSTOMER_ID]["number"] = business_key("legacy-10000")
    erp = sandbox.erp(transport=BeforeEachPatch(sandbox.transport, someone_edits))
    customer, created = await erp.upsert_customer(
        CustomerUpsert(crm_customer_id="legacy-10000", name="Müller und Söhne Maschinenbau AG")
    )
    assert created is False
    assert customer.name == "Müller und Söhne Maschinenbau AG"
    assert [s for *_, s in await sandbox.requests(f"/customers({MUELLER_CUSTOMER_ID})", method="PATCH")] == [
        412,
        200,
    ]
    assert sandbox.state.records["customers"][MUELLER_CUSTOMER_ID]["phoneNumber"] == "+49 711 000"

    stubborn = sandbox.erp(transport=BeforeEachPatch(sandbox.transport, someone_edits, times=5))
    with pytest.raises(VendorRejected) as conflict:
        await stubborn.upsert_customer(command)
    assert conflict.value.vendor_code == "Request_EntityChanged"


# --- duplicates --------------------------------------------------------------------------------------


async def test_probable_duplicates_are_found_by_name_and_tax_id(erp: BusinessCentralErp) -> None:
    contoso = await erp.find_probable_duplicates(
        CustomerMatchQuery(
            name="Contoso Deutschland GmbH",
            tax_id="DE298765431",
            website="https://www.contoso-de.example",
            crm_customer_id=CONTOSO_DE_ACCOUNT_ID,
        )
    )
    apostrophe = await erp.find_probable_duplicates(
        CustomerMatchQuery(name="anna's backstube", tax_id="DE 143 256 789")
    )
    assert [(m.customer.id, m.reason) for m in contoso] == [(DUPLICATE_CUSTOMER_ID, "name+tax_id")]
    assert [(m.customer.id, m.reason) for m in apostrophe] == [(APOSTROPHE_CUSTOMER_ID, "name+tax_id")]


async def test_the_accounts_own_customer_is_not_its_duplicate(erp: BusinessCentralErp) -> None:
    query = CustomerMatchQuery(
        name="Initech Software GmbH", website="https://initech-software.example/", tax_id="DE811234567"
    )
    anonymous = await erp.find_probable_duplicates(query)
    own = await erp.find_probable_duplicates(
        msgspec.structs.replace(query, crm_customer_id=salesforce.GERMAN_ACCOUNT_ID)
    )
    nothing = await erp.find_probable_duplicates(CustomerMatchQuery(name="Initech Software GmbH"))
    assert [m.customer.id for m in anonymous] == [INITECH_CUSTOMER_ID]
    assert own == []
    assert nothing == []


# --- projects and billing schedules ------------------------------------------------------------------


def project_command(key: str) -> ProjectCreate:
    return ProjectCreate(
        external_key=key,
        name="Initech - S/4HANA Readiness Assessment",
        customer_id=INITECH_CUSTOMER_ID,
        currency="EUR",
        legal_entity="DE01",
    )


async def test_one_project_per_key(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    key = salesforce.READY_FIXED_FEE_OPPORTUNITY_ID
    project, created = await erp.create_project(project_command(key))
    again, created_again = await erp.create_project(project_command(key))
    read = await erp.get_project(project.id)
    assert created is True
    assert created_again is False
    assert again.id == project.id == read.id
    assert read.external_key == key
    assert read.legal_entity == "DE01"
    assert len(sandbox.records("projects", number=key.upper())) == 1


async def test_a_lost_project_create_is_found(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    await sandbox.fault(kind="lost", method="POST", path_pattern="/projects$", latency_ms=10, times=1)
    project, created = await erp.create_project(project_command("opp-lost-1"))
    assert created is True
    assert len(sandbox.records("projects", number="OPP-LOST-1")) == 1
    assert project.external_key == "opp-lost-1"


def milestone_schedule(key: str = "opp-ms-1.billing") -> BillingScheduleCreate:
    return BillingScheduleCreate(
        external_key=key,
        billing_model=BillingModel.MILESTONE,
        currency="EUR",
        lines=[
            BillingScheduleLine(
                date=dt.date(2026, 5, 15), description="Discovery", amount=Decimal("40000.00")
            ),
            BillingScheduleLine(date=dt.date(2026, 8, 31), description="Go-live", amount=Decimal("80000.50")),
        ],
    )


def schedule_drafts(sandbox: Sandbox, external_key: str) -> list[dict[str, Any]]:
    prefix = schedule_key(external_key) + "#"
    return sorted(
        (r for r in sandbox.records("salesInvoices") if r["externalDocumentNumber"].startswith(prefix)),
        key=lambda r: str(r["externalDocumentNumber"]),
    )


async def test_a_milestone_schedule_is_draft_invoices_made_once(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    project, _ = await erp.create_project(project_command("opp-ms-1"))
    schedule, created = await erp.create_billing_schedule(project.id, milestone_schedule())
    assert created is True
    assert ":" not in schedule.id
    assert len(schedule.id) <= 47
    assert schedule.project_id == project.id
    assert schedule.billing_model is BillingModel.MILESTONE
    assert schedule.external_key == "opp-ms-1.billing"
    assert [(line.date, line.description, line.amount) for line in schedule.lines] == [
        (dt.date(2026, 5, 15), "Discovery", Decimal("40000.00")),
        (dt.date(2026, 8, 31), "Go-live", Decimal("80000.50")),
    ]
    drafts = schedule_drafts(sandbox, "opp-ms-1.billing")
    assert [d["status"] for d in drafts] == ["Draft", "Draft"]
    assert [d["customerId"] for d in drafts] == [INITECH_CUSTOMER_ID] * 2
    assert [str(d["invoiceDate"]) for d in drafts] == ["2026-05-15", "2026-08-31"]
    assert [Decimal(str(d["totalAmountExcludingTax"])) for d in drafts] == [
        Decimal("40000.00"),
        Decimal("80000.50"),
    ]
    assert [[line["lineObjectNumber"] for line in d["salesInvoiceLines"]] for d in drafts] == [
        [erp._settings.revenue_account]
    ] * 2
    assert all(len(d["externalDocumentNumber"]) <= 35 for d in drafts)

    again, created_again = await erp.create_billing_schedule(project.id, milestone_schedule())
    assert created_again is False
    assert again.id == schedule.id
    assert len(schedule_drafts(sandbox, "opp-ms-1.billing")) == 2

    # Another adapter (a restart) reads it back from the id alone.
    read = await sandbox.erp().get_billing_schedule(schedule.id)
    assert read.id == schedule.id
    assert read.project_id == project.id
    assert read.currency == "EUR"
    assert read.voided is False
    assert read.external_key is None
    assert [line.amount for line in read.lines] == [Decimal("40000.00"), Decimal("80000.50")]


async def test_voiding_a_schedule_deletes_its_drafts_and_leaves_posted_invoices(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    project, _ = await erp.create_project(project_command("opp-ms-2"))
    schedule, _ = await erp.create_billing_schedule(project.id, milestone_schedule("opp-ms-2.billing"))
    first = schedule_drafts(sandbox, "opp-ms-2.billing")[0]
    posted = await erp.http.send(
        "POST", f"companies({DE_COMPANY_ID})/salesInvoices({first['id']})/Microsoft.NAV.post"
    )
    assert posted.status_code == 204

    voided = await erp.void_billing_schedule(schedule.id)
    assert voided.voided is True
    remaining = schedule_drafts(sandbox, "opp-ms-2.billing")
    assert [(r["id"], r["status"]) for r in remaining] == [(first["id"], "Open")]
    assert [line.description for line in voided.lines] == ["Discovery"]

    again = await erp.void_billing_schedule(schedule.id)
    assert again.voided is True
    read = await erp.get_billing_schedule(schedule.id)
    assert read.voided is True
    assert len(await sandbox.requests("/salesInvoices(", method="DELETE")) == 1


async def test_a_time_and_materials_schedule_makes_nothing(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    before = len(sandbox.records("salesInvoices"))
    command = BillingScheduleCreate(
        external_key="opp.tm.billing", billing_model=BillingModel.TIME_AND_MATERIALS, currency="EUR"
    )
    schedule, created = await erp.create_billing_schedule(DEMO_PROJECT_ID, command)
    assert created is True
    assert schedule.lines == []
    assert schedule.voided is False
    assert len(sandbox.records("salesInvoices")) == before
    read = await erp.get_billing_schedule(schedule.id)
    assert (read.id, read.billing_model, read.currency, read.lines) == (
        schedule.id,
        BillingModel.TIME_AND_MATERIALS,
        "EUR",
        [],
    )
    voided = await erp.void_billing_schedule(schedule.id)
    assert voided.voided is False  # nothing to void: documented
    assert len(sandbox.records("salesInvoices")) == before


async def test_schedule_refusals_and_unknown_ids(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    # Business Central's project names no customer: one this adapter was not given cannot be billed.
    with pytest.raises(VendorRejected) as refused:
        await erp.create_billing_schedule(DEMO_PROJECT_ID, milestone_schedule("opp.unknown.billing"))
    assert refused.value.vendor_code == "ProjectCustomerUnknown"
    untimed = BillingScheduleCreate(
        external_key="opp.untimed",
        billing_model=BillingModel.MILESTONE,
        currency="EUR",
        lines=[BillingScheduleLine(date=dt.date(2026, 5, 1), description="Time")],
    )
    with pytest.raises(VendorRejected) as no_amount:
        await erp.create_billing_schedule(DEMO_PROJECT_ID, untimed)
    assert no_amount.value.vendor_code == "NotSupported"
    for bad in ("1", "bs.M.EUR.2.AAAAAAAAAA.short"):
        with pytest.raises(NotFound):
            await erp.get_billing_schedule(bad)
        with pytest.raises(NotFound):
            await erp.void_billing_schedule(bad)
    with pytest.raises(NotFound):
        await erp.create_billing_schedule("00000000-0000-0000-0000-000000000001", milestone_schedule())


# --- invoices ----------------------------------------------------------------------------------------


async def test_get_invoice_with_lines_and_exact_money(erp: BusinessCentralErp) -> None:
    invoice = await erp.get_invoice(OPEN_INVOICE_ID)
    paid = await erp.get_invoice(PAID_INVOICE_ID)
    partly = await erp.get_invoice(PARTIALLY_PAID_INVOICE_ID)
    assert invoice.status is InvoiceStatus.POSTED
    assert invoice.customer_id == MUELLER_CUSTOMER_ID
    # total and balance are what the customer owes: the lines' 14,440.50 and 19 % VAT.
    assert invoice.subtotal is not None
    assert invoice.tax is not None
    assert (invoice.subtotal.amount, invoice.subtotal.currency) == (Decimal("14440.50"), "EUR")
    assert invoice.subtotal.amount == sum(line.amount for line in invoice.lines)
    assert (invoice.tax.amount, invoice.tax.currency) == (Decimal("2743.70"), "EUR")
    assert invoice.total.amount == Decimal("17184.20") == invoice.subtotal.amount + invoice.tax.amount
    assert invoice.total.currency == "EUR"
    assert invoice.balance.amount == Decimal("17184.20")
    assert [line.unit_price for line in invoice.lines] == [Decimal("165.00"), Decimal("1240.50")]
    assert invoice.external_key == "PR00010-2026-02"
    assert paid.status is InvoiceStatus.PAID
    assert partly.status is InvoiceStatus.PARTIALLY_PAID
    assert partly.balance.amount == Decimal("12852.00")  # 60 % of 18,000.00 and its 19 % VAT


async def test_create_invoice_twice_is_one_posted_invoice(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    invoice, created = await erp.create_invoice(invoice_command("run-2026-03.mueller"))
    again, created_again = await erp.create_invoice(invoice_command("run-2026-03.mueller"))
    stored = sandbox.records("salesInvoices", externalDocumentNumber="RUN-2026-03.MUELLER")
    assert created is True
    assert created_again is False
    assert again.id == invoice.id
    assert invoice.status is InvoiceStatus.POSTED
    assert invoice.number is not None
    assert invoice.number.isdigit()
    # 7.5 x 225.10 + 0.10, no float on the way; 19 % VAT on the sum (320.7865).
    assert invoice.subtotal is not None
    assert invoice.tax is not None
    assert invoice.subtotal.amount == Decimal("1688.35")
    assert invoice.tax.amount == Decimal("320.79")
    assert invoice.total.amount == Decimal("2009.14")
    assert [line.amount for line in invoice.lines] == [Decimal("1688.25"), Decimal("0.10")]
    assert invoice.external_key == "run-2026-03.mueller"
    assert len(stored) == 1
    assert stored[0]["status"] == "Open"


async def test_an_invoice_answers_its_external_key_as_stratum_wrote_it(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    """externalDocumentNumber is a Code[35] field ("salesInvoice resource type", API v2.0): Business
    Central keeps it upper-cased. Reads answer the key as Stratum gave it, however BC stores it; the look
    before create compares it case-insensitively."""
    invoice, _ = await erp.create_invoice(invoice_command("bill:3001:2026-02"))
    (stored,) = sandbox.records("salesInvoices", externalDocumentNumber="BILL:3001:2026-02")
    assert stored["salesInvoiceLines"][0]["description"] == "Key: bill:3001:2026-02"
    assert (await erp.get_invoice(invoice.id)).external_key == "bill:3001:2026-02"
    listed = await erp.list_invoices(InvoiceFilter(customer_id=MUELLER_CUSTOMER_ID), limit=1000)
    assert [i.external_key for i in listed.items if i.id == invoice.id] == ["bill:3001:2026-02"]
    # The same key in another case is the same invoice (never a second one), answered as this call gave it.
    upper, created = await erp.create_invoice(invoice_command("BILL:3001:2026-02"))
    assert (upper.id, created, upper.external_key) == (invoice.id, False, "BILL:3001:2026-02")
    assert len(sandbox.records("salesInvoices", externalDocumentNumber="BILL:3001:2026-02")) == 1
    # A key line someone edited to name another key is not believed: the stored number is answered.
    stored["salesInvoiceLines"][0]["description"] = "Key: bill:9999:2026-02"
    assert (await erp.get_invoice(invoice.id)).external_key == "BILL:3001:2026-02"


async def test_a_key_longer_than_the_code_field_is_never_truncated(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    """A key over 35 characters would be cut by the Code[35] field (two keys sharing their first 35
    characters would then be one invoice): it is stored as a 35-character hash, and read back whole."""
    long_a = "bill:" + "0123456789abcdef" * 4 + ":2026-02"
    long_b = long_a.replace(":2026-02", ":2026-03")
    assert long_a.upper()[:35] == long_b.upper()[:35]
    a, _ = await erp.create_invoice(invoice_command(long_a))
    b, _ = await erp.create_invoice(invoice_command(long_b))
    again, created = await erp.create_invoice(invoice_command(long_a))
    assert a.id != b.id
    assert (again.id, created) == (a.id, False)
    stored = sandbox.state.records["salesInvoices"][a.id]
    number = stored["externalDocumentNumber"]
    assert number == business_key(long_a, 35)
    assert len(number) <= 35
    assert not long_a.upper().startswith(number)
    assert (await erp.get_invoice(a.id)).external_key == long_a
    assert (await erp.get_invoice(b.id)).external_key == long_b


async def test_a_lost_invoice_create_then_a_retry_makes_exactly_one(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    await sandbox.fault(kind="lost", method="POST", path_pattern="/salesInvoices$", latency_ms=10, times=1)
    invoice, created = await erp.create_invoice(invoice_command("run-lost"))
    assert created is True
    assert invoice.status is InvoiceStatus.POSTED
    assert len(sandbox.records("salesInvoices", externalDocumentNumber="RUN-LOST")) == 1


async def test_a_draft_left_by_an_earlier_attempt_is_posted_not_made_again(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    await sandbox.fault(kind="error", status=503, method="POST", path_pattern="Microsoft.NAV.post", times=1)
    with pytest.raises(VendorUnavailable):
        await erp.create_invoice(invoice_command("run-draft"))
    assert sandbox.records("salesInvoices", externalDocumentNumber="RUN-DRAFT")[0]["status"] == "Draft"
    invoice, created = await erp.create_invoice(invoice_command("run-draft"))
    assert created is False
    assert invoice.status is InvoiceStatus.POSTED
    assert len(sandbox.records("salesInvoices", externalDocumentNumber="RUN-DRAFT")) == 1


async def test_an_invoice_key_of_another_customer_is_refused(erp: BusinessCentralErp) -> None:
    await erp.create_invoice(invoice_command("run-shared-key"))
    with pytest.raises(VendorRejected) as refused:
        await erp.create_invoice(invoice_command("run-shared-key", customer_id=INITECH_CUSTOMER_ID))
    assert refused.value.vendor_code == "DUPLICATE_KEY"


async def test_list_invoices_by_status_and_customer_with_paging(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    async def every(query: InvoiceFilter, limit: int) -> list[str]:
        ids: list[str] = []
        cursor: str | None = None
        while True:
            page = await erp.list_invoices(query, limit=limit, cursor=cursor)
            ids += [invoice.id for invoice in page.items]
            assert len(page.items) <= limit
            if page.next_cursor is None:
                return ids
            cursor = page.next_cursor

    everything = await every(InvoiceFilter(), 7)
    posted = await every(InvoiceFilter(status=InvoiceStatus.POSTED), 4)
    partly = await every(InvoiceFilter(status=InvoiceStatus.PARTIALLY_PAID), 3)
    paid = await every(InvoiceFilter(status=InvoiceStatus.PAID), 10)
    muellers = await every(InvoiceFilter(customer_id=MUELLER_CUSTOMER_ID), 2)
    stored = {invoice["id"]: invoice for invoice in sandbox.records("salesInvoices", companyId=DE_COMPANY_ID)}
    open_ones = [i for i in stored.values() if i["status"] == "Open"]
    assert len(everything) == len(set(everything)) == INVOICE_COUNT_DE
    assert set(posted) == {i["id"] for i in open_ones if i["remainingAmount"] == i["totalAmountIncludingTax"]}
    assert set(partly) == {i["id"] for i in open_ones if i["remainingAmount"] < i["totalAmountIncludingTax"]}
    assert PARTIALLY_PAID_INVOICE_ID in partly
    assert set(paid) == {i["id"] for i in stored.values() if i["status"] == "Paid"}
    assert set(muellers) == {i["id"] for i in stored.values() if i["customerId"] == MUELLER_CUSTOMER_ID}
    page = await erp.list_invoices(InvoiceFilter(status=InvoiceStatus.PAID), limit=2)
    with pytest.raises(InvalidCursor):
        await erp.list_invoices(InvoiceFilter(status=InvoiceStatus.POSTED), limit=2, cursor=page.next_cursor)
    assert (await erp.list_invoices(InvoiceFilter(customer_id="1' or 1 eq 1"), limit=5)).items == []


# --- payments ----------------------------------------------------------------------------------------


async def test_payments_by_invoice_and_by_customer(erp: BusinessCentralErp) -> None:
    by_invoice = await erp.list_payments(invoice_id=PARTIALLY_PAID_INVOICE_ID, limit=10)
    by_customer = await erp.list_payments(customer_id=MUELLER_CUSTOMER_ID, limit=50)
    assert [payment.id for payment in by_invoice.items] == [PARTIAL_PAYMENT_ID]
    payment = by_invoice.items[0]
    assert payment.amount.amount == Decimal("8568.00")  # 40 % of 21,420.00 (18,000.00 and 19 % VAT)
    assert payment.amount.currency == "EUR"
    assert payment.invoice_ids == [PARTIALLY_PAID_INVOICE_ID]
    assert payment.customer_id == INITECH_CUSTOMER_ID
    assert PAYMENT_ID in [p.id for p in by_customer.items]
    assert all(p.customer_id == MUELLER_CUSTOMER_ID for p in by_customer.items)


# --- limits and faults -------------------------------------------------------------------------------


async def test_429_retry_after_is_honoured_then_unavailable(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    body = '{"error":{"code":"TooManyRequests","message":"Too many requests reached."}}'
    await sandbox.fault(
        kind="error",
        status=429,
        body=body,
        headers={"Retry-After": "2"},
        path_pattern="/customers\\(",
        times=1,
    )
    customer = await erp.get_customer(MUELLER_CUSTOMER_ID)
    assert customer.id == MUELLER_CUSTOMER_ID
    assert sandbox.sleeps == [2.0]
    await sandbox.fault(
        kind="error", status=429, body=body, headers={"Retry-After": "120"}, path_pattern="/customers\\("
    )
    with pytest.raises(VendorUnavailable, match="TooManyRequests") as unavailable:
        await erp.get_customer(MUELLER_CUSTOMER_ID)
    assert unavailable.value.retry_after == 120.0  # longer than we wait: the caller comes back later


async def test_the_real_rate_limit_is_unavailable_with_retry_after() -> None:
    box = Sandbox(create_business_central_sandbox(BusinessCentralSandboxSettings(rate_limit_requests=3)))
    try:
        erp = box.erp(retry=RetryPolicy(max_attempts=1))
        for _ in range(2):  # the company lookup and two reads use up the window
            await erp.get_customer(MUELLER_CUSTOMER_ID)
        with pytest.raises(VendorUnavailable) as limited:
            await erp.get_customer(MUELLER_CUSTOMER_ID)
        assert limited.value.retry_after is not None
        assert limited.value.retry_after > 0
        assert box.state.throttled == 1
    finally:
        await box.close()


async def test_faults_map_to_the_ports_errors(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    await erp.get_customer(MUELLER_CUSTOMER_ID)
    await sandbox.fault(kind="malformed", path_pattern="/customers\\(", times=1)
    with pytest.raises(VendorBadResponse):
        await erp.get_customer(MUELLER_CUSTOMER_ID)
    await sandbox.fault(kind="outage", status=503, path_pattern="/customers\\(", times=3)
    with pytest.raises(VendorUnavailable):
        await erp.get_customer(MUELLER_CUSTOMER_ID)
    await sandbox.fault(kind="error", status=500, path_pattern="/projects$", times=1)
    with pytest.raises(VendorBadResponse):
        await erp.create_project(project_command("opp-server-error"))


async def test_a_lost_create_whose_lookup_fails_too_stays_a_timeout(sandbox: Sandbox) -> None:
    erp = sandbox.erp(transport=LoseThenFail(sandbox.transport), retry=RetryPolicy(max_attempts=1))
    with pytest.raises(VendorTimeout):
        await erp.create_project(project_command("opp-timeout"))
    assert len(sandbox.records("projects", number="OPP-TIMEOUT")) == 1  # made, and found next time
    again, created = await sandbox.erp().create_project(project_command("opp-timeout"))
    assert created is False
    assert again.external_key == "opp-timeout"


# --- wiring ------------------------------------------------------------------------------------------


async def test_the_bootstrap_serves_the_erp_from_the_mounted_sandbox(tmp_path: Any) -> None:
    from apis.gateway import build_sandbox_mounts
    from system_apis.bootstrap import build_adapters

    settings = load_settings({}, data_dir=str(tmp_path), erp_vendor="business_central")
    adapters = build_adapters(settings, build_sandbox_mounts(settings))
    try:
        assert adapters.erp.vendor == "business_central"
        customer = await adapters.erp.find_customer(salesforce.GERMAN_ACCOUNT_ID)
        assert customer is not None
        assert customer.id == INITECH_CUSTOMER_ID
    finally:
        for close in adapters.closers:
            await close()


async def test_a_schedule_naming_its_customer_needs_nothing_remembered(sandbox: Sandbox) -> None:
    # The project was created by another process (a worker that died after that step): this adapter has
    # never seen it, and the schedule names its customer, as the activation workflow's does.
    project, _ = await sandbox.erp().create_project(project_command("opp-ms-restart"))
    fresh = sandbox.erp()
    command = msgspec.structs.replace(
        milestone_schedule("opp-ms-restart.billing"), customer_id=INITECH_CUSTOMER_ID
    )
    schedule, created = await fresh.create_billing_schedule(project.id, command)
    assert created is True
    assert schedule.project_id == project.id
    drafts = schedule_drafts(sandbox, "opp-ms-restart.billing")
    assert [d["customerId"] for d in drafts] == [INITECH_CUSTOMER_ID] * 2


# --- change subscriptions (webhooks) -----------------------------------------------------------------

HOOK_URL = "https://stratum.example.com/process/v1/erp-notifications/business-central"


def echo_handshakes(sandbox: Sandbox, handshakes: list[str] | None = None) -> None:
    """Stratum's notification route as Business Central meets it: the handshake's token echoed (200)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if handshakes is not None:
            handshakes.append(str(request.url.copy_with(query=None)))
        return httpx.Response(200, text=request.url.params.get("validationToken", ""))

    sandbox.state.webhooks.transport = httpx.MockTransport(answer)


def subscriptions_by_set(sandbox: Sandbox) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for subscription in sandbox.state.webhooks.subscriptions.values():
        found.setdefault(subscription.resource.rsplit("/", 1)[-1], []).append(subscription)
    return found


async def test_change_subscriptions_are_looked_up_before_they_are_made(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    """salesInvoices and salesCreditMemos ("Working with webhooks in Dynamics 365 Business Central", list
    of supported entities; customerPayments is not one), each once, however often Stratum asks."""
    handshakes: list[str] = []
    echo_handshakes(sandbox, handshakes)
    made = await erp.ensure_change_subscriptions(HOOK_URL, "secret-1")
    assert [(s.resource, s.outcome) for s in made] == [
        ("salesInvoices", "created"),
        ("salesCreditMemos", "created"),
    ]
    assert handshakes == [HOOK_URL, HOOK_URL]
    again = await erp.ensure_change_subscriptions(HOOK_URL, "secret-1")
    assert [s.outcome for s in again] == ["kept", "kept"]
    assert [s.subscription_id for s in again] == [s.subscription_id for s in made]
    stored = subscriptions_by_set(sandbox)
    assert sorted(stored) == ["salesCreditMemos", "salesInvoices"]
    assert all(len(subs) == 1 for subs in stored.values())
    assert stored["salesInvoices"][0].resource == f"companies({DE_COMPANY_ID})/salesInvoices"
    assert len(await sandbox.requests("/subscriptions", method="POST")) == 2
    # Another URL (another gateway) is another subscriber: its own subscriptions.
    other = await erp.ensure_change_subscriptions("https://other.example.com/hook", "secret-2")
    assert [s.outcome for s in other] == ["created", "created"]
    assert len(sandbox.state.webhooks.subscriptions) == 4


async def test_a_subscription_near_its_expiry_or_with_another_client_state_is_renewed(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    """Renewal is a PATCH with If-Match ("Update subscriptions"), which handshakes again and moves
    expirationDateTime to three days from now; a rotated client state is written the same way."""
    echo_handshakes(sandbox)
    await erp.ensure_change_subscriptions(HOOK_URL, "secret-1")
    invoices = subscriptions_by_set(sandbox)["salesInvoices"][0]
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=12)
    invoices.expires = soon
    renewed = await erp.ensure_change_subscriptions(HOOK_URL, "secret-1")
    assert [s.outcome for s in renewed] == ["renewed", "kept"]
    assert invoices.expires > soon + dt.timedelta(days=2)
    assert renewed[0].expires_at is not None
    assert renewed[0].expires_at > soon + dt.timedelta(days=2)
    assert [m for m, _, status in await sandbox.requests("/subscriptions(", method="PATCH") if status == 200]

    rotated = await erp.ensure_change_subscriptions(HOOK_URL, "secret-2")
    assert [s.outcome for s in rotated] == ["renewed", "renewed"]
    assert {s.client_state for s in sandbox.state.webhooks.subscriptions.values()} == {"secret-2"}
    assert len(sandbox.state.webhooks.subscriptions) == 2


async def test_duplicate_subscriptions_are_deleted_keeping_the_longest_lived(
    sandbox: Sandbox, erp: BusinessCentralErp
) -> None:
    """Two workers that looked at the same moment may both have subscribed: Business Central documents no
    refusal of a duplicate, so the extra one is deleted (DELETE with If-Match)."""
    echo_handshakes(sandbox)
    await erp.ensure_change_subscriptions(HOOK_URL, "secret-1")
    webhooks = sandbox.state.webhooks
    first = subscriptions_by_set(sandbox)["salesInvoices"][0]
    extra = webhooks.add(HOOK_URL, first.resource, "secret-1")
    extra.expires = first.expires - dt.timedelta(minutes=5)
    result = await erp.ensure_change_subscriptions(HOOK_URL, "secret-1")
    assert [s.outcome for s in result] == ["kept", "kept"]
    assert [s.id for s in subscriptions_by_set(sandbox)["salesInvoices"]] == [first.id]


async def test_a_lost_subscribe_answer_is_found_not_repeated(sandbox: Sandbox) -> None:
    echo_handshakes(sandbox)

    class LoseFirstSubscribe(httpx.AsyncBaseTransport):
        lost = False

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await sandbox.transport.handle_async_request(request)
            if request.method == "POST" and request.url.path.endswith("/subscriptions") and not self.lost:
                self.lost = True
                await response.aread()
                await response.aclose()
                raise httpx.ReadTimeout("the answer was lost on the way back", request=request)
            return response

    erp = sandbox.erp(transport=LoseFirstSubscribe())
    made = await erp.ensure_change_subscriptions(HOOK_URL, "secret-1")
    assert [s.outcome for s in made] == ["created", "created"]
    assert all(len(subs) == 1 for subs in subscriptions_by_set(sandbox).values())


async def test_a_failed_handshake_refuses_the_subscription(sandbox: Sandbox, erp: BusinessCentralErp) -> None:
    sandbox.state.webhooks.transport = httpx.MockTransport(lambda request: httpx.Response(404))
    with pytest.raises(VendorRejected, match="validation token"):
        await erp.ensure_change_subscriptions(HOOK_URL, "secret-1")
    assert sandbox.state.webhooks.subscriptions == {}
