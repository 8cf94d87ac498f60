"""Experience tier: role views (sales, finance, delivery, operations) composed from the tiers below."""

from __future__ import annotations

__all__: list[str] = []
