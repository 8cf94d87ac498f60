"""Workflow metrics on /metrics: unfinished runs by state (read from the run database at scrape time),
step latency and run transitions."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sandboxes.salesforce.data import MISSING_LEGAL_ENTITY_OPPORTUNITY_ID


def _sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_a_parked_run_shows_in_the_runs_gauge_and_its_steps_in_the_latency_histogram(gw: Any) -> None:
    before = (await gw.client.get("/metrics")).text
    assert _sample(before, "stratum_workflow_runs", workflow="project_activation", state="exception") == 0

    response = await gw.client.post(
        "/process/v1/project-activations",
        json={"opportunity_id": MISSING_LEGAL_ENTITY_OPPORTUNITY_ID},
        headers={**gw.auth("process:run"), "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=30"},
    )
    assert response.json()["state"] == "exception"

    after = (await gw.client.get("/metrics")).text
    assert _sample(after, "stratum_workflow_runs", workflow="project_activation", state="exception") == 1
    assert _sample(after, "stratum_workflow_runs", workflow="project_activation", state="running") == 0
    steps = _sample(
        after,
        "stratum_workflow_step_duration_seconds_count",
        workflow="project_activation",
        step="crm.check_readiness",
        outcome="business",
    )
    assert steps is not None
    assert steps >= 1
    parked = _sample(
        after, "stratum_workflow_run_transitions_total", workflow="project_activation", state="exception"
    )
    assert parked is not None
    assert parked >= 1
