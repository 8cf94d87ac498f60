"""The finance role view (to be built: issue 12)."""

from __future__ import annotations

from typing import Any

__all__ = ["finance_routes"]

finance_routes: list[Any] = []
