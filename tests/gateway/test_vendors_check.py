"""`stratum vendors check`: each configured vendor is logged in to and checked for what the gateway needs."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from apis.cli import main
from contracts.models.billing import CrmInvoiceStatus, CrmInvoiceStatusUpdate
from contracts.models.crm import ActivationStatus, OpportunityActivationUpdate
from sandboxes.netsuite import data as netsuite_data
from sandboxes.netsuite import metadata as netsuite_metadata
from sandboxes.salesforce.data import SCHEMAS, FieldSpec
from system_apis.crm.salesforce_mapping import (
    CUSTOM_FIELDS,
    activation_update_body,
    invoice_body,
    totals_body,
)


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("STRATUM_DATA_DIR", str(path))
    return path


def _check(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    code = main(["vendors", "check"])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def _failed(lines: list[str]) -> list[str]:
    return [line for line in lines if "MISSING" in line]


def _org_where(
    monkeypatch: pytest.MonkeyPatch, sobject: str, field: str, change: Callable[[FieldSpec], FieldSpec | None]
) -> None:
    """The Salesforce sandbox as an org whose ``sobject.field`` is ``change``d (None: not deployed); its
    describe answers are built from these schemas."""
    schemas = dict(SCHEMAS)
    schema = schemas[sobject]
    changed = (change(f) if f.name == field else f for f in schema.fields)
    schemas[sobject] = dataclasses.replace(schema, fields=tuple(f for f in changed if f is not None))
    monkeypatch.setattr("sandboxes.salesforce.app.SCHEMAS", schemas)


def test_the_sandboxes_have_everything(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = _check(capsys)
    assert code == 0, (lines, err)
    assert _failed(lines) == []
    # Every custom field the adapter needs is a line of its own.
    for need in CUSTOM_FIELDS:
        assert any(f"{need.sobject}.{need.name} " in line and line.endswith(" ok") for line in lines), need
    assert lines[-1].startswith("all ")
    assert lines[-1].endswith("vendor checks passed")


def test_a_missing_salesforce_custom_field_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An org where nobody deployed Opportunity.Project_Id__c.
    _org_where(monkeypatch, "Opportunity", "Project_Id__c", lambda _: None)

    code, lines, err = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert failed.startswith("salesforce")
    assert "Opportunity.Project_Id__c" in failed
    assert "create Opportunity.Project_Id__c as string" in failed
    assert "1 of" in err


def test_a_salesforce_field_of_the_wrong_type_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def as_number(spec: FieldSpec) -> FieldSpec:
        return dataclasses.replace(spec, kind="double", length=None)

    _org_where(monkeypatch, "Account", "Tax_Id__c", as_number)

    code, lines, _ = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert "Account.Tax_Id__c" in failed
    assert "it is a double field" in failed


def test_an_unknown_netsuite_invoice_item_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_ERP_VENDOR", "netsuite")
    monkeypatch.setenv("STRATUM_NETSUITE__INVOICE_ITEM", "NO-SUCH-ITEM")

    code, lines, _ = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert failed.startswith("netsuite")
    assert "invoice item 'NO-SUCH-ITEM'" in failed
    assert "STRATUM_NETSUITE__INVOICE_ITEM" in failed


def test_a_netsuite_account_without_the_source_ids_column_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An account where nobody created the transaction line field custcol_stratum_sources.
    invoice = netsuite_data.RECORD_TYPES["invoice"]
    fields = []
    for spec in invoice.fields:
        if spec.name == "item":
            lines = tuple(line for line in spec.lines if line.name != netsuite_data.SOURCES_FIELD)
            spec = dataclasses.replace(spec, lines=lines)
        fields.append(spec)
    stripped = dataclasses.replace(invoice, fields=tuple(fields))
    original = netsuite_metadata.record_type
    monkeypatch.setattr(
        netsuite_metadata, "record_type", lambda name: stripped if name == "invoice" else original(name)
    )
    monkeypatch.setenv("STRATUM_ERP_VENDOR", "netsuite")

    code, lines, _ = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert failed.startswith("netsuite")
    assert "invoice line field custcol_stratum_sources" in failed
    assert "Transaction Line Field" in failed


def test_an_unknown_netsuite_subsidiary_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_ERP_VENDOR", "netsuite")
    monkeypatch.setenv("STRATUM_NETSUITE__SUBSIDIARIES", '{"US01": "1", "ZZ99": "987654"}')

    code, lines, _ = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert "subsidiary 987654 (ZZ99)" in failed
    assert any("subsidiary 1 (US01)" in line and line.endswith(" ok") for line in lines)


def test_an_unknown_business_central_company_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_ERP_VENDOR", "business_central")
    monkeypatch.setenv("STRATUM_BUSINESS_CENTRAL__COMPANY", "No Such Company")

    code, lines, _ = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert failed.startswith("business_central")
    assert "company 'No Such Company'" in failed
    assert "STRATUM_BUSINESS_CENTRAL__COMPANY" in failed


def test_an_unknown_business_central_company_id_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_ERP_VENDOR", "business_central")
    monkeypatch.setenv("STRATUM_BUSINESS_CENTRAL__COMPANY", "00000000-0000-4000-8000-000000000000")

    code, lines, _ = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert "company '00000000-0000-4000-8000-000000000000'" in failed


def test_business_central_mid_migration_checks_both_erps(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_ERP_VENDOR", "netsuite")
    monkeypatch.setenv("STRATUM_ERP_BY_LEGAL_ENTITY", '{"DE01": "business_central"}')

    code, lines, err = _check(capsys)

    assert code == 0, (lines, err)
    assert any(line.startswith("netsuite ") for line in lines)
    assert any(line.startswith("business_central ") and "company 'CRONUS DE'" in line for line in lines)


def test_psa_mid_migration_checks_both_psas(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_PSA_VENDOR", "kantata")
    monkeypatch.setenv("STRATUM_PSA_BY_LEGAL_ENTITY", '{"DE01": "certinia"}')

    code, lines, err = _check(capsys)

    assert code == 0, (lines, err)
    assert any(line.startswith("kantata ") for line in lines)
    assert any(line.startswith("certinia ") for line in lines)


def test_an_unknown_anaplan_action_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_ANAPLAN__FORECAST_EXPORT", "Export Nothing")

    code, lines, _ = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert failed.startswith("anaplan")
    assert "export 'Export Nothing'" in failed
    assert "STRATUM_ANAPLAN__FORECAST_EXPORT" in failed


def test_an_unknown_anaplan_model_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_ANAPLAN__MODEL_ID", "00000000000000000000000000000000")

    code, lines, _ = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert "model 00000000000000000000000000000000" in failed
    assert "STRATUM_ANAPLAN__MODEL_ID" in failed


def test_a_refused_kantata_token_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_KANTATA__TOKEN", "not-a-kantata-token")

    code, lines, _ = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert failed.startswith("kantata")
    assert "STRATUM_KANTATA__TOKEN" in failed


def test_a_refused_salesforce_login_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_SALESFORCE__CLIENT_SECRET", "wrong-secret")

    code, lines, _ = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert failed.startswith("salesforce")
    assert "login and API access" in failed
    assert "wrong-secret" not in failed
    # The other vendors are still checked.
    assert any(line.startswith("netsuite ") and line.endswith(" ok") for line in lines)


def test_the_readme_lists_exactly_the_custom_fields() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    rows = set()
    for line in readme.splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 5 and cells[1].endswith("__c"):
            rows.add((cells[0].split("`")[0], cells[1], cells[2], cells[4] == "yes"))
    assert rows == {(f.sobject, f.name, f.types[0], f.written) for f in CUSTOM_FIELDS}


def test_a_salesforce_org_without_multiple_currencies_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _org_where(monkeypatch, "Opportunity", "CurrencyIsoCode", lambda _: None)

    code, lines, _ = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert "Opportunity standard fields read" in failed
    assert "the org lacks CurrencyIsoCode (CurrencyIsoCode: turn on multiple currencies)" in failed


def test_a_written_salesforce_field_the_user_cannot_edit_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(spec: FieldSpec) -> FieldSpec:
        return dataclasses.replace(spec, updateable=False)

    _org_where(monkeypatch, "Opportunity", "ERP_Customer_Id__c", read_only)

    code, lines, _ = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert "Opportunity.ERP_Customer_Id__c" in failed
    assert "cannot update it" in failed


def test_an_activation_picklist_without_the_gateways_values_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def without_blocked(spec: FieldSpec) -> FieldSpec:
        values = tuple(v for v in spec.restricted_values or () if v != "Blocked")
        return dataclasses.replace(spec, restricted_values=values)

    _org_where(monkeypatch, "Opportunity", "Activation_Status__c", without_blocked)

    code, lines, _ = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert "Opportunity.Activation_Status__c" in failed
    assert "lacks Blocked" in failed


def test_the_gateways_own_custom_objects_are_optional(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    schemas = {name: schema for name, schema in SCHEMAS.items() if name != "Rate_Card_Line__c"}
    monkeypatch.setattr("sandboxes.salesforce.app.SCHEMAS", schemas)

    code, lines, err = _check(capsys)

    assert code == 0, (lines, err)
    assert any("Rate_Card_Line__c object (optional" in line and line.endswith(" ok") for line in lines)


def test_the_written_fields_are_the_activation_write_back_and_the_invoice_status() -> None:
    update = OpportunityActivationUpdate(
        activation_status=ActivationStatus.ACTIVATED,
        psa_project_id="p",
        erp_project_id="e",
        erp_customer_id="c",
    )
    invoice = CrmInvoiceStatusUpdate(
        erp_invoice_id="inv-1",
        opportunity_id="006",
        status=CrmInvoiceStatus.OPEN,
        currency="USD",
        total=Decimal("10.00"),
        balance=Decimal("10.00"),
        erp_updated_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
    )
    opportunity_writes = set(activation_update_body(update)) | set(totals_body(*[Decimal(0)] * 3))
    # The invoice's external id is written through the upsert URL; CurrencyIsoCode is a standard field.
    invoice_writes = set(invoice_body(invoice, None)) - {"CurrencyIsoCode"} | {"ERP_Invoice_Id__c"}
    assert opportunity_writes == {f.name for f in CUSTOM_FIELDS if f.written and f.sobject == "Opportunity"}
    assert invoice_writes == {
        f.name for f in CUSTOM_FIELDS if f.written and f.sobject == "Stratum_Invoice__c"
    }


def test_certinia_is_checked_in_the_crms_org(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_PSA_VENDOR", "certinia")
    code, lines, err = _check(capsys)
    assert code == 0, (lines, err)
    certinia = [line for line in lines if line.startswith("certinia")]
    assert len(certinia) == 6
    assert any("pse__Assignment__r.pse__Role__c" in line for line in certinia)  # time's role is readable
    assert any("pse__Billing_Event__c.Stratum_Key__c/Stratum_Status__c" in line for line in certinia)


def test_a_certinia_org_without_the_key_field_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_PSA_VENDOR", "certinia")
    _org_where(monkeypatch, "pse__Proj__c", "Stratum_Key__c", lambda _: None)

    code, lines, _ = _check(capsys)

    assert code == 1
    [failed] = _failed(lines)
    assert failed.startswith("certinia")
    assert "Stratum_Key__c" in failed
