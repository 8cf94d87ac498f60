"""What an API v2.0 URL names below ``.../api/v2.0``: the companies, a company, one of its entity sets or
entities, an invoice's lines, ``$count``, or a bound action of a sales invoice (``Microsoft.NAV.post``,
``Microsoft.NAV.cancel``, ``Microsoft.NAV.makeCorrectiveCreditMemo``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sandboxes.business_central.entities import EntitySet
from sandboxes.business_central.errors import BusinessCentralError, bad_request, not_found
from sandboxes.business_central.sales_invoices import SALES_INVOICES
from sandboxes.business_central.sandbox import ENTITY_SETS, BusinessCentralSandbox

__all__ = ["ACTIONS", "API_PATH", "Target", "resolve_target"]

# The sales invoice's bound actions served (``Microsoft.NAV.{name}``).
ACTIONS = ("post", "cancel", "makeCorrectiveCreditMemo")

API_PATH = "/v2.0/{tenant:str}/{environment:str}/api/v2.0"


@dataclass(frozen=True, slots=True)
class Target:
    """What an API URL names below ``api/v2.0``."""

    company_id: str | None  # None: the companies collection itself
    entity_set: EntitySet | None  # None: the company itself
    entity_id: str | None
    lines: bool  # .../salesInvoices({id})/salesInvoiceLines
    line_id: str | None
    count: bool  # .../$count
    action: str | None  # one of ACTIONS


def _segment(text: str) -> tuple[str, str | None]:
    if text.endswith(")") and "(" in text:
        name, _, key = text[:-1].partition("(")
        key = key.removeprefix("id=")
        try:
            return name, str(uuid.UUID(key.strip("'")))
        except ValueError:
            raise bad_request(
                f"Bad Request - Error in query syntax: the key '{key}' is not a valid Edm.Guid."
            ) from None
    return text, None


def resolve_target(rest: str, sandbox: BusinessCentralSandbox) -> Target:
    segments = [segment for segment in rest.strip("/").split("/") if segment]
    if not segments:
        raise not_found()
    count = segments[-1] == "$count"
    if count:
        segments = segments[:-1]
    name, company_id = _segment(segments[0])
    if name != "companies":
        raise BusinessCentralError(
            404, "BadRequest_NotFound", f"Resource not found for the segment '{name}'."
        )
    if company_id is None:
        if len(segments) > 1:
            raise bad_request("Bad Request - Error in query syntax.")
        return Target(None, None, None, False, None, count, None)
    sandbox.company(company_id)
    if len(segments) == 1:
        return Target(company_id, None, None, False, None, count, None)
    set_name, entity_id = _segment(segments[1])
    entity_set = ENTITY_SETS.get(set_name)
    if entity_set is None:
        raise BusinessCentralError(
            404, "BadRequest_NotFound", f"Resource not found for the segment '{set_name}'."
        )
    if len(segments) == 2:
        return Target(company_id, entity_set, entity_id, False, None, count, None)
    if entity_set is not SALES_INVOICES or entity_id is None or len(segments) > 3:
        raise BusinessCentralError(
            404, "BadRequest_NotFound", f"Resource not found for the segment '{segments[2]}'."
        )
    third, line_id = _segment(segments[2])
    action = third.removeprefix("Microsoft.NAV.")
    if third.startswith("Microsoft.NAV.") and action in ACTIONS and line_id is None and not count:
        return Target(company_id, entity_set, entity_id, False, None, False, action)
    if third != "salesInvoiceLines":
        raise BusinessCentralError(
            404, "BadRequest_NotFound", f"Resource not found for the segment '{third}'."
        )
    return Target(company_id, entity_set, entity_id, True, line_id, count, None)
