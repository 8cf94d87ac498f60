"""The Salesforce adapter against the Salesforce sandbox, in process over ``httpx.ASGITransport``.

Everything the adapter does is observable here the way it would be against the real service: the OAuth
token flow, session expiry, SOQL paging across batches, error arrays, API limits and injected faults.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from structlog.testing import capture_logs

from apis.config import SalesforceSettings
from contracts.models import ActivationStatus, BillingModel, OpportunityActivationUpdate, OpportunityStage
from sandboxes.salesforce import SalesforceSandboxSettings, create_salesforce_sandbox
from sandboxes.salesforce.data import (
    BIG_ACCOUNT_ID,
    BIG_ACCOUNT_OPPORTUNITY_COUNT,
    DEMO_ACCOUNT_ID,
    OPEN_OPPORTUNITY_ID,
    READY_MILESTONE_OPPORTUNITY_ID,
    READY_OPPORTUNITY_ID,
    READY_OPPORTUNITY_IDS,
    SUBSIDIARY_ACCOUNT_ID,
)
from system_apis.crm.port import CrmPort
from system_apis.crm.salesforce import (
    InvalidCursor,
    SalesforceCrm,
    child_records_by_project_query,
    child_records_query,
    contact_query,
    customer_query,
    decode_cursor,
    encode_cursor,
    opportunity_by_project_query,
    opportunity_query,
    soql_datetime,
    soql_quote,
)
from system_apis.crm.salesforce_mapping import (
    MILESTONE_FIELDS,
    MILESTONE_OBJECT,
    RATE_CARD_LINE_FIELDS,
    RATE_CARD_LINE_OBJECT,
)
from system_apis.errors import (
    NotFound,
    VendorBadResponse,
    VendorRejected,
    VendorTimeout,
    VendorUnavailable,
)
from system_apis.vendor_http import BreakerPolicy, RetryPolicy

BASE_URL = "http://salesforce.test"
DATA = "/services/data/v61.0"
MISSING_ACCOUNT_ID = "001Dn00000ZZZZZIAA"


class Sandbox:
    """The sandbox app plus an admin client and a way to build adapters pointed at it."""

    def __init__(self, app: Litestar) -> None:
        self.app = app
        self.transport = httpx.ASGITransport(app=app)
        self.admin = httpx.AsyncClient(transport=self.transport, base_url=BASE_URL)
        self.sleeps: list[float] = []
        self.adapters: list[SalesforceCrm] = []

    async def no_sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def crm(
        self,
        *,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        correlation_id: Callable[[], str | None] = lambda: None,
        **settings: Any,
    ) -> SalesforceCrm:
        crm = SalesforceCrm(
            SalesforceSettings(base_url=BASE_URL, **settings),
            transport=self.transport,
            retry=retry or RetryPolicy(max_attempts=3),
            breaker=breaker or BreakerPolicy(failure_threshold=0),
            correlation_id=correlation_id,
            sleep=self.no_sleep,
        )
        self.adapters.append(crm)
        return crm

    async def fault(self, **rule: Any) -> None:
        rule.setdefault("path_pattern", "^/services/data/")
        response = await self.admin.post("/__sandbox/faults", json=rule)
        assert response.status_code == 201, response.text

    async def requests(self) -> list[dict[str, Any]]:
        response = await self.admin.get("/__sandbox/stats")
        requests: list[dict[str, Any]] = response.json()["requests"]
        return requests

    async def data_requests(self) -> list[dict[str, Any]]:
        return [r for r in await self.requests() if r["path"].startswith("/services/data/")]

    def records(self, sobject: str) -> dict[str, dict[str, Any]]:
        """The org's records of one object, straight from the sandbox (empty if it has no such object)."""
        records: dict[str, dict[str, Any]] = self.app.state.sandbox.records.get(sobject, {})
        return records

    def opportunities_of(self, account_id: str) -> list[dict[str, Any]]:
        return [r for r in self.records("Opportunity").values() if r["AccountId"] == account_id]

    async def raw_query(self, soql: str) -> httpx.Response:
        """Run SOQL straight against the sandbox, as any other Salesforce client would."""
        basic = base64.b64encode(b"stratum-sandbox:stratum-sandbox-secret").decode()
        token = await self.admin.post(
            "/services/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
        bearer = token.json()["access_token"]
        return await self.admin.get(
            f"{DATA}/query/", params={"q": soql}, headers={"Authorization": f"Bearer {bearer}"}
        )

    async def close(self) -> None:
        for crm in self.adapters:
            await crm.close()
        await self.admin.aclose()


async def _sandbox(settings: SalesforceSandboxSettings | None = None) -> Sandbox:
    return Sandbox(create_salesforce_sandbox(settings or SalesforceSandboxSettings()))


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = await _sandbox()
    yield box
    await box.close()


@pytest.fixture
async def crm(sandbox: Sandbox) -> SalesforceCrm:
    return sandbox.crm()


# --- reads ---------------------------------------------------------------------------------------------


async def test_the_adapter_is_a_crm_port(crm: SalesforceCrm) -> None:
    assert isinstance(crm, CrmPort)
    assert crm.vendor == "salesforce"


async def test_get_customer(crm: SalesforceCrm) -> None:
    customer = await crm.get_customer(DEMO_ACCOUNT_ID)
    assert customer.id == DEMO_ACCOUNT_ID
    assert customer.name == "Northwind Health Systems"
    assert customer.currency == "USD"
    assert customer.legal_entity == "US01"
    assert customer.tax_jurisdiction == "US-NY"
    assert customer.billing_address is not None
    assert customer.billing_address.city == "New York"
    assert customer.updated_at is not None
    assert customer.updated_at.utcoffset() is not None
    assert customer.system_ids.crm == DEMO_ACCOUNT_ID


async def test_get_customer_with_a_15_character_id(crm: SalesforceCrm) -> None:
    customer = await crm.get_customer(DEMO_ACCOUNT_ID[:15])
    assert customer.id == DEMO_ACCOUNT_ID


async def test_a_subsidiary_names_its_parent(crm: SalesforceCrm) -> None:
    assert (await crm.get_customer(SUBSIDIARY_ACCOUNT_ID)).parent_id == BIG_ACCOUNT_ID


async def test_get_opportunity(crm: SalesforceCrm) -> None:
    opportunity = await crm.get_opportunity(READY_OPPORTUNITY_ID)
    assert opportunity.id == READY_OPPORTUNITY_ID
    assert opportunity.customer_id == DEMO_ACCOUNT_ID
    assert opportunity.stage is OpportunityStage.CLOSED_WON
    assert opportunity.is_won
    assert opportunity.is_closed
    assert opportunity.amount == Decimal("125000.5")
    assert isinstance(opportunity.amount, Decimal)
    assert opportunity.currency == "USD"
    assert opportunity.billing_model is BillingModel.TIME_AND_MATERIALS
    assert opportunity.legal_entity == "US01"
    assert opportunity.system_ids.crm == READY_OPPORTUNITY_ID


async def test_unknown_records_are_not_found(crm: SalesforceCrm) -> None:
    with pytest.raises(NotFound):
        await crm.get_customer(MISSING_ACCOUNT_ID)
    with pytest.raises(NotFound):
        await crm.get_opportunity(DEMO_ACCOUNT_ID)  # an Account id is no Opportunity


@pytest.mark.parametrize("bad_id", ["", "abc", "001Dn000005uXjzIAE1", "001Dn000005uX-zIAE", "../../limits"])
async def test_malformed_ids_are_not_found_without_calling_salesforce(
    sandbox: Sandbox, crm: SalesforceCrm, bad_id: str
) -> None:
    with pytest.raises(NotFound):
        await crm.get_customer(bad_id)
    with pytest.raises(NotFound):
        await crm.get_opportunity(bad_id)
    with pytest.raises(NotFound):
        await crm.list_opportunities(bad_id, limit=10)
    with pytest.raises(NotFound):
        await crm.list_contacts(bad_id, limit=10)
    with pytest.raises(NotFound):
        await crm.update_opportunity_activation(bad_id, ACTIVATED)
    assert await sandbox.requests() == []


ACTIVATED = OpportunityActivationUpdate(
    activation_status=ActivationStatus.ACTIVATED,
    psa_project_id="4417",
    erp_project_id="JOB-7731",
    erp_customer_id="CUST-118",
)


# --- paging --------------------------------------------------------------------------------------------


async def _all_pages(
    crm: SalesforceCrm, account_id: str, *, limit: int, stage: OpportunityStage | None = None
) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await crm.list_opportunities(account_id, limit=limit, cursor=cursor, stage=stage)
        pages.append([item.id for item in page.items])
        if page.next_cursor is None:
            return pages
        assert len(page.items) == limit
        cursor = page.next_cursor
        assert len(pages) < 100, "paging does not end"


async def test_paging_through_the_big_account_gives_every_opportunity_once(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    pages = await _all_pages(crm, BIG_ACCOUNT_ID, limit=50)
    ids = [item for page in pages for item in page]
    assert [len(page) for page in pages] == [50, 50, 50, 50, 30]
    assert len(ids) == len(set(ids)) == BIG_ACCOUNT_OPPORTUNITY_COUNT
    assert set(ids) == {r["Id"] for r in sandbox.opportunities_of(BIG_ACCOUNT_ID)}


async def test_a_page_spanning_several_query_batches_follows_next_records_url() -> None:
    # A sandbox that batches by 20 (real Salesforce may also return smaller batches than asked for).
    box = await _sandbox(SalesforceSandboxSettings(max_batch_size=20))
    try:
        crm = box.crm()
        pages = await _all_pages(crm, BIG_ACCOUNT_ID, limit=50)
        ids = [item for page in pages for item in page]
        assert len(ids) == len(set(ids)) == BIG_ACCOUNT_OPPORTUNITY_COUNT
        followed = [r for r in await box.data_requests() if r["path"].startswith(f"{DATA}/query/01g")]
        assert followed, "the adapter never followed nextRecordsUrl"
    finally:
        await box.close()


async def test_largest_page_needs_the_second_batch_for_its_look_ahead_record(crm: SalesforceCrm) -> None:
    first = await crm.list_opportunities(BIG_ACCOUNT_ID, limit=200)
    assert len(first.items) == 200
    assert first.next_cursor is not None
    rest = await crm.list_opportunities(BIG_ACCOUNT_ID, limit=200, cursor=first.next_cursor)
    assert len(rest.items) == BIG_ACCOUNT_OPPORTUNITY_COUNT - 200
    assert rest.next_cursor is None
    assert not {o.id for o in first.items} & {o.id for o in rest.items}


async def test_pages_are_stable_and_stateless(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    first = await crm.list_opportunities(BIG_ACCOUNT_ID, limit=25)
    again = await crm.list_opportunities(BIG_ACCOUNT_ID, limit=25)
    assert [o.id for o in first.items] == [o.id for o in again.items]
    assert first.next_cursor is not None
    assert first.next_cursor == again.next_cursor
    # Nothing about a cursor is held by the adapter: another instance (another worker) continues it.
    second = await crm.list_opportunities(BIG_ACCOUNT_ID, limit=25, cursor=first.next_cursor)
    elsewhere = await sandbox.crm().list_opportunities(BIG_ACCOUNT_ID, limit=25, cursor=first.next_cursor)
    assert [o.id for o in second.items] == [o.id for o in elsewhere.items]
    assert not {o.id for o in first.items} & {o.id for o in second.items}


async def test_an_account_with_few_opportunities_fits_one_page(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    page = await crm.list_opportunities(DEMO_ACCOUNT_ID, limit=200)
    assert page.next_cursor is None
    assert {o.id for o in page.items} == {r["Id"] for r in sandbox.opportunities_of(DEMO_ACCOUNT_ID)}
    assert all(o.customer_id == DEMO_ACCOUNT_ID for o in page.items)


async def test_an_unknown_account_has_an_empty_page(crm: SalesforceCrm) -> None:
    page = await crm.list_opportunities(MISSING_ACCOUNT_ID, limit=10)
    assert page.items == []
    assert page.next_cursor is None


@pytest.mark.parametrize(
    ("stage", "picklist"),
    [(OpportunityStage.CLOSED_WON, "Closed Won"), (OpportunityStage.NEGOTIATION, "Negotiation/Review")],
)
async def test_stage_filter(
    sandbox: Sandbox, crm: SalesforceCrm, stage: OpportunityStage, picklist: str
) -> None:
    expected = {r["Id"] for r in sandbox.opportunities_of(BIG_ACCOUNT_ID) if r["StageName"] == picklist}
    assert expected, "the seed should have some of these"
    ids = [i for page in await _all_pages(crm, BIG_ACCOUNT_ID, limit=20, stage=stage) for i in page]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected


async def test_stage_other_means_none_of_the_known_stages(crm: SalesforceCrm) -> None:
    # The seed uses only standard stages, so nothing is OTHER; the query must still be valid SOQL.
    page = await crm.list_opportunities(BIG_ACCOUNT_ID, limit=10, stage=OpportunityStage.OTHER)
    assert page.items == []


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64!",
        "====",
        base64.urlsafe_b64encode(b"x' OR Name != 'y").decode(),
        base64.urlsafe_b64encode(b"x' OR Name != 'y").decode().rstrip("="),
        base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="),
        base64.urlsafe_b64encode(b"hello").decode().rstrip("="),
        "A" * 500,
    ],
)
async def test_a_bad_cursor_is_rejected_before_calling_salesforce(
    sandbox: Sandbox, crm: SalesforceCrm, cursor: str
) -> None:
    with pytest.raises(InvalidCursor):
        await crm.list_opportunities(BIG_ACCOUNT_ID, limit=10, cursor=cursor)
    assert isinstance(InvalidCursor("x"), ValueError)
    assert await sandbox.requests() == []


def test_cursor_round_trip() -> None:
    assert decode_cursor(encode_cursor("006Dn00000R8B9IIAV")) == "006Dn00000R8B9IIAV"
    assert "=" not in encode_cursor("006Dn00000R8B9IIAV")


# --- SOQL injection ------------------------------------------------------------------------------------


def test_soql_quote_escapes_every_special_character() -> None:
    assert soql_quote("plain") == "'plain'"
    assert soql_quote("x' OR Name != 'y") == "'x\\' OR Name != \\'y'"
    assert soql_quote('a"b') == "'a\\\"b'"
    assert soql_quote("back\\slash") == "'back\\\\slash'"
    assert soql_quote("\n\r\t\f\b") == "'\\n\\r\\t\\f\\b'"
    # The backslash is escaped first, so an attacker's own escape cannot un-escape our quote.
    assert soql_quote("\\'") == "'\\\\\\''"


async def test_an_injection_attempt_as_an_account_id_never_reaches_salesforce(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    with pytest.raises(NotFound):
        await crm.list_opportunities("x' OR Name != 'y", limit=10)
    assert await sandbox.requests() == []


ATTACKS = ["x' OR Name != 'y", "x\\' OR Name != 'y", "x' OR Name != '", "x\\"]


@pytest.mark.parametrize("attack", ATTACKS)
async def test_quoted_values_stay_literals_in_a_real_soql_parser(sandbox: Sandbox, attack: str) -> None:
    naive = await sandbox.raw_query(f"SELECT Id FROM Opportunity WHERE Name = '{attack}' LIMIT 500")
    # Unescaped, the value rewrites the query: it matches everything or breaks the syntax.
    assert naive.status_code == 400 or naive.json()["totalSize"] > 0

    quoted = await sandbox.raw_query(
        f"SELECT Id FROM Opportunity WHERE Name = {soql_quote(attack)} LIMIT 500"
    )
    assert quoted.status_code == 200, quoted.text
    assert quoted.json()["totalSize"] == 0


@pytest.mark.parametrize("attack", ATTACKS)
async def test_the_page_query_keeps_an_injected_account_id_one_literal(sandbox: Sandbox, attack: str) -> None:
    answer = await sandbox.raw_query(opportunity_query(attack, limit=499))
    # Salesforce parses the query and then refuses the literal as no valid id: no syntax error, no rows.
    if answer.status_code == 200:
        assert answer.json()["totalSize"] == 0
    else:
        assert answer.status_code == 400
        assert answer.json()[0]["errorCode"] == "INVALID_QUERY_FILTER_OPERATOR"


async def test_every_escapable_character_round_trips_through_the_parser(sandbox: Sandbox) -> None:
    value = "a'b\"c\\d\ne\rf\tg\fh\bi"
    answer = await sandbox.raw_query(f"SELECT Id FROM Opportunity WHERE Name = {soql_quote(value)}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["totalSize"] == 0


# --- auth ----------------------------------------------------------------------------------------------


async def test_a_read_after_the_sandbox_expires_sessions_still_works(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    await crm.get_customer(DEMO_ACCOUNT_ID)
    assert (await sandbox.admin.post("/__sandbox/sessions/expire")).status_code == 204
    customer = await crm.get_customer(DEMO_ACCOUNT_ID)
    assert customer.id == DEMO_ACCOUNT_ID
    requests = await sandbox.requests()
    assert [r["path"] for r in requests].count("/services/oauth2/token") == 2
    assert [r["status"] for r in requests if r["path"].startswith(DATA)] == [200, 401, 200]


async def test_data_calls_go_to_the_instance_url_from_the_token_response(sandbox: Sandbox) -> None:
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.copy_with(query=None)))
        if request.url.path == "/services/oauth2/token":
            return httpx.Response(
                200, json={"access_token": "t", "instance_url": "https://na1.example.my.salesforce.com"}
            )
        return await sandbox.transport.handle_async_request(request)

    crm = SalesforceCrm(
        SalesforceSettings(base_url="https://login.example.com"), transport=httpx.MockTransport(handler)
    )
    try:
        with pytest.raises(VendorUnavailable):  # the sandbox rejects the made-up token: that's fine here
            await crm.get_customer(DEMO_ACCOUNT_ID)
    finally:
        await crm.close()
    assert seen[0] == "https://login.example.com/services/oauth2/token"
    assert seen[1] == f"https://na1.example.my.salesforce.com{DATA}/sobjects/Account/{DEMO_ACCOUNT_ID}"


async def test_an_http_instance_url_on_another_host_is_not_followed(sandbox: Sandbox) -> None:
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.path == "/services/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "instance_url": "http://attacker.example"})
        return httpx.Response(200, json={"Id": DEMO_ACCOUNT_ID, "Name": "ok"})

    crm = SalesforceCrm(
        SalesforceSettings(base_url="http://salesforce.test"), transport=httpx.MockTransport(handler)
    )
    try:
        await crm.get_customer(DEMO_ACCOUNT_ID)
    finally:
        await crm.close()
    assert "attacker.example" not in seen


async def test_refused_client_credentials_are_unavailable(sandbox: Sandbox) -> None:
    crm = sandbox.crm(client_secret="wrong")
    with pytest.raises(VendorUnavailable) as caught:
        await crm.get_customer(DEMO_ACCOUNT_ID)
    assert "credentials rejected" in caught.value.message
    assert "wrong" not in caught.value.message
    assert await sandbox.data_requests() == []


async def test_a_401_that_survives_a_fresh_token_is_credentials_rejected(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    await sandbox.fault(
        kind="error",
        status=401,
        body='[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]',
    )
    with pytest.raises(VendorUnavailable, match="credentials rejected"):
        await crm.get_customer(DEMO_ACCOUNT_ID)
    tokens = [r for r in await sandbox.requests() if r["path"] == "/services/oauth2/token"]
    assert len(tokens) == 2  # first token, then exactly one refresh


# --- faults and error mapping --------------------------------------------------------------------------


async def test_a_brief_503_is_ridden_out_by_retries(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    await sandbox.fault(kind="error", status=503, times=2)
    customer = await crm.get_customer(DEMO_ACCOUNT_ID)
    assert customer.id == DEMO_ACCOUNT_ID
    assert [r["status"] for r in await sandbox.data_requests()] == [503, 503, 200]
    assert len(sandbox.sleeps) == 2


async def test_a_lasting_503_is_unavailable_after_the_retries(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    await sandbox.fault(kind="outage", status=503, headers={"Retry-After": "4"})
    with pytest.raises(VendorUnavailable) as caught:
        await crm.get_customer(DEMO_ACCOUNT_ID)
    assert caught.value.retry_after == 4.0
    assert [r["status"] for r in await sandbox.data_requests()] == [503, 503, 503]
    assert sandbox.sleeps == [4.0, 4.0]


async def test_429_is_retried_after_retry_after(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    await sandbox.fault(kind="error", status=429, times=1, headers={"Retry-After": "2"})
    assert (await crm.get_opportunity(READY_OPPORTUNITY_ID)).id == READY_OPPORTUNITY_ID
    assert sandbox.sleeps == [2.0]


async def test_500_is_a_bad_response_and_not_retried(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    await sandbox.fault(
        kind="error",
        status=500,
        body='[{"message":"An unexpected error occurred","errorCode":"UNKNOWN_EXCEPTION"}]',
    )
    with pytest.raises(VendorBadResponse):
        await crm.get_customer(DEMO_ACCOUNT_ID)
    assert len(await sandbox.data_requests()) == 1


async def test_a_malformed_body_is_a_bad_response(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    await sandbox.fault(kind="malformed")
    with pytest.raises(VendorBadResponse):
        await crm.get_opportunity(READY_OPPORTUNITY_ID)
    with pytest.raises(VendorBadResponse):
        await crm.list_opportunities(BIG_ACCOUNT_ID, limit=10)


async def test_a_body_missing_required_fields_is_a_bad_response(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    await sandbox.fault(kind="error", status=200, body='{"attributes": {"type": "Account"}, "Name": "no id"}')
    with pytest.raises(VendorBadResponse):
        await crm.get_customer(DEMO_ACCOUNT_ID)


async def test_a_hanging_salesforce_times_out(sandbox: Sandbox) -> None:
    crm = sandbox.crm(timeout_seconds=0.2, retry=RetryPolicy(max_attempts=2))
    await crm.get_customer(DEMO_ACCOUNT_ID)  # fetch the token first, so only the data call hangs
    await sandbox.fault(kind="hang", latency_ms=30_000)
    with pytest.raises(VendorTimeout):
        await crm.get_customer(DEMO_ACCOUNT_ID)


async def test_a_bad_query_is_rejected_with_salesforces_error_code(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    await sandbox.fault(
        kind="error",
        status=400,
        path_pattern="/query",
        body='[{"message":"unexpected token: FROM","errorCode":"MALFORMED_QUERY"}]',
    )
    with pytest.raises(VendorRejected) as caught:
        await crm.list_opportunities(BIG_ACCOUNT_ID, limit=10)
    assert caught.value.vendor_code == "MALFORMED_QUERY"
    assert len(await sandbox.data_requests()) == 1


async def test_the_daily_api_limit_is_unavailable_for_an_hour() -> None:
    box = await _sandbox(SalesforceSandboxSettings(daily_api_limit=2))
    try:
        crm = box.crm()
        await crm.get_customer(DEMO_ACCOUNT_ID)
        await crm.get_customer(DEMO_ACCOUNT_ID)
        with pytest.raises(VendorUnavailable) as caught:
            await crm.get_customer(DEMO_ACCOUNT_ID)
        assert caught.value.retry_after == 3600
        assert [r["status"] for r in await box.data_requests()] == [200, 200, 403]  # not retried
    finally:
        await box.close()


async def test_api_usage_is_tracked_and_high_usage_is_logged() -> None:
    box = await _sandbox(SalesforceSandboxSettings(daily_api_limit=10))
    try:
        crm = box.crm()
        assert crm.api_usage is None
        with capture_logs() as logs:
            for _ in range(8):
                await crm.get_customer(DEMO_ACCOUNT_ID)
            assert crm.api_usage is not None
            assert (crm.api_usage.used, crm.api_usage.limit) == (8, 10)
            assert not [e for e in logs if e["event"] == "salesforce_api_usage_high"]
            await crm.get_customer(DEMO_ACCOUNT_ID)
        warnings = [e for e in logs if e["event"] == "salesforce_api_usage_high"]
        assert len(warnings) == 1
        assert warnings[0]["log_level"] == "warning"
        assert (warnings[0]["used"], warnings[0]["limit"]) == (9, 10)
    finally:
        await box.close()


async def test_the_breaker_stops_calls_to_a_failing_salesforce(sandbox: Sandbox) -> None:
    crm = sandbox.crm(breaker=BreakerPolicy(failure_threshold=2, cooldown_seconds=60))
    await sandbox.fault(kind="error", status=500)
    for _ in range(2):
        with pytest.raises(VendorBadResponse):
            await crm.get_customer(DEMO_ACCOUNT_ID)
    with pytest.raises(VendorUnavailable) as caught:
        await crm.get_customer(DEMO_ACCOUNT_ID)
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0
    assert len(await sandbox.data_requests()) == 2


async def test_the_correlation_id_is_sent_to_salesforce(sandbox: Sandbox) -> None:
    seen: list[str | None] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith(DATA):
            seen.append(request.headers.get("X-Correlation-ID"))
        return await sandbox.transport.handle_async_request(request)

    crm = SalesforceCrm(
        SalesforceSettings(base_url=BASE_URL),
        transport=httpx.MockTransport(handler),
        correlation_id=lambda: "req-42",
    )
    try:
        await crm.list_opportunities(BIG_ACCOUNT_ID, limit=200)
    finally:
        await crm.close()
    assert seen == ["req-42", "req-42"]


# --- customers -----------------------------------------------------------------------------------------


async def _all_customer_pages(
    crm: SalesforceCrm, *, limit: int, modified_since: dt.datetime | None = None
) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await crm.list_customers(limit=limit, cursor=cursor, modified_since=modified_since)
        pages.append([item.id for item in page.items])
        if page.next_cursor is None:
            return pages
        assert len(page.items) == limit
        cursor = page.next_cursor
        assert len(pages) < 100, "paging does not end"


@pytest.mark.parametrize("limit", [10, 3])
async def test_paging_through_the_customers_gives_every_account_once(
    sandbox: Sandbox, crm: SalesforceCrm, limit: int
) -> None:
    accounts = sandbox.records("Account")
    pages = await _all_customer_pages(crm, limit=limit)
    ids = [item for page in pages for item in page]
    assert len(pages) == math.ceil(len(accounts) / limit) > 1
    assert len(ids) == len(set(ids)) == len(accounts)
    assert set(ids) == set(accounts)


async def test_customers_are_read_whole(crm: SalesforceCrm) -> None:
    page = await crm.list_customers(limit=200)
    northwind = next(c for c in page.items if c.id == DEMO_ACCOUNT_ID)
    assert northwind == await crm.get_customer(DEMO_ACCOUNT_ID)
    globex_uk = next(c for c in page.items if c.id == SUBSIDIARY_ACCOUNT_ID)
    assert globex_uk.parent_id == BIG_ACCOUNT_ID


def _modified_at(record: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(record["LastModifiedDate"])


async def test_only_customers_changed_since_a_moment(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    accounts = sandbox.records("Account").values()
    moments = sorted(_modified_at(r) for r in accounts)
    since = moments[len(moments) // 2]  # exactly the timestamp of one account: >= must include it
    expected = {r["Id"] for r in accounts if _modified_at(r) >= since}
    assert 0 < len(expected) < len(moments)
    ids = [i for page in await _all_customer_pages(crm, limit=3, modified_since=since) for i in page]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected
    # The same moment in another timezone is the same filter.
    berlin = since.astimezone(dt.timezone(dt.timedelta(hours=2)))
    again = await crm.list_customers(limit=200, modified_since=berlin)
    assert {c.id for c in again.items} == expected
    page = await crm.list_customers(limit=200, modified_since=moments[-1] + dt.timedelta(seconds=1))
    assert page.items == []


async def test_a_naive_moment_is_refused_before_calling_salesforce(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    with pytest.raises(ValueError, match="timezone"):
        await crm.list_customers(limit=10, modified_since=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone"):
        await crm.list_opportunities(None, limit=10, modified_since=dt.datetime(2026, 1, 1))
    assert await sandbox.requests() == []


def test_soql_datetimes_are_utc_to_the_second() -> None:
    assert soql_datetime(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) == "2026-01-01T00:00:00Z"
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert (
        soql_datetime(dt.datetime(2026, 3, 4, 12, 15, 30, 999_999, tzinfo=plus_two)) == "2026-03-04T10:15:30Z"
    )


# --- contacts ------------------------------------------------------------------------------------------


def _contacts_of(sandbox: Sandbox, account_id: str) -> set[str]:
    return {r["Id"] for r in sandbox.records("Contact").values() if r.get("AccountId") == account_id}


async def test_an_accounts_contacts(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    expected = _contacts_of(sandbox, DEMO_ACCOUNT_ID)
    assert expected, "the seed should give the demo account contacts"
    page = await crm.list_contacts(DEMO_ACCOUNT_ID, limit=200)
    assert page.next_cursor is None
    assert {c.id for c in page.items} == expected
    assert all(c.customer_id == DEMO_ACCOUNT_ID and c.last_name for c in page.items)
    record = sandbox.records("Contact")[page.items[0].id]
    assert page.items[0].last_name == record["LastName"]
    assert page.items[0].email == record.get("Email")
    assert page.items[0].system_ids.crm == record["Id"]


async def test_paging_through_an_accounts_contacts(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    account_id = max(
        {r["AccountId"] for r in sandbox.records("Contact").values() if r.get("AccountId")},
        key=lambda account: len(_contacts_of(sandbox, account)),
    )
    expected = _contacts_of(sandbox, account_id)
    assert len(expected) > 1
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(len(expected)):
        page = await crm.list_contacts(account_id, limit=1, cursor=cursor)
        ids.extend(c.id for c in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert cursor is None
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected


async def test_an_unknown_account_has_no_contacts(crm: SalesforceCrm) -> None:
    page = await crm.list_contacts(MISSING_ACCOUNT_ID, limit=10)
    assert (page.items, page.next_cursor) == ([], None)


# --- opportunities of every account --------------------------------------------------------------------


async def _all_opportunity_pages(
    crm: SalesforceCrm,
    *,
    limit: int,
    stage: OpportunityStage | None = None,
    modified_since: dt.datetime | None = None,
) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        page = await crm.list_opportunities(
            None, limit=limit, cursor=cursor, stage=stage, modified_since=modified_since
        )
        ids.extend(item.id for item in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor
    raise AssertionError("paging does not end")


async def test_opportunities_of_every_account(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    ids = await _all_opportunity_pages(crm, limit=200)
    assert len(ids) == len(set(ids)) == len(sandbox.records("Opportunity"))


async def test_won_deals_across_accounts(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    won = [r for r in sandbox.records("Opportunity").values() if r["StageName"] == "Closed Won"]
    assert len({r["AccountId"] for r in won}) > 1
    ids = await _all_opportunity_pages(crm, limit=25, stage=OpportunityStage.CLOSED_WON)
    assert len(ids) == len(set(ids))
    assert set(ids) == {r["Id"] for r in won}
    assert set(READY_OPPORTUNITY_IDS) <= set(ids)


async def test_opportunities_changed_since_a_moment(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    records = sandbox.records("Opportunity").values()
    since = sorted(_modified_at(r) for r in records)[-40]
    expected = {r["Id"] for r in records if _modified_at(r) >= since}
    ids = await _all_opportunity_pages(crm, limit=15, modified_since=since)
    assert len(ids) == len(set(ids))
    assert set(ids) == expected
    won_since = await _all_opportunity_pages(
        crm, limit=15, modified_since=since, stage=OpportunityStage.CLOSED_WON
    )
    assert set(won_since) == {
        r["Id"] for r in records if _modified_at(r) >= since and r["StageName"] == "Closed Won"
    }


# --- deal milestones and rate card ---------------------------------------------------------------------


def _children_of(sandbox: Sandbox, sobject: str, opportunity_id: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.records(sobject).values() if r.get("Opportunity__c") == opportunity_id]


async def test_a_milestone_deal_has_its_milestones_rate_card_and_terms(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    deal = await crm.get_opportunity(READY_MILESTONE_OPPORTUNITY_ID)
    assert deal.is_won
    assert deal.currency == "GBP"
    assert [(m.name, m.due_date) for m in deal.milestones] == [
        ("Discovery and design sign-off", dt.date(2026, 2, 27)),
        ("Build complete", dt.date(2026, 5, 29)),
        ("User acceptance", dt.date(2026, 7, 31)),
        ("Go-live", dt.date(2026, 9, 30)),
    ]
    amounts = [m.amount for m in deal.milestones]
    assert all(a is not None and a.currency == "GBP" for a in amounts)
    assert [str(a.amount) for a in amounts if a is not None] == [
        "62100.15",
        "124200.30",
        "77625.19",
        "46575.11",
    ]
    # The schedule adds up to the deal, to the penny: no amount went through a float.
    assert sum(a.amount for a in amounts if a is not None) == deal.amount == Decimal("310500.75")
    children = {r["Id"] for r in _children_of(sandbox, MILESTONE_OBJECT, READY_MILESTONE_OPPORTUNITY_ID)}
    assert {m.system_ids.crm for m in deal.milestones} == children
    assert [(line.role, str(line.rate.amount), line.rate.currency) for line in deal.rate_card] == [
        ("Senior Consultant", "170.00", "GBP"),
        ("Solution Architect", "200.00", "GBP"),
    ]
    record = sandbox.records("Opportunity")[READY_MILESTONE_OPPORTUNITY_ID]
    assert deal.contract_terms == record["Contract_Terms__c"]
    assert deal.contract_terms


async def test_a_time_and_materials_deal_has_a_rate_card_and_no_milestones(crm: SalesforceCrm) -> None:
    deal = await crm.get_opportunity(READY_OPPORTUNITY_ID)
    assert deal.billing_model is BillingModel.TIME_AND_MATERIALS
    assert deal.milestones == []
    assert {(line.role, line.rate.amount, line.rate.currency) for line in deal.rate_card} == {
        ("Engagement Manager", Decimal("275.00"), "USD"),
        ("Senior Consultant", Decimal("210.00"), "USD"),
        ("Consultant", Decimal("165.00"), "USD"),
        ("Business Analyst", Decimal("120.00"), "USD"),
    }


async def test_every_won_deals_children_are_read(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    won = [r for r in sandbox.records("Opportunity").values() if r["IsWon"]]
    day_rates = 0
    for record in won:
        deal = await crm.get_opportunity(record["Id"])
        milestones = _children_of(sandbox, MILESTONE_OBJECT, record["Id"])
        assert {m.system_ids.crm for m in deal.milestones} == {r["Id"] for r in milestones}
        due = [m.due_date for m in deal.milestones if m.due_date is not None]
        assert due == sorted(due)
        expected_rates = set()
        for line in _children_of(sandbox, RATE_CARD_LINE_OBJECT, record["Id"]):
            unit = "day" if line["Unit__c"] == "Day" else "hour"
            day_rates += unit == "day"
            rate = Decimal(str(line["Rate__c"])).quantize(Decimal("0.01"))  # as sold, never converted
            if line["CurrencyIsoCode"] is not None:  # a rate in no currency is no rate (the deal lacks one)
                expected_rates.add((line["Role__c"], rate, line["CurrencyIsoCode"], unit))
        assert {
            (line.role, line.rate.amount, line.rate.currency, line.unit.value) for line in deal.rate_card
        } == expected_rates
    assert day_rates, "the seed should sell some roles by the day (EUR deals)"


async def test_an_opportunity_read_asks_for_its_children_alongside(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    await crm.get_opportunity(READY_OPPORTUNITY_ID)
    paths = [r["path"] for r in await sandbox.data_requests()]
    assert sorted(paths) == sorted(
        [f"{DATA}/sobjects/Opportunity/{READY_OPPORTUNITY_ID}", f"{DATA}/query/", f"{DATA}/query/"]
    )


def _without_custom_objects(
    sandbox: Sandbox, asked: list[str]
) -> Callable[[httpx.Request], Awaitable[httpx.Response]]:
    """A transport handler for an org that has none of the gateway's custom objects (INVALID_TYPE)."""

    async def handler(request: httpx.Request) -> httpx.Response:
        soql = request.url.params.get("q", "")
        for sobject in (MILESTONE_OBJECT, RATE_CARD_LINE_OBJECT):
            if f"FROM {sobject}" in soql:
                asked.append(sobject)
                body = [
                    {"message": f"sObject type '{sobject}' is not supported.", "errorCode": "INVALID_TYPE"}
                ]
                return httpx.Response(400, json=body)
        return await sandbox.transport.handle_async_request(request)

    return handler


async def test_an_org_without_the_custom_child_objects_has_deals_without_milestones(sandbox: Sandbox) -> None:
    asked: list[str] = []
    crm = SalesforceCrm(
        SalesforceSettings(base_url=BASE_URL),
        transport=httpx.MockTransport(_without_custom_objects(sandbox, asked)),
    )
    try:
        with capture_logs() as logs:
            deal = await crm.get_opportunity(READY_OPPORTUNITY_ID)
            assert deal.id == READY_OPPORTUNITY_ID
            assert (deal.milestones, deal.rate_card) == ([], [])
            again = await crm.get_opportunity(READY_OPPORTUNITY_ID)
    finally:
        await crm.close()
    assert again == deal
    # Asked once each; the second read spares the org two calls that would fail the same way.
    assert sorted(asked) == sorted([MILESTONE_OBJECT, RATE_CARD_LINE_OBJECT])
    assert {e["sobject"] for e in logs if e["event"] == "salesforce_object_missing"} == set(asked)


async def test_another_error_reading_the_children_is_not_swallowed(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    await sandbox.fault(
        kind="error",
        status=400,
        path_pattern="/query",
        body='[{"message":"No such column \'Role__c\'","errorCode":"INVALID_FIELD"}]',
    )
    with pytest.raises(VendorRejected) as caught:
        await crm.get_opportunity(READY_OPPORTUNITY_ID)
    assert caught.value.vendor_code == "INVALID_FIELD"


# --- activation written back ---------------------------------------------------------------------------


async def test_activation_written_back_is_read_back(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    before = await crm.get_opportunity(READY_OPPORTUNITY_ID)
    assert before.activation_status is None
    after = await crm.update_opportunity_activation(READY_OPPORTUNITY_ID, ACTIVATED)
    assert after.activation_status == ActivationStatus.ACTIVATED
    assert after.project_id == "4417"
    assert (after.system_ids.crm, after.system_ids.psa, after.system_ids.erp) == (
        READY_OPPORTUNITY_ID,
        "4417",
        "JOB-7731",
    )
    assert await crm.get_opportunity(READY_OPPORTUNITY_ID) == after
    record = sandbox.records("Opportunity")[READY_OPPORTUNITY_ID]
    assert record["Activation_Status__c"] == "Activated"
    assert record["ERP_Customer_Id__c"] == "CUST-118"
    # Nothing else about the deal changed.
    assert (after.amount, after.stage, after.milestones, after.rate_card) == (
        before.amount,
        before.stage,
        before.milestones,
        before.rate_card,
    )
    assert [r["status"] for r in await sandbox.data_requests() if "sobjects" in r["path"]][1] == 204


async def test_writing_activation_back_twice_is_harmless(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    first = await crm.update_opportunity_activation(READY_OPPORTUNITY_ID, ACTIVATED)
    second = await crm.update_opportunity_activation(READY_OPPORTUNITY_ID, ACTIVATED)
    # The same deal both times; only Salesforce's LastModifiedDate moves on.
    assert msgspec.structs.replace(first, updated_at=None) == msgspec.structs.replace(second, updated_at=None)
    won = await _all_opportunity_pages(crm, limit=200, stage=OpportunityStage.CLOSED_WON)
    assert won.count(READY_OPPORTUNITY_ID) == 1


async def test_an_update_leaves_the_ids_it_does_not_name_alone(crm: SalesforceCrm) -> None:
    await crm.update_opportunity_activation(READY_OPPORTUNITY_ID, ACTIVATED)
    blocked = await crm.update_opportunity_activation(
        READY_OPPORTUNITY_ID, OpportunityActivationUpdate(activation_status=ActivationStatus.BLOCKED)
    )
    assert blocked.activation_status == ActivationStatus.BLOCKED
    assert (blocked.project_id, blocked.system_ids.erp) == ("4417", "JOB-7731")


async def test_a_failed_write_back_is_retried_because_it_is_idempotent(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    await sandbox.fault(kind="error", status=503, method="PATCH", times=1)
    deal = await crm.update_opportunity_activation(OPEN_OPPORTUNITY_ID, ACTIVATED)
    assert deal.activation_status == ActivationStatus.ACTIVATED
    patches = [r["status"] for r in await sandbox.data_requests() if r["method"] == "PATCH"]
    assert patches == [503, 204]


async def test_a_written_back_deal_shows_up_as_changed(sandbox: Sandbox, crm: SalesforceCrm) -> None:
    newest = max(_modified_at(r) for r in sandbox.records("Opportunity").values())
    since = newest + dt.timedelta(seconds=1)
    assert await _all_opportunity_pages(crm, limit=10, modified_since=since) == []
    await crm.update_opportunity_activation(OPEN_OPPORTUNITY_ID, ACTIVATED)
    assert await _all_opportunity_pages(crm, limit=10, modified_since=since) == [OPEN_OPPORTUNITY_ID]


async def test_writing_back_to_an_unknown_opportunity_is_not_found(crm: SalesforceCrm) -> None:
    with pytest.raises(NotFound):
        await crm.update_opportunity_activation(DEMO_ACCOUNT_ID, ACTIVATED)


# --- injection through every filter --------------------------------------------------------------------

INJECTED_CURSORS = [base64.urlsafe_b64encode(attack.encode()).decode().rstrip("=") for attack in ATTACKS] + [
    "' OR Id != '",
    "x') OR (Id != '",
]


@pytest.mark.parametrize("attack", ATTACKS)
async def test_an_injected_id_reaches_salesforce_through_no_method(
    sandbox: Sandbox, crm: SalesforceCrm, attack: str
) -> None:
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: crm.get_customer(attack),
        lambda: crm.get_opportunity(attack),
        lambda: crm.list_contacts(attack, limit=10),
        lambda: crm.list_opportunities(attack, limit=10),
        lambda: crm.update_opportunity_activation(attack, ACTIVATED),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            await call()
    assert await sandbox.requests() == []


@pytest.mark.parametrize("cursor", INJECTED_CURSORS)
async def test_an_injected_cursor_reaches_salesforce_through_no_list(
    sandbox: Sandbox, crm: SalesforceCrm, cursor: str
) -> None:
    with pytest.raises(InvalidCursor):
        await crm.list_customers(limit=10, cursor=cursor)
    with pytest.raises(InvalidCursor):
        await crm.list_contacts(DEMO_ACCOUNT_ID, limit=10, cursor=cursor)
    with pytest.raises(InvalidCursor):
        await crm.list_opportunities(None, limit=10, cursor=cursor)
    assert await sandbox.requests() == []


@pytest.mark.parametrize("attack", ATTACKS)
async def test_every_query_keeps_an_injected_value_one_literal(sandbox: Sandbox, attack: str) -> None:
    # The adapter never lets such a value through (above); should a later change do so, the query
    # builders still keep it one literal that a real SOQL parser refuses as no id, or matches nothing.
    queries = [
        customer_query(limit=10, after_id=attack),
        contact_query(attack, limit=10, after_id=attack),
        opportunity_query(None, limit=10, after_id=attack, stage=OpportunityStage.PROPOSAL),
        child_records_query(MILESTONE_OBJECT, MILESTONE_FIELDS, attack),
        child_records_query(RATE_CARD_LINE_OBJECT, RATE_CARD_LINE_FIELDS, attack),
    ]
    for soql in queries:
        answer = await sandbox.raw_query(soql)
        if answer.status_code == 200:
            assert answer.json()["totalSize"] == 0, soql
        else:
            assert answer.status_code == 400, soql
            assert answer.json()[0]["errorCode"] in ("INVALID_QUERY_FILTER_OPERATOR", "INVALID_TYPE"), soql


async def test_the_queries_are_valid_soql(sandbox: Sandbox) -> None:
    since = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    for soql in [
        customer_query(limit=5, modified_since=since, after_id=DEMO_ACCOUNT_ID),
        contact_query(DEMO_ACCOUNT_ID, limit=5),
        opportunity_query(None, limit=5, stage=OpportunityStage.OTHER, modified_since=since),
    ]:
        answer = await sandbox.raw_query(soql)
        assert answer.status_code == 200, answer.text


# --- a page of deals with their terms (with_terms) -------------------------------------------------------


@pytest.mark.parametrize(("account_id", "limit"), [(DEMO_ACCOUNT_ID, 25), (BIG_ACCOUNT_ID, 200)])
async def test_a_page_with_terms_gives_each_deal_as_read_alone_in_one_query(
    sandbox: Sandbox, crm: SalesforceCrm, account_id: str, limit: int
) -> None:
    page = await crm.list_opportunities(account_id, limit=limit, with_terms=True)
    asked = await sandbox.data_requests()
    # One query, children as subqueries (a page of 200 and its look-ahead record take a second batch).
    paths = [r["path"] for r in asked]
    assert paths.count(f"{DATA}/query/") == 1
    assert all(path.startswith(f"{DATA}/query/01g") for path in paths if path != f"{DATA}/query/")
    assert page.items
    assert any(o.milestones for o in page.items)
    assert any(o.rate_card for o in page.items)
    for listed in page.items:
        assert listed == await crm.get_opportunity(listed.id)
    plain = await crm.list_opportunities(account_id, limit=limit)
    assert [o.id for o in plain.items] == [o.id for o in page.items]
    assert plain.next_cursor == page.next_cursor
    assert all((o.milestones, o.rate_card) == ([], []) for o in plain.items)


async def test_pages_with_terms_follow_the_cursor(crm: SalesforceCrm) -> None:
    first = await crm.list_opportunities(BIG_ACCOUNT_ID, limit=150, with_terms=True)
    assert first.next_cursor is not None
    rest = await crm.list_opportunities(BIG_ACCOUNT_ID, limit=150, cursor=first.next_cursor, with_terms=True)
    assert rest.next_cursor is None
    assert len(first.items) + len(rest.items) == BIG_ACCOUNT_OPPORTUNITY_COUNT


def test_the_terms_are_parent_to_child_subqueries() -> None:
    soql = opportunity_query(DEMO_ACCOUNT_ID, limit=25, terms=(MILESTONE_OBJECT, RATE_CARD_LINE_OBJECT))
    assert f"(SELECT {', '.join(MILESTONE_FIELDS)} FROM Opportunity_Milestones__r ORDER BY" in soql
    assert f"(SELECT {', '.join(RATE_CARD_LINE_FIELDS)} FROM Rate_Card_Lines__r ORDER BY" in soql
    assert soql.endswith(f"FROM Opportunity WHERE AccountId = '{DEMO_ACCOUNT_ID}' ORDER BY Id LIMIT 26")
    assert "Opportunity_Milestones__r" not in opportunity_query(DEMO_ACCOUNT_ID, limit=25)


def _refusing_subqueries(
    sandbox: Sandbox, asked: list[str]
) -> Callable[[httpx.Request], Awaitable[httpx.Response]]:
    """An org without the gateway's custom objects: neither they nor their relationships are known."""
    objects = _without_custom_objects(sandbox, asked)

    async def handler(request: httpx.Request) -> httpx.Response:
        soql = request.url.params.get("q", "")
        if "__r " in soql:
            asked.append("subquery")
            body = [{"message": "Didn't understand relationship", "errorCode": "INVALID_TYPE"}]
            return httpx.Response(400, json=body)
        return await objects(request)

    return handler


async def test_an_org_without_the_child_objects_lists_deals_with_no_terms(sandbox: Sandbox) -> None:
    asked: list[str] = []
    crm = SalesforceCrm(
        SalesforceSettings(base_url=BASE_URL),
        transport=httpx.MockTransport(_refusing_subqueries(sandbox, asked)),
    )
    try:
        with capture_logs() as logs:
            page = await crm.list_opportunities(DEMO_ACCOUNT_ID, limit=25, with_terms=True)
            again = await crm.list_opportunities(DEMO_ACCOUNT_ID, limit=25, with_terms=True)
    finally:
        await crm.close()
    assert page.items
    assert all((o.milestones, o.rate_card) == ([], []) for o in page.items)
    assert again == page
    # The subquery was refused once; then each object's absence was learnt by its own query, and the second
    # page asked for neither.
    assert asked.count("subquery") == 1
    assert {MILESTONE_OBJECT, RATE_CARD_LINE_OBJECT} <= set(asked)
    assert any(e["event"] == "salesforce_terms_subquery_refused" for e in logs)


async def test_a_deal_with_more_children_than_one_nested_batch_has_them_read_alone(sandbox: Sandbox) -> None:
    # Salesforce may answer a subquery's children in batches (done: false and a nextRecordsUrl of their
    # own): the adapter then reads that deal's children by their lookup instead of keeping a part.
    cut: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        response = await sandbox.transport.handle_async_request(request)
        if "Rate_Card_Lines__r" not in request.url.params.get("q", ""):
            return response
        await response.aread()
        body = msgspec.json.decode(response.content)
        for record in body["records"]:
            nested = record.get("Rate_Card_Lines__r")
            if nested and nested["totalSize"] > 1:
                nested.update(done=False, records=nested["records"][:1], nextRecordsUrl=f"{DATA}/query/x-1")
                cut.append(record["Id"])
                break
        return httpx.Response(200, json=body, headers={"Content-Type": "application/json"})

    crm = SalesforceCrm(SalesforceSettings(base_url=BASE_URL), transport=httpx.MockTransport(handler))
    try:
        page = await crm.list_opportunities(BIG_ACCOUNT_ID, limit=200, with_terms=True)
        assert cut, "the seed should have a deal with several rate card lines"
        deal = next(o for o in page.items if o.id == cut[0])
        assert deal == await crm.get_opportunity(cut[0])
        assert len(deal.rate_card) > 1
    finally:
        await crm.close()


async def test_the_listing_with_terms_answers_a_failed_query_as_the_vendor_error(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    await sandbox.fault(kind="error", status=503, path_pattern="/query")
    with pytest.raises(VendorUnavailable):
        await crm.list_opportunities(DEMO_ACCOUNT_ID, limit=25, with_terms=True)


# --- the deal by the project it delivers -----------------------------------------------------------------


async def test_the_deal_of_a_project_is_read_in_one_round_with_its_children(
    sandbox: Sandbox, crm: SalesforceCrm
) -> None:
    await crm.update_opportunity_activation(READY_MILESTONE_OPPORTUNITY_ID, ACTIVATED)
    by_id = await crm.get_opportunity(READY_MILESTONE_OPPORTUNITY_ID)
    before = len(await sandbox.data_requests())
    found = await crm.find_opportunity_by_project("4417")
    assert found == by_id
    assert found is not None
    assert found.milestones
    queries = [r for r in (await sandbox.data_requests())[before:] if r["path"].endswith("/query/")]
    assert len(queries) == 3  # the deal, its milestones, its rate card: at once, none after another


async def test_a_project_no_deal_carries_has_none(crm: SalesforceCrm) -> None:
    assert await crm.find_opportunity_by_project("no-such-project") is None


async def test_a_project_id_is_quoted_into_the_query() -> None:
    soql = child_records_by_project_query(MILESTONE_OBJECT, MILESTONE_FIELDS, "x' OR Name != '")
    assert "Opportunity__r.Project_Id__c = 'x\\' OR Name != \\''" in soql
    assert "Project_Id__c = 'x\\' OR" in opportunity_by_project_query("x' OR Name != '")
