"""The committed contracts match the code, and the breaking-change check catches what breaks clients."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from apis.contracts_cli import CONTRACTS_DIR, breaking_changes, check_contracts


def test_committed_contracts_match_the_code() -> None:
    assert check_contracts() == []


@pytest.fixture(scope="module")
def system() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((CONTRACTS_DIR / "system-v1.json").read_text())
    return document


def test_an_unchanged_contract_has_no_breaking_change(system: dict[str, Any]) -> None:
    assert breaking_changes(system, copy.deepcopy(system)) == []


def test_removing_an_operation_breaks(system: dict[str, Any]) -> None:
    changed = copy.deepcopy(system)
    del changed["paths"]["/system/v1/crm/opportunities/{opportunity_id}"]
    assert any("operation removed" in p for p in breaking_changes(system, changed))


def test_removing_a_response_field_breaks(system: dict[str, Any]) -> None:
    changed = copy.deepcopy(system)
    del changed["components"]["schemas"]["Customer"]["properties"]["tax_jurisdiction"]
    assert any("tax_jurisdiction: field removed" in p for p in breaking_changes(system, changed))


def test_narrowing_a_type_breaks(system: dict[str, Any]) -> None:
    changed = copy.deepcopy(system)
    changed["components"]["schemas"]["Customer"]["properties"]["name"] = {"type": "integer"}
    assert any("name: type changed" in p for p in breaking_changes(system, changed))


def test_a_new_required_parameter_breaks(system: dict[str, Any]) -> None:
    changed = copy.deepcopy(system)
    operation = changed["paths"]["/system/v1/crm/accounts/{account_id}/opportunities"]["get"]
    operation["parameters"].append(
        {"name": "region", "in": "query", "required": True, "schema": {"type": "string"}}
    )
    assert any("new required query parameter region" in p for p in breaking_changes(system, changed))


def test_adding_an_optional_field_is_not_breaking(system: dict[str, Any]) -> None:
    changed = copy.deepcopy(system)
    changed["components"]["schemas"]["Customer"]["properties"]["segment"] = {"type": "string"}
    assert breaking_changes(system, changed) == []
