"""A small tier app built with the real GovernancePlugin, for testing governance on its own."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import msgspec
from litestar import Litestar
from litestar.params import FromPath, JSONBody

from apis.plugin import GovernancePlugin, TierSpec
from apis.routing import operation
from apis.runtime import Runtime
from contracts.models.common import CurrencyCode, MoneyAmount

PROBE = TierSpec(name="system", version="v9", title="Probe", description="Governance probe")


class Charge(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    customer_id: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
    amount: MoneyAmount
    currency: CurrencyCode


class ChargeCreated(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    customer_id: str
    amount: MoneyAmount
    currency: str


class Calls:
    def __init__(self) -> None:
        self.count = 0
        self.delay = 0.0


def create_probe_app(runtime: Runtime, calls: Calls) -> Litestar:
    @operation(
        "GET",
        "/system/v9/items/{item_id:str}",
        operation_id="getItem",
        summary="Read",
        scopes=["system:read"],
    )
    async def get_item(item_id: FromPath[str]) -> dict[str, str]:
        return {"id": item_id}

    @operation(
        "POST",
        "/system/v9/charges",
        operation_id="createCharge",
        summary="Charge money",
        scopes=["system:write"],
        idempotency="required",
        status_code=201,
    )
    async def create_charge(data: JSONBody[Charge]) -> ChargeCreated:
        calls.count += 1
        if calls.delay:
            await asyncio.sleep(calls.delay)
        return ChargeCreated(
            id=uuid.uuid4().hex, customer_id=data.customer_id, amount=data.amount, currency=data.currency
        )

    @operation("GET", "/system/v9/boom", operation_id="boom", summary="Fails", scopes=["system:read"])
    async def boom() -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    return Litestar(
        route_handlers=[get_item, create_charge, boom], plugins=[GovernancePlugin(PROBE, runtime)]
    )
