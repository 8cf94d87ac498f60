"""Composite resources (REST API Developer Guide, "Composite" and "sObject Collections"):

- ``POST .../composite``: up to 25 subrequests (at most 5 queries) run in order, ``@{ref.field}``
  references to earlier answers, ``allOrNone`` rolling everything back on the first failure
- ``POST .../composite/sobjects``: create up to 200 records of any objects, ``allOrNone`` likewise

A subrequest is routed by `CompositeResources.dispatch` to the same operations the HTTP routes use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, unquote

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from sandboxes.salesforce.describe import describe_global, describe_object
from sandboxes.salesforce.org import (
    MESSAGES,
    REQUEST_VERSION,
    MultipleMatches,
    Result,
    SalesforceError,
    not_found,
)
from sandboxes.salesforce.query import QueryResources
from sandboxes.salesforce.sobjects import SObjectResources, created_result, deserialize_error, upserted_result
from sandboxes.salesforce.wire import json_response, read_body, request_user

__all__ = ["CompositeResources", "composite", "create_collection"]

# `POST .../composite/sobjects` takes at most this many records (the REST API Developer Guide's
# "sObject Collections").
_COLLECTION_MAX_RECORDS = 200
_COMPOSITE_MAX_SUBREQUESTS = 25
_COMPOSITE_MAX_QUERIES = 5
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9_]+$")
_REFERENCE = re.compile(r"@\{([^{}]*)\}")
_REFERENCE_PATH = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")
_ROLLED_BACK = "The transaction was rolled back since another operation in the same transaction failed."


def _halted(reference_id: str, message: str) -> dict[str, Any]:
    return {
        "body": [{"errorCode": "PROCESSING_HALTED", "message": message}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": reference_id,
    }


def _composite_subrequests(body: Any) -> list[dict[str, Any]]:
    """The subrequests of a composite body, checked before any of them runs (a bad one fails the whole
    request with 400, as in Salesforce)."""

    def invalid(detail: str) -> SalesforceError:
        return SalesforceError(400, "JSON_PARSER_ERROR", MESSAGES["composite_shape"].format(detail=detail))

    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    subrequests = body.get("compositeRequest")
    if not isinstance(subrequests, list) or not subrequests:
        raise invalid("compositeRequest must be a non-empty array")
    if not isinstance(body.get("allOrNone", False), bool):
        raise invalid("allOrNone must be a boolean")
    if len(subrequests) > _COMPOSITE_MAX_SUBREQUESTS:
        raise SalesforceError(400, "LIMIT_EXCEEDED", MESSAGES["composite_too_many"])
    seen: set[str] = set()
    queries = 0
    for subrequest in subrequests:
        if not isinstance(subrequest, dict):
            raise invalid("each subrequest must be a JSON object")
        method, url, reference_id = (subrequest.get(key) for key in ("method", "url", "referenceId"))
        if not isinstance(method, str) or not isinstance(url, str):
            raise invalid("each subrequest needs a method and a url")
        if not isinstance(reference_id, str):
            raise invalid("each subrequest needs a referenceId")
        if not _REFERENCE_ID.fullmatch(reference_id):
            message = MESSAGES["composite_reference_id"].format(reference_id=reference_id)
            raise SalesforceError(400, "INVALID_INPUT", message)
        if reference_id in seen:
            message = MESSAGES["composite_duplicate_reference"].format(reference_id=reference_id)
            raise SalesforceError(400, "INVALID_INPUT", message)
        seen.add(reference_id)
        headers = subrequest.get("httpHeaders")
        if headers is not None and not isinstance(headers, dict):
            raise invalid("httpHeaders must be a JSON object")
        if re.match(r"/services/data/[^/]+/query(All)?[/?]", url + "/"):
            queries += 1
    if queries > _COMPOSITE_MAX_QUERIES:
        raise SalesforceError(400, "LIMIT_EXCEEDED", MESSAGES["composite_too_many_queries"])
    return subrequests


class _UnresolvedReference(Exception):
    def __init__(self, reference_id: str, expression: str) -> None:
        super().__init__(expression)
        self.reference_id = reference_id
        self.expression = expression


def _reference_value(expression: str, bodies: Mapping[str, Any]) -> Any:
    """The value ``@{expression}`` stands for: ``ref.id``, ``ref.records[0].Id`` and the like."""
    match = re.match(r"[A-Za-z0-9_]+", expression)
    reference_id = match.group() if match else expression
    if reference_id not in bodies:
        raise _UnresolvedReference(reference_id, expression)
    value: Any = bodies[reference_id]
    rest = expression[len(reference_id) :]
    position = 0
    while position < len(rest):
        step = _REFERENCE_PATH.match(rest, position)
        if step is None:
            raise _UnresolvedReference(reference_id, expression)
        key, index = step.groups()
        if key is not None and isinstance(value, dict) and key in value:
            value = value[key]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            raise _UnresolvedReference(reference_id, expression)
        position = step.end()
    if position == 0 or value is None or isinstance(value, dict | list):
        raise _UnresolvedReference(reference_id, expression)
    return value


def _resolve_references(value: Any, bodies: Mapping[str, Any], *, in_url: bool) -> Any:
    """`value` with every ``@{ref.path}`` replaced by what an earlier subrequest answered."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole is not None and not in_url:
            return _reference_value(whole.group(1), bodies)  # keeps a number a number
        return _REFERENCE.sub(lambda m: _scalar_text(_reference_value(m.group(1), bodies)), value)
    if isinstance(value, dict):
        return {key: _resolve_references(item, bodies, in_url=in_url) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_references(item, bodies, in_url=in_url) for item in value]
    return value


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class CompositeResources(SObjectResources, QueryResources):
    """The composite resources' operations, which reach every other resource's."""

    def composite(self, body: Any, user_id: str) -> dict[str, Any]:
        """``POST .../composite``: run the subrequests in order; with ``allOrNone`` the first failure rolls
        every change back and every other subrequest answers ``PROCESSING_HALTED``."""
        subrequests = _composite_subrequests(body)
        all_or_none = body.get("allOrNone") is True
        before = self._save() if all_or_none else None
        results: list[dict[str, Any]] = []
        bodies: dict[str, Any] = {}
        failed_at: int | None = None
        for index, subrequest in enumerate(subrequests):
            reference_id = subrequest["referenceId"]
            if failed_at is not None and all_or_none:
                results.append(_halted(reference_id, _ROLLED_BACK))
                continue
            result = self._subrequest(subrequest, bodies, user_id)
            results.append(
                {
                    "body": result.body,
                    "httpHeaders": dict(result.headers),
                    "httpStatusCode": result.status,
                    "referenceId": reference_id,
                }
            )
            if result.status < 300:
                bodies[reference_id] = result.body
            elif failed_at is None:
                failed_at = index
        if failed_at is not None and before is not None:
            self._restore(before)
            results = [
                result if index == failed_at else _halted(result["referenceId"], _ROLLED_BACK)
                for index, result in enumerate(results)
            ]
        return {"compositeResponse": results}

    def create_collection(self, body: Any, user_id: str) -> list[dict[str, Any]]:
        """``POST .../composite/sobjects`` (sObject Collections, create): up to 200 records of any objects,
        each named by ``attributes.type``, in order. One result per record, ``{id, success, errors}``;
        errors there carry ``statusCode`` rather than ``errorCode``. With ``allOrNone`` one failure rolls
        every record back and the others answer ``ALL_OR_NONE_OPERATION_ROLLED_BACK``."""
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise SalesforceError(
                400, "JSON_PARSER_ERROR", MESSAGES["composite_shape"].format(detail="records")
            )
        records: list[Any] = body["records"]
        for record in records:
            if not isinstance(record, dict):
                raise deserialize_error("SObject", record)
        if len(records) > _COLLECTION_MAX_RECORDS:
            raise SalesforceError(400, "EXCEEDED_ID_LIMIT", MESSAGES["collection_too_many"])
        all_or_none = body.get("allOrNone") is True
        before = self._save() if all_or_none else None
        results: list[dict[str, Any]] = []
        for record in records:
            try:
                results.append({"id": self._create_member(record, user_id), "success": True, "errors": []})
            except SalesforceError as exc:
                errors = [
                    {
                        "statusCode": error["errorCode"],
                        "message": error["message"],
                        "fields": error.get("fields", []),
                    }
                    for error in exc.body()
                ]
                results.append({"id": None, "success": False, "errors": errors})
        if before is not None and any(not result["success"] for result in results):
            self._restore(before)
            rolled_back = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using "
                "AllOrNone header",
                "fields": [],
            }
            results = [
                result if not result["success"] else {"id": None, "success": False, "errors": [rolled_back]}
                for result in results
            ]
        return results

    def _create_member(self, record: dict[str, Any], user_id: str) -> str:
        attributes = record.get("attributes")
        sobject = attributes.get("type") if isinstance(attributes, dict) else None
        if not isinstance(sobject, str):
            raise SalesforceError(400, "INVALID_FIELD", MESSAGES["collection_type_missing"])
        try:
            schema = self.schema(sobject)
        except SalesforceError:
            raise SalesforceError(
                400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported."
            ) from None
        if not schema.createable:
            operation = MESSAGES["unsupported_operation"].format(sobject=schema.name, operation="insert")
            raise SalesforceError(400, "INVALID_TYPE_FOR_OPERATION", operation)
        fields = {key: value for key, value in record.items() if key != "attributes"}
        if any(key.lower() == "id" for key in fields):
            raise SalesforceError(400, "INVALID_FIELD", MESSAGES["collection_id_given"], ["Id"])
        return self.create(schema, fields, user_id)

    def _subrequest(self, subrequest: Mapping[str, Any], bodies: Mapping[str, Any], user_id: str) -> Result:
        try:
            url = _resolve_references(subrequest["url"], bodies, in_url=True)
            payload = _resolve_references(subrequest.get("body"), bodies, in_url=False)
        except _UnresolvedReference as exc:
            message = MESSAGES["unresolved_reference"].format(
                expression=exc.expression, reference_id=exc.reference_id
            )
            return Result(400, [{"errorCode": "PROCESSING_HALTED", "message": message}])
        headers = {str(k).lower(): str(v) for k, v in (subrequest.get("httpHeaders") or {}).items()}
        try:
            return self.dispatch(str(subrequest["method"]).upper(), str(url), payload, headers, user_id)
        except SalesforceError as exc:
            return Result(exc.status, exc.body())
        except MultipleMatches as exc:
            return Result(300, exc.urls)

    def dispatch(self, method: str, url: str, body: Any, headers: Mapping[str, str], user_id: str) -> Result:
        """Route one REST call the way the HTTP app does, for composite subrequests."""
        path, _, query_string = url.partition("?")
        match = re.fullmatch(r"/services/data/(v[^/]+)/?(.*)", path)
        if match is None:
            raise not_found()
        self.check_version(match.group(1))
        token = REQUEST_VERSION.set(match.group(1))
        try:
            return self._dispatch(method, match.group(2), query_string, body, headers, user_id)
        finally:
            REQUEST_VERSION.reset(token)

    def _dispatch(
        self, method: str, rest: str, query_string: str, body: Any, headers: Mapping[str, str], user_id: str
    ) -> Result:
        parts = [unquote(part) for part in rest.strip("/").split("/") if part]
        params = dict(parse_qsl(query_string, keep_blank_values=True))

        def allow(*methods: str) -> None:
            if method not in methods:
                allowed = ",".join(methods)
                message = f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
                raise SalesforceError(405, "METHOD_NOT_ALLOWED", message)

        if parts and parts[0] in ("query", "queryAll") and len(parts) <= 2:
            allow("GET")
            if len(parts) == 2:
                return Result(200, self.next_page(parts[0], parts[1]))
            batch_size = self.batch_size(headers.get("sforce-query-options"))
            return Result(200, self.query(parts[0], params.get("q"), batch_size))
        if parts == ["limits"]:
            allow("GET")
            return Result(200, self.limits())
        if parts == ["sobjects"]:
            allow("GET")
            return Result(200, describe_global(self.version_base(), self.schemas))
        if len(parts) < 2 or len(parts) > 4 or parts[0] != "sobjects":
            raise not_found()
        schema = self.schema(parts[1])
        if len(parts) == 3 and parts[2] == "describe":
            allow("GET")
            return Result(200, describe_object(self.version_base(), schema, self.schemas))
        if len(parts) == 2 and method == "GET":
            return Result(200, self.basic_info(schema))
        if len(parts) == 2:
            allow("GET", "POST")
            record_id = self.create(schema, body, user_id)
            return created_result(self.record_url(schema, record_id), record_id)
        if len(parts) == 3 and parts[2] in ("updated", "deleted"):
            allow("GET")
            feed = self.updated if parts[2] == "updated" else self.deleted
            return Result(200, feed(schema, params.get("start"), params.get("end")))
        if len(parts) == 3:
            allow("GET", "PATCH", "DELETE")
            if method == "GET":
                return Result(200, self.read(schema, parts[2], params.get("fields")))
            if method == "PATCH":
                self.update(schema, parts[2], body)
            else:
                self.delete(schema, parts[2])
            return Result(204, None)
        allow("GET", "PATCH")
        if method == "GET":
            return Result(200, self.read_by_external_id(schema, parts[2], parts[3]))
        update_only = params.get("updateOnly", "").lower() == "true"
        record_id, created = self.upsert(schema, parts[2], parts[3], body, user_id, update_only=update_only)
        return upserted_result(self.record_url(schema, record_id), record_id, created)


# Handlers receive the org through Litestar's DI, by parameter name.
_Sandbox: TypeAlias = NamedDependency[CompositeResources]


@post("/services/data/{version:str}/composite/sobjects", status_code=200)
async def create_collection(
    request: Request[Any, Any, Any], version: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.check_version(version)
    return json_response(sandbox.create_collection(await read_body(request), request_user(request, sandbox)))


@post("/services/data/{version:str}/composite", status_code=200)
async def composite(
    request: Request[Any, Any, Any], version: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.check_version(version)
    return json_response(sandbox.composite(await read_body(request), request_user(request, sandbox)))
