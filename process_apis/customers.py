"""Customer master: a CRM account made (or updated) as its ERP customer, never a second one.

Shared by project activation and customer master sync. Survivorship is the system tier's upsert: the CRM
owns name and hierarchy, the ERP billing and tax fields once it has them. Before writing, the ERP is asked
for probable duplicates (same normalised name and the same tax id or web domain); one found is a business
rule for finance, because only a person can say whether two records are one company.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts.models import Customer, CustomerUpsert
from contracts.models.finance import CustomerMatchQuery
from contracts.models.process import Owner
from process_apis.saga import BusinessRuleViolation

if TYPE_CHECKING:
    from contracts.models import Opportunity
    from system_apis.client import SystemApiClient

__all__ = ["plan_erp_customer", "upsert_erp_customer"]


def plan_erp_customer(account: Customer, opportunity: Opportunity | None = None) -> CustomerUpsert:
    """The upsert for ``account``; a won deal's legal entity and currency win over the account's."""
    return CustomerUpsert(
        crm_customer_id=account.id,
        name=account.name,
        legal_entity=(opportunity.legal_entity if opportunity else None) or account.legal_entity,
        currency=(opportunity.currency if opportunity else None) or account.currency,
        parent_crm_customer_id=account.parent_id,
        tax_jurisdiction=account.tax_jurisdiction,
        tax_id=account.tax_id,
        website=account.website,
        billing_address=account.billing_address,
    )


async def upsert_erp_customer(
    system: SystemApiClient, command: CustomerUpsert, account: Customer, *, idempotency_key: str
) -> Customer:
    """The ERP customer for ``account``; ``BusinessRuleViolation`` (finance) on a probable duplicate."""
    matches = await system.find_probable_duplicate_customers(
        CustomerMatchQuery(
            name=account.name, tax_id=account.tax_id, website=account.website, crm_customer_id=account.id
        )
    )
    if matches:
        listed = "; ".join(
            f"{m.customer.id} {m.customer.name!r} (same {m.reason.replace('+', ' and ')})" for m in matches
        )
        raise BusinessRuleViolation(
            f"{account.name} ({account.id}) has a probable duplicate in the ERP: {listed}.",
            owner=Owner.FINANCE,
            remediation=(
                f"If the ERP customer is this company, link it to CRM account {account.id} (set its external "
                "id) so it is updated instead of duplicated; if it is another company, correct its name, tax "
                "id or web domain. Then replay the run."
            ),
            code="probable-duplicate-customer",
            data={
                "crm_customer_id": account.id,
                "matches": [
                    {"erp_customer_id": m.customer.id, "name": m.customer.name, "reason": m.reason}
                    for m in matches
                ],
            },
        )
    customer: Customer = await system.upsert_erp_customer(command, idempotency_key=idempotency_key)
    return customer
