"""End to end over real HTTP: `stratum serve` in a subprocess, used the way the README walks a new user
through it (token, system read, readiness, sales view), then a Salesforce outage and 5xx injected into the
sandbox, and the server's JSON logs read back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandboxes.salesforce.data import (
    DEMO_ACCOUNT_ID,
    MISSING_LEGAL_ENTITY_OPPORTUNITY_ID,
    READY_OPPORTUNITY_ID,
)
from tests.e2e.harness import Server, free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("e2e"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    secret = server.cli("token", "--client", "stratum-demo", "--show-secret")
    response = httpx.post(
        f"{server.base}/oauth/token",
        auth=("stratum-demo", secret),
        data={"grant_type": "client_credentials", "scope": "system:read process:run experience:sales"},
    )
    assert response.status_code == 200, response.text
    access_token: str = response.json()["access_token"]
    return access_token


def test_walkthrough_from_token_to_sales_view(server: Server, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}", "X-Correlation-ID": "walkthrough-1"}
    with httpx.Client(base_url=server.base, headers=headers) as http:
        catalogue = http.get("/").json()
        assert [t["name"] for t in catalogue["tiers"]] == ["system", "process", "experience"]

        account = http.get(f"/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}")
        assert account.status_code == 200
        assert account.json()["id"] == DEMO_ACCOUNT_ID
        assert account.headers["x-correlation-id"] == "walkthrough-1"

        ready = http.post("/process/v1/activation-readiness", json={"opportunity_id": READY_OPPORTUNITY_ID})
        assert ready.status_code == 200
        assert ready.json()["ready"] is True

        blocked = http.post(
            "/process/v1/activation-readiness", json={"opportunity_id": MISSING_LEGAL_ENTITY_OPPORTUNITY_ID}
        ).json()
        assert blocked["ready"] is False
        assert [(f["rule"], f["owner"]) for f in blocked["failed"]] == [("legal_entity", "sales_operations")]

        view = http.get(f"/experience/v1/sales/accounts/{DEMO_ACCOUNT_ID}")
        assert view.status_code == 200
        body = view.json()
        assert body["account"]["status"] == "ok"
        assert body["opportunities"]["status"] == "ok"
        assert body["opportunities"]["items"]
        for money in body["summary"]["open_pipeline"] + body["summary"]["won"]:
            assert isinstance(money["amount"], str)  # decimal strings, never floats

    # The access line is written once the response is sent: give the server a moment to write it.
    view_line = (f"/experience/v1/sales/accounts/{DEMO_ACCOUNT_ID}", "stratum-demo")
    paths: list[tuple[object, object]] = []
    deadline = time.monotonic() + 5
    while view_line not in paths and time.monotonic() < deadline:
        lines = [line for line in server.log_lines() if line.get("correlation_id") == "walkthrough-1"]
        paths = [(line["path"], line["client_id"]) for line in lines if line.get("event") == "request"]
        time.sleep(0.05)
    assert view_line in paths
    # The inter-tier calls made for it carry the same correlation id, under the calling tier's own client.
    assert any(str(p).startswith("/system/v1/") and c == "stratum-experience-tier" for p, c in paths)
    raw = server.log_path.read_text()
    assert token not in raw
    assert token.split(".")[1] not in raw


def _fault(server: Server, rule: dict[str, object]) -> None:
    response = httpx.post(f"{server.base}/sandboxes/salesforce/__sandbox/faults", json=rule)
    assert response.status_code in (200, 201), response.text


def _clear_faults(server: Server) -> None:
    httpx.delete(f"{server.base}/sandboxes/salesforce/__sandbox/faults")


@pytest.mark.parametrize(
    ("rule", "status", "code"),
    [
        ({"kind": "outage"}, 503, "vendor-unavailable"),
        ({"kind": "error", "status": 503}, 503, "vendor-unavailable"),
        (
            {"kind": "error", "status": 500, "body": '[{"message":"boom","errorCode":"UNKNOWN_EXCEPTION"}]'},
            502,
            "vendor-bad-response",
        ),
        ({"kind": "malformed"}, 502, "vendor-bad-response"),
    ],
)
def test_salesforce_failures_become_problems_never_500(
    server: Server, token: str, rule: dict[str, object], status: int, code: str
) -> None:
    _fault(server, {**rule, "path_pattern": "/sobjects/Account/"})
    try:
        response = httpx.get(
            f"{server.base}/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}",
            headers={"Authorization": f"Bearer {token}"},
        )
    finally:
        _clear_faults(server)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    assert problem["vendor"] == "salesforce"
    if status == 503:
        assert int(response.headers["retry-after"]) >= 1
    assert "boom" not in response.text


def test_a_salesforce_outage_degrades_the_sales_view_per_section(server: Server, token: str) -> None:
    _fault(server, {"kind": "outage", "path_pattern": "/query"})
    try:
        response = httpx.get(
            f"{server.base}/experience/v1/sales/accounts/{DEMO_ACCOUNT_ID}",
            headers={"Authorization": f"Bearer {token}"},
        )
    finally:
        _clear_faults(server)
    assert response.status_code == 200
    body = response.json()
    assert body["account"]["status"] == "ok"
    assert body["opportunities"]["status"] == "unavailable"
    assert body["opportunities"]["error"]["code"] == "vendor-unavailable"


def test_tiers_deployed_apart_call_each_other_by_base_url(tmp_path: Path) -> None:
    # The system tier alone; the process and experience tiers in another process, reaching it over HTTP.
    # Both share the dev issuer (data dir and public URL), as the README says.
    front_port = free_port()
    issuer = f"http://127.0.0.1:{front_port}"
    system = Server(tmp_path, "--tiers", "system", name="system", STRATUM_PUBLIC_URL=issuer)
    try:
        front = Server(
            tmp_path,
            "--tiers",
            "process,experience",
            name="front",
            STRATUM_PUBLIC_URL=issuer,
            STRATUM_SYSTEM_URL=system.base,
        )
        try:
            token = front.cli("token", "--scope", "process:run experience:sales")
            headers = {"Authorization": f"Bearer {token}", "X-Correlation-ID": "split-1"}
            assert (
                httpx.get(
                    f"{front.base}/system/v1/crm/accounts/{DEMO_ACCOUNT_ID}", headers=headers
                ).status_code
                == 404
            )
            ready = httpx.post(
                f"{front.base}/process/v1/activation-readiness",
                headers=headers,
                json={"opportunity_id": READY_OPPORTUNITY_ID},
            )
            assert ready.status_code == 200, ready.text
            assert ready.json()["ready"] is True
            deadline = time.monotonic() + 5
            seen: list[object] = []
            while not seen and time.monotonic() < deadline:
                seen = [
                    line["client_id"]
                    for line in system.log_lines()
                    if line.get("correlation_id") == "split-1" and line.get("event") == "request"
                ]
                time.sleep(0.05)
            assert "stratum-process-tier" in seen  # the remote system tier served the process tier's calls
        finally:
            front.stop()
    finally:
        system.stop()


def test_an_external_issuer_by_configuration_only(tmp_path: Path) -> None:
    # One Stratum plays the identity provider (its dev authorization server); the gateway under test runs
    # with no issuer of its own, discovers the IdP's JWKS from its RFC 8414 metadata, and gets the tiers'
    # own tokens from the IdP's token endpoint.
    (tmp_path / "idp").mkdir()
    (tmp_path / "gw").mkdir()
    idp = Server(tmp_path / "idp", "--tiers", "system", name="idp")
    try:
        clients = {
            c["client_id"]: c["client_secret"]
            for c in json.loads((tmp_path / "idp/data/clients.json").read_text())
        }
        gateway = Server(
            tmp_path / "gw",
            name="gateway",
            STRATUM_OAUTH_ISSUER=idp.base,
            STRATUM_OAUTH_TOKEN_URL=f"{idp.base}/oauth/token",
            STRATUM_PROCESS_CLIENT=json.dumps(
                {"client_id": "stratum-process-tier", "client_secret": clients["stratum-process-tier"]}
            ),
            STRATUM_EXPERIENCE_CLIENT=json.dumps(
                {"client_id": "stratum-experience-tier", "client_secret": clients["stratum-experience-tier"]}
            ),
        )
        try:
            token = httpx.post(
                f"{idp.base}/oauth/token",
                auth=("stratum-demo", clients["stratum-demo"]),
                data={"grant_type": "client_credentials", "scope": "process:run"},
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            ready = httpx.post(
                f"{gateway.base}/process/v1/activation-readiness",
                headers=headers,
                json={"opportunity_id": READY_OPPORTUNITY_ID},
            )
            assert ready.status_code == 200, ready.text
            assert ready.json()["ready"] is True
            # The gateway runs no authorization server of its own any more.
            assert httpx.post(f"{gateway.base}/oauth/token", data={}).status_code == 404
        finally:
            gateway.stop()
    finally:
        idp.stop()
