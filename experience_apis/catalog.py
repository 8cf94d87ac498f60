"""``GET /experience/v1/views``: every role view's declared composition, as the views declare it."""

from __future__ import annotations

from apis.routing import operation
from contracts.models.experience import ViewRulesList
from experience_apis.compose import registered_views

__all__ = ["EXPERIENCE_SCOPES", "catalog_routes"]

# Any role may read how the views are made: the rules say nothing about the data.
EXPERIENCE_SCOPES = ("experience:sales", "experience:finance", "experience:delivery", "experience:ops")


@operation(
    "GET",
    "/experience/v1/views",
    operation_id="listViewCompositions",
    summary="How each role view is composed",
    description=(
        "Each view's sections: the tier calls each one reads, whether the view needs it (`required`), its "
        "timeout, which sections it waits for, and what an outage of its source does (`on_down`: `fail` "
        "answers 503 `source-unavailable`; `unavailable` returns the section with the reason)."
    ),
    scopes=[],
    any_scopes=EXPERIENCE_SCOPES,
    tags=["views"],
)
async def list_view_compositions() -> ViewRulesList:
    return ViewRulesList(items=[view.rules() for view in registered_views()])


catalog_routes = [list_view_compositions]
