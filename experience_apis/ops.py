"""The ops role view (to be built: issue 12)."""

from __future__ import annotations

from typing import Any

__all__ = ["ops_routes"]

ops_routes: list[Any] = []
