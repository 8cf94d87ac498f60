"""Workflow metrics: runs by state, step latency, and quote-to-project time (close date to activation).

Counters and histograms are observed where the work happens (the worker running the step); the runs-by-state
gauge is read from the run database when /metrics is scraped, so it is right whichever worker moved a run.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "APPROVAL_TO_INVOICE_SECONDS",
    "INVOICE_STATUS_SYNC_LAG_SECONDS",
    "OPEN_RUNS",
    "QUOTE_TO_PROJECT_SECONDS",
    "RUN_TRANSITIONS",
    "STEP_SECONDS",
    "UNBILLED_APPROVED_WORK",
    "record_run_transition",
]

OPEN_RUNS = Gauge(
    "stratum_workflow_runs",
    "Runs not yet finished, by workflow and state (queued, running, retrying, exception, dead_letter, "
    "compensating), read from the run database at scrape time. Finished runs: the transitions counter.",
    ["workflow", "state"],
    multiprocess_mode="mostrecent",
)

RUN_TRANSITIONS = Counter(
    "stratum_workflow_run_transitions_total",
    "Workflow runs entering a state (running, retrying, exception, dead_letter, completed, cancelled...).",
    ["workflow", "state"],
)
STEP_SECONDS = Histogram(
    "stratum_workflow_step_duration_seconds",
    "Time one attempt of a workflow step took, by workflow, step and outcome (ok, transient, business).",
    ["workflow", "step", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
QUOTE_TO_PROJECT_SECONDS = Histogram(
    "stratum_quote_to_project_seconds",
    "From the opportunity's close date (midnight UTC) to its project being activated.",
    buckets=(60, 300, 900, 3600, 4 * 3600, 24 * 3600, 3 * 24 * 3600, 7 * 24 * 3600, 30 * 24 * 3600),
)

APPROVAL_TO_INVOICE_SECONDS = Histogram(
    "stratum_billing_approval_to_invoice_seconds",
    "From a billable item's approval in the PSA to the invoice billing it being issued (one observation per "
    "item; an item approved after its period's run waits for the next period's invoice, and this shows it).",
    buckets=(
        3600,
        6 * 3600,
        24 * 3600,
        3 * 24 * 3600,
        7 * 24 * 3600,
        14 * 24 * 3600,
        31 * 24 * 3600,
        62 * 24 * 3600,
        93 * 24 * 3600,
    ),
)


def record_run_transition(workflow: str, state: str) -> None:
    RUN_TRANSITIONS.labels(workflow, state).inc()


INVOICE_STATUS_SYNC_LAG_SECONDS = Histogram(
    "stratum_invoice_status_sync_lag_seconds",
    "From the ERP's change to an invoice or payment (its updated_at) to the CRM having the invoice status.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 900, 3600, 4 * 3600, 24 * 3600),
)
UNBILLED_APPROVED_WORK = Gauge(
    "stratum_unbilled_approved_work",
    "Approved billable work not yet on an invoice (PSA billable items of active projects), amount in the "
    "currency's units, by currency and age bucket (0-30, 31-60, 61-90, 90+ days since the work's date), as "
    "of the last invoice status sync's unbilled pass.",
    ["currency", "age"],
    multiprocess_mode="mostrecent",
)
