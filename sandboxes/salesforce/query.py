"""Query and QueryAll (REST API Developer Guide, "Query" and "QueryAll"): ``GET .../query?q=`` and
``GET .../queryAll?q=`` (which also sees deleted records) answer SOQL (`sandboxes.salesforce.soql`) in
batches of ``Sforce-Query-Options: batchSize`` (200..2000), each with a ``nextRecordsUrl``
(``.../query/{locator}-{offset}``) while more remain; cursors idle for 15 minutes expire.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, TypeAlias

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from sandboxes.salesforce.data import (
    Record,
    salesforce_id,
)
from sandboxes.salesforce.org import Cursor, Org, SalesforceError
from sandboxes.salesforce.soql import BoundQuery, SoqlError, compile_query
from sandboxes.salesforce.wire import json_response

__all__ = ["QueryResources", "query", "query_all", "query_all_more", "query_more"]

# Salesforce keeps an idle query cursor for 15 minutes; the cap bounds memory if clients never finish.
_CURSOR_TTL_SECONDS = 15 * 60
_MAX_CURSORS = 100
_DEFAULT_BATCH_SIZE = 2000
_MIN_BATCH_SIZE = 200


class QueryResources(Org):
    """The query resources' operations: run a query, page through its cursor."""

    def query(self, resource: str, q: str | None, batch_size: int) -> dict[str, Any]:
        """``GET .../query?q=`` (or ``queryAll``, which also sees deleted records): the first batch."""
        if q is None or not q.strip():
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            bound: BoundQuery = compile_query(q, self.schemas, self._today())
        except SoqlError as exc:
            raise SalesforceError(400, exc.code, exc.message) from None
        candidates: Iterable[Record] = self.records[bound.schema.name].values()
        if resource == "queryAll":
            deleted = [entry.record for entry in self.recycle_bin[bound.schema.name].values()]
            candidates = [*candidates, *deleted]
        rows = bound.execute(candidates, self.records)
        if bound.is_count:
            return {"totalSize": len(rows), "done": True, "records": []}
        # The result is a snapshot, like a Salesforce cursor: later updates do not leak into later pages.
        rendered = [bound.project(row, self._url_for) for row in rows]
        if bound.is_aggregate:
            # "Considerations for GROUP BY": REST hands out no query locator for aggregate results.
            return {"totalSize": len(rendered), "done": True, "records": rendered}
        return self.first_page(resource, rendered, batch_size)

    def first_page(self, resource: str, rows: list[Record], batch_size: int) -> dict[str, Any]:
        if len(rows) <= batch_size:
            return {"totalSize": len(rows), "done": True, "records": rows}
        self._drop_stale_cursors()
        self._cursor_serial += 1
        locator = salesforce_id("01g", self._cursor_serial)
        self._cursors[locator] = Cursor(rows, batch_size, self.clock())
        while len(self._cursors) > _MAX_CURSORS:
            self._cursors.popitem(last=False)
        return self.page(resource, locator, 0)

    def page(self, resource: str, locator: str, offset: int) -> dict[str, Any]:
        cursor = self._cursors.get(locator)
        if cursor is None or not 0 <= offset < len(cursor.rows):
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        cursor.last_used = self.clock()
        self._cursors.move_to_end(locator)
        batch = cursor.rows[offset : offset + cursor.batch_size]
        end = offset + len(batch)
        payload: dict[str, Any] = {"totalSize": len(cursor.rows), "done": end >= len(cursor.rows)}
        if not payload["done"]:
            payload["nextRecordsUrl"] = f"{self.version_base()}/{resource}/{locator}-{end}"
        payload["records"] = batch
        return payload

    def next_page(self, resource: str, cursor_ref: str) -> dict[str, Any]:
        """``GET .../query/{locator}-{offset}``, the path a ``nextRecordsUrl`` names."""
        locator, _, offset = cursor_ref.rpartition("-")
        if not locator or not offset.isdigit():
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self.page(resource, locator, int(offset))

    def _drop_stale_cursors(self) -> None:
        horizon = self.clock() - _CURSOR_TTL_SECONDS
        for locator in [key for key, cursor in self._cursors.items() if cursor.last_used < horizon]:
            del self._cursors[locator]

    def batch_size(self, query_options: str | None) -> int:
        """Batch size from ``Sforce-Query-Options``, clamped like Salesforce, capped by the settings."""
        size = _DEFAULT_BATCH_SIZE
        for option in (query_options or "").replace(";", ",").split(","):
            name, _, value = option.partition("=")
            if name.strip().lower() == "batchsize":
                # Salesforce treats the header as a hint; a bad one leaves the default.
                with contextlib.suppress(ValueError):
                    size = min(max(int(value.strip()), _MIN_BATCH_SIZE), _DEFAULT_BATCH_SIZE)
        return max(1, min(size, self.settings.max_batch_size))


# Handlers receive the org through Litestar's DI, by parameter name.
_Sandbox: TypeAlias = NamedDependency[QueryResources]


@get("/services/data/{version:str}/query")
async def query(
    request: Request[Any, Any, Any],
    version: FromPath[str],
    sandbox: _Sandbox,
    q: FromQuery[str | None] = None,
) -> Response[bytes]:
    sandbox.check_version(version)
    return json_response(
        sandbox.query("query", q, sandbox.batch_size(request.headers.get("sforce-query-options")))
    )


@get("/services/data/{version:str}/queryAll")
async def query_all(
    request: Request[Any, Any, Any],
    version: FromPath[str],
    sandbox: _Sandbox,
    q: FromQuery[str | None] = None,
) -> Response[bytes]:
    sandbox.check_version(version)
    return json_response(
        sandbox.query("queryAll", q, sandbox.batch_size(request.headers.get("sforce-query-options")))
    )


@get("/services/data/{version:str}/query/{cursor_ref:str}")
async def query_more(version: FromPath[str], cursor_ref: FromPath[str], sandbox: _Sandbox) -> Response[bytes]:
    sandbox.check_version(version)
    return json_response(sandbox.next_page("query", cursor_ref))


@get("/services/data/{version:str}/queryAll/{cursor_ref:str}")
async def query_all_more(
    version: FromPath[str], cursor_ref: FromPath[str], sandbox: _Sandbox
) -> Response[bytes]:
    sandbox.check_version(version)
    return json_response(sandbox.next_page("queryAll", cursor_ref))
