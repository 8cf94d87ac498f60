"""`stratum vendors check`: does each configured vendor have what the gateway needs?

Each adapter knows what it needs of its vendor (Salesforce's custom fields, NetSuite's invoice item, ...),
so each answers for itself through a ``check()`` coroutine returning `Check` lines; this module only
gathers them from the adapters `system_apis.bootstrap.build_adapters` builds and renders the report. A
vendor that cannot be reached or refuses the login is one failed line, not a traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, runtime_checkable

import httpx
import msgspec

from system_apis.errors import VendorError

__all__ = ["Check", "Checkable", "check_adapters", "format_report", "inner_adapters"]


class Check(msgspec.Struct, kw_only=True, frozen=True):
    """One line of the report: ``fix`` is None when the check passed, else what to do about it."""

    vendor: str
    what: str
    fix: str | None = None

    @property
    def ok(self) -> bool:
        return self.fix is None


@runtime_checkable
class Checkable(Protocol):
    vendor: str

    async def check(self) -> list[Check]:
        """Log in and check what the adapter needs of the vendor's configuration."""
        ...


def inner_adapters(adapter: object) -> Iterable[object]:
    """The vendor adapters behind a port: itself, or each of those a routing port (ERP or PSA by legal
    entity) routes between."""
    inner = getattr(adapter, "erps", None)
    if inner is None:
        inner = getattr(adapter, "psas", None)
    if isinstance(inner, dict):
        for each in inner.values():
            yield from inner_adapters(each)
    else:
        yield adapter


async def _guarded(vendor: str, check: Callable[[], Awaitable[list[Check]]]) -> list[Check]:
    try:
        return await check()
    except VendorError as exc:
        return [Check(vendor=vendor, what="login and API access", fix=f"{exc.message}: check its settings")]
    except httpx.HTTPError as exc:
        return [Check(vendor=vendor, what="login and API access", fix=f"{exc}: check its settings")]


async def check_adapters(adapters: Iterable[object]) -> list[Check]:
    """Every check of every adapter that can check itself, in order."""
    results: list[Check] = []
    for adapter in adapters:
        for each in inner_adapters(adapter):
            if isinstance(each, Checkable):
                results += await _guarded(each.vendor, each.check)
    return results


def format_report(checks: Iterable[Check]) -> str:
    lines = []
    for check in checks:
        status = "ok" if check.fix is None else f"MISSING: {check.fix}"
        lines.append(f"{check.vendor:<17} {check.what:<55} {status}")
    return "\n".join(lines)
