"""The typed client of the system tier's contract (``/system/v1``), for the tiers above it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from apis.tier_client import TierClient
from contracts.models import Customer, Opportunity, OpportunityPage, OpportunityStage

__all__ = ["SystemApiClient"]


class SystemApiClient(TierClient):
    tier = "system"

    async def get_customer(self, account_id: str) -> Customer:
        return await self._get(f"/system/v1/crm/accounts/{quote(account_id, safe='')}", Customer)

    async def get_opportunity(self, opportunity_id: str) -> Opportunity:
        return await self._get(f"/system/v1/crm/opportunities/{quote(opportunity_id, safe='')}", Opportunity)

    async def list_opportunities(
        self,
        account_id: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        stage: OpportunityStage | None = None,
    ) -> OpportunityPage:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if stage:
            params["stage"] = stage.value
        return await self._get(
            f"/system/v1/crm/accounts/{quote(account_id, safe='')}/opportunities", OpportunityPage, params
        )
