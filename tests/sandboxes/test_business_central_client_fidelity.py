"""Fidelity: the unmodified public client ``dynite`` reads and pages the Business Central sandbox.

dynite is a synchronous ``requests`` client for the Business Central OData API: it takes any base URL
(``.../api/v2.0``), asks ``{entitySet}/$count`` first (plain text, which it decodes ``utf-8-sig``), then
reads ``value`` and follows ``@odata.nextLink`` until there is none. So the sandbox is served by uvicorn
on a free loopback port and dynite is pointed at it over real HTTP. Its ``auth`` goes straight to
``requests.Session.auth``; here that is a ``requests`` auth object doing Entra's client-credentials flow
against the sandbox's token endpoint, since Business Central online takes only bearer tokens. Nothing in
dynite is patched. (odyn, the other public client, targets on-premises web services and needs Python 3.12.)

dynite declares Python >= 3.13 but runs on 3.11, which these tests prove; the Makefile installs it with
``--ignore-requires-python`` (like netsuite-async), and the tests are skipped where it is not installed.
"""

from __future__ import annotations

import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import uvicorn

from sandboxes.business_central import (
    BC_SCOPE,
    DE_COMPANY_ID,
    DEV_CLIENT_ID,
    DEV_CLIENT_SECRET,
    TENANT_ID,
    BusinessCentralSandbox,
    BusinessCentralSandboxSettings,
    api_root,
    create_business_central_sandbox,
)
from sandboxes.business_central.data import CUSTOMER_COUNT_DE, INVOICE_COUNT_DE

with warnings.catch_warnings():
    # dynite warns on import that it is deprecated in favour of odyn (which needs Python >= 3.12).
    warnings.simplefilter("ignore", DeprecationWarning)
    dynite = pytest.importorskip("dynite")
    from dynite.exceptions import FailedRequestError

CUSTOMERS = f"companies({DE_COMPANY_ID})/customers"
INVOICES = f"companies({DE_COMPANY_ID})/salesInvoices"


class EntraBearer(requests.auth.AuthBase):
    """Client credentials against Entra's token endpoint; a 401 fetches a new token once and resends."""

    def __init__(self, token_url: str) -> None:
        self.token_url = token_url
        self.token: str | None = None
        self.tokens_fetched = 0

    def fetch(self) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": DEV_CLIENT_ID,
            "client_secret": DEV_CLIENT_SECRET,
            "scope": BC_SCOPE,
        }
        response = requests.post(self.token_url, data=form, timeout=10)
        response.raise_for_status()
        self.tokens_fetched += 1
        return str(response.json()["access_token"])

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.token is None:
            self.token = self.fetch()
        request.headers["Authorization"] = f"Bearer {self.token}"
        request.register_hook("response", self.refresh_on_401)
        return request

    def refresh_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401 or getattr(response.request, "_stratum_retried", False):
            return response
        self.token = self.fetch()
        retry = response.request.copy()
        retry.headers["Authorization"] = f"Bearer {self.token}"
        retry._stratum_retried = True  # type: ignore[attr-defined]
        response.content  # noqa: B018 - drain it so the connection can be reused
        response.close()
        sent: requests.Response = response.connection.send(retry, **kwargs)
        return sent


class Server:
    def __init__(self, port: int, app: Any) -> None:
        self.root = f"http://127.0.0.1:{port}"
        self.app = app

    @property
    def sandbox(self) -> BusinessCentralSandbox:
        sandbox: BusinessCentralSandbox = self.app.state.sandbox
        return sandbox

    @property
    def api(self) -> str:
        return f"{self.root}{api_root()}"

    def client(self, **options: Any) -> Any:
        auth = EntraBearer(f"{self.root}/{TENANT_ID}/oauth2/v2.0/token")
        return dynite.Dynite(base_url=self.api, auth=auth, **options)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    app = create_business_central_sandbox(BusinessCentralSandboxSettings())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", ws="none", lifespan="on", loop="asyncio")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not uvicorn_server.started:
            assert thread.is_alive(), "the sandbox server stopped while starting"
            assert time.monotonic() < deadline, "the sandbox server did not start in time"
            time.sleep(0.02)
        yield Server(sock.getsockname()[1], app)
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=3)
        if thread.is_alive():
            uvicorn_server.force_exit = True
            thread.join(timeout=10)
        sock.close()
    assert not thread.is_alive(), "the sandbox server did not stop"


@pytest.fixture
def fresh(server: Server) -> Server:
    server.sandbox.reset()
    return server


def test_dynite_reads_and_pages_every_customer(fresh: Server) -> None:
    client = fresh.client()
    customers = client.get_records(CUSTOMERS)
    requests_made = [entry for entry in fresh.sandbox.request_log if entry.path.endswith("/customers")]
    stored = {
        customer_id
        for customer_id, customer in fresh.sandbox.records["customers"].items()
        if customer["companyId"] == DE_COMPANY_ID
    }
    assert len(customers) == CUSTOMER_COUNT_DE
    assert {customer["id"] for customer in customers} == stored
    assert len(requests_made) == 3  # 100 + 100 + 60, following @odata.nextLink
    assert all(customer["@odata.etag"].startswith('W/"') for customer in customers)


def test_dynite_counts_and_filters_with_odata_options(fresh: Server) -> None:
    client = fresh.client()
    companies = client.get_records("companies")
    francs = client.get_records(CUSTOMERS, params={"$filter": "currencyCode eq 'CHF'", "$select": "number"})
    paid = client.get_records(INVOICES, params={"$filter": "status eq 'Paid'", "$select": "id,status"})
    invoices = client.get_records(INVOICES)
    counted = client._get_record_count(INVOICES)  # the $count dynite reads before paging
    assert {company["name"] for company in companies} == {"CRONUS DE", "CRONUS UK"}
    assert francs
    assert all(set(row) == {"@odata.etag", "number"} for row in francs)
    assert paid
    assert all(row["status"] == "Paid" for row in paid)
    assert len(invoices) == counted == INVOICE_COUNT_DE


def test_dynite_sees_errors_as_failed_requests(fresh: Server) -> None:
    client = fresh.client(retries=0)
    with pytest.raises(FailedRequestError, match="404"):
        client.get_records(f"companies({DE_COMPANY_ID})/nothingHere")
    # A revoked token: the auth object fetches another one and dynite never notices.
    client.get_records("companies")
    fresh.sandbox.tokens.clear()
    assert len(client.get_records("companies")) == 2
    assert client.session.auth.tokens_fetched == 2


def test_dynite_meets_the_rate_limit(fresh: Server) -> None:
    client = fresh.client(retries=0)
    client.get_records("companies")  # log in and learn the principal
    window = fresh.sandbox.windows[DEV_CLIENT_ID]
    window.extend([time.time()] * (fresh.sandbox.settings.rate_limit_requests - len(window)))
    with pytest.raises(FailedRequestError, match=r"429|[Tt]oo many"):
        client.get_records(CUSTOMERS)
    assert fresh.sandbox.throttled >= 1
