"""The Business Central sandbox's webhooks, as Microsoft documents them ("Working with webhooks in
Dynamics 365 Business Central", learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/
v2.0/dynamics-subscriptions): a subscription is made only after its notification URL echoes the
``validationToken`` handshake, lives 3 days unless renewed with PATCH, and changes arrive batched (30 s in
Business Central, a setting here) as ``{"value": [{subscriptionId, clientState, expirationDateTime,
resource, changeType, lastModifiedDateTime}]}``. Every call to the notification URL goes through an
injected ``httpx.MockTransport``: never the network."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandboxes.business_central import (
    DE_COMPANY_ID,
    BusinessCentralSandboxSettings,
    api_root,
    create_business_central_sandbox,
)
from sandboxes.business_central.data import INITECH_CUSTOMER_ID
from sandboxes.persistence import persist_sandbox
from tests.sandboxes.test_business_central_sandbox import Client, body

API = api_root()
SUBSCRIPTIONS = f"{API}/subscriptions"
CUSTOMERS = f"companies({DE_COMPANY_ID})/customers"
LISTENER = "https://listener.example/bc"


class Listener:
    """A notification URL: echoes the handshake token unless told not to, records every notification."""

    def __init__(self) -> None:
        self.echo = True
        self.handshakes: list[str] = []
        self.notifications: list[Any] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("validationToken")
        if token is not None:
            self.handshakes.append(token)
            return httpx.Response(200, text=token if self.echo else "no")
        self.notifications.append(body(httpx.Response(200, content=request.content)))
        return httpx.Response(202)


@pytest.fixture
def listener() -> Listener:
    return Listener()


@pytest.fixture
async def client(listener: Listener) -> AsyncIterator[Client]:
    settings = BusinessCentralSandboxSettings(
        notification_window_seconds=0.05, notification_transport=httpx.MockTransport(listener.handle)
    )
    client = Client(create_business_central_sandbox(settings))
    yield client
    await client.http.aclose()


async def subscribe(client: Client, resource: str = f"/api/v2.0/{CUSTOMERS}") -> httpx.Response:
    return await client.request(
        "POST",
        SUBSCRIPTIONS,
        json={"notificationUrl": LISTENER, "resource": resource, "clientState": "s3cret-state"},
    )


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_subscription_is_made_after_the_handshake(client: Client, listener: Listener) -> None:
    response = await subscribe(client)

    assert response.status_code == 201, response.text
    made = body(response)
    assert len(listener.handshakes) == 1
    assert made["notificationUrl"] == LISTENER
    assert made["resource"] == f"/api/v2.0/{CUSTOMERS}"
    assert made["clientState"] == "s3cret-state"
    lifetime = moment(made["expirationDateTime"]) - moment(made["lastModifiedDateTime"])
    assert lifetime == timedelta(days=3)
    listed = await client.get(SUBSCRIPTIONS)
    assert [row["subscriptionId"] for row in body(listed)["value"]] == [made["subscriptionId"]]
    one = await client.get(f"{SUBSCRIPTIONS}('{made['subscriptionId']}')")
    assert body(one)["subscriptionId"] == made["subscriptionId"]


async def test_a_failed_handshake_refuses_the_subscription(client: Client, listener: Listener) -> None:
    listener.echo = False
    response = await subscribe(client)

    assert response.status_code == 400
    assert "validation token" in response.json()["error"]["message"]
    assert body(await client.get(SUBSCRIPTIONS))["value"] == []


@pytest.mark.parametrize("resource", [f"{CUSTOMERS}({INITECH_CUSTOMER_ID})", "companies", "nowhere"])
async def test_only_an_entity_set_of_a_company_can_be_subscribed_to(client: Client, resource: str) -> None:
    response = await subscribe(client, resource)
    assert response.status_code in (400, 404)
    assert body(await client.get(SUBSCRIPTIONS))["value"] == []


async def test_changes_arrive_batched_in_one_notification(listener: Listener) -> None:
    settings = BusinessCentralSandboxSettings(notification_transport=httpx.MockTransport(listener.handle))
    client = Client(create_business_central_sandbox(settings))
    customers = body(await subscribe(client))
    invoices = body(await subscribe(client, f"companies({DE_COMPANY_ID})/salesInvoices"))
    created = await client.request(
        "POST", f"{API}/{CUSTOMERS}", json={"displayName": "Webhook GmbH", "number": "HOOK-1"}
    )
    new_id = body(created)["id"]
    current = await client.get(f"{API}/{CUSTOMERS}({new_id})")
    # Changed again within the window: still one notification for the entity, a creation.
    await client.request(
        "PATCH",
        f"{API}/{CUSTOMERS}({new_id})",
        json={"displayName": "Webhook AG"},
        headers={"If-Match": body(current)["@odata.etag"]},
    )
    renamed = await client.get(f"{API}/{CUSTOMERS}({INITECH_CUSTOMER_ID})")
    await client.request(
        "PATCH",
        f"{API}/{CUSTOMERS}({INITECH_CUSTOMER_ID})",
        json={"displayName": "Initech Software AG"},
        headers={"If-Match": body(renamed)["@odata.etag"]},
    )
    # A change to an entity set nobody subscribed to notifies nobody.
    await client.request("POST", f"{API}/companies({DE_COMPANY_ID})/projects", json={"number": "HOOK"})

    # The window is Business Central's 30 s here; the test ends it rather than waiting it out.
    await client.sandbox.webhooks.flush()

    # Every subscription to one URL in one POST.
    (notification,) = listener.notifications
    entries = {entry["resource"]: entry for entry in notification["value"]}
    initech = f"api/v2.0/{CUSTOMERS}({INITECH_CUSTOMER_ID})"
    assert set(entries) == {f"api/v2.0/{CUSTOMERS}({new_id})", initech}
    assert entries[f"api/v2.0/{CUSTOMERS}({new_id})"]["changeType"] == "created"
    assert entries[initech]["changeType"] == "updated"
    for entry in entries.values():
        assert entry["subscriptionId"] == customers["subscriptionId"]
        assert entry["clientState"] == "s3cret-state"
        assert entry["expirationDateTime"] == customers["expirationDateTime"]
        assert "lastModifiedDateTime" in entry
    assert invoices["subscriptionId"] not in {entry["subscriptionId"] for entry in entries.values()}
    await client.http.aclose()


async def test_past_the_threshold_one_collection_notification(listener: Listener) -> None:
    settings = BusinessCentralSandboxSettings(
        notification_transport=httpx.MockTransport(listener.handle), notification_collection_threshold=2
    )
    client = Client(create_business_central_sandbox(settings))
    await subscribe(client)
    for n in range(3):
        created = await client.request(
            "POST", f"{API}/{CUSTOMERS}", json={"displayName": f"Bulk {n}", "number": f"B{n}"}
        )
        assert created.status_code == 201

    await client.sandbox.webhooks.flush()

    ((entry,),) = [notification["value"] for notification in listener.notifications]
    assert entry["changeType"] == "collection"
    assert entry["resource"].startswith(f"/api/v2.0/{CUSTOMERS}?$filter=lastModifiedDateTime%20gt%20")
    await client.http.aclose()


@pytest.mark.parametrize(("status", "kept"), [(503, True), (429, True), (410, False), (400, False)])
async def test_a_failed_delivery_is_retried_or_ends_the_subscription(
    client: Client, listener: Listener, status: int, kept: bool
) -> None:
    made = body(await subscribe(client))
    await client.request("POST", f"{API}/{CUSTOMERS}", json={"displayName": "Flaky", "number": "FLAKY"})
    answers = iter([httpx.Response(status), httpx.Response(202)])
    original = listener.handle

    def failing_once(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("validationToken") is None:
            answer = next(answers)
            if answer.status_code == 202:
                return original(request)
            return answer
        return original(request)

    client.sandbox.webhooks.transport = httpx.MockTransport(failing_once)
    await client.sandbox.webhooks.flush()  # the failed attempt
    await client.sandbox.webhooks.flush()  # the next window

    url = f"{SUBSCRIPTIONS}('{made['subscriptionId']}')"
    assert (await client.get(url)).status_code == (200 if kept else 404)
    delivered = [entry for notification in listener.notifications for entry in notification["value"]]
    assert len(delivered) == (1 if kept else 0)


@pytest.mark.parametrize("entity_set", ["projects", "customerPayments"])
async def test_entity_sets_without_webhooks_cannot_be_subscribed_to(client: Client, entity_set: str) -> None:
    response = await subscribe(client, f"companies({DE_COMPANY_ID})/{entity_set}")
    assert response.status_code == 400
    assert "cannot be subscribed to" in response.json()["error"]["message"]


async def test_a_change_is_delivered_when_the_window_ends(client: Client, listener: Listener) -> None:
    await subscribe(client)
    created = await client.request(
        "POST", f"{API}/{CUSTOMERS}", json={"displayName": "Prompt GmbH", "number": "HOOK-2"}
    )

    await client.sandbox.webhooks.idle()  # the fixture's window: 0.05 s

    (notification,) = listener.notifications
    assert notification["value"][0]["resource"] == f"api/v2.0/{CUSTOMERS}({body(created)['id']})"


async def test_renewal_moves_expiry_to_three_days_from_now(client: Client, listener: Listener) -> None:
    made = body(await subscribe(client))
    url = f"{SUBSCRIPTIONS}('{made['subscriptionId']}')"
    # Within the token's hour, so only the subscription's own clock matters.
    later = moment(made["lastModifiedDateTime"]) + timedelta(minutes=30)
    client.sandbox.clock = later.timestamp

    stale = await client.request("PATCH", url, json={}, headers={"If-Match": 'W/"old"'})
    renewed = await client.request("PATCH", url, json={}, headers={"If-Match": made["@odata.etag"]})

    assert stale.status_code == 412
    assert renewed.status_code == 200, renewed.text
    assert moment(body(renewed)["expirationDateTime"]) == later + timedelta(days=3)
    assert len(listener.handshakes) == 2  # made, renewed (the stale attempt never got that far)


async def test_a_renewal_body_rotates_the_client_state_but_not_the_resource(
    client: Client, listener: Listener
) -> None:
    """ "Update subscriptions" (api-reference/v2.0/api/dynamics_subscriptions_update): the PATCH body is
    the subscription as wanted, {notificationUrl, resource, clientState}, and a renewal handshakes."""
    made = body(await subscribe(client))
    url = f"{SUBSCRIPTIONS}('{made['subscriptionId']}')"
    wanted = {"notificationUrl": LISTENER, "resource": f"/api/v2.0/{CUSTOMERS}", "clientState": "rotated"}
    renewed = await client.request("PATCH", url, json=wanted, headers={"If-Match": made["@odata.etag"]})
    assert renewed.status_code == 200, renewed.text
    assert body(renewed)["clientState"] == "rotated"
    assert len(listener.handshakes) == 2
    moved = {**wanted, "resource": f"/api/v2.0/companies({DE_COMPANY_ID})/salesInvoices"}
    refused = await client.request(
        "PATCH", url, json=moved, headers={"If-Match": body(renewed)["@odata.etag"]}
    )
    assert refused.status_code == 400
    assert body(await client.request("GET", url))["resource"].endswith("/customers")


async def test_a_deleted_subscription_is_gone_and_unnotified(client: Client, listener: Listener) -> None:
    made = body(await subscribe(client))
    url = f"{SUBSCRIPTIONS}('{made['subscriptionId']}')"

    deleted = await client.request("DELETE", url, headers={"If-Match": made["@odata.etag"]})
    created = await client.request(
        "POST", f"{API}/{CUSTOMERS}", json={"displayName": "Late GmbH", "number": "LATE-1"}
    )
    await client.sandbox.webhooks.idle()

    assert deleted.status_code == 204
    assert created.status_code == 201
    assert (await client.get(url)).status_code == 404
    assert listener.notifications == []


async def test_an_expired_subscription_is_not_notified(client: Client, listener: Listener) -> None:
    made = body(await subscribe(client))
    # Three days on, unrenewed (moved on the subscription itself: a clock three days on would expire the
    # client's token too, and the write below must succeed).
    subscription = client.sandbox.webhooks.subscriptions[made["subscriptionId"]]
    subscription.expires = client.sandbox.now() - timedelta(seconds=1)

    created = await client.request(
        "POST", f"{API}/{CUSTOMERS}", json={"displayName": "Late GmbH", "number": "LATE-2"}
    )
    await client.sandbox.webhooks.idle()

    assert created.status_code == 201
    assert listener.notifications == []


async def test_without_a_notification_transport_nothing_is_subscribed() -> None:
    # The sandbox as the gateway mounts it: it would otherwise call whatever URL a caller names.
    client = Client(create_business_central_sandbox())
    response = await subscribe(client)
    assert response.status_code == 400
    assert "notification_transport" in response.json()["error"]["message"]
    assert body(await client.get(SUBSCRIPTIONS))["value"] == []
    await client.http.aclose()


async def test_a_handshake_that_never_answers_refuses_the_subscription() -> None:
    async def silent(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # never answers
        raise AssertionError("unreachable")

    settings = BusinessCentralSandboxSettings(
        handshake_timeout_seconds=0.01, notification_transport=httpx.MockTransport(silent)
    )
    client = Client(create_business_central_sandbox(settings))
    response = await subscribe(client)
    assert response.status_code == 400
    assert "validation token" in response.json()["error"]["message"]
    await client.http.aclose()


async def test_a_client_state_over_2048_characters_is_refused(client: Client, listener: Listener) -> None:
    response = await client.request(
        "POST",
        SUBSCRIPTIONS,
        json={"notificationUrl": LISTENER, "resource": f"/api/v2.0/{CUSTOMERS}", "clientState": "x" * 2049},
    )
    assert response.status_code == 400
    assert listener.handshakes == []


async def test_subscriptions_survive_a_restart(tmp_path: Path, listener: Listener) -> None:
    # Business Central keeps a subscription for its 3 days, whatever happens to the server in between.
    settings = BusinessCentralSandboxSettings(notification_transport=httpx.MockTransport(listener.handle))
    running = Client(persist_sandbox(create_business_central_sandbox(settings), tmp_path, "business_central"))
    made = body(await subscribe(running))
    renewed = await running.request(
        "PATCH",
        f"{SUBSCRIPTIONS}('{made['subscriptionId']}')",
        json={},
        headers={"If-Match": made["@odata.etag"]},
    )
    assert renewed.status_code == 200, renewed.text
    await running.http.aclose()
    running.app.state.sandbox_store.release()  # the process exits

    restarted = Client(
        persist_sandbox(create_business_central_sandbox(settings), tmp_path, "business_central")
    )
    (kept,) = body(await restarted.get(SUBSCRIPTIONS))["value"]
    # Kept as renewed: its expiry, etag and client state as the last write left them.
    assert kept == {key: value for key, value in body(renewed).items() if key != "@odata.context"}
    # ...and it is still notified of changes.
    current = await restarted.get(f"{API}/{CUSTOMERS}({INITECH_CUSTOMER_ID})")
    changed = await restarted.request(
        "PATCH",
        f"{API}/{CUSTOMERS}({INITECH_CUSTOMER_ID})",
        json={"displayName": "Initech Software AG"},
        headers={"If-Match": body(current)["@odata.etag"]},
    )
    assert changed.status_code == 200
    await restarted.sandbox.webhooks.flush()
    ((entry,),) = [notification["value"] for notification in listener.notifications]
    assert entry["subscriptionId"] == made["subscriptionId"]
    assert entry["clientState"] == "s3cret-state"
    # Unsubscribing is kept too.
    gone = await restarted.request(
        "DELETE", f"{SUBSCRIPTIONS}('{made['subscriptionId']}')", headers={"If-Match": kept["@odata.etag"]}
    )
    assert gone.status_code == 204
    await restarted.http.aclose()
    restarted.app.state.sandbox_store.release()
    again = Client(persist_sandbox(create_business_central_sandbox(settings), tmp_path, "business_central"))
    assert body(await again.get(SUBSCRIPTIONS))["value"] == []
    await again.http.aclose()
    again.app.state.sandbox_store.release()
