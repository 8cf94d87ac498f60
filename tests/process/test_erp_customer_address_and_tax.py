"""The ERP customer made from a CRM account carries the account's billing address and tax data, in each
ERP as that ERP keeps them, whether activation or customer sync made it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from apis.config import Settings
from sandboxes.salesforce.data import (
    DEMO_ACCOUNT_ID,
    GERMAN_ACCOUNT_ID,
    READY_FIXED_FEE_OPPORTUNITY_ID,
    READY_OPPORTUNITY_ID,
)
from tests.process.test_activation_runs import WORKFLOWS, _until

# A German account (DE01, billed from Business Central) that Business Central does not have yet.
NEW_GERMAN_ACCOUNT_ID = "001Dn00000cOpjUIAS"  # Blue Yonder Logistik GmbH, DE-HB
COUNTRY_CODES = {"United States": "US", "Germany": "DE", "United Kingdom": "GB"}


@pytest.fixture
async def gw(make_gateway: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    # DE01 is billed from Business Central (mid-migration), the rest from NetSuite.
    return await make_gateway(
        make_settings(
            workflows=WORKFLOWS, erp_vendor="netsuite", erp_by_legal_entity={"DE01": "business_central"}
        )
    )


def _account(gw: Any, account_id: str) -> dict[str, Any]:
    record: dict[str, Any] = gw.sandbox_state("salesforce").records["Account"][account_id]
    return record


async def _run(gw: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {**gw.auth("process:run"), "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=30"}
    response = await gw.client.post(path, json=body, headers=headers)
    assert response.status_code == 202, response.text
    run: dict[str, Any] = response.json()
    if path.endswith("project-activations"):
        return await _until(gw, run["id"], "completed")
    for _ in range(6):
        if run["state"] == "completed":
            break
        read = await gw.client.get(
            f"{path}/{run['id']}", headers={**gw.auth("process:read"), "Prefer": "wait=5"}
        )
        run = read.json()
    assert run["state"] == "completed", run
    return run


def _netsuite_customer(gw: Any, crm_id: str) -> dict[str, Any]:
    (customer,) = [
        c for c in gw.sandbox_state("netsuite").records["customer"].values() if c.get("externalId") == crm_id
    ]
    return customer


def _assert_netsuite_has_the_accounts_address_and_tax(gw: Any, account_id: str) -> dict[str, Any]:
    account = _account(gw, account_id)
    customer = _netsuite_customer(gw, account_id)
    (line,) = customer["addressBook"]
    assert line["defaultBilling"] is True
    address = line["addressBookAddress"]
    assert address["addr1"] == account["BillingStreet"].split("\n")[0]
    assert (address["city"], address["zip"], address["state"], address["country"]) == (
        account["BillingCity"],
        account["BillingPostalCode"],
        account["BillingState"],
        COUNTRY_CODES[account["BillingCountry"]],
    )
    assert customer["taxable"] is True
    tax_item = gw.sandbox_state("netsuite").records["salesTaxItem"][customer["taxItem"]]
    assert tax_item["externalId"] == account["Tax_Jurisdiction__c"]
    assert customer["vatRegNumber"] == account["Tax_Id__c"]
    return customer


async def test_activation_makes_the_netsuite_customer_with_address_and_tax(gw: Any) -> None:
    run = await _run(gw, "/process/v1/project-activations", {"opportunity_id": READY_OPPORTUNITY_ID})
    customer = _assert_netsuite_has_the_accounts_address_and_tax(gw, DEMO_ACCOUNT_ID)
    assert run["result"]["erp_customer_id"] == customer["id"]

    # Read back through the system tier, the ERP customer says the same.
    account = _account(gw, DEMO_ACCOUNT_ID)
    read = await gw.client.get(f"/system/v1/erp/customers/{customer['id']}", headers=gw.auth("system:read"))
    assert read.status_code == 200, read.text
    erp = read.json()
    assert erp["tax_jurisdiction"] == account["Tax_Jurisdiction__c"]
    assert erp["billing_address"]["city"] == account["BillingCity"]
    assert erp["billing_address"]["postal_code"] == account["BillingPostalCode"]


async def test_customer_sync_makes_the_netsuite_customer_with_address_and_tax(gw: Any) -> None:
    await _run(gw, "/process/v1/customer-syncs", {"account_ids": [DEMO_ACCOUNT_ID]})
    _assert_netsuite_has_the_accounts_address_and_tax(gw, DEMO_ACCOUNT_ID)


def _business_central_customer(gw: Any, crm_id: str) -> dict[str, Any]:
    customers = gw.sandbox_state("business-central").records["customers"].values()
    (customer,) = [c for c in customers if c["number"] == crm_id.upper()]
    return customer


async def test_customer_sync_makes_the_business_central_customer_with_address_and_tax(gw: Any) -> None:
    await _run(gw, "/process/v1/customer-syncs", {"account_ids": [NEW_GERMAN_ACCOUNT_ID]})
    account = _account(gw, NEW_GERMAN_ACCOUNT_ID)
    customer = _business_central_customer(gw, NEW_GERMAN_ACCOUNT_ID)
    assert customer["addressLine1"] == account["BillingStreet"].split("\n")[0]
    assert (customer["city"], customer["postalCode"], customer["state"], customer["country"]) == (
        account["BillingCity"],
        account["BillingPostalCode"],
        account["BillingState"],
        "DE",
    )
    assert customer["taxRegistrationNumber"] == account["Tax_Id__c"]
    tax_area = gw.sandbox_state("business-central").records["taxAreas"][customer["taxAreaId"]]
    assert tax_area["code"] == account["Tax_Jurisdiction__c"]

    # Read back through the system tier, the ERP customer names its jurisdiction and address.
    read = await gw.client.get(
        f"/system/v1/erp/customers/business_central:{customer['id']}", headers=gw.auth("system:read")
    )
    assert read.status_code == 200, read.text
    erp = read.json()
    assert erp["tax_jurisdiction"] == account["Tax_Jurisdiction__c"]
    address = erp["billing_address"]
    assert (address["city"], address["country"]) == (account["BillingCity"], "DE")


async def test_activation_gives_the_existing_business_central_customer_its_tax_area(gw: Any) -> None:
    # Initech's books moved to Business Central with an address but no tax area: activation adds the area
    # (the ERP had none) and keeps the address Business Central has (the ERP owns it once it has one).
    before = dict(_business_central_customer(gw, GERMAN_ACCOUNT_ID))
    body = {"opportunity_id": READY_FIXED_FEE_OPPORTUNITY_ID}
    run = await _run(gw, "/process/v1/project-activations", body)
    account = _account(gw, GERMAN_ACCOUNT_ID)
    customer = _business_central_customer(gw, GERMAN_ACCOUNT_ID)
    assert run["result"]["erp_customer_id"] == f"business_central:{customer['id']}"
    tax_area = gw.sandbox_state("business-central").records["taxAreas"][customer["taxAreaId"]]
    assert tax_area["code"] == account["Tax_Jurisdiction__c"]
    assert (customer["addressLine1"], customer["city"], customer["postalCode"]) == (
        before["addressLine1"],
        before["city"],
        before["postalCode"],
    )
