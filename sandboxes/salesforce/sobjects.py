"""sObject resources (REST API Developer Guide, "Describe Global", "sObject Basic Information",
"sObject Describe", "sObject Rows", "sObject Rows by External ID", "sObject Get Updated" and
"sObject Get Deleted"), under ``/services/data/vXX.X/sobjects``:

- ``GET .../sobjects/`` (describeGlobal), ``GET .../sobjects/{Obj}/`` and ``.../{Obj}/describe/``, derived
  from the schemas (`sandboxes.salesforce.describe`), 304 under ``If-Modified-Since`` when unchanged
- ``POST .../sobjects/{Obj}/`` creates; ``GET/PATCH/DELETE .../{Obj}/{id}`` read (``?fields=``; 304 with
  no body under ``If-Modified-Since`` while unchanged), update (412 under ``If-Unmodified-Since`` when the
  record changed after that moment, 400 for an unreadable date), delete (to the recycle bin)
- ``GET/PATCH .../{Obj}/{ExtField}/{value}`` read or upsert by external id (``?updateOnly=true``); 300
  with the records' URLs when several match
- ``GET .../{Obj}/updated/`` and ``.../deleted/`` (``?start=&end=``): the replication change feeds

Decided without documentation (unverified): the body of the 412 answer (an error array with
``PRECONDITION_FAILED``), the 405 answer to writes on a read-only object
(`_read_only_object`), refusing to create a contract that is already Activated, and the messages in
`sandboxes.salesforce.org.MESSAGES`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from email.utils import parsedate_to_datetime
from typing import Any, TypeAlias

from litestar import Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from sandboxes.salesforce.data import (
    PSE_AUTO_NUMBER_PREFIXES,
    STAGES,
    USERS,
    FieldSpec,
    ObjectSchema,
    Record,
    contract_end_date,
    format_datetime,
    normalize_salesforce_id,
    parse_datetime,
    salesforce_id,
)
from sandboxes.salesforce.describe import describe_global, describe_object, object_basics
from sandboxes.salesforce.org import (
    MESSAGES,
    Deleted,
    MultipleMatches,
    Org,
    Result,
    SalesforceError,
    not_found,
)
from sandboxes.salesforce.wire import json_response, read_body, request_user, respond

__all__ = [
    "SObjectResources",
    "create_record",
    "created_result",
    "delete_record",
    "deleted_records",
    "describe_global_resource",
    "deserialize_error",
    "read_by_external_id",
    "read_record",
    "sobject_basic_info",
    "sobject_describe",
    "update_record",
    "updated_records",
    "upsert_record",
    "upserted_result",
]

# Currency fields are currency(18,2): the first value with 17 digits before the decimal point is too large.
_CURRENCY_LIMIT = 10**16
# The running user's currency, the default for CurrencyIsoCode on create (the org's corporate currency).
_DEFAULT_CURRENCY = "USD"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_REPLICATION_WINDOW = timedelta(days=30)
_SIGNED_CONTRACT_STATUSES = frozenset({"Activated", "Terminated", "Expired"})


def _read_only_object(schema: ObjectSchema, method: str) -> SalesforceError:
    """A write the object's describe flags refuse (``Organization``): the resource answers 405 and lists
    the methods it does allow (unverified: the exact list Salesforce names)."""
    allowed = ["HEAD", "GET"]
    if method != "POST":  # a record's resource: what may be done to an existing record
        allowed += (["PATCH"] if schema.updateable else []) + (["DELETE"] if schema.deletable else [])
    message = f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}"
    return SalesforceError(405, "METHOD_NOT_ALLOWED", message)


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _modified_since(stamp: datetime, if_modified_since: str | None) -> bool:
    """True unless `if_modified_since` is an HTTP-date `stamp` is not after; a missing or unparseable
    header reads as modified, as HTTP prescribes."""
    if if_modified_since is None:
        return True
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError):
        return True
    if since.tzinfo is None:
        # RFC 9110 HTTP-dates are GMT; the obsolete forms without a zone are read the same way.
        since = since.replace(tzinfo=UTC)
    # An HTTP-date has whole seconds, so the stamp's fraction must not make it look newer.
    return stamp.replace(microsecond=0) > since


def _required(schema: ObjectSchema, name: str) -> bool:
    spec = schema.field(name)
    return spec is not None and spec.required


def _selected_fields(schema: ObjectSchema, fields: str) -> tuple[FieldSpec, ...]:
    specs = []
    for name in (part.strip() for part in fields.split(",")):
        spec = schema.field(name) if name else None
        if spec is None:
            raise SalesforceError(
                400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {schema.name}"
            )
        specs.append(spec)
    return tuple(specs)


def created_result(url: str, record_id: str) -> Result:
    return Result(201, {"id": record_id, "success": True, "errors": []}, {"Location": url})


def upserted_result(url: str, record_id: str, created: bool) -> Result:
    body = {"id": record_id, "success": True, "errors": [], "created": created}
    return Result(201, body, {"Location": url}) if created else Result(200, body)


def _json_token(value: Any) -> str:
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, int | float):
        return "VALUE_NUMBER_INT" if isinstance(value, int) else "VALUE_NUMBER_FLOAT"
    if value is None:
        return "VALUE_NULL"
    return "START_OBJECT"


def _wrong_json_type(schema: ObjectSchema, body: Any) -> SalesforceError:
    return SalesforceError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {schema.name} from {_json_token(body)} value",
    )


def deserialize_error(type_name: str, value: Any) -> SalesforceError:
    return SalesforceError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {type_name} from {_json_token(value)} value {value!s} "
        "or request may be missing a required field",
    )


class SObjectResources(Org):
    """The sObject resources' operations: record reads, writes and upserts, the replication change
    feeds and sObject Basic Information; all or nothing, raising `SalesforceError`."""

    def read(self, schema: ObjectSchema, record_id: str, fields: str | None = None) -> Record:
        """``GET .../sobjects/{Obj}/{id}[?fields=a,b]``."""
        record = self.record(schema, record_id)
        return self.render(schema, record, None if fields is None else _selected_fields(schema, fields))

    def modified_since(self, schema: ObjectSchema, record_id: str, if_modified_since: str | None) -> bool:
        """False when ``If-Modified-Since`` names a moment the record has not changed after: Salesforce
        then answers 304 Not Modified with no body (REST API Developer Guide, sObject Rows, "Conditional
        Requests: If-Modified-Since")."""
        stamp = self.record(schema, record_id).get("LastModifiedDate")
        if not isinstance(stamp, str):
            return True
        return _modified_since(datetime.fromisoformat(stamp), if_modified_since)

    def check_unmodified_since(
        self, schema: ObjectSchema, record_id: str, if_unmodified_since: str | None
    ) -> None:
        """``If-Unmodified-Since`` on a record update (REST API Developer Guide, "Conditional Request
        Headers"): 412 Precondition Failed when the record was modified after the given moment; an invalid
        value on a PATCH is a 400. The comparison is to the second, like an HTTP-date."""
        if if_unmodified_since is None:
            return
        try:
            parsedate_to_datetime(if_unmodified_since)
        except (TypeError, ValueError, IndexError):
            message = f"Invalid If-Unmodified-Since header: {if_unmodified_since}"
            raise SalesforceError(400, "INVALID_HEADER_TYPE", message) from None
        stamp = self.record(schema, record_id).get("LastModifiedDate")
        if isinstance(stamp, str) and _modified_since(parse_datetime(stamp), if_unmodified_since):
            raise SalesforceError(412, "PRECONDITION_FAILED", MESSAGES["precondition_failed"])

    def metadata_modified_since(self, if_modified_since: str | None) -> bool:
        """The same for Describe Global and sObject Describe, whose metadata dates from the org's last
        (re)build: the schemas never change while it runs."""
        return _modified_since(self._reset_at, if_modified_since)

    def find_by_external_id(self, schema: ObjectSchema, field_name: str, value: str) -> list[Record]:
        """The live records whose external id `field_name` equals `value` (case-insensitively, as for
        text external ids that are not marked case-sensitive). ``Id`` is accepted as a key too."""
        spec = schema.field(field_name)
        if spec is None:
            raise SalesforceError(404, "NOT_FOUND", MESSAGES["unknown_external_id"].format(field=field_name))
        if spec.name == "Id":
            normalized = normalize_salesforce_id(value)
            found = None if normalized is None else self.records[schema.name].get(normalized)
            return [] if found is None else [found]
        if not spec.external_id:
            raise SalesforceError(400, "INVALID_FIELD", MESSAGES["not_external_id"].format(field=spec.name))
        wanted = value.casefold()
        return [
            record
            for record in self.records[schema.name].values()
            if isinstance(record.get(spec.name), str) and record[spec.name].casefold() == wanted
        ]

    def read_by_external_id(self, schema: ObjectSchema, field_name: str, value: str) -> Record:
        """``GET .../sobjects/{Obj}/{ExtField}/{value}``: one match, else 404, several 300."""
        matches = self.find_by_external_id(schema, field_name, value)
        if len(matches) > 1:
            raise MultipleMatches([self.record_url(schema, record["Id"]) for record in matches])
        if not matches:
            raise not_found()
        return self.render(schema, matches[0])

    # -- records: writes ----------------------------------------------------------------------------------

    def create(self, schema: ObjectSchema, body: Any, user_id: str) -> str:
        """``POST .../sobjects/{Obj}/``: validate `body`, apply defaults and derived fields; the new id."""
        if not schema.createable:
            raise _read_only_object(schema, "POST")
        changes = self._changes(schema, body, creating=True)
        defaults: dict[str, Any] = {}
        if schema.field("OwnerId") is not None:
            defaults["OwnerId"] = user_id
        currency = schema.field("CurrencyIsoCode")
        if currency is not None and currency.createable:
            defaults["CurrencyIsoCode"] = _DEFAULT_CURRENCY
        if schema.name == "Contract":
            defaults["Status"] = "Draft"  # the picklist's default value
            if changes.get("Status") in _SIGNED_CONTRACT_STATUSES:
                # A contract is created as a draft (or in approval) and activated by an update (unverified).
                raise SalesforceError(
                    400, "FIELD_INTEGRITY_EXCEPTION", MESSAGES["contract_status_on_create"], ["Status"]
                )
        values = {**defaults, **changes}
        missing = [spec.name for spec in schema.fields if spec.required and values.get(spec.name) is None]
        if missing:
            raise SalesforceError(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )
        self._check_unique(schema, values, None)
        record: Record = {spec.name: None for spec in schema.fields}
        record.update(values)
        record["Id"] = self._mint_id(schema)
        self._derive(schema, record, set(values))
        if schema.name == "Contract":
            record["ContractNumber"] = f"{self._next_auto_number('Contract'):08d}"
        elif schema.name == "Rate_Card_Line__c":
            record["Name"] = f"RCL-{self._next_auto_number('Rate_Card_Line__c'):06d}"
        elif schema.name == "Stratum_Invoice__c":
            record["Name"] = f"SI-{self._next_auto_number('Stratum_Invoice__c'):06d}"
        elif schema.name in PSE_AUTO_NUMBER_PREFIXES:
            prefix = PSE_AUTO_NUMBER_PREFIXES[schema.name]
            record["Name"] = f"{prefix}{self._next_auto_number(schema.name):06d}"
        stamp = format_datetime(self.now())
        record.update(IsDeleted=False, CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp)
        self.records[schema.name][record["Id"]] = record
        self.refresh_formulas()
        return str(record["Id"])

    def update(self, schema: ObjectSchema, record_id: str, body: Any) -> None:
        """``PATCH .../sobjects/{Obj}/{id}``: apply `body`, validated the way Salesforce does."""
        record = self.record(schema, record_id)
        if not schema.updateable:
            raise _read_only_object(schema, "PATCH")
        changes = self._changes(schema, body, creating=False)
        missing = [name for name, value in changes.items() if value is None and _required(schema, name)]
        if missing:
            message = f"Required fields are missing: [{', '.join(missing)}]"
            raise SalesforceError(400, "REQUIRED_FIELD_MISSING", message, missing)
        self._check_unique(schema, changes, record["Id"])
        updated = {**record, **changes}
        self._derive(schema, updated, set(changes))
        stamp = format_datetime(self.now())
        updated["LastModifiedDate"] = stamp
        updated["SystemModstamp"] = stamp
        record.update(updated)
        self.refresh_formulas()

    def upsert(
        self, schema: ObjectSchema, field_name: str, value: str, body: Any, user_id: str, *, update_only: bool
    ) -> tuple[str, bool]:
        """``PATCH .../sobjects/{Obj}/{ExtField}/{value}``: (record id, created)."""
        matches = self.find_by_external_id(schema, field_name, value)
        if len(matches) > 1:
            raise MultipleMatches([self.record_url(schema, record["Id"]) for record in matches])
        if not isinstance(body, dict):
            raise _wrong_json_type(schema, body)
        spec = schema.field(field_name)
        assert spec is not None  # find_by_external_id checked it
        body = dict(body)
        for key in [key for key in body if key.lower() == spec.name.lower()]:
            given = body.pop(key)
            if spec.name != "Id" and (not isinstance(given, str) or given.casefold() != value.casefold()):
                message = MESSAGES["external_id_mismatch"].format(field=spec.name)
                raise SalesforceError(400, "INVALID_FIELD", message, [spec.name])
        if matches:
            self.update(schema, matches[0]["Id"], body)
            return str(matches[0]["Id"]), False
        if update_only or spec.name == "Id":
            raise not_found()
        # The key in the URL becomes the new record's external id.
        return self.create(schema, {**body, spec.name: value}, user_id), True

    def delete(self, schema: ObjectSchema, record_id: str) -> None:
        """``DELETE .../sobjects/{Obj}/{id}``: to the recycle bin, with its master-detail children."""
        record = self.record(schema, record_id)
        if not schema.deletable:
            raise _read_only_object(schema, "DELETE")
        self._delete(schema, record, self.now())
        self.refresh_formulas()

    def _delete(self, schema: ObjectSchema, record: Record, moment: datetime) -> None:
        record_id = record["Id"]
        del self.records[schema.name][record_id]
        stamp = format_datetime(moment)
        record.update(IsDeleted=True, SystemModstamp=stamp)
        self.recycle_bin[schema.name][record_id] = Deleted(record, moment)
        for child_schema, spec in self._references_to(schema.name):
            children = [r for r in self.records[child_schema.name].values() if r.get(spec.name) == record_id]
            for child in children:
                if spec.cascade_delete:
                    self._delete(child_schema, child, moment)
                else:
                    # A lookup to a deleted record is cleared, as "clear the value of this field" does.
                    child.update({spec.name: None, "LastModifiedDate": stamp, "SystemModstamp": stamp})

    def _mint_id(self, schema: ObjectSchema) -> str:
        while True:
            self._serials[schema.key_prefix] += 1
            record_id = salesforce_id(schema.key_prefix, self._serials[schema.key_prefix])
            if record_id not in self.records[schema.name] and record_id not in self.recycle_bin[schema.name]:
                return record_id

    def _next_auto_number(self, sobject: str) -> int:
        number = self._auto_numbers[sobject]
        self._auto_numbers[sobject] = number + 1
        return number

    def _changes(self, schema: ObjectSchema, body: Any, *, creating: bool) -> dict[str, Any]:
        """The fields a create or update body sets, each coerced and checked; nothing is applied here."""
        if not isinstance(body, dict):
            raise _wrong_json_type(schema, body)
        changes: dict[str, Any] = {}
        read_only: list[str] = []
        for name, value in body.items():
            if name == "attributes":
                continue  # Salesforce tolerates the attributes block clients echo back.
            spec = schema.field(name)
            if spec is None:
                raise SalesforceError(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {schema.name}", [name]
                )
            if not (spec.createable if creating else spec.updateable):
                read_only.append(spec.name)
                continue
            changes[spec.name] = self._coerce(spec, value)
        if read_only:
            raise SalesforceError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(read_only)}. Please check the security settings "
                "of this field and verify that it is read/write for your profile or permission set.",
                read_only,
            )
        return changes

    def _check_unique(self, schema: ObjectSchema, values: Mapping[str, Any], own_id: str | None) -> None:
        for spec in schema.fields:
            value = values.get(spec.name)
            if not spec.unique or not isinstance(value, str):
                continue
            wanted = value.casefold()
            for other in self.records[schema.name].values():
                other_value = other.get(spec.name)
                if (
                    other["Id"] != own_id
                    and isinstance(other_value, str)
                    and other_value.casefold() == wanted
                ):
                    raise SalesforceError(
                        400,
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {spec.name} duplicates value on record with id: "
                        f"{other['Id']}",
                        [spec.name],
                    )

    def _derive(self, schema: ObjectSchema, record: Record, changed: set[str]) -> None:
        """Recompute the fields Salesforce derives from the ones just set (`record` is the new state)."""
        if schema.name == "Opportunity" and "StageName" in changed:
            stage = STAGES[record["StageName"]]
            record["IsWon"] = stage.is_won
            record["IsClosed"] = stage.is_closed
            # Changing the stage resets Probability to the stage default unless the caller set it too.
            if "Probability" not in changed:
                record["Probability"] = stage.probability
        elif schema.name == "Contact" and changed & {"FirstName", "LastName"}:
            record["Name"] = " ".join(part for part in (record["FirstName"], record["LastName"]) if part)
        elif schema.name == "Contract":
            if changed & {"StartDate", "ContractTerm"}:
                start = record["StartDate"]
                end = contract_end_date(
                    None if start is None else date.fromisoformat(start), record["ContractTerm"]
                )
                record["EndDate"] = None if end is None else end.isoformat()
            if (
                "Status" in changed
                and record["Status"] == "Activated"
                and record.get("ActivatedDate") is None
            ):
                record["ActivatedDate"] = format_datetime(self.now())
        elif (currency := schema.field("CurrencyIsoCode")) is not None and not currency.createable:
            # Master-detail children take the master's currency.
            for spec in schema.fields:
                if (
                    spec.kind == "reference"
                    and spec.cascade_delete
                    and not spec.updateable
                    and spec.name in changed
                ):
                    master = self.records[spec.reference_to or ""][record[spec.name]]
                    record["CurrencyIsoCode"] = master["CurrencyIsoCode"]

    def _coerce(self, spec: FieldSpec, value: Any) -> Any:
        if value is None:
            return None
        if spec.kind in ("currency", "double", "percent"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise deserialize_error("double", value)
            if spec.kind == "currency" and abs(value) >= _CURRENCY_LIMIT:
                # Currency fields are currency(18,2): 16 digits before the point. Salesforce refuses more
                # rather than storing it (NUMBER_OUTSIDE_VALID_RANGE, "value outside of valid range").
                raise SalesforceError(
                    400,
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    f"{spec.name}: value outside of valid range on numeric field: {value}",
                    [spec.name],
                )
            if spec.precision is not None:
                # Number(p, s): Salesforce rounds to the scale and refuses more than p - s integer digits.
                scale = spec.scale or 0
                if abs(value) >= 10 ** (spec.precision - scale):
                    raise SalesforceError(
                        400,
                        "NUMBER_OUTSIDE_VALID_RANGE",
                        f"{spec.name}: value outside of valid range on numeric field: {value}",
                        [spec.name],
                    )
                # Half up, as Salesforce rounds a number to its field's scale (Python's round() is half even).
                exponent = Decimal(1).scaleb(-scale)
                return float(Decimal(str(value)).quantize(exponent, rounding=ROUND_HALF_UP))
            return round(float(value), 2)
        if spec.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
                raise deserialize_error("int", value)
            return int(value)
        if spec.kind == "boolean":
            if not isinstance(value, bool):
                raise deserialize_error("boolean", value)
            return value
        if not isinstance(value, str):
            raise deserialize_error("date" if spec.kind == "date" else "String", value)
        if spec.kind == "date":
            # fromisoformat alone would also take "20260301"; Salesforce wants exactly YYYY-MM-DD.
            try:
                parsed = date.fromisoformat(value)
            except ValueError:
                parsed = None
            if parsed is None or len(value) != 10:
                raise deserialize_error("date", value)
            return value
        if spec.kind == "datetime":
            try:
                return format_datetime(parse_datetime(value))
            except ValueError:
                raise deserialize_error("datetime", value) from None
        if spec.kind == "reference":
            return self._reference(spec, value)
        if spec.restricted_values is not None and value not in spec.restricted_values:
            raise SalesforceError(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{spec.name}: bad value for restricted picklist field: {value}",
                [spec.name],
            )
        if spec.kind == "email" and not _EMAIL.fullmatch(value):
            raise SalesforceError(
                400, "INVALID_EMAIL_ADDRESS", f"{spec.name}: invalid email address: {value}", [spec.name]
            )
        if spec.length is not None and len(value) > spec.length:
            raise SalesforceError(
                400,
                "STRING_TOO_LONG",
                f"{spec.name}: data value too large: {value[:40]} (max length={spec.length})",
                [spec.name],
            )
        return value

    def _reference(self, spec: FieldSpec, value: str) -> str:
        target = spec.reference_to or ""
        normalized = normalize_salesforce_id(value)
        target_prefix = "005" if target == "User" else self.schemas[target].key_prefix
        if normalized is None or not normalized.startswith(target_prefix):
            raise SalesforceError(
                400, "MALFORMED_ID", f"{spec.name}: id value of incorrect type: {value}", [spec.name]
            )
        exists = normalized in USERS if target == "User" else normalized in self.records[target]
        if not exists:
            raise SalesforceError(
                400, "INVALID_CROSS_REFERENCE_KEY", f"{spec.name}: invalid cross reference id", [spec.name]
            )
        return normalized

    # -- change feeds (the replication API) ---------------------------------------------------------------

    def updated(self, schema: ObjectSchema, start: str | None, end: str | None) -> dict[str, Any]:
        """``GET .../sobjects/{Obj}/updated/``: live records whose ``SystemModstamp`` is in the window."""
        begin, covered = self._replication_window(start, end)
        ids = [
            record["Id"]
            for record in self.records[schema.name].values()
            if begin <= parse_datetime(record["SystemModstamp"]) < covered
        ]
        return {"ids": ids, "latestDateCovered": format_datetime(covered)}

    def deleted(self, schema: ObjectSchema, start: str | None, end: str | None) -> dict[str, Any]:
        """``GET .../sobjects/{Obj}/deleted/``: recycle-bin entries deleted in the window."""
        begin, covered = self._replication_window(start, end)
        deleted = sorted(
            (
                entry
                for entry in self.recycle_bin[schema.name].values()
                if begin <= entry.deleted_at < covered
            ),
            key=lambda entry: entry.deleted_at,
        )
        return {
            "deletedRecords": [
                {"id": entry.record["Id"], "deletedDate": format_datetime(entry.deleted_at)}
                for entry in deleted
            ],
            # The recycle bin only knows what was deleted since this org (re)started.
            "earliestDateAvailable": format_datetime(_floor_minute(self._reset_at)),
            "latestDateCovered": format_datetime(covered),
        }

    def _replication_window(self, start: str | None, end: str | None) -> tuple[datetime, datetime]:
        """[begin, latest covered) for a feed request. Salesforce ignores seconds, and the newest minute is
        not covered yet: changes still being committed in it could carry earlier timestamps."""
        moments = []
        for name, raw in (("start", start), ("end", end)):
            if raw is None or not raw.strip():
                raise SalesforceError(
                    400, "MISSING_ARGUMENT", MESSAGES["replication_missing"].format(name=name)
                )
            # A literal "+" in a query string arrives as a space when the client did not encode it.
            text = raw.strip().replace(" ", "+")
            try:
                moments.append(_floor_minute(parse_datetime(text)))
            except ValueError:
                message = MESSAGES["replication_format"].format(name=name, value=raw)
                raise SalesforceError(400, "INVALID_REPLICATION_DATE", message) from None
        begin, finish = moments
        now = self.now()
        if finish < begin:
            raise SalesforceError(400, "INVALID_REPLICATION_DATE", MESSAGES["replication_order"])
        if begin < _floor_minute(now - _REPLICATION_WINDOW):
            raise SalesforceError(400, "INVALID_REPLICATION_DATE", MESSAGES["replication_too_old"])
        return begin, min(finish, _floor_minute(now))

    def basic_info(self, schema: ObjectSchema) -> dict[str, Any]:
        """``GET .../sobjects/{Obj}/`` (sObject Basic Information): the object's describeGlobal entry and
        its recently viewed records, of which an API-only user has none."""
        return {"objectDescribe": object_basics(self.version_base(), schema), "recentItems": []}

    def _references_to(self, target: str) -> list[tuple[ObjectSchema, FieldSpec]]:
        return [
            (schema, spec)
            for schema in self.schemas.values()
            for spec in schema.fields
            if spec.kind == "reference" and spec.reference_to == target
        ]


# Handlers receive the org through Litestar's DI, by parameter name.
_Sandbox: TypeAlias = NamedDependency[SObjectResources]

_OBJECT_PATH = "/services/data/{version:str}/sobjects/{sobject:str}"
_RECORD_PATH = _OBJECT_PATH + "/{record_id:str}"
_EXTERNAL_ID_PATH = _OBJECT_PATH + "/{field_name:str}/{value:str}"


@get("/services/data/{version:str}/sobjects")
async def describe_global_resource(
    request: Request[Any, Any, Any], version: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.check_version(version)
    if not sandbox.metadata_modified_since(request.headers.get("if-modified-since")):
        return Response(b"", status_code=304)
    return json_response(describe_global(sandbox.version_base(), sandbox.schemas))


@get(_OBJECT_PATH)
async def sobject_basic_info(
    version: FromPath[str], sobject: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.check_version(version)
    return json_response(sandbox.basic_info(sandbox.schema(sobject)))


@get(_OBJECT_PATH + "/describe")
async def sobject_describe(
    request: Request[Any, Any, Any], version: FromPath[str], sobject: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.check_version(version)
    schema = sandbox.schema(sobject)
    if not sandbox.metadata_modified_since(request.headers.get("if-modified-since")):
        return Response(b"", status_code=304)
    return json_response(describe_object(sandbox.version_base(), schema, sandbox.schemas))


@post(_OBJECT_PATH, status_code=201)
async def create_record(
    request: Request[Any, Any, Any], version: FromPath[str], sobject: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.check_version(version)
    schema = sandbox.schema(sobject)
    record_id = sandbox.create(schema, await read_body(request), request_user(request, sandbox))
    return respond(created_result(sandbox.record_url(schema, record_id), record_id))


@get(_OBJECT_PATH + "/updated")
async def updated_records(
    version: FromPath[str],
    sobject: FromPath[str],
    sandbox: _Sandbox,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
) -> Response[bytes]:
    sandbox.check_version(version)
    return json_response(sandbox.updated(sandbox.schema(sobject), start, end))


@get(_OBJECT_PATH + "/deleted")
async def deleted_records(
    version: FromPath[str],
    sobject: FromPath[str],
    sandbox: _Sandbox,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
) -> Response[bytes]:
    sandbox.check_version(version)
    return json_response(sandbox.deleted(sandbox.schema(sobject), start, end))


@get(_RECORD_PATH)
async def read_record(
    request: Request[Any, Any, Any],
    version: FromPath[str],
    sobject: FromPath[str],
    record_id: FromPath[str],
    sandbox: _Sandbox,
    fields: FromQuery[str | None] = None,
) -> Response[bytes]:
    sandbox.check_version(version)
    schema = sandbox.schema(sobject)
    if not sandbox.modified_since(schema, record_id, request.headers.get("if-modified-since")):
        return Response(b"", status_code=304)
    return json_response(sandbox.read(schema, record_id, fields))


@patch(_RECORD_PATH, status_code=204)
async def update_record(
    request: Request[Any, Any, Any],
    version: FromPath[str],
    sobject: FromPath[str],
    record_id: FromPath[str],
    sandbox: _Sandbox,
) -> None:
    sandbox.check_version(version)
    schema = sandbox.schema(sobject)
    sandbox.record(schema, record_id)  # 404 beats body errors, as in Salesforce
    sandbox.check_unmodified_since(schema, record_id, request.headers.get("if-unmodified-since"))
    sandbox.update(schema, record_id, await read_body(request))


@delete(_RECORD_PATH, status_code=204)
async def delete_record(
    version: FromPath[str], sobject: FromPath[str], record_id: FromPath[str], sandbox: _Sandbox
) -> None:
    sandbox.check_version(version)
    sandbox.delete(sandbox.schema(sobject), record_id)


@get(_EXTERNAL_ID_PATH)
async def read_by_external_id(
    version: FromPath[str],
    sobject: FromPath[str],
    field_name: FromPath[str],
    value: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    sandbox.check_version(version)
    return json_response(sandbox.read_by_external_id(sandbox.schema(sobject), field_name, value))


@patch(_EXTERNAL_ID_PATH)
async def upsert_record(
    request: Request[Any, Any, Any],
    version: FromPath[str],
    sobject: FromPath[str],
    field_name: FromPath[str],
    value: FromPath[str],
    sandbox: _Sandbox,
) -> Response[bytes]:
    sandbox.check_version(version)
    schema = sandbox.schema(sobject)
    body = await read_body(request)
    # Salesforce's parameter is camelCase, which Litestar's parameter names cannot spell.
    wants_update_only = (request.query_params.get("updateOnly") or "").lower() == "true"
    record_id, created = sandbox.upsert(
        schema, field_name, value, body, request_user(request, sandbox), update_only=wants_update_only
    )
    return respond(upserted_result(sandbox.record_url(schema, record_id), record_id, created))
