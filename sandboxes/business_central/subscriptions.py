"""``subscriptions`` (API v2.0 "subscription" resource, "Working with webhooks in Dynamics 365 Business
Central"): subscribe with the validation handshake, list, renew with ``PATCH``, delete. The notifications
themselves are `webhooks`'."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response

from sandboxes.business_central.errors import BusinessCentralError, bad_request, not_found
from sandboxes.business_central.sandbox import BusinessCentralSandbox
from sandboxes.business_central.urls import resolve_target
from sandboxes.business_central.webhooks import Subscription
from sandboxes.business_central.wire import (
    ODATA_HEADERS,
    api_base,
    context_url,
    json_response,
    read_body,
)

__all__ = ["is_subscriptions", "read_subscriptions", "renew_subscription", "subscribe", "unsubscribe"]


def is_subscriptions(rest: str) -> bool:
    first = rest.strip("/").split("/", 1)[0]
    return first == "subscriptions" or first.startswith("subscriptions(")


class _SubscriptionBody(msgspec.Struct, frozen=True, rename="camel"):
    notification_url: Annotated[str, msgspec.Meta(min_length=1)]
    resource: str
    client_state: Annotated[str, msgspec.Meta(max_length=2048)] = ""  # documented: up to 2048 characters


class _SubscriptionChanges(msgspec.Struct, frozen=True, rename="camel"):
    notification_url: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    resource: str | None = None
    client_state: Annotated[str, msgspec.Meta(max_length=2048)] | None = None


def _subscription(sandbox: BusinessCentralSandbox, rest: str) -> Subscription | None:
    """The subscription ``subscriptions('{id}')`` names; None for the collection itself."""
    segments = [segment for segment in rest.strip("/").split("/") if segment]
    if len(segments) > 1:
        raise not_found()
    if segments[0] == "subscriptions":
        return None
    key = segments[0].removeprefix("subscriptions(").removesuffix(")").strip("'")
    found = sandbox.webhooks.subscriptions.get(key)
    if found is None:
        raise not_found("subscription")
    return found


def _subscription_if_match(request: Request[Any, Any, Any], subscription: Subscription) -> None:
    sent = request.headers.get("if-match")
    if sent is None:
        raise bad_request("Could not validate the client concurrency token required by the service.")
    if sent != "*" and sent != subscription.render()["@odata.etag"]:
        raise BusinessCentralError(
            412, "Request_EntityChanged", "Another user has already changed the record."
        )


# The entity sets of this sandbox Business Central sends webhooks for: API pages with
# ChangeTrackingAllowed = true (its documented list of supported entities has customers and salesInvoices,
# not projects or customerPayments). APIV2 - Sales Credit Memos (page 30038) allows change tracking;
# APIV2 - Customer Payments (page 30055) does not: a payment reaches subscribers as the change it makes to
# the invoice it applies to (remainingAmount, status).
_WEBHOOK_SETS = frozenset({"customers", "salesInvoices", "salesCreditMemos"})


def _subscription_resource(sandbox: BusinessCentralSandbox, resource: str) -> str:
    """``companies({id})/{entitySet}``, from the resource as clients write it (``/api/v2.0/...`` or the
    API-root-relative form): only an entity set of a company can be subscribed to."""
    relative = resource.split("/api/v2.0/", 1)[-1] if "/api/v2.0/" in resource else resource
    target = resolve_target(relative, sandbox)
    if (
        target.company_id is None
        or target.entity_set is None
        or target.entity_set.name not in _WEBHOOK_SETS
        or target.entity_id is not None
        or (target.count or target.lines or target.action)
    ):
        raise bad_request(f"The resource '{resource}' cannot be subscribed to.")
    return f"companies({target.company_id})/{target.entity_set.name}"


def read_subscriptions(
    request: Request[Any, Any, Any], sandbox: BusinessCentralSandbox, rest: str
) -> Response[bytes]:
    subscription = _subscription(sandbox, rest)
    if subscription is None:
        rows = [found.render() for found in sandbox.webhooks.subscriptions.values()]
        return json_response({"@odata.context": context_url(request, "subscriptions"), "value": rows})
    return json_response(
        {"@odata.context": context_url(request, "subscriptions/$entity"), **subscription.render()}
    )


async def subscribe(
    request: Request[Any, Any, Any], sandbox: BusinessCentralSandbox, rest: str
) -> Response[bytes]:
    if _subscription(sandbox, rest) is not None:
        raise BusinessCentralError(
            405, "BadRequest_MethodNotAllowed", "'POST' requests for this resource are not allowed."
        )
    try:
        wanted = msgspec.convert(await read_body(request), _SubscriptionBody)
    except msgspec.ValidationError as exc:
        raise bad_request(f"The subscription is not valid: {exc}") from None
    resource = _subscription_resource(sandbox, wanted.resource)
    if sandbox.webhooks.transport is None:
        raise bad_request(
            "This sandbox delivers notifications only through its configured transport "
            "(BusinessCentralSandboxSettings.notification_transport), and none is configured."
        )
    if not await sandbox.webhooks.handshake(wanted.notification_url):
        # Unverified: the code and wording; that a failed handshake refuses the subscription is documented.
        raise bad_request(
            f"The notification URL '{wanted.notification_url}' did not return the validation token."
        )
    subscription = sandbox.webhooks.add(wanted.notification_url, resource, wanted.client_state)
    location = f"{api_base(request)}/subscriptions('{subscription.id}')"
    body = {"@odata.context": context_url(request, "subscriptions/$entity"), **subscription.render()}
    return json_response(body, 201, {"Location": location})


async def renew_subscription(
    request: Request[Any, Any, Any], sandbox: BusinessCentralSandbox, rest: str
) -> Response[bytes]:
    subscription = _subscription(sandbox, rest)
    if subscription is None:
        raise BusinessCentralError(
            405, "BadRequest_MethodNotAllowed", "'PATCH' requests for this resource are not allowed."
        )
    _subscription_if_match(request, subscription)
    # The body is the subscription as the client wants it ("Update subscriptions", api-reference/v2.0/api/
    # dynamics_subscriptions_update: notificationUrl, resource, clientState); an empty one just renews.
    changes = _SubscriptionChanges()
    if (await request.body()).strip():
        try:
            changes = msgspec.convert(await read_body(request), _SubscriptionChanges)
        except msgspec.ValidationError as exc:
            raise bad_request(f"The subscription is not valid: {exc}") from None
    if (
        changes.resource is not None
        and _subscription_resource(sandbox, changes.resource) != subscription.resource
    ):
        # Unverified: that the resource cannot be changed by PATCH (a subscription is to one resource).
        raise bad_request("The resource of a subscription cannot be changed.")
    url = changes.notification_url or subscription.notification_url
    # A renewal handshakes again, as Business Central does before it extends the subscription.
    if not await sandbox.webhooks.handshake(url):
        raise bad_request(f"The notification URL '{url}' did not return the validation token.")
    subscription.notification_url = url
    if changes.client_state is not None:
        subscription.client_state = changes.client_state
    sandbox.webhooks.renew(subscription)
    return json_response(
        {"@odata.context": context_url(request, "subscriptions/$entity"), **subscription.render()}
    )


def unsubscribe(
    request: Request[Any, Any, Any], sandbox: BusinessCentralSandbox, rest: str
) -> Response[bytes]:
    subscription = _subscription(sandbox, rest)
    if subscription is None:
        raise BusinessCentralError(
            405, "BadRequest_MethodNotAllowed", "'DELETE' requests for this resource are not allowed."
        )
    _subscription_if_match(request, subscription)
    sandbox.webhooks.remove(subscription)
    return Response(b"", status_code=204, headers=ODATA_HEADERS)
