"""Links and ids a vendor hands back are followed only on the configured base URL and path.

Each vendor here is a script around the real sandbox (or a bare ``MockTransport``) that slips a hostile
link or id into one answer; the adapter must refuse it (502 ``VendorBadResponse``) without calling it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest

from apis.config import BusinessCentralSettings, SalesforceSettings
from sandboxes.business_central import DEV_CLIENT_ID, DEV_CLIENT_SECRET, create_business_central_sandbox
from sandboxes.business_central.data import TENANT_ID
from system_apis.crm.salesforce import SalesforceCrm
from system_apis.erp.business_central import BusinessCentralErp
from system_apis.erp.netsuite import NetSuiteErp
from system_apis.errors import VendorBadResponse
from system_apis.fpa.anaplan import _segment as anaplan_segment
from system_apis.psa.kantata import _segment as kantata_segment
from system_apis.vendor_http import BreakerPolicy, RetryPolicy
from system_apis.vendor_links import followable_link, path_segment

# --- the shared check ----------------------------------------------------------------------------------

BASE = httpx.URL("https://vendor.example/api/v1")
UNDER = "/api/v1/query/"


@pytest.mark.parametrize(
    "link",
    [
        "/api/v1/query/../../admin/users",
        "/api/v1/query/./../secrets",
        "/api/v1/query/%2e%2e/%2e%2e/admin",
        "/api/v1/query/%2E%2E/admin",
        "/api/v1/query/..%2f..%2fadmin",
        "/api/v1/query/%252e%252e/admin",
        "/api/v1/query\\..\\admin",
        "https://vendor.example/api/v1/query/../../admin",
        "https://vendor.example/api/v1/other/page2",
        "https://evil.example/api/v1/query/page2",
        "http://vendor.example/api/v1/query/page2",
        "https://vendor.example:8443/api/v1/query/page2",
        "//evil.example/api/v1/query/page2",
        "api/v1/query/page2",
        "/api/v1/query/page2#../../admin",
        "/api/v1/query//evil.example/x",
        "/api/v1/query/page\n2",
        "",
    ],
)
def test_a_link_off_the_configured_path_is_refused(link: str) -> None:
    with pytest.raises(ValueError, match="vendor link"):
        followable_link(BASE, link, UNDER)


@pytest.mark.parametrize(
    "link",
    ["/api/v1/query/01g-2000", "https://vendor.example/api/v1/query/next?$skiptoken=a%27b&x=1"],
)
def test_a_link_on_the_configured_path_is_followed(link: str) -> None:
    url = followable_link(BASE, link, UNDER)
    assert (url.scheme, url.host, url.port) == ("https", "vendor.example", None)
    assert url.path.startswith(UNDER)


@pytest.mark.parametrize("value", ["../admin", "..", "a/b", "a%2fb", "a?b", "", "x" * 129, "a.b", " 1"])
def test_an_id_that_is_not_a_plain_segment_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="not a plain path segment"):
        path_segment(value)
    with pytest.raises(VendorBadResponse):
        anaplan_segment(value, "task")
    with pytest.raises(VendorBadResponse):
        kantata_segment(value)


def test_plain_ids_pass() -> None:
    assert path_segment(116000000001) == "116000000001"
    assert anaplan_segment("2A0F2C0E0F9D4B4C8B7A9A2B3C4D5E6F", "task") == "2A0F2C0E0F9D4B4C8B7A9A2B3C4D5E6F"
    assert path_segment("6e1b9a8c-3f2d-4a5b-9c8d-7e6f5a4b3c2d") == "6e1b9a8c-3f2d-4a5b-9c8d-7e6f5a4b3c2d"


# --- Salesforce: nextRecordsUrl -------------------------------------------------------------------------

SF_ORIGIN = "http://salesforce.test"
SF_QUERY = "/services/data/v61.0/query/"


class ScriptedSalesforce:
    """Answers the token call and a first query batch that is not done, with ``next_url`` to go on."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url
        self.data_calls: list[httpx.URL] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/services/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "instance_url": SF_ORIGIN})
        self.data_calls.append(request.url)
        if len(self.data_calls) == 1:
            return httpx.Response(
                200, json={"totalSize": 3, "done": False, "records": [], "nextRecordsUrl": self.next_url}
            )
        return httpx.Response(200, json={"totalSize": 3, "done": True, "records": []})


async def _list_customers(script: ScriptedSalesforce) -> Any:
    crm = SalesforceCrm(
        SalesforceSettings(base_url=SF_ORIGIN),
        transport=httpx.MockTransport(script.handler),
        breaker=BreakerPolicy(failure_threshold=0),
    )
    try:
        return await crm.list_customers(limit=10)
    finally:
        await crm.close()


@pytest.mark.parametrize(
    "next_url",
    [
        f"{SF_QUERY}../sobjects/User/005000000000001",
        f"{SF_QUERY}../../v61.0/sobjects/User",
        f"{SF_QUERY}%2e%2e/sobjects/User",
        f"{SF_QUERY}..%2Fsobjects%2FUser",
        "/services/data/v61.0/sobjects/User",
        "/services/data/v48.0/query/01gD0000002HU6KIAW-2000",
        f"https://evil.example{SF_QUERY}01gD0000002HU6KIAW-2000",
        f"//evil.example{SF_QUERY}01gD0000002HU6KIAW-2000",
    ],
)
async def test_salesforce_refuses_a_next_records_url_off_its_query_path(next_url: str) -> None:
    script = ScriptedSalesforce(next_url)
    with pytest.raises(VendorBadResponse):
        await _list_customers(script)
    assert [url.path for url in script.data_calls] == [SF_QUERY]


async def test_salesforce_follows_a_next_records_url_on_its_query_path() -> None:
    script = ScriptedSalesforce(f"{SF_QUERY}01gD0000002HU6KIAW-2000")
    await _list_customers(script)
    assert [url.path for url in script.data_calls] == [SF_QUERY, f"{SF_QUERY}01gD0000002HU6KIAW-2000"]


# --- Business Central: @odata.nextLink ------------------------------------------------------------------

BC_ORIGIN = "http://businesscentral.test"
BC_API = f"/v2.0/{TENANT_ID}/production/api/v2.0"


class NextLinkInjector:
    """The real sandbox, with ``@odata.nextLink`` of the first customer page replaced by ``link``
    (``{company}`` becomes the company's path) and every data request recorded."""

    def __init__(self, link: str) -> None:
        app: Any = create_business_central_sandbox()
        self.sandbox = httpx.ASGITransport(app=app)
        self.link = link
        self.paths: list[str] = []

    async def handler(self, request: httpx.Request) -> httpx.Response:
        response = await self.sandbox.handle_async_request(request)
        await response.aread()
        self.paths.append(request.url.path)
        if request.url.path.endswith("/customers") and "companies(" in request.url.path:
            company = request.url.path.split("/")[-2]
            body = msgspec.json.decode(response.content)
            body["@odata.nextLink"] = self.link.format(company=company)
            return httpx.Response(
                response.status_code, headers={"Content-Type": "application/json"}, json=body
            )
        return response


async def _bc_list_customers(injector: NextLinkInjector) -> Any:
    erp = BusinessCentralErp(
        BusinessCentralSettings(
            base_url=BC_ORIGIN,
            token_url=f"{BC_ORIGIN}/{TENANT_ID}/oauth2/v2.0/token",
            client_id=DEV_CLIENT_ID,
            client_secret=DEV_CLIENT_SECRET,
            tenant_id=TENANT_ID,
            company="CRONUS DE",
        ),
        transport=httpx.MockTransport(injector.handler),
        retry=RetryPolicy(max_attempts=1),
        breaker=BreakerPolicy(failure_threshold=0),
    )
    try:
        # More than the sandbox serves a page, so the adapter follows the page's next link.
        return await erp.list_customers(limit=150)
    finally:
        await erp.close()


@pytest.mark.parametrize(
    "link",
    [
        BC_ORIGIN + BC_API + "/{company}/customers/../../../../../../admin",
        BC_ORIGIN + BC_API + "/{company}/%2e%2e/%2e%2e/admin",
        BC_ORIGIN + BC_API + "/companies(00000000-0000-0000-0000-000000000001)/customers?$skiptoken=x",
        BC_ORIGIN + "/v2.0/other-tenant/production/api/v2.0/{company}/customers?$skiptoken=x",
        "https://evil.example" + BC_API + "/{company}/customers?$skiptoken=x",
    ],
)
async def test_business_central_refuses_a_next_link_off_its_company(link: str) -> None:
    injector = NextLinkInjector(link)
    with pytest.raises(VendorBadResponse):
        await _bc_list_customers(injector)
    assert not any("admin" in path or "other-tenant" in path for path in injector.paths)
    assert sum(path.endswith("/customers") for path in injector.paths) == 1


# --- NetSuite: links and Location headers ---------------------------------------------------------------


@pytest.fixture
def netsuite() -> Callable[[], NetSuiteErp]:
    made: list[NetSuiteErp] = []

    def make() -> NetSuiteErp:
        from tests.system.test_netsuite_adapter import DEV_KEY_PEM, settings

        erp = NetSuiteErp(
            settings(base_url="https://1234567.suitetalk.api.netsuite.com/services/rest"),
            private_key_pem=DEV_KEY_PEM,
            transport=httpx.MockTransport(lambda request: httpx.Response(500)),
        )
        made.append(erp)
        return erp

    return make


@pytest.mark.parametrize(
    "href",
    [
        "https://1234567.suitetalk.api.netsuite.com/services/rest/async/v1/job/12/../../../../admin",
        "https://1234567.suitetalk.api.netsuite.com/services/rest/async/v1/job/12/%2e%2e/%2e%2e/x",
        "https://1234567.suitetalk.api.netsuite.com/services/other/async/v1/job/12/task/3",
        "https://evil.example/services/rest/async/v1/job/12/task/3",
    ],
)
def test_netsuite_refuses_a_link_off_its_base_path(netsuite: Callable[[], NetSuiteErp], href: str) -> None:
    with pytest.raises(VendorBadResponse):
        netsuite()._relative(href)


def test_netsuite_follows_a_link_under_its_base_path(netsuite: Callable[[], NetSuiteErp]) -> None:
    href = "https://1234567.suitetalk.api.netsuite.com/services/rest/async/v1/job/12/task/3"
    assert netsuite()._relative(href) == "async/v1/job/12/task/3"
