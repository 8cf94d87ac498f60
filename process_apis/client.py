"""The typed client of the process tier's contract (``/process/v1``), for the experience tier."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from apis.tier_client import TierClient
from contracts.models.process import (
    AccountReadiness,
    AccountReadinessCheck,
    BillingRun,
    Owner,
    ReadinessCheck,
    ReadinessReport,
    RunPage,
    RunState,
    Workflow,
)
from contracts.models.process_operations import RunStats, SyncStatus

__all__ = ["ProcessApiClient"]


def _params(**values: Any) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in values.items() if v is not None}


class ProcessApiClient(TierClient):
    tier = "process"

    async def activation_readiness(self, opportunity_id: str) -> ReadinessReport:
        return await self._post(
            "/process/v1/activation-readiness", ReadinessReport, ReadinessCheck(opportunity_id=opportunity_id)
        )

    async def activation_readiness_by_account(self, account_id: str) -> AccountReadiness:
        """The readiness of every won, not yet activated deal of the account, by opportunity id."""
        return await self._post(
            "/process/v1/activation-readiness/by-account",
            AccountReadiness,
            AccountReadinessCheck(account_id=account_id),
        )

    # Runs and their queues
    async def list_runs(
        self,
        *,
        workflow: Workflow | None = None,
        states: list[RunState] | None = None,
        older_than: int | None = None,
        newer_than: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        params = _params(
            workflow=workflow,
            state=",".join(s.value for s in states) if states else None,
            older_than=older_than,
            newer_than=newer_than,
            limit=limit,
            cursor=cursor,
        )
        return await self._get("/process/v1/runs", RunPage, params)

    async def list_exceptions(
        self,
        *,
        owner: Owner | None = None,
        workflow: Workflow | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        params = _params(owner=owner, workflow=workflow, limit=limit, cursor=cursor)
        return await self._get("/process/v1/exceptions", RunPage, params)

    async def list_dead_letters(
        self, *, workflow: Workflow | None = None, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        params = _params(workflow=workflow, limit=limit, cursor=cursor)
        return await self._get("/process/v1/dead-letters", RunPage, params)

    # Billing
    async def get_billing_run(self, run_id: str) -> BillingRun:
        """A billing run with its project runs, or a project run (``bill-...``) on its own (``projects``
        empty)."""
        return await self._get(f"/process/v1/billing-runs/{quote(run_id, safe='')}", BillingRun)

    async def list_billing_runs(self, *, limit: int = 50, cursor: str | None = None) -> RunPage:
        return await self._get("/process/v1/billing-runs", RunPage, _params(limit=limit, cursor=cursor))

    # --- operations view
    async def run_stats(self, *, window: int | None = None) -> RunStats:
        return await self._get("/process/v1/run-stats", RunStats, _params(window=window))

    async def sync_status(self) -> SyncStatus:
        return await self._get("/process/v1/sync-status", SyncStatus)
