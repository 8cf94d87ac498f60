"""The Business Central sandbox's ``$metadata``: the OData CSDL (EDMX) document every ``@odata.context``
points into, as Microsoft documents it for Business Central's OData services ("Use OData to Return and
Obtain a Service Metadata Document", learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/
return-obtain-service-metadata-edmx-document) and for API v2.0 (``{api root}/$metadata``). dynite, the
public client of the fidelity test, does not read ``$metadata``, so this reads it as a client generator
would: as XML in the OASIS EDMX/EDM namespaces."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandboxes.business_central import (
    DE_COMPANY_ID,
    TENANT_ID,
    api_root,
    create_business_central_sandbox,
)
from sandboxes.business_central.data import OPEN_INVOICE_ID
from tests.sandboxes.test_business_central_sandbox import BASE, Client

API = api_root()
DE = f"{API}/companies({DE_COMPANY_ID})"
EDMX = "{http://docs.oasis-open.org/odata/ns/edmx}"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
NAV = "Microsoft.NAV."


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    client = Client(create_business_central_sandbox())
    yield client
    await client.http.aclose()


class Schema:
    """The document's entity types: each one's properties and navigation properties, by name."""

    def __init__(self, document: bytes) -> None:
        root = ET.fromstring(document)
        assert root.tag == f"{EDMX}Edmx"
        assert root.get("Version") == "4.0"
        schema = root.find(f"{EDMX}DataServices/{EDM}Schema")
        assert schema is not None
        assert schema.get("Namespace") == "Microsoft.NAV"
        self.schema = schema
        self.types: dict[str, dict[str, str]] = {}
        self.navigation: dict[str, dict[str, str]] = {}
        for entity_type in schema.iter(f"{EDM}EntityType"):
            name = entity_type.get("Name", "")
            properties = entity_type.iter(f"{EDM}Property")
            self.types[name] = {p.get("Name", ""): p.get("Type", "") for p in properties}
            self.navigation[name] = {
                n.get("Name", ""): n.get("Type", "").removeprefix(f"Collection({NAV}").removesuffix(")")
                for n in entity_type.iter(f"{EDM}NavigationProperty")
            }
        self.container = {
            s.get("Name", ""): s.get("EntityType", "").removeprefix(NAV)
            for s in schema.iter(f"{EDM}EntitySet")
        }

    def enum(self, name: str) -> list[str]:
        found = self.schema.find(f"{EDM}EnumType[@Name='{name}']")
        assert found is not None, name
        return [member.get("Name", "") for member in found.iter(f"{EDM}Member")]

    def type_of(self, context: str) -> str:
        """The entity type an ``@odata.context`` fragment names, walked from the container."""
        segments = [s.partition("(")[0] for s in context.split("#", 1)[1].split("/") if s != "$entity"]
        current = self.container[segments[0]]
        for segment in segments[1:]:
            current = self.navigation[current][segment]
        return current


async def test_metadata_is_an_edmx_document_of_what_the_api_serves(client: Client) -> None:
    response = await client.get(f"{API}/$metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert response.headers["odata-version"] == "4.0"
    schema = Schema(response.content)
    assert schema.container == {"companies": "company"}
    assert schema.navigation["company"] == {
        "customers": "customer",
        "projects": "project",
        "salesInvoices": "salesInvoice",
        "customerPayments": "customerPayment",
        "salesCreditMemos": "salesCreditMemo",
        "taxAreas": "taxArea",
    }
    assert schema.navigation["salesInvoice"] == {"salesInvoiceLines": "salesInvoiceLine"}
    # Projects carry only what API v2.0's projects page has.
    assert schema.types["project"] == {"id": "Edm.Guid", "number": "Edm.String", "displayName": "Edm.String"}
    assert schema.types["customerPayment"]["amount"] == "Edm.Decimal"
    assert schema.types["salesInvoice"]["status"] == "Microsoft.NAV.status"
    assert schema.enum("blocked") == ["_x0020_", "Ship", "Invoice", "All"]
    assert "In_x0020_Review" in schema.enum("status")
    post = schema.schema.find(f"{EDM}Action[@Name='post']/{EDM}Parameter")
    assert post is not None
    assert post.get("Type") == "Microsoft.NAV.salesInvoice"
    bound = {action.get("Name") for action in schema.schema.iter(f"{EDM}Action")}
    assert bound == {"post", "cancel", "makeCorrectiveCreditMemo"}


async def test_metadata_needs_a_token_like_the_rest_of_the_api(client: Client) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app), base_url=BASE) as anonymous:
        response = await anonymous.get(f"{API}/$metadata")
    assert response.status_code == 401


async def test_every_odata_context_points_into_metadata_and_names_the_type_served(client: Client) -> None:
    schema = Schema((await client.get(f"{API}/$metadata")).content)
    project = {"number": "PR-META", "displayName": "Meta"}
    created = await client.request("POST", f"{DE}/projects", json=project)
    assert created.status_code == 201
    answers: list[dict[str, Any]] = [created.json()]
    for path in (
        f"{API}/companies",
        f"{DE}",
        f"{DE}/customers?$top=3",
        f"{DE}/projects",
        f"{DE}/salesInvoices?$top=2&$expand=salesInvoiceLines",
        f"{DE}/salesInvoices({OPEN_INVOICE_ID})",
        f"{DE}/salesInvoices({OPEN_INVOICE_ID})/salesInvoiceLines",
        f"{DE}/customerPayments",
        f"{DE}/taxAreas",
    ):
        response = await client.get(path)
        assert response.status_code == 200, path
        answers.append(response.json())
    for answer in answers:
        context = answer["@odata.context"]
        assert context.startswith(f"{BASE}/v2.0/{TENANT_ID}/production/api/v2.0/$metadata#"), context
        entity_type = schema.type_of(context)
        for entity in answer.get("value", [answer]):
            declared = schema.types[entity_type].keys() | schema.navigation[entity_type].keys()
            served = {key for key in entity if not key.startswith("@")}
            assert served <= declared, (entity_type, served - declared)
