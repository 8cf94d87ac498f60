"""The ERP domain (billing): its port and the NetSuite adapter."""

from __future__ import annotations

from system_apis.erp.port import ErpPort, InvoiceFilter

__all__ = ["ErpPort", "InvoiceFilter"]
