"""The typed client of the process tier's contract (``/process/v1``), for the experience tier."""

from __future__ import annotations

from apis.tier_client import TierClient
from contracts.models.process import ReadinessCheck, ReadinessReport

__all__ = ["ProcessApiClient"]


class ProcessApiClient(TierClient):
    tier = "process"

    async def activation_readiness(self, opportunity_id: str) -> ReadinessReport:
        return await self._post(
            "/process/v1/activation-readiness", ReadinessReport, ReadinessCheck(opportunity_id=opportunity_id)
        )
