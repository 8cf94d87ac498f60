"""The Salesforce sandbox as an unmodified public client sees it: simple-salesforce over real HTTPS.

simple-salesforce always speaks https to ``https://{domain}.salesforce.com`` (login) and to
``https://{instance}`` (data), so the sandbox is served by uvicorn on a free loopback port with a
certificate from a test CA (``trustme``) for those names, and the client gets a ``requests.Session`` that
trusts that CA and sends the Salesforce host names to the local port. TLS still checks the name in the URL
and ``Host`` still carries it, so the sandbox answers exactly as it would at those addresses. Nothing in
simple-salesforce is patched.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import trustme
import uvicorn
from requests.adapters import HTTPAdapter
from simple_salesforce.api import DEFAULT_API_VERSION, Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from sandboxes.salesforce import (
    DEV_JWT_CONSUMER_KEY,
    SalesforceSandboxSettings,
    create_salesforce_sandbox,
    dev_jwt_private_key_pem,
)
from sandboxes.salesforce.data import (
    BIG_ACCOUNT_ID,
    BIG_ACCOUNT_OPPORTUNITY_COUNT,
    DEMO_ACCOUNT_ID,
    DUPLICATE_CONTACT_EXTERNAL_ID,
    DUPLICATE_CONTACT_IDS,
    INTEGRATION_USER_ID,
    INTEGRATION_USERNAME,
    ORG_ID,
    ORG_NAME,
    SCHEMAS,
    STAGES,
    USERNAMES,
)

API_VERSION = "61.0"
DATA = f"/services/data/v{API_VERSION}"
CONSUMER_KEY = DEV_JWT_CONSUMER_KEY
CONSUMER_SECRET = "stratum-sandbox-secret"
MY_DOMAIN = "acme.my"  # simple-salesforce's client-credentials login goes to https://acme.my.salesforce.com
INSTANCE_HOST = "acme.my.salesforce.com"
# Every name simple-salesforce is made to call here; anything else is refused rather than sent anywhere.
SALESFORCE_HOSTS = ("login.salesforce.com", "test.salesforce.com", INSTANCE_HOST)
REQUEST_TIMEOUT_SECONDS = 10.0


class Clock:
    """Epoch seconds the test can move on: the change feeds leave the current minute uncovered."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class LocalSalesforceAdapter(HTTPAdapter):
    """Sends ``https://<Salesforce host>/...`` to the sandbox on 127.0.0.1:``port``.

    The connection pool is keyed and verified by the URL's name (SNI and certificate hostname check), only
    the socket goes to the loopback port, and ``Host`` keeps the name so the sandbox builds its URLs from
    it. Requests without a timeout get one, so a hung server fails a test instead of stalling it.
    """

    def __init__(self, port: int) -> None:
        super().__init__(max_retries=0)
        self.port = port

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        name = host_params["host"]
        if host_params["scheme"] != "https" or name not in SALESFORCE_HOSTS:
            raise ValueError(f"{host_params['scheme']}://{name} is not routed to the Salesforce sandbox")
        pool_kwargs = {**pool_kwargs, "server_hostname": name, "assert_hostname": name}
        return {**host_params, "host": "127.0.0.1", "port": self.port}, pool_kwargs

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        request.headers["Host"] = urlsplit(request.url).netloc

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = REQUEST_TIMEOUT_SECONDS
        return super().send(request, *args, **kwargs)


class Server:
    def __init__(self, port: int, ca_path: Path, app: Any, clock: Clock) -> None:
        self.port = port
        self.ca_path = ca_path
        self.app = app
        self.clock = clock

    def session(self) -> requests.Session:
        """What simple-salesforce is given: trusts the test CA, routes the Salesforce names locally."""
        session = requests.Session()
        session.trust_env = False  # no proxy or CA bundle from the environment may change the route
        session.verify = str(self.ca_path)
        session.mount("https://", LocalSalesforceAdapter(self.port))
        return session


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    ca = trustme.CA()
    certificate = ca.issue_cert(*SALESFORCE_HOSTS)
    folder = tmp_path_factory.mktemp("salesforce-tls")
    ca_path, chain_path = folder / "ca.pem", folder / "server.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    certificate.private_key_and_cert_chain_pem.write_to_path(str(chain_path))
    clock = Clock()
    # Logging in at login.salesforce.com hands out the org's own My Domain, as the real service does.
    settings = SalesforceSandboxSettings(instance_url=f"https://{INSTANCE_HOST}")
    app = create_salesforce_sandbox(settings, clock=clock)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, ssl_certfile=str(chain_path), log_level="warning", ws="none", lifespan="on", loop="asyncio"
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not uvicorn_server.started:
            assert thread.is_alive(), "the sandbox server stopped while starting"
            assert time.monotonic() < deadline, "the sandbox server did not start in time"
            time.sleep(0.02)
        yield Server(sock.getsockname()[1], ca_path, app, clock)
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=3)
        if thread.is_alive():
            # A client socket the tests no longer use can still be open (a failed call's traceback keeps
            # its response, and so its socket, alive); graceful shutdown would wait for it, so stop anyway.
            uvicorn_server.force_exit = True
            thread.join(timeout=10)
        sock.close()
    assert not thread.is_alive(), "the sandbox server did not stop"


@pytest.fixture
def session(server: Server) -> Iterator[requests.Session]:
    with server.session() as session:
        assert session.post(f"https://{INSTANCE_HOST}/__sandbox/reset").status_code == 204
        yield session


def client_credentials(session: requests.Session) -> Any:
    """A client-credentials login, typed loosely: simple-salesforce's ``sf.<Object>`` is a dynamic
    attribute whose declared type (bulk handlers included) does not describe the calls made on it."""
    return Salesforce(
        consumer_key=CONSUMER_KEY,
        consumer_secret=CONSUMER_SECRET,
        domain=MY_DOMAIN,
        version=API_VERSION,
        session=session,
    )


def default_version_client(session: requests.Session) -> Any:
    """A client-credentials login with simple-salesforce's own default API version (no ``version=``),
    as most code that uses the library is written."""
    return Salesforce(
        consumer_key=CONSUMER_KEY, consumer_secret=CONSUMER_SECRET, domain=MY_DOMAIN, session=session
    )


def error_body(error: Exception) -> Any:
    """The decoded error body simple-salesforce keeps on its exceptions (declared as bytes)."""
    return getattr(error, "content", None)


def stats(session: requests.Session) -> dict[str, Any]:
    response = session.get(f"https://{INSTANCE_HOST}/__sandbox/stats")
    assert response.status_code == 200
    payload: dict[str, Any] = response.json()
    return payload


# ---------------------------------------------------------------------------------------------------------
# Logging in
# ---------------------------------------------------------------------------------------------------------


def test_the_session_reaches_only_the_sandbox_and_checks_its_certificate(
    server: Server, session: requests.Session
) -> None:
    with pytest.raises(requests.exceptions.InvalidURL):
        session.get("https://example.com/")
    # A client that does not trust the test CA refuses the sandbox's certificate.
    with requests.Session() as untrusting:
        untrusting.trust_env = False
        untrusting.mount("https://", LocalSalesforceAdapter(server.port))
        with pytest.raises(requests.exceptions.SSLError):
            untrusting.get(f"https://{INSTANCE_HOST}/services/data")


def test_client_credentials_login(session: requests.Session) -> None:
    sf = client_credentials(session)
    assert sf.auth_type == "client-credentials"
    assert sf.sf_instance == INSTANCE_HOST
    assert sf.base_url == f"https://{INSTANCE_HOST}{DATA}/"
    assert sf.limits()["DailyApiRequests"]["Max"] == 5000
    # The token request went to the My Domain with HTTP Basic, and was not an API call.
    assert [r["path"] for r in stats(session)["requests"]][:1] == ["/services/oauth2/token"]


def test_wrong_client_credentials_fail_the_login(session: requests.Session) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        Salesforce(
            consumer_key=CONSUMER_KEY,
            consumer_secret="wrong",
            domain=MY_DOMAIN,
            version=API_VERSION,
            session=session,
        )
    assert caught.value.code == "invalid_client"


@pytest.mark.parametrize("domain", ["login", "test"])
def test_jwt_bearer_login(session: requests.Session, domain: str) -> None:
    username = "priya.raman@stratum-sandbox.example"
    sf: Any = Salesforce(
        username=username,
        consumer_key=DEV_JWT_CONSUMER_KEY,
        privatekey=dev_jwt_private_key_pem(),
        domain=domain,
        version=API_VERSION,
        session=session,
    )
    assert sf.auth_type == "jwt-bearer"
    # The assertion was made for https://{domain}.salesforce.com and the answer named the My Domain.
    assert sf.sf_instance == INSTANCE_HOST
    created = sf.Account.create({"Name": "Made by a JWT session"})
    # Records belong to the user the assertion named.
    assert sf.Account.get(created["id"])["OwnerId"] == USERNAMES[username]


def test_jwt_bearer_login_for_a_user_who_has_not_approved_the_app(session: requests.Session) -> None:
    with (
        pytest.warns(UserWarning, match="authorize"),
        pytest.raises(SalesforceAuthenticationFailed) as caught,
    ):
        Salesforce(
            username="someone.else@stratum-sandbox.example",
            consumer_key=DEV_JWT_CONSUMER_KEY,
            privatekey=dev_jwt_private_key_pem(),
            version=API_VERSION,
            session=session,
        )
    assert caught.value.code == "invalid_grant"
    assert "user hasn't approved this consumer" in str(caught.value)


# ---------------------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------------------


def test_query_all_follows_next_records_url(session: requests.Session) -> None:
    sf = client_credentials(session)
    soql = f"SELECT Id, Name FROM Opportunity WHERE AccountId = '{BIG_ACCOUNT_ID}'"
    options = {"Sforce-Query-Options": "batchSize=200"}
    everything = sf.query_all(soql, headers=options)
    assert everything["totalSize"] == BIG_ACCOUNT_OPPORTUNITY_COUNT
    assert len({record["Id"] for record in everything["records"]}) == BIG_ACCOUNT_OPPORTUNITY_COUNT
    paths = [r["path"] for r in stats(session)["requests"] if r["path"].startswith(f"{DATA}/query/")]
    assert len(paths) == 2
    assert paths[1].startswith(f"{DATA}/query/01g")
    assert paths[1].endswith("-200")


def test_query_and_query_more(session: requests.Session) -> None:
    sf = client_credentials(session)
    soql = f"SELECT Id FROM Opportunity WHERE AccountId = '{BIG_ACCOUNT_ID}' ORDER BY Id"
    first = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    assert (first["done"], len(first["records"]), first["totalSize"]) == (
        False,
        200,
        BIG_ACCOUNT_OPPORTUNITY_COUNT,
    )
    by_url = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    # The other spelling: the locator alone, which the client appends to .../query/.
    by_locator = sf.query_more(first["nextRecordsUrl"].rsplit("/", 1)[1])
    assert by_url == by_locator
    assert (by_url["done"], len(by_url["records"])) == (True, 30)
    ids = {r["Id"] for r in first["records"] + by_url["records"]}
    assert len(ids) == BIG_ACCOUNT_OPPORTUNITY_COUNT
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FROM Opportunity WHERE")
    assert error_body(caught.value)[0]["errorCode"] == "MALFORMED_QUERY"


def test_counts_relationships_and_subqueries_through_the_client(session: requests.Session) -> None:
    sf = client_credentials(session)
    total = sf.query(f"SELECT COUNT() FROM Opportunity WHERE AccountId = '{BIG_ACCOUNT_ID}'")
    assert total == {"totalSize": BIG_ACCOUNT_OPPORTUNITY_COUNT, "done": True, "records": []}
    soql = (
        "SELECT Id, Account.Name, Account.Parent.Name FROM Opportunity "
        f"WHERE Account.Id = '{BIG_ACCOUNT_ID}' AND CloseDate < NEXT_N_DAYS:3650"
    )
    # query_all follows nextRecordsUrl; every page keeps the nested parents.
    everything = sf.query_all(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    assert everything["totalSize"] == BIG_ACCOUNT_OPPORTUNITY_COUNT
    parents = {record["Account"]["Name"] for record in everything["records"]}
    assert parents == {"Globex Professional Services"}
    assert all(record["Account"]["Parent"] is None for record in everything["records"])
    subquery = f"SELECT Name, (SELECT Id FROM Opportunities) FROM Account WHERE Id = '{BIG_ACCOUNT_ID}'"
    accounts = sf.query(subquery)
    assert accounts["records"][0]["Opportunities"]["totalSize"] == BIG_ACCOUNT_OPPORTUNITY_COUNT
    grouped = sf.query("SELECT COUNT(Id), AccountId FROM Opportunity GROUP BY AccountId")
    per_account = {r["AccountId"]: r["expr0"] for r in grouped["records"]}
    assert per_account[BIG_ACCOUNT_ID] == BIG_ACCOUNT_OPPORTUNITY_COUNT


def test_api_usage_is_parsed_from_sforce_limit_info(session: requests.Session) -> None:
    sf = client_credentials(session)
    sf.query("SELECT COUNT() FROM Account")
    sf.Account.get(DEMO_ACCOUNT_ID)
    usage = sf.api_usage["api-usage"]
    assert (usage.used, usage.total) == (1, 5000)  # the query; SFType objects track their own calls
    account = sf.Account
    account.get(DEMO_ACCOUNT_ID)
    assert (account.api_usage["api-usage"].used, account.api_usage["api-usage"].total) == (3, 5000)
    assert stats(session)["api_usage"] == 3


# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------


def test_read_create_update_delete(session: requests.Session) -> None:
    sf = client_credentials(session)
    account = sf.Account.get(DEMO_ACCOUNT_ID)
    assert (account["attributes"]["type"], account["Name"]) == ("Account", "Northwind Health Systems")
    created = sf.Contact.create(
        {"FirstName": "Ada", "LastName": "Okafor", "AccountId": DEMO_ACCOUNT_ID, "Email": "ada@example.com"}
    )
    assert created["success"] is True
    assert created["errors"] == []
    assert sf.Contact.update(created["id"], {"Title": "Controller"}) == 204
    contact = sf.Contact.get(created["id"])
    assert (contact["Name"], contact["Title"], contact["OwnerId"]) == (
        "Ada Okafor",
        "Controller",
        INTEGRATION_USER_ID,
    )
    contract = sf.Contract.create(
        {"AccountId": DEMO_ACCOUNT_ID, "StartDate": "2026-04-01", "ContractTerm": 12}
    )
    assert sf.Contract.get(contract["id"])["EndDate"] == "2027-03-31"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Contact.create({"FirstName": "No last name"})
    assert error_body(caught.value) == [
        {
            "message": "Required fields are missing: [LastName]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["LastName"],
        }
    ]
    assert sf.Contact.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(created["id"])


def test_upsert_by_external_id(session: requests.Session) -> None:
    sf = client_credentials(session)
    assert sf.Contact.upsert("External_Id__c/X-1", {"LastName": "Ng", "AccountId": DEMO_ACCOUNT_ID}) == 201
    assert sf.Contact.upsert("External_Id__c/X-1", {"Title": "CFO"}) == 200
    contact = sf.Contact.get_by_custom_id("External_Id__c", "X-1")
    assert (contact["LastName"], contact["Title"], contact["External_Id__c"]) == ("Ng", "CFO", "X-1")
    second = sf.Contact.upsert("External_Id__c/X-2", {"LastName": "Ito"}, raw_response=True)
    assert second.status_code == 201
    assert second.json()["created"] is True
    with pytest.raises(SalesforceMoreThanOneRecord) as caught:
        sf.Contact.upsert(f"External_Id__c/{DUPLICATE_CONTACT_EXTERNAL_ID}", {"Title": "Buyer"})
    assert sorted(error_body(caught.value)) == sorted(
        f"{DATA}/sobjects/Contact/{i}" for i in DUPLICATE_CONTACT_IDS
    )


def test_composite_through_restful(session: requests.Session) -> None:
    sf = client_credentials(session)
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{DATA}/sobjects/Account",
                "referenceId": "acct",
                "body": {"Name": "Ref Co"},
            },
            {
                "method": "POST",
                "url": f"{DATA}/sobjects/Contact",
                "referenceId": "person",
                "body": {"LastName": "Ref", "AccountId": "@{acct.id}"},
            },
        ],
    }
    answer = sf.restful("composite", method="POST", json=body)
    assert [r["httpStatusCode"] for r in answer["compositeResponse"]] == [201, 201]
    person = sf.Contact.get(answer["compositeResponse"][1]["body"]["id"])
    assert person["AccountId"] == answer["compositeResponse"][0]["body"]["id"]


def test_change_feeds(server: Server, session: requests.Session) -> None:
    sf = client_credentials(session)
    start = dt.datetime.fromtimestamp(server.clock(), dt.UTC) - dt.timedelta(minutes=5)
    created = sf.Contact.create({"LastName": "Feed", "AccountId": DEMO_ACCOUNT_ID})["id"]
    doomed = sf.Contact.create({"LastName": "Gone"})["id"]
    sf.Contact.delete(doomed)
    # Salesforce covers whole minutes only, and not the one still in progress.
    server.clock.advance(120)
    end = dt.datetime.fromtimestamp(server.clock(), dt.UTC) + dt.timedelta(minutes=5)
    updated = sf.Contact.updated(start, end)
    assert updated["ids"] == [created]
    assert updated["latestDateCovered"].endswith(":00.000+0000")
    deleted = sf.Contact.deleted(start, end)
    assert [entry["id"] for entry in deleted["deletedRecords"]] == [doomed]
    assert set(deleted) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}


# ---------------------------------------------------------------------------------------------------------
# Expired sessions
# ---------------------------------------------------------------------------------------------------------


def test_a_client_that_can_log_in_again_does_so_on_invalid_session_id(session: requests.Session) -> None:
    sf = client_credentials(session)
    first_token = sf.session_id
    assert session.post(f"https://{INSTANCE_HOST}/__sandbox/sessions/expire").status_code == 204
    assert sf.Account.get(DEMO_ACCOUNT_ID)["Id"] == DEMO_ACCOUNT_ID
    assert sf.session_id != first_token
    statuses = [(r["path"], r["status"]) for r in stats(session)["requests"]]
    assert statuses[-3:] == [
        (f"{DATA}/sobjects/Account/{DEMO_ACCOUNT_ID}", 401),
        ("/services/oauth2/token", 200),
        (f"{DATA}/sobjects/Account/{DEMO_ACCOUNT_ID}", 200),
    ]


def test_a_client_given_only_a_session_id_raises_salesforce_expired_session(
    session: requests.Session,
) -> None:
    token = client_credentials(session).session_id
    sf: Any = Salesforce(
        instance_url=f"https://{INSTANCE_HOST}", session_id=token, version=API_VERSION, session=session
    )
    assert sf.Account.get(DEMO_ACCOUNT_ID)["Id"] == DEMO_ACCOUNT_ID
    assert session.post(f"https://{INSTANCE_HOST}/__sandbox/sessions/expire").status_code == 204
    with pytest.raises(SalesforceExpiredSession) as caught:
        sf.Account.get(DEMO_ACCOUNT_ID)
    assert error_body(caught.value) == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account")


def test_jwt_username_constant_is_the_integration_user() -> None:
    assert USERNAMES[INTEGRATION_USERNAME] == INTEGRATION_USER_ID


# ---------------------------------------------------------------------------------------------------------
# API versions, describe, sObject Collections and the Organization object (REST API Developer Guide
# resources: "Versions", "Describe Global", "sObject Basic Information", "sObject Describe",
# "sObject Collections" (create), "sObject Rows" on Organization, "Query")
# ---------------------------------------------------------------------------------------------------------


def test_versions_resource_lists_the_client_default_version(session: requests.Session) -> None:
    # "Versions": GET /services/data/ (no session needed) lists every version the org serves.
    listed = session.get(f"https://{INSTANCE_HOST}/services/data/").json()
    urls = [entry["url"] for entry in listed]
    assert f"/services/data/v{DEFAULT_API_VERSION}" in urls
    assert {f"/services/data/v{number}.0" for number in range(55, 63)} <= set(urls)
    assert all(set(entry) == {"label", "url", "version"} for entry in listed)


def test_the_client_at_its_default_version_queries_and_reads(session: requests.Session) -> None:
    sf = default_version_client(session)
    assert sf.sf_version == DEFAULT_API_VERSION
    base = f"/services/data/v{DEFAULT_API_VERSION}"
    account = sf.Account.get(DEMO_ACCOUNT_ID)
    assert account["Name"] == "Northwind Health Systems"
    assert account["attributes"]["url"] == f"{base}/sobjects/Account/{DEMO_ACCOUNT_ID}"
    soql = f"SELECT Id FROM Opportunity WHERE AccountId = '{BIG_ACCOUNT_ID}'"
    everything = sf.query_all(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    assert len({record["Id"] for record in everything["records"]}) == BIG_ACCOUNT_OPPORTUNITY_COUNT
    # nextRecordsUrl stays on the version the client chose.
    paths = [r["path"] for r in stats(session)["requests"] if "/query/" in r["path"]]
    assert len(paths) == 2
    assert all(path.startswith(f"{base}/query/") for path in paths)
    created = sf.Contact.create({"LastName": "Default", "AccountId": DEMO_ACCOUNT_ID})
    assert sf.Contact.get(created["id"])["LastName"] == "Default"


def test_an_unknown_version_is_not_found(session: requests.Session) -> None:
    token = default_version_client(session).session_id
    for version in ("99.0", "20.0"):
        sf: Any = Salesforce(
            instance_url=f"https://{INSTANCE_HOST}", session_id=token, version=version, session=session
        )
        with pytest.raises(SalesforceResourceNotFound) as caught:
            sf.Account.get(DEMO_ACCOUNT_ID)
        assert error_body(caught.value) == [
            {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}
        ]


def test_describe_global_lists_every_object(session: requests.Session) -> None:
    # "Describe Global": GET /services/data/vXX.X/sobjects/
    described = default_version_client(session).describe()
    assert described["maxBatchSize"] == 200
    by_name = {entry["name"]: entry for entry in described["sobjects"]}
    assert set(by_name) == set(SCHEMAS)
    assert (by_name["Account"]["keyPrefix"], by_name["Account"]["createable"]) == ("001", True)
    assert by_name["Opportunity_Milestone__c"]["custom"] is True
    assert by_name["Organization"]["createable"] is False
    assert (
        by_name["Contact"]["urls"]["describe"]
        == f"/services/data/v{DEFAULT_API_VERSION}/sobjects/Contact/describe"
    )


def test_sobject_describe_lists_the_fields_the_org_enforces(session: requests.Session) -> None:
    # "sObject Describe": GET /services/data/vXX.X/sobjects/{sObject}/describe/
    sf = default_version_client(session)
    for name, schema in SCHEMAS.items():
        described = getattr(sf, name).describe()
        assert described["name"] == name
        assert [f["name"] for f in described["fields"]] == [spec.name for spec in schema.fields]
    fields = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    keys = {"name", "label", "type", "length", "precision", "scale", "nillable", "custom", "createable"}
    keys |= {"updateable", "referenceTo", "picklistValues", "externalId", "unique", "soapType"}
    assert all(keys <= set(f) for f in fields.values())
    amount = fields["Amount"]
    assert (amount["type"], amount["precision"], amount["scale"], amount["nillable"]) == (
        "currency",
        18,
        2,
        True,
    )
    stage = fields["StageName"]
    assert [value["value"] for value in stage["picklistValues"]] == list(STAGES)
    assert (stage["restrictedPicklist"], stage["nillable"]) == (True, False)
    account = fields["AccountId"]
    assert (account["type"], account["referenceTo"], account["relationshipName"]) == (
        "reference",
        ["Account"],
        "Account",
    )
    assert (fields["IsWon"]["createable"], fields["IsWon"]["updateable"]) == (False, False)
    assert (fields["Billing_Model__c"]["custom"], fields["Billing_Model__c"]["label"]) == (
        True,
        "Billing Model",
    )
    assert (fields["Stratum_Id__c"]["externalId"], fields["Stratum_Id__c"]["unique"]) == (True, True)
    assert (fields["Name"]["type"], fields["Name"]["length"]) == ("string", 120)
    children = {(c["childSObject"], c["field"]) for c in sf.Opportunity.describe()["childRelationships"]}
    assert ("Opportunity_Milestone__c", "Opportunity__c") in children
    # What a describe-driven client does next: select every field it was told about.
    names = ", ".join(f["name"] for f in sf.Account.describe()["fields"])
    rows = sf.query(f"SELECT {names} FROM Account WHERE Id = '{DEMO_ACCOUNT_ID}'")["records"]
    assert rows[0]["Name"] == "Northwind Health Systems"


def test_sobject_basic_information(session: requests.Session) -> None:
    # "sObject Basic Information": GET /services/data/vXX.X/sobjects/{sObject}/
    metadata = default_version_client(session).Account.metadata()
    assert metadata["objectDescribe"]["name"] == "Account"
    assert metadata["objectDescribe"]["keyPrefix"] == "001"
    assert "fields" not in metadata["objectDescribe"]
    assert metadata["recentItems"] == []


def count(sf: Any, soql: str) -> int:
    total: int = sf.query(soql)["totalSize"]
    return total


def test_sobject_collections_create(session: requests.Session) -> None:
    # "sObject Collections" create: POST /services/data/vXX.X/composite/sobjects
    sf = default_version_client(session)
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Account"}, "Name": "Collection Co"},
            {"attributes": {"type": "Contact"}, "LastName": "Collected", "AccountId": DEMO_ACCOUNT_ID},
            {"attributes": {"type": "Contact"}, "FirstName": "No last name"},
        ],
    }
    answer = sf.restful("composite/sobjects", method="POST", json=body)
    assert [result["success"] for result in answer] == [True, True, False]
    assert sf.Account.get(answer[0]["id"])["Name"] == "Collection Co"
    assert sf.Contact.get(answer[1]["id"])["AccountId"] == DEMO_ACCOUNT_ID
    assert answer[0]["errors"] == []
    assert answer[2]["errors"] == [
        {
            "statusCode": "REQUIRED_FIELD_MISSING",
            "message": "Required fields are missing: [LastName]",
            "fields": ["LastName"],
        }
    ]


def test_sobject_collections_all_or_none_rolls_back(session: requests.Session) -> None:
    sf = default_version_client(session)
    before = count(sf, "SELECT Id FROM Account")
    body = {
        "allOrNone": True,
        "records": [
            {"attributes": {"type": "Account"}, "Name": "Rolled Back Co"},
            {"attributes": {"type": "Contact"}, "FirstName": "No last name"},
        ],
    }
    answer = sf.restful("composite/sobjects", method="POST", json=body)
    assert [result["success"] for result in answer] == [False, False]
    assert answer[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert answer[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert count(sf, "SELECT Id FROM Account") == before


def test_sobject_collections_take_at_most_200_records(session: requests.Session) -> None:
    sf = default_version_client(session)
    records = [{"attributes": {"type": "Account"}, "Name": f"Bulk {n}"} for n in range(201)]
    before = count(sf, "SELECT Id FROM Account")
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="POST", json={"records": records})
    assert error_body(caught.value)[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert count(sf, "SELECT Id FROM Account") == before
    answer = sf.restful("composite/sobjects", method="POST", json={"records": records[:200]})
    assert len(answer) == 200
    assert all(result["success"] for result in answer)
    assert count(sf, "SELECT Id FROM Account") == before + 200


def test_organization_is_readable_and_queryable_but_not_writable(session: requests.Session) -> None:
    # "sObject Rows" and "Query" on Organization, the org's one setup record.
    sf = default_version_client(session)
    rows = sf.query("SELECT Id, Name, OrganizationType, IsSandbox FROM Organization")["records"]
    assert [(row["Id"], row["Name"]) for row in rows] == [(ORG_ID, ORG_NAME)]
    assert sf.is_sandbox() is False  # simple-salesforce's own Organization query
    organization = sf.Organization.get(ORG_ID)
    assert (organization["attributes"]["type"], organization["Name"]) == ("Organization", ORG_NAME)
    # The identity URL the login answered names the same org id.
    assert sf.query("SELECT Id FROM Organization")["records"][0]["Id"] == ORG_ID
    identity = session.post(
        f"https://{INSTANCE_HOST}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CONSUMER_KEY,
            "client_secret": CONSUMER_SECRET,
        },
    ).json()["id"]
    assert f"/id/{ORG_ID}/" in identity
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.Organization.update(ORG_ID, {"Name": "Renamed"})
    assert caught.value.status == 405
    with pytest.raises(SalesforceGeneralError):
        sf.Organization.create({"Name": "Another org"})
    assert sf.Organization.get(ORG_ID)["Name"] == ORG_NAME
    described = sf.Organization.describe()
    assert (described["createable"], described["updateable"], described["deletable"]) == (False, False, False)
