"""Dynamics 365 Business Central API v2.0 sandbox: Entra client credentials, OData v4 per company.

Build one with `create_business_central_sandbox`; the seed's well-known ids live in
`sandboxes.business_central.data`. The development client (`DEV_CLIENT_ID`, `DEV_CLIENT_SECRET`) is
registered in every sandbox, so an adapter can authenticate out of the box.
"""

from __future__ import annotations

from sandboxes.business_central.app import (
    BC_SCOPE,
    BusinessCentralClient,
    BusinessCentralSandbox,
    BusinessCentralSandboxSettings,
    api_root,
    create_business_central_sandbox,
)
from sandboxes.business_central.data import (
    DE_COMPANY_ID,
    DEV_CLIENT_ID,
    DEV_CLIENT_SECRET,
    ENVIRONMENT,
    LEGAL_ENTITY_COMPANIES,
    TENANT_ID,
    UK_COMPANY_ID,
)

__all__ = [
    "BC_SCOPE",
    "DEV_CLIENT_ID",
    "DEV_CLIENT_SECRET",
    "DE_COMPANY_ID",
    "ENVIRONMENT",
    "LEGAL_ENTITY_COMPANIES",
    "TENANT_ID",
    "UK_COMPANY_ID",
    "BusinessCentralClient",
    "BusinessCentralSandbox",
    "BusinessCentralSandboxSettings",
    "api_root",
    "create_business_central_sandbox",
]
