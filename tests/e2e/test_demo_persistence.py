"""A restarted demo is consistent: the runs and the vendor records they point at both survive, even a
killed server; `stratum demo reset` starts both over and keeps the clients and their secrets."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx

from sandboxes.salesforce.data import READY_OPPORTUNITY_ID
from tests.e2e.harness import STRATUM, Server

RUN = f"/process/v1/project-activations/pa-{READY_OPPORTUNITY_ID}"
ALL_FOUND = dict.fromkeys(["psa project", "erp customer", "erp project", "billing schedule"], 200)


def client(server: Server, secret: str) -> httpx.Client:
    response = httpx.post(
        f"{server.base}/oauth/token", auth=("stratum-demo", secret), data={"grant_type": "client_credentials"}
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    return httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def activate(http: httpx.Client) -> dict[str, Any]:
    response = http.post(
        "/process/v1/project-activations",
        json={"opportunity_id": READY_OPPORTUNITY_ID},
        headers={"Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=30"},
    )
    assert response.status_code in (200, 202), response.text
    run: dict[str, Any] = response.json()
    assert run["state"] == "completed", run
    return run


def resolved(http: httpx.Client, result: dict[str, Any]) -> dict[str, int]:
    """The status of each id the run made, read back through the system tier."""
    return {
        "psa project": http.get(f"/system/v1/psa/projects/{result['psa_project_id']}").status_code,
        "erp customer": http.get(f"/system/v1/erp/customers/{result['erp_customer_id']}").status_code,
        "erp project": http.get(f"/system/v1/erp/projects/{result['erp_project_id']}").status_code,
        "billing schedule": http.get(
            f"/system/v1/erp/billing-schedules/{result['billing_schedule_id']}"
        ).status_code,
    }


def kantata_workspaces(server: Server) -> int:
    count: int = httpx.get(f"{server.base}/sandboxes/kantata/__sandbox/records/workspaces").json()["count"]
    return count


def demo_reset(server: Server) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STRATUM, "demo", "reset"], env=server.env, capture_output=True, text=True, check=False
    )


def test_runs_and_vendor_records_survive_a_killed_server_and_demo_reset_starts_over(tmp_path: Path) -> None:
    first = Server(tmp_path, name="first")
    secret = first.cli("token", "--client", "stratum-demo", "--show-secret")
    seeded_workspaces = kantata_workspaces(first)
    with client(first, secret) as http:
        result = activate(http)["result"]
        assert resolved(http, result) == ALL_FOUND
    # SIGKILL: nothing is flushed on the way out; only what was saved before each answer is there.
    first.process.kill()
    first.process.wait(timeout=15)
    first.stop()

    second = Server(tmp_path, name="second")
    with client(second, secret) as http:
        run = http.get(RUN).json()
        assert run["state"] == "completed"
        assert resolved(http, run["result"]) == ALL_FOUND
        opportunity = http.get(f"/system/v1/crm/opportunities/{READY_OPPORTUNITY_ID}").json()
        assert opportunity["project_id"] == result["psa_project_id"]
        assert opportunity["activation_status"] == "activated"
        # Activating again finds the same run and makes nothing new in Kantata.
        assert activate(http)["result"]["psa_project_id"] == result["psa_project_id"]
    assert kantata_workspaces(second) == seeded_workspaces + 1

    refused = demo_reset(second)
    assert refused.returncode == 2
    assert "stop it" in refused.stderr
    second.stop()

    reset = demo_reset(second)
    assert reset.returncode == 0, reset.stderr
    assert "workflows.sqlite" in reset.stdout

    third = Server(tmp_path, name="third")
    assert third.cli("token", "--client", "stratum-demo", "--show-secret") == secret
    assert kantata_workspaces(third) == seeded_workspaces
    with client(third, secret) as http:
        assert http.get(RUN).status_code == 404
        opportunity = http.get(f"/system/v1/crm/opportunities/{READY_OPPORTUNITY_ID}").json()
        assert opportunity["project_id"] is None
        again = activate(http)
        assert [step["attempt"] for step in again["steps"]] == [1] * len(again["steps"])
        assert resolved(http, again["result"]) == ALL_FOUND
    assert kantata_workspaces(third) == seeded_workspaces + 1
    third.stop()


def test_demo_reset_refuses_shared_stores(tmp_path: Path) -> None:
    env = {"STRATUM_DATA_DIR": str(tmp_path), "STRATUM_REDIS_URL": "redis://127.0.0.1:6379/15"}
    refused = subprocess.run(
        [*STRATUM, "demo", "reset"], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert "STRATUM_REDIS_URL" in refused.stderr
