"""Fidelity: the unmodified public client ``netsuite-async`` works against the NetSuite sandbox.

netsuite-async takes a ``base_url`` and an auth provider (its hook for authenticated ``httpx`` clients), so
the sandbox is served in process through ``httpx.ASGITransport``. The provider here signs a JWT client
assertion with the sandbox's development key and fetches bearer tokens from the sandbox's token endpoint;
everything else (URLs, parsing ``Location`` on create, following ``links`` rel ``next``/``last`` when
paging, error classes) is the library's own code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Generator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from sandboxes.faults import FaultRule
from sandboxes.netsuite import (
    DEV_CERTIFICATE_ID,
    DEV_CLIENT_ID,
    NetSuiteSandbox,
    create_netsuite_sandbox,
    dev_private_key_pem,
)
from sandboxes.netsuite.data import (
    DE_CUSTOMER_ID,
    DEMO_CUSTOMER_ID,
    GLOBEX_CUSTOMER_ID,
    INVOICE_COUNT,
    OPEN_INVOICE_ID,
)
from sandboxes.salesforce import data as salesforce

netsuite_async = pytest.importorskip("netsuite_async")

from netsuite_async import (  # noqa: E402 - only importable once importorskip has passed
    AsyncAuthProvider,
    AsyncNetsuiteRestClient,
    GetParams,
    NetsuiteRateLimitError,
    NetsuiteValidationError,
    RecordCatalog,
)
from netsuite_async.models.records import FetchResultError, FetchResultSuccess  # noqa: E402

ROOT = "http://netsuite.test"
TOKEN_URL = f"{ROOT}/services/rest/auth/oauth2/v1/token"
RECORD_BASE = f"{ROOT}/services/rest/record/v1/"


class ClientAssertionAuth(httpx.Auth):
    """OAuth 2.0 client credentials with a signed JWT, refetching the token once on a 401."""

    requires_response_body = True

    def __init__(self) -> None:
        self.token: str | None = None
        self.tokens_fetched = 0
        self.key = ECKey.import_key(dev_private_key_pem())

    def token_request(self) -> httpx.Request:
        now = int(time.time())
        client_assertion = jwt.encode(
            {"alg": "ES256", "kid": DEV_CERTIFICATE_ID, "typ": "JWT"},
            {
                "iss": DEV_CLIENT_ID,
                "scope": ["rest_webservices"],
                "aud": TOKEN_URL,
                "iat": now,
                "exp": now + 300,
            },
            self.key,
            algorithms=["ES256"],
        )
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion,
        }
        return httpx.Request("POST", TOKEN_URL, data=form)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        for attempt in range(2):
            if self.token is None or attempt == 1:
                token_response = yield self.token_request()
                assert token_response.status_code == 200, token_response.text
                self.token = token_response.json()["access_token"]
                self.tokens_fetched += 1
            request.headers["Authorization"] = f"Bearer {self.token}"
            response = yield request
            if response.status_code != 401:
                return


class SandboxAuthProvider(AsyncAuthProvider):
    """netsuite-async's auth hook: hand it an httpx client wired to the in-process sandbox."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.auth = ClientAssertionAuth()

    async def create_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            auth=self.auth,
            headers={"Content-Type": "application/json"},
        )


class Catalog(RecordCatalog):
    """The library's documented extension point for record types it does not ship a name for."""

    _map = {**RecordCatalog._map, "invoices": "invoice", "customer_payments": "customerPayment"}


@pytest.fixture
def app() -> Any:
    return create_netsuite_sandbox()


@pytest.fixture
async def netsuite(app: Any) -> AsyncIterator[Any]:
    client = AsyncNetsuiteRestClient(
        auth_provider=SandboxAuthProvider(app), record_catalog_cls=Catalog, base_url=RECORD_BASE
    )
    async with client:
        yield client


@pytest.mark.asyncio
async def test_create_read_and_update_a_customer(netsuite: Any, app: Any) -> None:
    new_id = await netsuite.customers.create(
        {
            "companyName": "Initech Software GmbH",
            "externalId": salesforce.GERMAN_ACCOUNT_ID,
            "subsidiary": {"id": "3"},
            "email": "ap@initech-software.example",
        }
    )
    customer = await netsuite.customers.get(new_id)
    updated_id = await netsuite.customers.update(new_id, {"phone": "+49 89 5550 100", "email": None})
    only = GetParams(fields=["phone", "email", "companyName"])
    selected = await netsuite.customers.get(new_id, params=only)
    project_id = await netsuite.projects.create(
        {"companyName": "Initech - S/4HANA Readiness Assessment", "parent": {"id": new_id}}
    )
    project = await netsuite.projects.get(project_id)
    sandbox: NetSuiteSandbox = app.state.sandbox
    assert new_id.isdigit()
    assert new_id in sandbox.records["customer"]
    assert customer.id == new_id
    assert customer.raw["companyName"] == "Initech Software GmbH"
    assert customer.links[0].rel == "self"
    assert customer.links[0].href == f"{RECORD_BASE}customer/{new_id}"
    assert customer.raw["currency"]["refName"] == "Euro"
    assert updated_id == new_id
    assert selected.raw["phone"] == "+49 89 5550 100"
    assert "email" not in selected.raw
    assert project.raw["parent"]["id"] == new_id
    assert project.raw["subsidiary"]["id"] == "3"


@pytest.mark.asyncio
async def test_reading_with_expanded_sublists(netsuite: Any) -> None:
    invoice = await netsuite.invoices.get(OPEN_INVOICE_ID, params=GetParams(expand=True))
    assert invoice.raw["entity"]["id"] == DEMO_CUSTOMER_ID
    assert [line["quantity"] for line in invoice.raw["item"]["items"]] == [120.0, 16.0]


@pytest.mark.asyncio
async def test_listing_pages_through_next_and_last_links(netsuite: Any, app: Any) -> None:
    pages = [page async for page in netsuite.invoices.iter_summary_pages(limit=50)]
    concurrent = await netsuite.invoices.list_summaries_concurrent(limit=50, max_concurrency=4)
    everything = await netsuite.invoices.list_summaries()
    filtered = await netsuite.customers.list_summaries(q='companyName START_WITH "Globex"')
    german = await netsuite.invoices.list_summaries(q=f"entity ANY_OF [{DE_CUSTOMER_ID}]")
    assert [len(page) for page in pages] == [50] * 6
    ids = [summary.id for page in pages for summary in page]
    assert len(set(ids)) == INVOICE_COUNT
    assert sorted(summary.id for summary in concurrent) == sorted(ids)
    assert [summary.id for summary in everything] == ids
    assert {summary.id for summary in filtered} >= {GLOBEX_CUSTOMER_ID}
    assert all(summary.raw["links"][0]["href"].startswith(RECORD_BASE) for summary in filtered)
    invoices = app.state.sandbox.records["invoice"]
    assert {summary.id for summary in german} == {
        invoice_id for invoice_id, invoice in invoices.items() if invoice["entity"] == DE_CUSTOMER_ID
    }


@pytest.mark.asyncio
async def test_errors_map_to_the_clients_exception_classes(netsuite: Any, app: Any) -> None:
    with pytest.raises(NetsuiteValidationError) as missing:
        await netsuite.customers.get("424242")
    with pytest.raises(NetsuiteValidationError) as invalid:
        await netsuite.customers.create({"subsidiary": {"id": "1"}})
    assert missing.value.status_code == 404
    assert missing.value.details["o:errorDetails"][0]["o:errorCode"] == "NONEXISTENT_ID"
    assert invalid.value.status_code == 400
    assert invalid.value.details["o:errorDetails"][0]["o:errorPath"] == "companyName"

    # Revoked tokens: the auth hook refetches one and the client never notices.
    sandbox: NetSuiteSandbox = app.state.sandbox
    sandbox.tokens.clear()
    customer = await netsuite.customers.get(GLOBEX_CUSTOMER_ID)
    assert customer.raw["externalId"] == salesforce.BIG_ACCOUNT_ID
    assert netsuite.auth_provider.auth.tokens_fetched == 2


@pytest.mark.asyncio
async def test_going_over_the_concurrency_limit_is_a_rate_limit_error(netsuite: Any, app: Any) -> None:
    sandbox: NetSuiteSandbox = app.state.sandbox
    await netsuite.customers.get(GLOBEX_CUSTOMER_ID)  # log in before the latency starts
    sandbox.faults.add(FaultRule(kind="latency", latency_ms=100, path_pattern="/record/v1/invoice/"))
    ids = sorted(sandbox.records["invoice"], key=int)[:8]
    results = await netsuite.invoices.get_many(ids, max_concurrency=8)
    gentle = await netsuite.invoices.get_many(ids, max_concurrency=sandbox.settings.concurrency_limit)
    throttled = [result for result in results.values() if isinstance(result, FetchResultError)]
    assert len(throttled) == 8 - sandbox.settings.concurrency_limit
    assert all("(429)" in str(result.error) for result in throttled)
    assert all(isinstance(result, FetchResultSuccess) for result in gentle.values())
    sandbox.faults.add(FaultRule(kind="latency", latency_ms=100, path_pattern="/record/v1/customer/"))
    direct = await asyncio.gather(
        *(netsuite.customers.get(GLOBEX_CUSTOMER_ID) for _ in range(6)), return_exceptions=True
    )
    assert sum(isinstance(outcome, NetsuiteRateLimitError) for outcome in direct) == 1
    limited = [outcome for outcome in direct if isinstance(outcome, NetsuiteRateLimitError)]
    assert [outcome.status_code for outcome in limited] == [429]
