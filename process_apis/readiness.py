"""Activation readiness: can this opportunity become a staffed, billable project?

Pure rules over canonical objects. Each failed rule names the owner who must fix it and how, because a
deal stuck before activation is fixed by a person in sales operations or finance, not by a retry.
"""

from __future__ import annotations

from collections.abc import Callable

from contracts.models import Customer, Opportunity
from contracts.models.common import PROJECT_MONEY, is_iso_4217
from contracts.models.process import Owner, ReadinessReport, RuleResult

__all__ = ["RULES", "evaluate_readiness"]


Rule = Callable[[Opportunity, Customer | None], RuleResult]


def _closed_won(opp: Opportunity, _: Customer | None) -> RuleResult:
    if opp.is_won:
        return RuleResult(rule="closed_won", passed=True, message="The opportunity is closed-won.")
    return RuleResult(
        rule="closed_won",
        passed=False,
        field="stage",
        owner=Owner.OPPORTUNITY_OWNER,
        message=f"The opportunity is in stage {opp.stage.value}, not closed-won.",
        remediation="Close the opportunity as won in the CRM once the contract is signed.",
    )


def _amount(opp: Opportunity, _: Customer | None) -> RuleResult:
    if opp.amount is not None and opp.amount > 0:
        return RuleResult(rule="positive_amount", passed=True, message=f"Amount is {opp.amount}.")
    return RuleResult(
        rule="positive_amount",
        passed=False,
        field="amount",
        owner=Owner.SALES_OPERATIONS,
        message="The opportunity has no amount, or an amount of zero or less.",
        remediation="Set the opportunity amount to the signed contract value in the CRM.",
    )


def _amount_fits(opp: Opportunity, _: Customer | None) -> RuleResult:
    # The project is created with the deal's amounts: each must be one the PSA and the ERP can hold.
    amounts = [("amount", opp.amount)] + [
        (f"milestone {m.name!r}", m.amount.amount) for m in opp.milestones if m.amount is not None
    ]
    for name, amount in amounts:
        problem = PROJECT_MONEY.problem(amount) if amount is not None and amount > 0 else None
        if problem is not None:
            return RuleResult(
                rule="amount_fits",
                passed=False,
                field="amount",
                owner=Owner.SALES_OPERATIONS,
                message=f"The {name} {amount} {problem}.",
                remediation="Split the deal, or correct the amount in the CRM.",
            )
    return RuleResult(rule="amount_fits", passed=True, message="The amounts fit the PSA and the ERP.")


def _currency(opp: Opportunity, _: Customer | None) -> RuleResult:
    if is_iso_4217(opp.currency):
        return RuleResult(rule="currency", passed=True, message=f"Currency is {opp.currency}.")
    return RuleResult(
        rule="currency",
        passed=False,
        field="currency",
        owner=Owner.SALES_OPERATIONS,
        message=f"The currency {opp.currency!r} is missing or not an ISO 4217 code.",
        remediation="Set the opportunity currency (e.g. USD, GBP, EUR) in the CRM.",
    )


def _billing_model(opp: Opportunity, _: Customer | None) -> RuleResult:
    if opp.billing_model is not None:
        return RuleResult(
            rule="billing_model", passed=True, message=f"Billing model is {opp.billing_model.value}."
        )
    return RuleResult(
        rule="billing_model",
        passed=False,
        field="billing_model",
        owner=Owner.SALES_OPERATIONS,
        message="The opportunity has no billing model.",
        remediation="Choose the billing model (time and materials, fixed fee, milestone or retainer) on the "
        "opportunity in the CRM.",
    )


def _legal_entity(opp: Opportunity, customer: Customer | None) -> RuleResult:
    if opp.legal_entity:
        return RuleResult(rule="legal_entity", passed=True, message=f"Legal entity is {opp.legal_entity}.")
    return RuleResult(
        rule="legal_entity",
        passed=False,
        field="legal_entity",
        owner=Owner.SALES_OPERATIONS,
        message="The opportunity names no contracting legal entity.",
        remediation="Set the legal entity that signs the contract on the opportunity in the CRM.",
    )


def _tax_jurisdiction(_: Opportunity, customer: Customer | None) -> RuleResult:
    if customer is not None and customer.tax_jurisdiction:
        return RuleResult(
            rule="tax_jurisdiction", passed=True, message=f"Tax jurisdiction is {customer.tax_jurisdiction}."
        )
    return RuleResult(
        rule="tax_jurisdiction",
        passed=False,
        field="customer.tax_jurisdiction",
        owner=Owner.FINANCE,
        message="The customer has no tax jurisdiction, so invoices cannot be taxed.",
        remediation="Set the customer's tax jurisdiction on the account in the CRM.",
    )


RULES: tuple[Rule, ...] = (
    _closed_won,
    _amount,
    _amount_fits,
    _currency,
    _billing_model,
    _legal_entity,
    _tax_jurisdiction,
)


def evaluate_readiness(opportunity: Opportunity, customer: Customer | None) -> ReadinessReport:
    checks = [rule(opportunity, customer) for rule in RULES]
    failed = [c for c in checks if not c.passed]
    return ReadinessReport(
        opportunity_id=opportunity.id,
        customer_id=opportunity.customer_id,
        ready=not failed,
        checks=checks,
        failed=failed,
    )
