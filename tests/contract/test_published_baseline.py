"""The breaking-change gate holds against the PUBLISHED baseline, not against whatever was last exported:
exporting and committing a break still fails ``stratum contracts check``; only ``publish`` moves the
baseline, and it takes a break only with a reason, which the changelog keeps."""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from apis.contracts_cli import (
    CONTRACTS_DIR,
    PUBLISHED_DIR,
    ContractError,
    breaking_changes,
    check_contracts,
    generate_contracts,
    publish_contract,
)

ACCOUNT = "/system/v1/crm/accounts/{account_id}"


@pytest.fixture(scope="module")
def generated() -> dict[str, dict[str, Any]]:
    """The documents as the code makes them (the committed ones: ``check`` proves they are the same)."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(CONTRACTS_DIR.glob("*.json"))}


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """Copies of the committed documents and of the published baselines, to change freely."""
    committed, published = tmp_path / "openapi", tmp_path / "published"
    shutil.copytree(CONTRACTS_DIR, committed)
    shutil.copytree(PUBLISHED_DIR, published)
    return committed, published


def _write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def test_every_served_contract_has_a_published_baseline_and_keeps_it() -> None:
    assert sorted(p.stem for p in PUBLISHED_DIR.glob("*.json")) == sorted(generate_contracts())
    assert check_contracts() == []


def test_a_break_exported_and_committed_still_fails_against_the_baseline(
    dirs: tuple[Path, Path], generated: dict[str, dict[str, Any]]
) -> None:
    committed, published = dirs
    # The baseline promised an operation the code (as exported and committed) no longer has.
    baseline = copy.deepcopy(generated["system-v1"])
    baseline["paths"]["/system/v1/crm/legacy-accounts"] = copy.deepcopy(baseline["paths"][ACCOUNT])
    _write(published / "system-v1.json", baseline)
    problems = check_contracts(committed, published)
    assert problems == [
        "system-v1: breaks the published contract: GET /system/v1/crm/legacy-accounts: operation removed"
    ]


def test_an_additive_change_passes(dirs: tuple[Path, Path], generated: dict[str, dict[str, Any]]) -> None:
    committed, published = dirs
    # The code has one more operation than the baseline: nothing a client relied on changed.
    baseline = copy.deepcopy(generated["system-v1"])
    del baseline["paths"][ACCOUNT]
    _write(published / "system-v1.json", baseline)
    assert check_contracts(committed, published) == []


def test_publish_refuses_a_break_without_a_reason_and_records_one_with_it(
    dirs: tuple[Path, Path], generated: dict[str, dict[str, Any]]
) -> None:
    committed, published = dirs
    baseline = copy.deepcopy(generated["system-v1"])
    baseline["paths"]["/system/v1/crm/legacy-accounts"] = copy.deepcopy(baseline["paths"][ACCOUNT])
    _write(published / "system-v1.json", baseline)
    with pytest.raises(ContractError, match="operation removed"):
        publish_contract("system/v1", directory=committed, published=published)
    assert json.loads((published / "system-v1.json").read_text()) == baseline  # not moved

    accepted = publish_contract(
        "system/v1",
        accept_break="legacy-accounts was never enabled in production",
        directory=committed,
        published=published,
        today=dt.date(2026, 12, 2),
    )
    assert accepted == ["GET /system/v1/crm/legacy-accounts: operation removed"]
    assert check_contracts(committed, published) == []  # the baseline moved
    changelog = (published / "CHANGELOG.md").read_text()
    newest = changelog.split("\n## ")[1]
    assert newest.startswith("2026-12-02 system/v1 (1.0.0)")
    assert "Breaking changes accepted: legacy-accounts was never enabled in production" in newest
    assert "- GET /system/v1/crm/legacy-accounts: operation removed" in newest


def test_publish_moves_the_baseline_for_an_additive_change(
    dirs: tuple[Path, Path], generated: dict[str, dict[str, Any]]
) -> None:
    committed, published = dirs
    baseline = copy.deepcopy(generated["system-v1"])
    del baseline["paths"][ACCOUNT]
    _write(published / "system-v1.json", baseline)
    assert publish_contract("system/v1", directory=committed, published=published) == []
    assert ACCOUNT in json.loads((published / "system-v1.json").read_text())["paths"]
    assert "Additive changes only." in (published / "CHANGELOG.md").read_text()


def test_publish_refuses_a_document_that_was_not_exported(dirs: tuple[Path, Path]) -> None:
    committed, published = dirs
    stale = json.loads((committed / "system-v1.json").read_text())
    stale["info"]["title"] = "Not what the code says"
    _write(committed / "system-v1.json", stale)
    with pytest.raises(ContractError, match="stratum contracts export"):
        publish_contract("system/v1", directory=committed, published=published)


def test_a_new_major_version_has_no_baseline_to_break_but_must_be_published(
    dirs: tuple[Path, Path],
) -> None:
    committed, published = dirs
    (published / "process-v1.json").unlink()
    assert any("process-v1 was never published" in p for p in check_contracts(committed, published))
    assert publish_contract("process/v1", directory=committed, published=published) == []
    assert check_contracts(committed, published) == []
    assert "First baseline." in (published / "CHANGELOG.md").read_text()


# What counts as a break on input: a client that worked must not start getting 422s.
def _body_property(document: dict[str, Any], schema: str, name: str) -> dict[str, Any]:
    prop: dict[str, Any] = document["components"]["schemas"][schema]["properties"][name]
    return prop


@pytest.fixture(scope="module")
def system(generated: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return generated["system-v1"]


def _an_input_string(system: dict[str, Any]) -> tuple[str, str]:
    """A string field of some request body's schema."""
    for item in system["paths"].values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = schema.get("schema", {}).get("$ref", "")
            if not ref:
                continue
            name = ref.rsplit("/", 1)[1]
            for field, prop in system["components"]["schemas"][name].get("properties", {}).items():
                if prop.get("type") == "string" and "enum" not in prop:
                    return name, field
    raise AssertionError("no string body field")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"maxLength": 3}, "maxLength"),
        ({"pattern": "^[0-9]+$"}, "pattern"),
        ({"enum": ["only"]}, "now only"),
    ],
)
def test_a_stricter_input_constraint_breaks(
    system: dict[str, Any], change: dict[str, Any], expected: str
) -> None:
    schema, field = _an_input_string(system)
    changed = copy.deepcopy(system)
    prop = _body_property(changed, schema, field)
    prop.pop("maxLength", None)
    prop.pop("pattern", None)
    loose = copy.deepcopy(changed)
    prop.update(change)
    breaks = breaking_changes(loose, changed)
    assert any(f".{field}: {expected}" in b for b in breaks), breaks
    assert breaking_changes(changed, loose) == []  # loosening it again is not a break


def test_a_stricter_query_parameter_breaks(system: dict[str, Any]) -> None:
    changed = copy.deepcopy(system)
    operation = changed["paths"]["/system/v1/crm/accounts/{account_id}/opportunities"]["get"]
    limit = next(p for p in operation["parameters"] if p["name"] == "limit")
    limit["schema"]["maximum"] = 10
    breaks = breaking_changes(system, changed)
    assert any("query parameter limit: maximum" in b and b.endswith("-> 10") for b in breaks), breaks


def test_declaring_an_idempotency_key_the_server_already_required_is_not_a_break(
    system: dict[str, Any],
) -> None:
    # The baseline (before the header was documented) answered 428 without it: nothing new is demanded.
    before = copy.deepcopy(system)
    required_somewhere = False
    for item in before["paths"].values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            params = operation.get("parameters", [])
            if any(p["name"] == "Idempotency-Key" and p["required"] for p in params):
                required_somewhere = True
            operation["parameters"] = [p for p in params if p["name"] != "Idempotency-Key"]
    assert required_somewhere
    assert breaking_changes(before, system) == []
    # Where the server did not refuse it before (no 428), requiring it is new.
    for item in before["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("428", None)
    assert any("new required header parameter Idempotency-Key" in b for b in breaking_changes(before, system))
