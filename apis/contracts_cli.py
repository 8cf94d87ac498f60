"""Generating, checking and publishing the OpenAPI documents.

``contracts/openapi/{tier}-{major}.json`` is what the code generates now (the tier apps are the one source);
``contracts/published/{tier}-{major}.json`` is the PUBLISHED BASELINE: what clients of that major version
were promised. ``check`` fails when the committed document differs from the code, and when the code breaks
the baseline: a path or operation removed, a success response or response field removed, a type changed,
or an input made stricter (a new required parameter or body field, a new or narrowed pattern, length,
bound or enum on a parameter or body field). Exporting and committing a break therefore still fails: only
``publish`` moves a baseline, and it refuses a break unless told ``--accept-break "<reason>"``, which it
records in ``contracts/published/CHANGELOG.md``. A new major version (``system-v2``) starts with no
baseline to break; it must be published once before ``check`` passes.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

from apis.config import load_settings

__all__ = [
    "ContractError",
    "breaking_changes",
    "check_contracts",
    "export_contracts",
    "generate_contracts",
    "publish_contract",
]

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts" / "openapi"
PUBLISHED_DIR = CONTRACTS_DIR.parent / "published"
CHANGELOG = "CHANGELOG.md"
_CHANGELOG_HEADER = (
    "# Published contract baselines\n\n"
    "Written by `stratum contracts publish`: each entry moved a baseline in this folder. A break\n"
    "accepted on purpose says why. Newest first.\n"
)


class ContractError(Exception):
    """A publish that must not happen (a break without a reason, an unknown contract, a stale export)."""


def generate_contracts() -> dict[str, dict[str, Any]]:
    """``{"system-v1": {...}, ...}``, from the apps as the gateway builds them (with throwaway state)."""
    from apis.gateway import build_gateway

    with tempfile.TemporaryDirectory() as data_dir:
        # Contracts must not depend on the machine: fixed issuer, fresh data dir, no Redis.
        settings = load_settings({}, data_dir=data_dir, public_url="http://127.0.0.1:8000")
        gateway = build_gateway(settings)
        documents: dict[str, dict[str, Any]] = {}
        for mount in gateway.mounts:
            if mount.strip_prefix:  # a vendor sandbox, not one of our contracts
                continue
            name = mount.prefix.strip("/")
            documents[f"{name}-v1"] = mount.app.openapi_schema.to_schema()
    return dict(sorted(documents.items()))


def _dump(document: dict[str, Any]) -> str:
    # Decimal defaults (e.g. a quantity of 1) are written as the strings they travel as.
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def export_contracts(directory: Path = CONTRACTS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in generate_contracts().items():
        path = directory / f"{name}.json"
        path.write_text(_dump(document))
        written.append(path)
    return written


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        resolved: dict[str, Any] = (
            document.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1], {})
        )
        return resolved
    return schema


def _types(schema: dict[str, Any]) -> set[str]:
    if "type" in schema:
        value = schema["type"]
        return set(value) if isinstance(value, list) else {value}
    return {t for s in schema.get("oneOf", []) + schema.get("anyOf", []) for t in _types(s)} or {"any"}


def _compare_schema(
    old_doc: dict[str, Any],
    new_doc: dict[str, Any],
    old: dict[str, Any],
    new: dict[str, Any],
    where: str,
    problems: list[str],
    *,
    is_input: bool,
    depth: int = 0,
) -> None:
    if depth > 12:
        return
    old, new = _resolve(old_doc, old), _resolve(new_doc, new)
    old_types, new_types = _types(old), _types(new)
    if "any" not in old_types and not old_types <= new_types and not (is_input and new_types >= old_types):
        problems.append(f"{where}: type changed from {sorted(old_types)} to {sorted(new_types)}")
    # An optional field is a union (``oneOf: [T, null]``): compare each old branch with the new one of its
    # type.
    new_branches = [_resolve(new_doc, b) for b in new.get("oneOf", []) + new.get("anyOf", [])]
    for branch in old.get("oneOf", []) + old.get("anyOf", []):
        resolved = _resolve(old_doc, branch)
        match = next((b for b in new_branches if _types(b) == _types(resolved)), None)
        if match is not None and "any" not in _types(resolved):
            _compare_schema(
                old_doc, new_doc, resolved, match, where, problems, is_input=is_input, depth=depth + 1
            )
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, old_prop in old_props.items():
        if name not in new_props:
            if not is_input:
                problems.append(f"{where}.{name}: field removed")
            continue
        _compare_schema(
            old_doc,
            new_doc,
            old_prop,
            new_props[name],
            f"{where}.{name}",
            problems,
            is_input=is_input,
            depth=depth + 1,
        )
    if is_input:
        added_required = set(new.get("required", [])) - set(old.get("required", []))
        for name in sorted(added_required):
            problems.append(f"{where}.{name}: new required input")
        problems.extend(f"{where}: {change}" for change in _stricter_input(old, new))
        old_items, new_items = old.get("items"), new.get("items")
        if isinstance(old_items, dict) and isinstance(new_items, dict):
            _compare_schema(
                old_doc, new_doc, old_items, new_items, f"{where}[]", problems, is_input=True, depth=depth + 1
            )


# A bound that rejects more when it grows (lower bounds) or when it shrinks (upper bounds).
_LOWER_BOUNDS = ("minLength", "minimum", "exclusiveMinimum", "minItems")
_UPPER_BOUNDS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems")


def _stricter_input(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """How ``new`` refuses an input value ``old`` accepted: a client that worked may now get a 422."""
    changes = []
    for key in _LOWER_BOUNDS:
        if key in new and (key not in old or new[key] > old[key]):
            changes.append(f"{key} {old.get(key, 'none')} -> {new[key]}")
    for key in _UPPER_BOUNDS:
        if key in new and (key not in old or new[key] < old[key]):
            changes.append(f"{key} {old.get(key, 'none')} -> {new[key]}")
    if "pattern" in new and new["pattern"] != old.get("pattern"):
        changes.append(f"pattern {old.get('pattern', 'none')!r} -> {new['pattern']!r}")
    if "enum" in new:
        removed = [v for v in old.get("enum", []) if v not in new["enum"]]
        if "enum" not in old:
            changes.append(f"now only {new['enum']}")
        elif removed:
            changes.append(f"enum no longer accepts {removed}")
    if new.get("additionalProperties") is False and old.get("additionalProperties") is not False:
        changes.append("unknown fields now refused")
    return changes


def _already_enforced(old_op: dict[str, Any], param: dict[str, Any]) -> bool:
    """An ``Idempotency-Key`` the old contract already answered 428 without: declaring it is no new demand
    (the server refused requests without it before), only the contract catching up."""
    return (
        param["in"] == "header"
        and param["name"].lower() == "idempotency-key"
        and "428" in old_op.get("responses", {})
    )


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What a client of ``old`` would find broken in ``new``."""
    problems: list[str] = []
    for path, old_item in old.get("paths", {}).items():
        new_item = new.get("paths", {}).get(path)
        for method, old_op in old_item.items():
            if not isinstance(old_op, dict) or "responses" not in old_op:
                continue
            where = f"{method.upper()} {path}"
            new_op = (new_item or {}).get(method)
            if new_op is None:
                problems.append(f"{where}: operation removed")
                continue
            old_params = {(p["name"].lower(), p["in"]): p for p in old_op.get("parameters", [])}
            for param in new_op.get("parameters", []):
                key = (param["name"].lower(), param["in"])
                old_param = old_params.get(key)
                if old_param is not None:
                    _compare_schema(
                        old,
                        new,
                        old_param.get("schema", {}),
                        param.get("schema", {}),
                        f"{where} {param['in']} parameter {param['name']}",
                        problems,
                        is_input=True,
                    )
                if not param.get("required") or (old_param is not None and old_param.get("required")):
                    continue
                if _already_enforced(old_op, param):
                    continue
                problems.append(f"{where}: new required {param['in']} parameter {param['name']}")
            old_body = (
                old_op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            )
            new_body = (
                new_op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            )
            if old_body and new_body:
                _compare_schema(old, new, old_body, new_body, f"{where} body", problems, is_input=True)
            for status, old_resp in old_op.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                new_resp = new_op.get("responses", {}).get(status)
                if new_resp is None:
                    problems.append(f"{where}: response {status} removed")
                    continue
                for media, content in old_resp.get("content", {}).items():
                    new_content = new_resp.get("content", {}).get(media)
                    if new_content is None:
                        problems.append(f"{where}: response {status} {media} removed")
                        continue
                    _compare_schema(
                        old,
                        new,
                        content.get("schema", {}),
                        new_content.get("schema", {}),
                        f"{where} {status}",
                        problems,
                        is_input=False,
                    )
    return problems


def _read(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def check_contracts(directory: Path = CONTRACTS_DIR, published: Path = PUBLISHED_DIR) -> list[str]:
    """Every difference between the committed documents and the code, and every break of a published
    baseline, as readable lines (empty: all good)."""
    problems: list[str] = []
    generated = generate_contracts()
    for name, document in generated.items():
        path = directory / f"{name}.json"
        if not path.exists():
            problems.append(f"{path}: missing (run `stratum contracts export`)")
        elif _dump(_read(path)) != _dump(document):
            problems.append(
                f"{path}: differs from the code (run `stratum contracts export` and review the diff)"
            )
        baseline = published / f"{name}.json"
        if not baseline.exists():
            problems.append(
                f"{baseline}: {name} was never published (run `stratum contracts publish "
                f"{name.replace('-', '/', 1)}` once its first version is ready)"
            )
            continue
        for breaking in breaking_changes(_read(baseline), document):
            problems.append(f"{name}: breaks the published contract: {breaking}")
    for path in sorted(directory.glob("*.json")):
        if path.stem not in generated:
            problems.append(f"{path}: no tier generates it any more")
    for path in sorted(published.glob("*.json")):
        if path.stem not in generated:
            problems.append(
                f"{path}: published, but no tier serves it any more (retiring a major version is a "
                "decision: remove the baseline and say why in its CHANGELOG.md)"
            )
    return problems


def publish_contract(
    key: str,
    *,
    accept_break: str | None = None,
    directory: Path = CONTRACTS_DIR,
    published: Path = PUBLISHED_DIR,
    today: dt.date | None = None,
) -> list[str]:
    """Make the code's ``{tier}/{major}`` contract the published baseline; the breaks it accepted.

    Refuses (``ContractError``) a break unless ``accept_break`` gives the reason, which the changelog keeps;
    and refuses when the committed document is not what the code generates (export and review it first)."""
    name = key.strip("/").replace("/", "-", 1)
    generated = generate_contracts()
    if name not in generated:
        known = ", ".join(n.replace("-", "/", 1) for n in generated)
        raise ContractError(f"no contract {key!r} (known: {known})")
    document = generated[name]
    committed = directory / f"{name}.json"
    if not committed.exists() or _dump(_read(committed)) != _dump(document):
        raise ContractError(
            f"{committed} differs from the code: run `stratum contracts export`, review and commit it first"
        )
    baseline = published / f"{name}.json"
    breaks = breaking_changes(_read(baseline), document) if baseline.exists() else []
    if breaks and not (accept_break and accept_break.strip()):
        raise ContractError(
            f"{key} breaks its published contract; clients of it would fail:\n"
            + "\n".join(f"  {b}" for b in breaks)
            + '\nPublish a new major version instead, or pass --accept-break "<why clients are not hurt>".'
        )
    first = not baseline.exists()
    if not first and _dump(_read(baseline)) == _dump(document):
        return []
    published.mkdir(parents=True, exist_ok=True)
    baseline.write_text(_dump(document))
    version = document.get("info", {}).get("version", "?")
    entry = f"\n## {(today or dt.datetime.now(dt.UTC).date()).isoformat()} {key} ({version})\n\n"
    if breaks:
        entry += f"Breaking changes accepted: {(accept_break or '').strip()}\n\n"
        entry += "".join(f"- {b}\n" for b in breaks)
    else:
        entry += "First baseline.\n" if first else "Additive changes only.\n"
    changelog = published / CHANGELOG
    text = changelog.read_text() if changelog.exists() else _CHANGELOG_HEADER
    head, sep, older = text.partition("\n## ")
    changelog.write_text(head.rstrip("\n") + "\n" + entry + (f"\n## {older}" if sep else ""))
    return breaks
