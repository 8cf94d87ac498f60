"""`stratum vendors check`: each configured vendor is logged in to and checked for what the gateway needs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from apis.cli import main
from sandboxes.salesforce.data import SCHEMAS
from system_apis.crm.salesforce_mapping import CUSTOM_FIELDS


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
    # An org where nobody deployed Opportunity.Project_Id__c: describe (built from the schemas) lacks it.
    schemas = dict(SCHEMAS)
    opportunity = schemas["Opportunity"]
    fields = tuple(f for f in opportunity.fields if f.name != "Project_Id__c")
    schemas["Opportunity"] = dataclasses.replace(opportunity, fields=fields)
    monkeypatch.setattr("sandboxes.salesforce.app.SCHEMAS", schemas)

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
    schemas = dict(SCHEMAS)
    account = schemas["Account"]
    fields = tuple(
        dataclasses.replace(f, kind="double", length=None) if f.name == "Tax_Id__c" else f
        for f in account.fields
    )
    schemas["Account"] = dataclasses.replace(account, fields=fields)
    monkeypatch.setattr("sandboxes.salesforce.app.SCHEMAS", schemas)

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
