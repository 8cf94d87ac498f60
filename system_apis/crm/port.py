"""The CRM port: what the system tier needs from any CRM, in canonical objects."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from contracts.models import Customer, Opportunity, OpportunityPage, OpportunityStage

__all__ = ["CrmPort", "InvalidCursor"]


class InvalidCursor(ValueError):
    """A cursor this port did not issue (or one that was tampered with): the caller's mistake, a 422."""


@runtime_checkable
class CrmPort(Protocol):
    vendor: str

    async def get_customer(self, customer_id: str) -> Customer:
        """The account; raises ``NotFound`` when the CRM has no such account."""
        ...

    async def get_opportunity(self, opportunity_id: str) -> Opportunity:
        """The opportunity; raises ``NotFound`` when the CRM has no such opportunity."""
        ...

    async def list_opportunities(
        self,
        customer_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        stage: OpportunityStage | None = None,
    ) -> OpportunityPage:
        """A page of the account's opportunities in a stable order; ``cursor`` is the previous page's
        ``next_cursor`` (opaque to callers)."""
        ...

    async def close(self) -> None: ...
