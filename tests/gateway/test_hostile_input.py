"""Bodies a client can send to hurt the gateway: too large (413 on every route, before anything parses
them, with or without Content-Length) and nested too deep (400, never a RecursionError's 500)."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
