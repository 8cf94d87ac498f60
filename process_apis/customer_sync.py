"""Customer master sync: CRM accounts become (or update) ERP customers, never a second one.

The survivorship rules are the activation's (``customers.plan_erp_customer`` over the system tier's
upsert): the CRM owns name and hierarchy, the ERP owns billing and tax fields once it has them. Before
creating, the ERP is searched for a probable duplicate (same normalised name and the same tax id or web
domain); one found makes that account an exception for finance instead of a new customer.

One run covers the accounts of one request. Each account is its own step, so one account's duplicate does
not hold the others: the run syncs what it can, then parks once with every account finance must look at;
a replay retries only those.
"""

from __future__ import annotations

from typing import Any

import msgspec
from dbos import DBOS

from contracts.models import Customer
from contracts.models.process import Owner, RunState, Workflow
from process_apis.customers import plan_erp_customer, upsert_erp_customer
from process_apis.saga import RunCancelled, Saga, StepFailure, services

__all__ = ["CUSTOMER_SYNC_WORKFLOW", "customer_sync"]

CUSTOMER_SYNC_WORKFLOW = "customer_sync"


class _Synced(msgspec.Struct, kw_only=True):
    crm_customer_id: str
    erp_customer_id: str
    name: str


@DBOS.workflow(name=CUSTOMER_SYNC_WORKFLOW)
async def customer_sync(
    account_ids: list[str], trigger: str | None = None, correlation_id: str | None = None
) -> dict[str, Any]:
    saga = Saga(Workflow.CUSTOMER_SYNC, subject=",".join(account_ids), correlation_id=correlation_id)
    await saga.set_state(RunState.RUNNING)
    system = services().system
    synced: dict[str, _Synced] = {}
    pending = list(dict.fromkeys(account_ids))

    def sync(account_id: str) -> Any:
        async def run() -> _Synced:
            account: Customer = await system.get_customer(account_id)
            customer = await upsert_erp_customer(
                system,
                plan_erp_customer(account),
                account,
                idempotency_key=saga.key(f"erp.customer.{account_id}"),
            )
            return _Synced(crm_customer_id=account.id, erp_customer_id=customer.id, name=customer.name)

        return run

    try:
        while True:
            failures: dict[str, StepFailure] = {}
            for account_id in pending:
                outcome = await saga.try_step(
                    f"erp.sync_customer.{account_id}", sync(account_id), result_type=_Synced
                )
                if isinstance(outcome, StepFailure):
                    failures[account_id] = outcome
                    continue
                synced[account_id] = outcome
                await _publish_synced(saga, outcome)
            if not failures:
                break
            business = [f for f in failures.values() if f.kind == "business"]
            summary = StepFailure(
                kind="business" if business else "transient",
                code=(business or list(failures.values()))[0].code,
                message="; ".join(f.message for f in failures.values()),
                owner=Owner.FINANCE if business else None,
                data={
                    "accounts": {
                        account_id: {"code": f.code, "message": f.message, **f.data}
                        for account_id, f in failures.items()
                    },
                    "synced": sorted(synced),
                },
            )
            action = await saga.park(
                "erp.sync_customer",
                summary,
                owner=Owner.FINANCE,
                remediation="Fix each account listed in data.accounts, then replay: only those sync again.",
            )
            if action == "cancel":
                raise RunCancelled
            pending = list(failures)
    except RunCancelled:
        # Nothing to undo: customers written so far are correct master data.
        return await saga.finish(
            RunState.CANCELLED,
            {"cancelled": True, "synced": [msgspec.to_builtins(s) for s in synced.values()]},
        )
    return await saga.finish(
        RunState.COMPLETED, {"synced": [msgspec.to_builtins(s) for s in synced.values()]}
    )


async def _publish_synced(saga: Saga, synced: _Synced) -> None:
    from contracts.models.events import CUSTOMER_SYNCED, CustomerSynced, event_id

    async def publish() -> dict[str, bool]:
        await services().events.publish(
            event_id=event_id(saga.run_id, "customer.synced", synced.crm_customer_id),
            type=CUSTOMER_SYNCED,
            subject=synced.crm_customer_id,
            data=CustomerSynced(
                run_id=saga.run_id,
                crm_customer_id=synced.crm_customer_id,
                erp_customer_id=synced.erp_customer_id,
            ),
        )
        return {"published": True}

    await saga.step(
        f"events.publish_customer_synced.{synced.crm_customer_id}",
        publish,
        result_type=dict,
        owner=Owner.INTEGRATION_OPERATIONS,
        remediation="Check the event stream (Redis), then replay the run.",
    )
