"""Stratum's contracts: canonical models (the single source of truth) and the generated OpenAPI documents."""

from __future__ import annotations

__all__: list[str] = []
