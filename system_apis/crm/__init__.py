"""The CRM domain: its port and the Salesforce adapter."""

from __future__ import annotations

from system_apis.crm.port import CrmPort

__all__ = ["CrmPort"]
