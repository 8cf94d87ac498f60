"""The FP&A port: a project's revenue baseline and actuals go in, its current forecast comes out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from contracts.models import Forecast, PublishResult, RevenueActuals, RevenueBaseline

__all__ = ["FpaPort"]


@runtime_checkable
class FpaPort(Protocol):
    vendor: str

    async def publish_baseline(self, project_id: str, baseline: RevenueBaseline) -> PublishResult:
        """Replace the project's monthly revenue baseline. Publishing the same baseline again leaves the
        same figures, so a retry or a replay is safe. Months the vendor refuses are reported in the result
        (the others are loaded); ``VendorRejected`` when it loads none."""
        ...

    async def publish_actuals(self, project_id: str, actuals: RevenueActuals) -> PublishResult:
        """Replace the project's monthly actuals; like ``publish_baseline``."""
        ...

    async def get_forecast(self, project_id: str) -> Forecast:
        """The project's forecast (actual where a month has one, else baseline); ``NotFound`` when the
        FP&A system has no figures for it."""
        ...

    async def close(self) -> None: ...
