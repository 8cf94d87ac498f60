"""A tier client's in-process call: the request the called tier's app sees is the one an HTTP client would
send (path, query, headers, body, token), and a refused token is fetched again once, as the httpx auth
flow does."""

from __future__ import annotations

from typing import Any

from apis.tier_client import InProcessCall


class Recorder:
    """An ASGI app that answers 401 to the first ``refuse`` requests, then 200 with what it saw."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.scopes: list[dict[str, Any]] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        self.bodies.append((await receive())["body"])
        status = 401 if len(self.scopes) <= self.refuse else 200
        await send({"type": "http.response.start", "status": status, "headers": [(b"X-Seen", b"yes")]})
        await send({"type": "http.response.body", "body": b'{"ok":', "more_body": True})
        await send({"type": "http.response.body", "body": b"true}", "more_body": False})


class Tokens:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, *, force: bool = False, stale: str | None = None) -> str:
        self.calls.append({"force": force, "stale": stale})
        return f"token-{len(self.calls)}"


async def test_the_called_app_sees_the_request_an_http_client_would_send() -> None:
    app, tokens = Recorder(), Tokens()
    call = InProcessCall(app, "system.stratum.internal", tokens)
    answer = await call(
        "POST",
        "/system/v1/things/caf%C3%A9 bar",
        headers={"Idempotency-Key": "k1", "Content-Type": "application/json"},
        params={"limit": 5, "cursor": "a b"},
        content=b'{"x":1}',
    )
    assert (answer.status_code, answer.content, answer.headers["x-seen"]) == (200, b'{"ok":true}', "yes")
    scope = app.scopes[0]
    assert scope["method"] == "POST"
    assert scope["path"] == "/system/v1/things/café bar"
    assert scope["raw_path"] == b"/system/v1/things/caf%C3%A9%20bar"
    assert scope["query_string"] == b"limit=5&cursor=a+b"
    headers = dict(scope["headers"])
    assert headers[b"authorization"] == b"Bearer token-1"
    assert headers[b"idempotency-key"] == b"k1"
    assert headers[b"content-length"] == b"7"
    assert headers[b"host"] == b"system.stratum.internal"
    assert app.bodies == [b'{"x":1}']


async def test_a_refused_token_is_fetched_again_once() -> None:
    app, tokens = Recorder(refuse=1), Tokens()
    answer = await InProcessCall(app, "system.stratum.internal", tokens)("GET", "/system/v1/x")
    assert answer.status_code == 200
    assert tokens.calls == [{"force": False, "stale": None}, {"force": True, "stale": "token-1"}]
    assert dict(app.scopes[1]["headers"])[b"authorization"] == b"Bearer token-2"

    refused = Recorder(refuse=5)
    answer = await InProcessCall(refused, "system.stratum.internal", Tokens())("GET", "/system/v1/x")
    assert answer.status_code == 401
    assert len(refused.scopes) == 2  # once more with a new token, not again and again
