"""The experience tier app (``/experience/v1``): role views."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar import Litestar
from litestar.di import Provide

from apis.plugin import GovernancePlugin, TierSpec
from experience_apis.catalog import catalog_routes
from experience_apis.client import ExperienceClients
from experience_apis.compose import ServerTimingMiddleware
from experience_apis.delivery import delivery_routes
from experience_apis.finance import finance_routes
from experience_apis.ops import ops_routes
from experience_apis.sales import sales_routes

if TYPE_CHECKING:
    from apis.runtime import Runtime

__all__ = ["EXPERIENCE_V1", "create_experience_app"]

EXPERIENCE_V1 = TierSpec(
    name="experience",
    version="v1",
    title="Stratum Experience API",
    description=(
        "Role views for sales, finance, delivery and operations, composed concurrently from the process "
        "and system tiers; each section degrades on its own when a source is down."
    ),
)


def create_experience_app(runtime: Runtime, *, clients: ExperienceClients) -> Litestar:
    return Litestar(
        route_handlers=[*sales_routes, *finance_routes, *delivery_routes, *ops_routes, *catalog_routes],
        dependencies={
            "clients": Provide(lambda: clients, use_cache=True, sync_to_thread=False),
            # The operations view's business clock and SLAs (experience_apis/ops.py).
            "operations_settings": Provide(
                lambda: runtime.settings.operations, use_cache=True, sync_to_thread=False
            ),
        },
        # Inside the governance stack: each view's answer says in Server-Timing what its sections took.
        middleware=[ServerTimingMiddleware()],
        plugins=[GovernancePlugin(EXPERIENCE_V1, runtime)],
    )
