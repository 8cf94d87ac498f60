"""The gateway: the governance stack every tier shares, the development OAuth server and the CLI."""

from __future__ import annotations

__all__: list[str] = []
