"""System tier: one port per domain (CRM, PSA, ERP, FP&A), one adapter per vendor, canonical objects only."""

from __future__ import annotations

__all__: list[str] = []
