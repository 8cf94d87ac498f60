"""Canonical models every tier speaks. Vendor field names never appear here."""

from __future__ import annotations

from contracts.models.common import (
    CurrencyCode,
    CustomerId,
    LegalEntityCode,
    Money,
    MoneyAmount,
    OpportunityId,
    PageLimit,
    SystemIds,
)
from contracts.models.crm import (
    Address,
    BillingModel,
    Customer,
    Opportunity,
    OpportunityPage,
    OpportunityStage,
)

__all__ = [
    "Address",
    "BillingModel",
    "CurrencyCode",
    "Customer",
    "CustomerId",
    "LegalEntityCode",
    "Money",
    "MoneyAmount",
    "Opportunity",
    "OpportunityId",
    "OpportunityPage",
    "OpportunityStage",
    "PageLimit",
    "SystemIds",
]
