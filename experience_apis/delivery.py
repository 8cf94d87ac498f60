"""The delivery role view (to be built: issue 12)."""

from __future__ import annotations

from typing import Any

__all__ = ["delivery_routes"]

delivery_routes: list[Any] = []
