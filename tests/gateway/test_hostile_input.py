"""Bodies a client can send to hurt the gateway: too large (413 on every route, before anything parses
them, with or without Content-Length) and nested too deep (400, never a RecursionError's 500)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from process_apis.crm_events import SIGNATURE_HEADER, crm_events_secret, sign_crm_event

CAP = 1024 * 1024  # Settings.max_body_bytes


async def _streamed(body: bytes) -> AsyncIterator[bytes]:
    """The body in 64 KiB pieces, without Content-Length (chunked on a real connection)."""
    for start in range(0, len(body), 64 * 1024):
        yield body[start : start + 64 * 1024]


def _json_over_cap() -> bytes:
    return b'{"name": "' + b"x" * CAP + b'"}'


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert (problem["status"], problem["code"]) == (status, code)
    assert problem["correlation_id"] == response.headers["x-correlation-id"]
    return problem


def _request(gw: Any, route: str) -> tuple[str, dict[str, str], bytes]:
    """Path, headers and an over-the-cap body for each kind of route."""
    if route == "tier":
        headers = {**gw.auth("system:read"), "Content-Type": "application/json"}
        return "/system/v1/erp/customer-matches", headers, _json_over_cap()
    if route == "crm-events":
        return "/process/v1/crm-events", {"Content-Type": "application/json"}, _json_over_cap()
    if route == "oauth":
        form = b"grant_type=client_credentials&client_id=stratum-demo&scope=" + b"x" * CAP
        return "/oauth/token", {"Content-Type": "application/x-www-form-urlencoded"}, form
    assert route == "sandbox"
    form = b"grant_type=client_credentials&client_id=" + b"x" * CAP
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return "/sandboxes/salesforce/services/oauth2/token", headers, form


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
@pytest.mark.parametrize("route", ["tier", "crm-events", "oauth", "sandbox"])
async def test_a_body_over_the_cap_is_413_on_every_route(gw: Any, route: str, declared: bool) -> None:
    path, headers, body = _request(gw, route)
    response = await gw.client.post(path, headers=headers, content=body if declared else _streamed(body))
    problem = _assert_problem(response, 413, "payload-too-large")
    assert problem["instance"] == path


async def test_a_streamed_body_is_refused_while_it_streams(gw: Any) -> None:
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        # Far more than the cap, if anyone kept reading.
        for _ in range(10 * CAP // (64 * 1024)):
            sent.append(1)
            yield b"[" + b" " * (64 * 1024 - 1)

    path = "/system/v1/erp/customer-matches"
    headers = {**gw.auth("system:read"), "Content-Type": "application/json"}
    response = await gw.client.post(path, headers=headers, content=endless())
    _assert_problem(response, 413, "payload-too-large")
    # Reading stopped at the piece that passed the cap.
    assert len(sent) == CAP // (64 * 1024) + 1


async def test_a_signed_crm_event_over_the_cap_is_413(gw: Any) -> None:
    body = _json_over_cap()
    signature = sign_crm_event(body, crm_events_secret(gw.runtime.settings))
    response = await gw.client.post(
        "/process/v1/crm-events",
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        content=_streamed(body),
    )
    _assert_problem(response, 413, "payload-too-large")


async def test_a_body_under_the_cap_still_reaches_the_route(gw: Any) -> None:
    body = b'{"name": "' + b"x" * (CAP - 100) + b'"}'
    response = await gw.client.post(
        "/system/v1/erp/customer-matches",
        headers={**gw.auth("system:read"), "Content-Type": "application/json"},
        content=_streamed(body),
    )
    assert response.status_code != 413
    assert response.status_code < 500


# --- JSON nested too deep --------------------------------------------------------------------------------

DEEP = b"[" * 5000 + b"]" * 5000  # far past any parser's recursion limit
DEEP_OBJECT = b'{"a":' * 5000 + b"1" + b"}" * 5000


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["arrays", "objects"])
async def test_a_deep_body_on_a_tier_route_is_400(gw: Any, body: bytes) -> None:
    response = await gw.client.post(
        "/system/v1/erp/customer-matches",
        headers={**gw.auth("system:read"), "Content-Type": "application/json"},
        content=body,
    )
    problem = _assert_problem(response, 400, "malformed-request")
    assert "nests deeper" in problem["detail"]


async def test_nesting_within_the_limit_is_not_refused_for_depth(gw: Any) -> None:
    shallow = b'{"name": "Acme", "surprise": ' + b"[" * 60 + b"]" * 60 + b"}"
    response = await gw.client.post(
        "/system/v1/erp/customer-matches",
        headers={**gw.auth("system:read"), "Content-Type": "application/json"},
        content=shallow,
    )
    # Judged by the contract (an unknown field), not by its depth.
    _assert_problem(response, 422, "validation-failed")


async def test_a_deep_body_with_an_idempotency_key_on_a_route_without_a_body_is_not_a_500(gw: Any) -> None:
    response = await gw.client.post(
        "/system/v1/psa/projects/999999999/close",
        headers={**gw.auth("system:write"), "Content-Type": "application/json", "Idempotency-Key": "deep-1"},
        content=DEEP,
    )
    assert response.status_code < 500, response.text[:300]


async def test_an_unsigned_deep_crm_event_is_not_a_500(gw: Any) -> None:
    response = await gw.client.post(
        "/process/v1/crm-events", headers={"Content-Type": "application/json"}, content=DEEP
    )
    assert response.status_code in (400, 401)
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_signed_deep_crm_event_is_400(gw: Any) -> None:
    signature = sign_crm_event(DEEP_OBJECT, crm_events_secret(gw.runtime.settings))
    response = await gw.client.post(
        "/process/v1/crm-events",
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        content=DEEP_OBJECT,
    )
    _assert_problem(response, 400, "malformed-request")


async def test_the_crm_event_signature_is_checked_before_the_body_is_parsed(gw: Any) -> None:
    response = await gw.client.post(
        "/process/v1/crm-events", headers={"Content-Type": "application/json"}, content=b'{"not json'
    )
    # Not a 400 for the broken JSON: an unsigned body is never parsed at all.
    _assert_problem(response, 401, "invalid-signature")


async def test_a_token_whose_header_nests_deep_is_an_invalid_token(gw: Any) -> None:
    header = base64.urlsafe_b64encode(DEEP).rstrip(b"=").decode()
    response = await gw.client.get(
        "/system/v1/crm/accounts/001000000000000AAA", headers={"Authorization": f"Bearer {header}.e30.sig"}
    )
    _assert_problem(response, 401, "invalid-token")


class _RawRequest:
    """What the sandboxes' body readers use of a Litestar request."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.headers = {"content-type": "application/json"}

    async def body(self) -> bytes:
        return self._body


@pytest.mark.parametrize("vendor", ["salesforce", "kantata", "netsuite", "business-central", "anaplan"])
async def test_each_sandbox_answers_a_deep_body_with_its_own_400(vendor: str) -> None:
    from sandboxes.anaplan import app as anaplan
    from sandboxes.business_central import app as business_central
    from sandboxes.kantata import app as kantata
    from sandboxes.netsuite import app as netsuite
    from sandboxes.salesforce import app as salesforce

    deep: Any = _RawRequest(DEEP)
    deep_object: Any = _RawRequest(DEEP_OBJECT)
    readers: dict[str, tuple[Callable[[], Awaitable[Any]], type[Exception]]] = {
        "salesforce": (lambda: salesforce._body(deep), salesforce.SalesforceError),
        "kantata": (lambda: kantata._json_body(deep), kantata.KantataError),
        "netsuite": (lambda: _awaitable(netsuite._decode, DEEP), netsuite.NetSuiteError),
        "business-central": (lambda: business_central._body(deep), business_central.BusinessCentralError),
        "anaplan": (lambda: anaplan._json_body(deep_object), anaplan.AnaplanError),
    }
    read, error = readers[vendor]
    with pytest.raises(error) as raised:
        await read()
    assert getattr(raised.value, "status", None) == 400


async def _awaitable(decode: Callable[[bytes], Any], body: bytes) -> Any:
    return decode(body)


async def test_a_sandbox_jwt_assertion_that_nests_deep_is_refused_not_a_500(gw: Any) -> None:
    segment = base64.urlsafe_b64encode(DEEP).rstrip(b"=").decode()
    async with gw.sandbox("salesforce") as sandbox:
        response = await sandbox.post(
            "/services/oauth2/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": f"{segment}.{segment}.c2ln",
            },
        )
    assert 400 <= response.status_code < 500


async def test_the_kantata_sandbox_approval_route_answers_a_deep_body_with_400(gw: Any) -> None:
    async with gw.sandbox("kantata") as sandbox:
        response = await sandbox.post(
            "/__sandbox/time_entries/approve", headers={"Content-Type": "application/json"}, content=DEEP
        )
    assert response.status_code == 400, response.text[:300]


# Unknown fields are skipped by recursion too: a record, or an error, with one deep extra field.
_DEEP_RECORD = '{"Id": "001000000000000AAA", "Junk": ' + DEEP.decode() + "}"
_DEEP_ERRORS = '[{"errorCode": "INVALID_FIELD", "message": "no", "junk": ' + DEEP.decode() + "}]"


@pytest.mark.parametrize(
    ("status", "body"), [(200, _DEEP_RECORD), (400, _DEEP_ERRORS)], ids=["answer", "error"]
)
async def test_a_vendor_answer_nested_too_deep_is_a_502(gw: Any, status: int, body: str) -> None:
    async with gw.sandbox("salesforce") as sandbox:
        fault = await sandbox.post(
            "/__sandbox/faults",
            json={
                "kind": "error",
                "status": status,
                "body": body,
                "content_type": "application/json",
                "path_pattern": "^/services/data/",
            },
        )
        assert fault.status_code == 201, fault.text
    response = await gw.client.get(
        "/system/v1/crm/accounts/001000000000000AAA", headers=gw.auth("system:read")
    )
    problem = _assert_problem(response, 502, "vendor-bad-response")
    assert problem["vendor"] == "salesforce"
