"""Which adapter serves each domain: built from configuration, in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
import msgspec

from system_apis.crm.port import CrmPort

if TYPE_CHECKING:
    from apis.config import Settings

__all__ = ["Adapters", "build_adapters"]

SANDBOX_HOST = "http://{vendor}.sandbox.stratum.internal"


class Adapters(msgspec.Struct, kw_only=True, frozen=True):
    crm: CrmPort
    closers: list[Callable[[], Awaitable[Any]]]


def _sandbox(vendor: str, sandboxes: Mapping[str, Any]) -> tuple[str, httpx.AsyncBaseTransport]:
    """An unconfigured vendor is served by its sandbox, in process (no socket, no port to know)."""
    app = sandboxes.get(f"/sandboxes/{vendor}")
    if app is None:
        raise SystemExit(
            f"stratum: no {vendor} base URL is configured and its sandbox is not mounted: set "
            f"STRATUM_{vendor.upper()}__BASE_URL, or leave STRATUM_MOUNT_SANDBOXES on"
        )
    return SANDBOX_HOST.format(vendor=vendor), httpx.ASGITransport(app=app)


def build_adapters(settings: Settings, sandboxes: Mapping[str, Any]) -> Adapters:
    from apis.context import current_correlation_id
    from system_apis.crm.salesforce import SalesforceCrm

    salesforce = settings.salesforce
    transport: httpx.AsyncBaseTransport | None = None
    if salesforce.base_url is None:
        base_url, transport = _sandbox("salesforce", sandboxes)
        salesforce = msgspec.structs.replace(salesforce, base_url=base_url)
    crm = SalesforceCrm(salesforce, transport=transport, correlation_id=current_correlation_id)
    return Adapters(crm=crm, closers=[crm.close])
