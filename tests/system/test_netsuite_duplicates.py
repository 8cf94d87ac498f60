"""Probable duplicate customers in NetSuite: SuiteQL narrows the candidates, the shared rule confirms them.

Against the NetSuite sandbox, with the CRM side taken from the Salesforce sandbox's seed: Wayne Capital was
keyed into NetSuite by hand long ago (``DUPLICATE_CUSTOMER_ID``), Globex is linked by external id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from contracts.models import CustomerMatchQuery
from sandboxes.netsuite import create_netsuite_sandbox
from sandboxes.netsuite.data import (
    APOSTROPHE_CUSTOMER_ID,
    DE_CUSTOMER_ID,
    DUPLICATE_CUSTOMER_ID,
    GLOBEX_CUSTOMER_ID,
    RECORD_TYPES,
)
from sandboxes.netsuite.suiteql import build_tables, compile_suiteql
from sandboxes.salesforce import data as salesforce
from system_apis.erp.netsuite import NetSuiteErp, duplicate_candidates_query
from system_apis.errors import VendorUnavailable
from system_apis.vendor_http import RetryPolicy
from tests.system.test_netsuite_adapter import Sandbox

SUITEQL = "/query/v1/suiteql"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = Sandbox(create_netsuite_sandbox())
    yield box
    await box.close()


@pytest.fixture
def erp(sandbox: Sandbox) -> NetSuiteErp:
    return sandbox.erp()


def crm_account(name: str) -> dict[str, Any]:
    (account,) = [a for a in salesforce.build_seed(0)["Account"].values() if a["Name"] == name]
    return account


def query_for(account: dict[str, Any], **overrides: Any) -> CustomerMatchQuery:
    fields = {
        "name": account["Name"],
        "tax_id": account["Tax_Id__c"],
        "website": account["Website"],
        "crm_customer_id": account["Id"],
    }
    return CustomerMatchQuery(**{**fields, **overrides})


async def test_wayne_in_the_crm_finds_the_customer_finance_keyed_in(
    sandbox: Sandbox, erp: NetSuiteErp
) -> None:
    wayne = crm_account("Wayne Capital Partners LLC")
    matches = await erp.find_probable_duplicates(query_for(wayne))
    assert [(m.customer.id, m.reason) for m in matches] == [(DUPLICATE_CUSTOMER_ID, "name+tax_id")]
    (match,) = matches
    assert match.customer.name == "Wayne Capital Partners, L.L.C."
    assert match.customer.system_ids.crm is None  # not linked: that is why it is a duplicate
    assert match.customer.website == "http://wayne-capital.example/"
    # One SuiteQL statement narrowed it down; no record was read one by one, nothing was written.
    assert [method for method, *_ in await sandbox.requests("/record/v1/")] == []
    assert len(await sandbox.requests(SUITEQL)) >= 1


async def test_the_domain_alone_still_finds_wayne(erp: NetSuiteErp) -> None:
    wayne = crm_account("Wayne Capital Partners LLC")
    matches = await erp.find_probable_duplicates(query_for(wayne, tax_id=None))
    assert [(m.customer.id, m.reason) for m in matches] == [(DUPLICATE_CUSTOMER_ID, "name+domain")]


async def test_a_reformatted_tax_id_still_finds_wayne(erp: NetSuiteErp) -> None:
    wayne = crm_account("Wayne Capital Partners LLC")
    matches = await erp.find_probable_duplicates(query_for(wayne, tax_id="047654321", website=None))
    assert [(m.customer.id, m.reason) for m in matches] == [(DUPLICATE_CUSTOMER_ID, "name+tax_id")]


async def test_the_customer_linked_to_the_account_is_not_its_duplicate(erp: NetSuiteErp) -> None:
    globex = crm_account("Globex Professional Services")
    assert globex["Id"] == salesforce.BIG_ACCOUNT_ID
    assert await erp.find_probable_duplicates(query_for(globex)) == []
    # The same company asked about without the link is found: the link is what leaves it out.
    unlinked = await erp.find_probable_duplicates(query_for(globex, crm_customer_id=None))
    assert [(m.customer.id, m.customer.system_ids.crm) for m in unlinked] == [
        (GLOBEX_CUSTOMER_ID, salesforce.BIG_ACCOUNT_ID)
    ]
    # Another CRM account that is the same company is told about Globex's customer.
    other = await erp.find_probable_duplicates(query_for(globex, crm_customer_id="001OTHERACCOUNT"))
    assert [m.customer.id for m in other] == [GLOBEX_CUSTOMER_ID]


async def test_a_subsidiary_sharing_the_groups_domain_and_tax_id_is_not_a_duplicate(erp: NetSuiteErp) -> None:
    uk = crm_account("Globex Professional Services UK Ltd")
    assert await erp.find_probable_duplicates(query_for(uk, tax_id="94-3216547")) == []


async def test_an_unrelated_account_finds_nothing(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    query = CustomerMatchQuery(
        name="Zenith Orbital Shipping Ltd", tax_id="GB999999999", website="https://www.zenith-orbital.example"
    )
    assert await erp.find_probable_duplicates(query) == []
    assert {status for *_, status in await sandbox.requests(SUITEQL)} == {200}


async def test_apostrophes_and_like_wildcards_stay_literal(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    found = await erp.find_probable_duplicates(
        CustomerMatchQuery(name="O'Neill & Partners", tax_id="GB 135 792 468")
    )
    assert [(m.customer.id, m.reason) for m in found] == [(APOSTROPHE_CUSTOMER_ID, "name+tax_id")]
    injected = CustomerMatchQuery(name="x' OR '1'='1", tax_id="' OR 1=1 --")
    assert await erp.find_probable_duplicates(injected) == []
    # Every statement was valid SuiteQL (a broken literal is NetSuite's 400): the quotes stayed inside.
    assert {status for *_, status in await sandbox.requests(SUITEQL)} == {200}


def candidate_ids(sandbox: Sandbox, query: CustomerMatchQuery) -> set[str]:
    """What the adapter's SuiteQL narrows to, run by the sandbox's SuiteQL engine itself."""
    statement = duplicate_candidates_query(query)
    assert statement is not None
    return {
        row["id"]
        for row in compile_suiteql(statement, build_tables(sandbox.state.records, RECORD_TYPES)).run()
    }


def test_suiteql_narrows_to_few_candidates(sandbox: Sandbox) -> None:
    wayne = crm_account("Wayne Capital Partners LLC")
    assert candidate_ids(sandbox, query_for(wayne)) == {DUPLICATE_CUSTOMER_ID}
    # "%" and "_" in what the caller sent are matched as themselves, never as wildcards.
    wild = CustomerMatchQuery(name="100% Pure_Juice", tax_id="%", website="https://_%.example")
    assert candidate_ids(sandbox, wild) == set()
    everything = CustomerMatchQuery(name="% Holdings", website="https://%.example")
    assert candidate_ids(sandbox, everything) == set()


async def test_accents_as_typed_or_left_out(erp: NetSuiteErp) -> None:
    for name in ("Müller & Söhne Maschinenbau GmbH", "Muller & Sohne Maschinenbau"):
        found = await erp.find_probable_duplicates(
            CustomerMatchQuery(name=name, website="http://www.mueller-soehne.example/")
        )
        assert [(m.customer.id, m.reason) for m in found] == [(DE_CUSTOMER_ID, "name+domain")], name


async def test_every_seeded_customer_is_found_from_its_own_data(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    # The SuiteQL narrowing must never lose a customer the rule would match, whatever its spelling.
    records = list(sandbox.state.records["customer"].values())
    assert len(records) > 30
    for record in records:
        if not record.get("companyName") or not (record.get("vatRegNumber") or record.get("url")):
            continue
        query = CustomerMatchQuery(
            name=record["companyName"], tax_id=record.get("vatRegNumber"), website=record.get("url")
        )
        found = {m.customer.id for m in await erp.find_probable_duplicates(query)}
        assert str(record["id"]) in found, record["companyName"]


async def test_nothing_to_match_on_asks_netsuite_nothing(sandbox: Sandbox, erp: NetSuiteErp) -> None:
    # The rule needs a tax id or a web domain besides the name; a name alone cannot make a duplicate.
    assert duplicate_candidates_query(CustomerMatchQuery(name="Wayne Capital Partners LLC")) is None
    assert await erp.find_probable_duplicates(CustomerMatchQuery(name="Wayne Capital Partners LLC")) == []
    assert await erp.find_probable_duplicates(CustomerMatchQuery(name="&&", tax_id="1")) == []
    assert await sandbox.requests(SUITEQL) == []


async def test_netsuite_busy_is_the_ports_unavailable(sandbox: Sandbox) -> None:
    erp = sandbox.erp(retry=RetryPolicy(max_attempts=1))
    await sandbox.fault(kind="error", status=429, path_pattern="/query/v1/suiteql")
    with pytest.raises(VendorUnavailable):
        await erp.find_probable_duplicates(query_for(crm_account("Wayne Capital Partners LLC")))
