"""``POST .../api/v2.0/$batch``: OData JSON batches, each inner request run through the same app."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
from litestar import Request, Response

from sandboxes.business_central.errors import bad_request
from sandboxes.business_central.sandbox import BusinessCentralSandbox
from sandboxes.business_central.wire import DECODER, ENCODER, api_base, base_url, json_response, read_body

__all__ = ["batch"]


class _BatchRequest(msgspec.Struct, frozen=True):
    """One inner request of a JSON ``$batch`` (OData JSON Format 4.01, section 19.1)."""

    id: str
    method: str
    url: str
    headers: dict[str, str] = {}
    body: Any = None


class _Batch(msgspec.Struct, frozen=True):
    requests: list[_BatchRequest]


_BATCH_METHODS = frozenset({"GET", "POST", "PATCH", "DELETE"})
# An inner request's own headers the sandbox passes on; the outer request's token is every inner one's.
_BATCH_HEADERS = frozenset({"if-match", "prefer", "accept", "content-type", "data-access-intent"})


async def batch(request: Request[Any, Any, Any], sandbox: BusinessCentralSandbox) -> Response[bytes]:
    """``POST .../api/v2.0/$batch`` in the JSON batch format Business Central takes ("Using OData $batch
    requests", learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/use-odata-batch;
    OData JSON Format 4.01 section 19): each inner request runs through this same app, in order, with the
    outer request's token, and answers ``{"id", "status", "headers", "body"}`` in ``responses``; one
    failing request does not stop the others (no ``Isolation: snapshot`` transaction here)."""
    try:
        batch = msgspec.convert(await read_body(request), _Batch)
    except msgspec.ValidationError as exc:
        raise bad_request(f"The $batch request body is not valid: {exc}") from None
    if len(batch.requests) > sandbox.settings.batch_max_requests:
        raise bad_request(
            f"The $batch request has {len(batch.requests)} requests; at most "
            f"{sandbox.settings.batch_max_requests} are allowed."
        )
    if len({inner.id for inner in batch.requests}) != len(batch.requests):
        raise bad_request("The ids of the requests in a $batch must be unique.")
    root = api_base(request) + "/"
    base = base_url(request)
    token = request.headers.get("authorization", "")
    app: Any = request.app
    transport = httpx.ASGITransport(app=app, root_path=request.scope.get("root_path", ""))
    responses: list[dict[str, Any]] = []
    async with httpx.AsyncClient(transport=transport) as client:
        for inner in batch.requests:
            method = inner.method.upper()
            # Relative URLs are relative to the service root (the batch's own URL without $batch).
            url = inner.url if "://" in inner.url else root + inner.url.lstrip("/")
            if method not in _BATCH_METHODS or not (url + "/").startswith(base + "/"):
                raise bad_request(f"The $batch request '{inner.id}' is not a request to this service.")
            if httpx.URL(url).path.rstrip("/").endswith("/$batch"):
                raise bad_request("A $batch request cannot contain another $batch request.")
            headers = {name: value for name, value in inner.headers.items() if name.lower() in _BATCH_HEADERS}
            headers["authorization"] = token
            content = None if inner.body is None else ENCODER.encode(inner.body)
            if content is not None:
                headers.setdefault("content-type", "application/json")
            answer = await client.request(method, url, headers=headers, content=content)
            entry: dict[str, Any] = {
                "id": inner.id,
                "status": answer.status_code,
                "headers": {
                    name: value
                    for name, value in answer.headers.items()
                    if name in ("content-type", "location", "etag", "odata-version", "retry-after")
                },
            }
            if answer.content:
                if answer.headers.get("content-type", "").startswith("application/json"):
                    entry["body"] = DECODER.decode(answer.content)
                else:
                    entry["body"] = answer.content.decode("utf-8-sig")
            responses.append(entry)
    return json_response({"responses": responses})
