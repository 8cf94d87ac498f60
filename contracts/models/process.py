"""Process tier contract types: activation readiness."""

from __future__ import annotations

import enum

import msgspec

from contracts.models.common import OpportunityId

__all__ = ["Owner", "ReadinessCheck", "ReadinessReport", "RuleResult"]


class Owner(enum.StrEnum):
    """Who fixes a failed rule."""

    OPPORTUNITY_OWNER = "opportunity_owner"
    SALES_OPERATIONS = "sales_operations"
    FINANCE = "finance"


class RuleResult(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    rule: str
    passed: bool
    message: str
    owner: Owner | None = None
    remediation: str | None = None
    field: str | None = None


class ReadinessReport(msgspec.Struct, kw_only=True, frozen=True):
    opportunity_id: str
    customer_id: str | None
    ready: bool
    checks: list[RuleResult]
    failed: list[RuleResult]


class ReadinessCheck(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Body of ``POST /process/v1/activation-readiness``."""

    opportunity_id: OpportunityId
