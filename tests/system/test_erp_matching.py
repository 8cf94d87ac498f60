"""The probable-duplicate rule, vendor-neutral: names, web domains and tax ids normalized, then compared."""

from __future__ import annotations

import pytest

from contracts.models import Customer, CustomerMatchQuery
from system_apis.erp.matching import (
    REASON_DOMAIN,
    REASON_TAX_ID,
    is_probable_duplicate,
    normalize_company_name,
    normalize_tax_id,
    web_domain,
)

# --- names -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("Wayne Capital Partners, L.L.C.", "wayne capital partners"),
        ("Wayne Capital Partners LLC", "wayne capital partners"),
        ("  WAYNE   capital\tPartners  llc ", "wayne capital partners"),
        ("Müller & Söhne Maschinenbau AG", "muller sohne maschinenbau"),
        ("Muller & Sohne Maschinenbau GmbH", "muller sohne maschinenbau"),
        ("Crème Brûlée S.A.S.", "creme brulee"),
        ("O'Neill & Partners LLP", "oneill partners"),
        ("O\u2019Neill & Partners", "oneill partners"),
        ("A&B Consulting Inc.", "a b consulting"),
        ("A & B Consulting, Incorporated", "a b consulting"),
        ("Hewlett-Packard Co.", "hewlett packard"),
        ("Acme Holdings Pty. Ltd.", "acme holdings"),
        ("Globex Corp, Inc.", "globex"),
        ("Fabrikam Retail Group plc", "fabrikam retail group"),
        ("Contoso B.V.", "contoso"),
        ("Straße Systems Ltd", "strasse systems"),
    ],
)
def test_names_are_normalized(name: str, normalized: str) -> None:
    assert normalize_company_name(name) == normalized


def test_only_trailing_legal_forms_are_dropped() -> None:
    assert normalize_company_name("Co-operative Bank plc") == "co operative bank"
    assert normalize_company_name("Inc Magazine Ltd") == "inc magazine"


def test_a_name_that_is_only_a_legal_form_keeps_its_last_word() -> None:
    # Otherwise "LLC" and "Inc." would both be "" and equal to each other.
    assert normalize_company_name("L.L.C.") == "llc"
    assert normalize_company_name("Pty Ltd") == "pty"


def test_a_name_of_punctuation_only_normalizes_to_nothing() -> None:
    assert normalize_company_name(" -- & -- ") == ""


# --- web domains -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("website", "domain"),
    [
        ("https://www.wayne-capital.example", "wayne-capital.example"),
        ("http://wayne-capital.example/", "wayne-capital.example"),
        ("HTTPS://WWW.Wayne-Capital.Example:8443/about/team?x=1#top", "wayne-capital.example"),
        ("wayne-capital.example", "wayne-capital.example"),
        ("www.wayne-capital.example/", "wayne-capital.example"),
        ("  wayne-capital.example.  ", "wayne-capital.example"),
        ("https://user@www.globex-ps.example/uk", "globex-ps.example"),
        ("https://shop.www.example.com", "shop.www.example.com"),
    ],
)
def test_web_domains(website: str, domain: str) -> None:
    assert web_domain(website) == domain


@pytest.mark.parametrize(
    "website", [None, "", "   ", "Wayne Capital", "info@wayne-capital.example", "http://["]
)
def test_no_web_domain_in_these(website: str | None) -> None:
    assert web_domain(website) is None


# --- tax ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tax_id", "normalized"),
    [
        ("04-7654321", "047654321"),
        ("gb 135.792.468", "GB135792468"),
        ("DE298765432", "DE298765432"),
        (" - ", None),
        ("", None),
        (None, None),
    ],
)
def test_tax_ids_are_normalized(tax_id: str | None, normalized: str | None) -> None:
    assert normalize_tax_id(tax_id) == normalized


# --- the rule ----------------------------------------------------------------------------------------


def _customer(name: str, *, tax_id: str | None = None, website: str | None = None) -> Customer:
    return Customer(id="1002", name=name, tax_id=tax_id, website=website)


def test_same_name_and_tax_id_is_a_probable_duplicate() -> None:
    crm = CustomerMatchQuery(
        name="Wayne Capital Partners LLC", tax_id="04-7654321", website="https://www.wayne-capital.example"
    )
    erp = _customer(
        "Wayne Capital Partners, L.L.C.", tax_id="047654321", website="http://wayne-capital.example/"
    )
    assert is_probable_duplicate(crm, erp) == REASON_TAX_ID == "name+tax_id"


def test_same_name_and_domain_is_a_probable_duplicate() -> None:
    crm = CustomerMatchQuery(name="Muller & Sohne Maschinenbau GmbH", website="www.mueller-soehne.example")
    erp = _customer(
        "Müller & Söhne Maschinenbau AG", tax_id="DE298765432", website="https://mueller-soehne.example/"
    )
    assert is_probable_duplicate(crm, erp) == REASON_DOMAIN == "name+domain"


def test_the_tax_id_is_the_reason_when_both_match() -> None:
    crm = CustomerMatchQuery(name="Acme Inc", tax_id="12-3", website="acme.example")
    assert is_probable_duplicate(crm, _customer("ACME, Inc.", tax_id="123", website="acme.example")) == (
        REASON_TAX_ID
    )


def test_a_name_alone_is_not_enough() -> None:
    crm = CustomerMatchQuery(name="Acme LLC", tax_id="11-1111111", website="acme-ny.example")
    assert (
        is_probable_duplicate(crm, _customer("Acme LLC", tax_id="22-2222222", website="acme-ca.example"))
        is None
    )
    assert is_probable_duplicate(CustomerMatchQuery(name="Acme LLC"), _customer("Acme LLC")) is None


def test_a_shared_tax_id_or_domain_with_another_name_is_not_enough() -> None:
    # A group's companies share a domain; "UK Ltd" is not the parent.
    crm = CustomerMatchQuery(
        name="Globex Professional Services UK Ltd",
        tax_id="94-3216547",
        website="https://www.globex-ps.example/uk",
    )
    erp = _customer(
        "Globex Professional Services", tax_id="94-3216547", website="https://www.globex-ps.example"
    )
    assert is_probable_duplicate(crm, erp) is None


def test_missing_values_never_match_each_other() -> None:
    crm = CustomerMatchQuery(name="Acme", tax_id="--", website="not a website")
    assert is_probable_duplicate(crm, _customer("Acme", tax_id=None, website=None)) is None
    assert is_probable_duplicate(CustomerMatchQuery(name="&", tax_id="1"), _customer("-", tax_id="1")) is None
