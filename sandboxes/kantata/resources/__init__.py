"""Every resource the sandbox serves under ``/api/v1``, one module each, grouped as Kantata's API docs group
them; `RESOURCES` maps a collection name to its description."""

from __future__ import annotations

from collections.abc import Mapping

from sandboxes.kantata.resources import (
    billing_milestones,
    expenses,
    external_payments,
    external_references,
    invoices,
    participations,
    roles,
    stories,
    subscribed_events,
    time_entries,
    users,
    workspace_resources,
    workspaces,
)
from sandboxes.kantata.schema import _Resource

__all__ = ["RESOURCES"]


_RESOURCE_LIST: tuple[_Resource, ...] = (
    workspaces.RESOURCE,
    stories.RESOURCE,
    participations.RESOURCE,
    workspace_resources.RESOURCE,
    time_entries.RESOURCE,
    expenses.RESOURCE,
    invoices.RESOURCE,
    billing_milestones.RESOURCE,
    external_payments.RESOURCE,
    roles.RESOURCE,
    users.RESOURCE,
    external_references.RESOURCE,
    subscribed_events.RESOURCE,
)
RESOURCES: Mapping[str, _Resource] = {resource.collection: resource for resource in _RESOURCE_LIST}
