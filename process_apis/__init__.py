"""Process tier: business workflows composed over the system tier's contract."""

from __future__ import annotations

__all__: list[str] = []
