"""A real `stratum serve`'s stdout, read as an operator's log shipper reads it: every line is one JSON
object (DBOS's, Litestar's and uvicorn's included), the calls a workflow makes are logged on behalf of the
client that started the run, and a replay's steps carry both the replay's correlation id and the run's."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandboxes.salesforce.data import MISSING_LEGAL_ENTITY_OPPORTUNITY_ID
from tests.e2e.harness import Server

WAIT = 60


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = Server(
        tmp_path,
        STRATUM_WORKFLOWS__STEP_BACKOFF_BASE_SECONDS="0.05",
        STRATUM_WORKFLOWS__STEP_BACKOFF_MAX_SECONDS="0.2",
        STRATUM_WORKFLOWS__POLL_INTERVAL_SECONDS="0.1",
    )
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()


def _client(server: Server) -> httpx.Client:
    secret = server.cli("token", "--client", "stratum-demo", "--show-secret")
    token = httpx.post(
        f"{server.base}/oauth/token",
        auth=("stratum-demo", secret),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    return httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {token}"}, timeout=WAIT + 10)


def _send_garbage(server: Server) -> None:
    """What a port scanner sends: uvicorn refuses it and logs a warning (plain text, unless routed)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        sock.recv(1024)


def _until(http: httpx.Client, run_id: str, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while True:
        run: dict[str, Any] = http.get(
            f"/process/v1/project-activations/{run_id}", headers={"Prefer": "wait=5"}
        ).json()
        if run["state"] == state or time.monotonic() > deadline:
            assert run["state"] == state, json.dumps(run, indent=1)
            return run
        time.sleep(0.1)


def _lines(server: Server) -> list[dict[str, Any]]:
    """Every line of stdout, each of which must be a JSON object."""
    lines = []
    for number, raw in enumerate(server.log_path.read_text().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            pytest.fail(f"line {number} of stdout is not JSON: {raw[:300]}")
        assert isinstance(line, dict), raw
        lines.append(line)
    return lines


def test_every_line_is_json_and_a_run_s_lines_name_its_starter_and_both_correlation_ids(
    server: Server,
) -> None:
    started_cid, replay_cid = f"start-{uuid.uuid4().hex[:8]}", f"replay-{uuid.uuid4().hex[:8]}"
    with _client(server) as http:
        response = http.post(
            "/process/v1/project-activations",
            json={"opportunity_id": MISSING_LEGAL_ENTITY_OPPORTUNITY_ID},
            headers={
                "Idempotency-Key": uuid.uuid4().hex,
                "X-Correlation-ID": started_cid,
                "Prefer": "wait=60",
            },
        )
        assert response.status_code == 202, response.text
        run_id = response.json()["id"]
        _until(http, run_id, "exception")
        server.salesforce_update(
            "Opportunity", MISSING_LEGAL_ENTITY_OPPORTUNITY_ID, {"Legal_Entity__c": "US01"}
        )
        replay = http.post(
            f"/process/v1/runs/{run_id}/replay",
            headers={"Idempotency-Key": uuid.uuid4().hex, "X-Correlation-ID": replay_cid},
        )
        assert replay.status_code == 202, replay.text
        _until(http, run_id, "completed")
    _send_garbage(server)
    server.stop()  # stdout is complete once the server has shut down (DBOS logs as it stops)

    lines = _lines(server)
    # The server's own warnings are JSON lines too.
    assert any(line.get("logger", "").startswith("uvicorn") for line in lines), lines
    # Every request line is attributable; so is every line a run wrote.
    for line in lines:
        if line.get("event") == "request" or line.get("run_id"):
            assert line.get("correlation_id"), line

    # The calls the workflow made to the system tier: on behalf of the client that started the run.
    run_calls = [
        line
        for line in lines
        if line.get("event") == "request" and line.get("tier") == "system" and line.get("run_id") == run_id
    ]
    assert run_calls, "no system-tier access line names the run"
    assert {line["on_behalf_of"] for line in run_calls} == {"stratum-demo"}
    assert {line["client_id"] for line in run_calls} == {"stratum-process-tier"}

    # Before the replay, the run's calls carry the correlation id it started under; after it, the
    # replay's, and still the run's as run_correlation_id.
    correlations = {(line["correlation_id"], line.get("run_correlation_id")) for line in run_calls}
    assert correlations == {(started_cid, started_cid), (replay_cid, started_cid)}, correlations
    resumed = [line for line in lines if line.get("event") == "run_resumed"]
    assert [
        (r["correlation_id"], r["run_correlation_id"], r["run_id"], r["on_behalf_of"]) for r in resumed
    ] == [(replay_cid, started_cid, run_id, "stratum-demo")]
    # The replay's writes (the steps after the failed one) were made under the replay's correlation id.
    replay_writes = {
        line["path"]
        for line in run_calls
        if line["correlation_id"] == replay_cid and line["method"] in ("POST", "PUT", "PATCH")
    }
    assert any("/erp/projects" in path for path in replay_writes), replay_writes
