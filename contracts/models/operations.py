"""Operations contract types of the system tier: how much of each vendor's API budget is spent."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

__all__ = ["ApiBudget", "ApiBudgetList"]


class ApiBudget(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """One limit a vendor puts on Stratum's calls, and how much of it is spent.

    ``scope`` says whose figure ``used`` is: ``vendor`` (the vendor's own count, e.g. Salesforce's
    ``Sforce-Limit-Info``), ``shared`` (counted by every Stratum process together, in the gateway state
    store) or ``process`` (this gateway process's own count)."""

    vendor: str
    name: Annotated[
        str,
        msgspec.Meta(description="The limit, e.g. `daily_api_requests` or `requests_per_5_minutes`."),
    ]
    used: int | None = None
    limit: int | None = None
    window_seconds: int | None = None
    scope: Literal["vendor", "shared", "process"] = "process"
    source: Annotated[str | None, msgspec.Meta(description="Where the figure comes from.")] = None
    observed_at: dt.datetime | None = None


class ApiBudgetList(msgspec.Struct, kw_only=True, frozen=True):
    items: list[ApiBudget]
