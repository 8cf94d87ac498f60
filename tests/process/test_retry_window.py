"""A step's transient failures are retried for a window of minutes, not a handful of attempts: a NetSuite
outage that outlasts the old ~31 s of attempts is ridden out (and nothing is written twice), an open
circuit breaker's cooldown is waited out, and only an outage longer than the window dead-letters the run.

The backoff is shrunk here so the tests are quick; the window is the default (15 minutes) unless a test is
about running out of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apis.config import Settings, WorkflowSettings
from process_apis.saga import backoff_delay
from sandboxes.salesforce.data import DEMO_ACCOUNT_ID, READY_OPPORTUNITY_ID
from tests.process.test_activation_runs import (
    STEPS,
    _activate,
    _expected_records,
    _fault,
    _records_of,
    _timeline,
    _until,
)

# Vendor calls fail at once (no adapter retries, no breaker): each failed call is one failed step attempt.
VENDOR = {"retry_max_attempts": 1, "breaker_failure_threshold": 0}
QUICK = {"step_backoff_base_seconds": 0.01, "step_backoff_max_seconds": 0.05, "poll_interval_seconds": 0.1}
NETSUITE_CALLS = "^/services/rest/(record|query)/"


def _settings(make_settings: Callable[..., Settings], netsuite: dict[str, Any], **workflows: Any) -> Settings:
    return make_settings(
        workflows={**QUICK, **workflows}, netsuite=netsuite, kantata=VENDOR, salesforce=VENDOR
    )


async def test_a_netsuite_outage_longer_than_six_attempts_is_ridden_out_without_duplicates(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    gw = await make_gateway(_settings(make_settings, VENDOR))
    # Ten failed calls in a row: more than the six attempts (~31 s) a step used to get before its run
    # was dead-lettered.
    outage = {"kind": "error", "status": 503, "path_pattern": NETSUITE_CALLS, "times": 10}
    await _fault(gw, "netsuite", outage)
    response = await _activate(gw, READY_OPPORTUNITY_ID, wait=None)
    assert response.status_code == 202, response.text
    run = await _until(gw, response.json()["id"], "completed", seconds=120)

    retried = [step for step in run["steps"] if step["outcome"] == "retried"]
    assert len(retried) == 10
    # Each attempt is in the timeline, numbered.
    assert [step["attempt"] for step in retried if step["name"] == "erp.upsert_customer"] == list(
        range(1, 11)
    )
    assert [name for name, outcome in _timeline(run) if outcome == "completed"] == STEPS
    assert _records_of(gw, READY_OPPORTUNITY_ID, DEMO_ACCOUNT_ID) == _expected_records(run)


async def test_an_open_breaker_s_cooldown_is_waited_out_not_spent_on_attempts(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    # One failure opens NetSuite's circuit for three seconds; while it is open the system tier answers
    # 503 at once, without calling NetSuite, with Retry-After = the cooldown left.
    netsuite = {"retry_max_attempts": 1, "breaker_failure_threshold": 1, "breaker_cooldown_seconds": 3}
    gw = await make_gateway(_settings(make_settings, netsuite, step_backoff_max_seconds=10))
    await _fault(
        gw,
        "netsuite",
        {
            "kind": "error",
            "status": 503,
            "headers": {"Retry-After": "1"},
            "path_pattern": NETSUITE_CALLS,
            "times": 1,
        },
    )
    response = await _activate(gw, READY_OPPORTUNITY_ID, wait=None)
    assert response.status_code == 202, response.text
    run = await _until(gw, response.json()["id"], "completed", seconds=120)

    errors = [step["error"] for step in run["steps"] if step["outcome"] == "retried"]
    # NetSuite's own 503 (after which the step waited its Retry-After of 1 s), then the open circuit's
    # refusal, after which the step waited the rest of the cooldown: its next attempt was the probe that
    # closed the circuit, not another refusal (a 10 ms backoff alone would have given many).
    assert len(errors) == 2, errors
    assert "HTTP 503" in errors[0]
    assert "circuit open" in errors[1]
    assert _records_of(gw, READY_OPPORTUNITY_ID, DEMO_ACCOUNT_ID) == _expected_records(run)


async def test_an_outage_longer_than_the_window_dead_letters_the_run(
    make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    gw = await make_gateway(_settings(make_settings, VENDOR, step_retry_window_seconds=0.3))
    await _fault(gw, "netsuite", {"kind": "outage", "path_pattern": NETSUITE_CALLS})
    response = await _activate(gw, READY_OPPORTUNITY_ID, wait=None)
    assert response.status_code == 202, response.text
    run = await _until(gw, response.json()["id"], "dead_letter", seconds=60)

    issue = run["issue"]
    assert (issue["step"], issue["code"], issue["owner"]) == (
        "erp.upsert_customer",
        "vendor-unavailable",
        "integration_operations",
    )
    attempts = [s for s in run["steps"] if s["name"] == "erp.upsert_customer"]
    assert len(attempts) > 2
    assert attempts[-1]["outcome"] == "failed"
    assert f"({len(attempts)} attempts)" in issue["remediation"]
    assert "kept failing for" in issue["remediation"]


def test_the_backoff_is_capped_jittered_and_honours_retry_after() -> None:
    policy = WorkflowSettings()
    assert policy.step_retry_window_seconds >= 600  # minutes, not seconds
    assert policy.step_max_attempts is None
    delays = [backoff_delay(policy, "run:step", attempt, None) for attempt in range(1, 40)]
    assert all(0 <= d <= policy.step_backoff_max_seconds for d in delays)
    assert len(set(delays)) == len(delays)  # full jitter: no two waits alike
    # A breaker's remaining cooldown (Retry-After) is waited, up to the cap.
    assert backoff_delay(policy, "run:step", 1, 30.0) == 30.0
    assert backoff_delay(policy, "run:step", 1, 3600.0) == policy.step_backoff_max_seconds
    # Seeded: a recovered run waits what the first execution waited.
    assert backoff_delay(policy, "run:step", 7, None) == delays[6]
