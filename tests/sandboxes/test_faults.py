"""Fault injection against a plain ASGI app: every fault kind as a client sees it, and the admin API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import pytest

from sandboxes.faults import FaultInjector, FaultRule, Receive, Scope, Send, relative_path, with_faults


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A vendor stand-in: answers every request with a small JSON document naming the path."""
    body = json.dumps({"ok": True, "path": relative_path(scope), "items": [1, 2, 3]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def no_content_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@asynccontextmanager
async def faulty_client(
    injector: FaultInjector, app: Any = echo_app, root_path: str = ""
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=with_faults(app, injector), root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://vendor.test") as client:
        yield client


@pytest.mark.asyncio
async def test_no_rules_passes_requests_through() -> None:
    async with faulty_client(FaultInjector()) as client:
        response = await client.get("/api/things")
    assert response.status_code == 200
    assert response.json()["path"] == "/api/things"


@pytest.mark.asyncio
async def test_error_fault_defaults_to_a_vendor_neutral_503() -> None:
    injector = FaultInjector()
    injector.add(FaultRule(kind="error"))
    async with faulty_client(injector) as client:
        response = await client.get("/api/things")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error", "message"}


@pytest.mark.asyncio
async def test_error_fault_answers_with_the_given_status_body_and_headers() -> None:
    injector = FaultInjector()
    body = '[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]'
    injector.add(FaultRule(kind="error", status=401, body=body, headers={"Retry-After": "7"}))
    async with faulty_client(injector) as client:
        response = await client.get("/api/things")
    assert response.status_code == 401
    assert response.headers["retry-after"] == "7"
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


@pytest.mark.asyncio
async def test_outage_is_an_html_maintenance_page() -> None:
    injector = FaultInjector()
    injector.add(FaultRule(kind="outage", headers={"Retry-After": "120"}))
    async with faulty_client(injector) as client:
        response = await client.get("/api/things")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["retry-after"] == "120"
    assert "maintenance" in response.text.lower()
    with pytest.raises(json.JSONDecodeError):
        response.json()


@pytest.mark.asyncio
async def test_latency_delays_then_answers_normally() -> None:
    injector = FaultInjector()
    injector.add(FaultRule(kind="latency", latency_ms=60))
    async with faulty_client(injector) as client:
        started = time.perf_counter()
        response = await client.get("/api/things")
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert elapsed >= 0.055


@pytest.mark.asyncio
async def test_malformed_keeps_status_and_truncates_the_body_with_a_correct_length() -> None:
    injector = FaultInjector()
    injector.add(FaultRule(kind="malformed"))
    async with faulty_client(injector) as client:
        response = await client.get("/api/things")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content) > 0
    assert b'{"ok": true'.startswith(response.content[:5])
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


@pytest.mark.asyncio
async def test_malformed_leaves_bodyless_responses_alone() -> None:
    injector = FaultInjector()
    injector.add(FaultRule(kind="malformed"))
    async with faulty_client(injector, app=no_content_app) as client:
        response = await client.patch("/api/things/1", json={})
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.asyncio
async def test_hang_answers_504_after_the_delay() -> None:
    injector = FaultInjector()
    injector.add(FaultRule(kind="hang", latency_ms=30))
    async with faulty_client(injector) as client:
        started = time.perf_counter()
        response = await client.get("/api/things")
    assert time.perf_counter() - started >= 0.025
    assert response.status_code == 504


@pytest.mark.asyncio
async def test_hang_defaults_to_long_enough_to_trip_a_client_timeout() -> None:
    injector = FaultInjector()
    injector.add(FaultRule(kind="hang"))
    async with faulty_client(injector) as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.get("/api/things"), timeout=0.05)


@pytest.mark.asyncio
async def test_times_limits_how_often_a_rule_applies() -> None:
    injector = FaultInjector()
    injector.add(FaultRule(kind="error", status=500, times=2))
    async with faulty_client(injector) as client:
        statuses = [(await client.get("/api/things")).status_code for _ in range(4)]
    assert statuses == [500, 500, 200, 200]
    assert injector.rules == ()


@pytest.mark.asyncio
async def test_method_and_path_pattern_select_requests() -> None:
    injector = FaultInjector()
    injector.add(FaultRule(kind="error", method="post", path_pattern=r"^/api/orders(/|$)"))
    async with faulty_client(injector) as client:
        assert (await client.post("/api/orders", json={})).status_code == 503
        assert (await client.get("/api/orders")).status_code == 200
        assert (await client.post("/api/customers", json={})).status_code == 200
        assert (await client.post("/api/orders/17", json={})).status_code == 503


@pytest.mark.asyncio
async def test_paths_are_matched_relative_to_the_mount_point() -> None:
    injector = FaultInjector()
    injector.add(FaultRule(kind="error", path_pattern=r"^/api/"))
    async with faulty_client(injector, root_path="/sandboxes/vendor") as client:
        # Servers differ on whether `path` keeps the root_path; both must match the same rule.
        assert (await client.get("/api/things")).status_code == 503
        assert (await client.get("/sandboxes/vendor/api/things")).status_code == 503
        assert (await client.get("/other/api/things")).status_code == 200


@pytest.mark.asyncio
async def test_probability_is_deterministic_per_seed_and_rewound_by_clear() -> None:
    async def pattern(injector: FaultInjector) -> list[int]:
        injector.add(FaultRule(kind="error", probability=0.5))
        async with faulty_client(injector) as client:
            return [(await client.get("/api/things")).status_code for _ in range(24)]

    first = await pattern(FaultInjector(seed=7))
    assert first == await pattern(FaultInjector(seed=7))
    assert 0 < first.count(503) < 24
    injector = FaultInjector(seed=7)
    await pattern(injector)
    injector.clear()
    assert await pattern(injector) == first


@pytest.mark.asyncio
async def test_probability_zero_never_fires_and_does_not_use_up_times() -> None:
    injector = FaultInjector()
    injector.add(FaultRule(kind="error", probability=0.0, times=1))
    async with faulty_client(injector) as client:
        assert {(await client.get("/api/things")).status_code for _ in range(5)} == {200}
    assert len(injector.rules) == 1


@pytest.mark.asyncio
async def test_admin_api_adds_lists_removes_and_clears_rules() -> None:
    injector = FaultInjector()
    async with faulty_client(injector) as client:
        created = await client.post(
            "/__sandbox/faults",
            json={"kind": "error", "status": 429, "headers": {"Retry-After": "1"}, "times": 3},
        )
        assert created.status_code == 201
        fault = created.json()
        assert fault["remaining"] == 3
        assert fault["rule"]["status"] == 429
        assert (await client.get("/api/things")).status_code == 429

        listed = (await client.get("/__sandbox/faults")).json()["faults"]
        assert [(item["id"], item["remaining"], item["applied"]) for item in listed] == [(fault["id"], 2, 1)]

        assert (await client.delete(f"/__sandbox/faults/{fault['id']}")).status_code == 204
        assert (await client.delete(f"/__sandbox/faults/{fault['id']}")).status_code == 404
        assert (await client.get("/api/things")).status_code == 200

        await client.post("/__sandbox/faults", json={"kind": "outage"})
        await client.post("/__sandbox/faults", json={"kind": "hang"})
        assert len(injector.rules) == 2
        assert (await client.delete("/__sandbox/faults")).status_code == 204
        assert not injector.rules


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "explode"},
        {"kind": "error", "stauts": 500},
        {"kind": "error", "status": 99},
        {"kind": "error", "probability": 1.5},
        {"kind": "error", "times": 0},
        {"kind": "error", "path_pattern": "("},
        {"status": 500},
    ],
)
async def test_admin_api_rejects_invalid_rules(rule: dict[str, Any]) -> None:
    injector = FaultInjector()
    async with faulty_client(injector) as client:
        response = await client.post("/__sandbox/faults", json=rule)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_fault_rule"
    assert injector.rules == ()


@pytest.mark.asyncio
async def test_admin_paths_are_never_faulted() -> None:
    injector = FaultInjector()
    injector.add(FaultRule(kind="outage"))
    async with faulty_client(injector) as client:
        assert (await client.get("/__sandbox/faults")).status_code == 200
        assert (await client.delete("/__sandbox/faults")).status_code == 204
        assert (await client.get("/api/things")).status_code == 200


def test_rules_round_trip_through_json() -> None:
    rule = FaultRule(kind="latency", method="GET", path_pattern="/query", latency_ms=250, times=5)
    assert msgspec.json.decode(msgspec.json.encode(rule), type=FaultRule) == rule


async def test_a_lost_answer_still_did_the_work() -> None:
    # The vendor processes the request, then its answer never arrives: the client only sees a timeout.
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b'{"id": "1"}'})

    injector = FaultInjector()
    injector.add(FaultRule(kind="lost", path_pattern="/records", latency_ms=50, times=1))
    transport = httpx.ASGITransport(app=with_faults(app, injector))
    async with httpx.AsyncClient(transport=transport, base_url="http://vendor.test") as client:
        lost = await client.post("/records")
        assert lost.status_code == 504
        assert "201" not in lost.text
        assert calls == ["/records"]  # the work was done all the same
        second = await client.post("/records")
        assert second.status_code == 201


async def body_echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the request body it received, so a test sees the body reach the app intact."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.asyncio
async def test_body_pattern_faults_only_requests_carrying_it_and_others_reach_the_app_whole() -> None:
    injector = FaultInjector()
    injector.add(FaultRule(kind="error", method="POST", path_pattern="/query", body_pattern=r"FROM customer"))
    async with faulty_client(injector, app=body_echo_app) as client:
        faulted = await client.post("/query", content=b'{"q": "SELECT id FROM customer WHERE id IN (1)"}')
        other = await client.post("/query", content=b'{"q": "SELECT id FROM transaction"}')
        elsewhere = await client.post("/other", content=b"FROM customer")
    assert faulted.status_code == 503
    assert (other.status_code, other.content) == (200, b'{"q": "SELECT id FROM transaction"}')
    assert (elsewhere.status_code, elsewhere.content) == (200, b"FROM customer")
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"kind": "error", "body_pattern": "("}, FaultRule)


@pytest.mark.asyncio
async def test_query_pattern_faults_only_requests_whose_query_string_carries_it() -> None:
    injector = FaultInjector()
    injector.add(
        FaultRule(kind="error", method="GET", path_pattern="/query/", query_pattern=r"FROM Account W")
    )
    async with faulty_client(injector) as client:
        faulted = await client.get("/query/", params={"q": "SELECT Id FROM Account WHERE Id IN ('001')"})
        other = await client.get("/query/", params={"q": "SELECT Id FROM Opportunity"})
    assert faulted.status_code == 503
    assert other.status_code == 200
