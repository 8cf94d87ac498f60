"""The Salesforce adapter against the Salesforce sandbox, in process over ``httpx.ASGITransport``.

Everything the adapter does is observable here the way it would be against the real service: the OAuth
token flow, session expiry, SOQL paging across batches, error arrays, API limits and injected faults.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from litestar import Litestar
from structlog.testing import capture_logs

from apis.config import SalesforceSettings
from contracts.models import BillingModel, OpportunityStage
from sandboxes.salesforce import SalesforceSandboxSettings, create_salesforce_sandbox
from sandboxes.salesforce.data import (
    BIG_ACCOUNT_ID,
    BIG_ACCOUNT_OPPORTUNITY_COUNT,
    DEMO_ACCOUNT_ID,
    READY_OPPORTUNITY_ID,
    SUBSIDIARY_ACCOUNT_ID,
)
from system_apis.crm.port import CrmPort
from system_apis.crm.salesforce import (
    InvalidCursor,
    SalesforceCrm,
    decode_cursor,
    encode_cursor,
    opportunity_query,
    soql_quote,
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

    def opportunities_of(self, account_id: str) -> list[dict[str, Any]]:
        records: dict[str, dict[str, Any]] = self.app.state.sandbox.records["Opportunity"]
        return [r for r in records.values() if r["AccountId"] == account_id]

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
    assert await sandbox.requests() == []


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
