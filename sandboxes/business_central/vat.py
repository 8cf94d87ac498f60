"""The VAT on a Business Central sales document, computed the way Business Central computes it.

Business Central does not round VAT line by line. It sums the lines' amounts per VAT identifier into a
"VAT Amount Line" and rounds the VAT of that sum (BaseApp table 290 "VAT Amount Line", ``UpdateLines``:
``"VAT Base" := CalcLineAmount()``, ``"VAT Amount" := Round("VAT Base" * "VAT %" / 100, Currency."Amount
Rounding Precision", Currency.VATRoundingDirection())``), then spreads that amount back over the lines
carrying the rounding remainder from line to line (table 37 "Sales Line", ``UpdateVATOnLines``:
``VATAmount := Remainder."VAT Amount" + VATAmountLine."VAT Amount" * NewAmount / VATAmountLine."VAT
Base"``), so the lines' VAT adds up to the document's exactly. The API shows the result: on each
``salesInvoiceLine`` ``taxCode``, ``taxPercent``, ``amountExcludingTax``, ``totalTaxAmount``,
``amountIncludingTax``; on the ``salesInvoice`` ``totalAmountExcludingTax``, ``totalTaxAmount``,
``totalAmountIncludingTax`` (learn.microsoft.com, Business Central API v2.0, "salesInvoice resource type"
and "salesInvoiceLine resource type").

Rounding: the general ledger setup's default VAT rounding type is "Nearest" (a half cent rounds up,
away from zero), with the currency's amount rounding precision, 0.01 for every currency set up here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

__all__ = ["document_vat", "round_nearest"]

_CENT = Decimal("0.01")


def round_nearest(value: Decimal) -> Decimal:
    """AL's ``Round(value, 0.01, '=')``: to the nearest cent, a half cent away from zero."""
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def document_vat(lines: Iterable[dict[str, Any]], rates: Mapping[str, Decimal]) -> tuple[Decimal, Decimal]:
    """Set each line's ``taxPercent``, ``totalTaxAmount`` and ``amountIncludingTax`` from its
    ``amountExcludingTax`` and ``taxCode`` (``rates``: the VAT % of each code, the company's VAT posting
    setup), and answer the document's net amount and VAT. Comment lines carry none."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if line["lineType"] == "Comment":
            line.update(
                {"taxPercent": Decimal(0), "totalTaxAmount": Decimal(0), "amountIncludingTax": Decimal(0)}
            )
            continue
        groups.setdefault(line["taxCode"], []).append(line)
    net = tax = Decimal(0)
    for code, members in groups.items():
        percent = Decimal(rates[code])
        base = sum((Decimal(line["amountExcludingTax"]) for line in members), Decimal(0))
        vat = round_nearest(base * percent / 100)
        remainder = Decimal(0)
        for line in members:
            amount = Decimal(line["amountExcludingTax"])
            share = remainder + (vat * amount / base if base else Decimal(0))
            line_vat = round_nearest(share)
            remainder = share - line_vat
            line.update(
                {"taxPercent": percent, "totalTaxAmount": line_vat, "amountIncludingTax": amount + line_vat}
            )
        net += base
        tax += vat
    return net, tax
