"""``GovernancePlugin``: the one place a tier app is wired into the gateway's governance.

Middleware (auth and scopes, rate limit, media type, idempotency, in that order, in one layer), problem+json
exception handlers, body size cap, decimal-as-string encoding, deprecation headers, and the tier's own OpenAPI
document and reference page.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, Router

# Litestar's own msgspec schema plugin is internal API; ClosedStructs only adds one keyword to its output.
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar._openapi.schema_generation.schema import SchemaCreator
from litestar.config.app import AppConfig
from litestar.exceptions import SerializationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, OAuthFlow, OAuthFlows, Schema, SecurityScheme
from litestar.openapi.spec.enums import OpenAPIType
from litestar.plugins import InitPluginProtocol, OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from apis.middleware import GovernanceMiddleware
from apis.oauth_server import ALL_SCOPES
from apis.problems import FieldError, ProblemError, exception_handlers
from apis.reference_assets import ReferencePage
from contracts.models.common import decimal_bound, decimal_text_errors

if TYPE_CHECKING:
    from litestar.types import Message, Scope

    from apis.config import Deprecation
    from apis.runtime import Runtime

__all__ = ["GovernancePlugin", "TierSpec"]

_SCOPE_DESCRIPTIONS = {
    "system:read": "Read canonical objects from the system tier.",
    "system:write": "Create and change records in the systems of record.",
    "process:run": "Start and read business workflows.",
    "process:read": "Read workflow runs, exceptions, dead letters and business events.",
    "process:admin": "Replay, cancel and inspect workflow runs.",
    "finance:approve": "Approve (or cancel) billing runs whose legal entity requires finance review.",
    "experience:sales": "Sales role views.",
    "experience:finance": "Finance role views.",
    "experience:delivery": "Delivery role views.",
    "experience:ops": "Operations role views.",
}


class TierSpec(msgspec.Struct, kw_only=True, frozen=True):
    """What a tier app is: its name, its major version, and how its contract introduces it."""

    name: str  # system | process | experience
    version: str  # "v1"
    title: str
    description: str
    api_version: str = "1.0.0"  # the contract's semantic version within the major version

    @property
    def prefix(self) -> str:
        return f"/{self.name}/{self.version}"

    @property
    def schema_path(self) -> str:
        return f"{self.prefix}/schema"

    @property
    def key(self) -> str:
        return f"{self.name}/{self.version}"


class DecimalAsString(OpenAPISchemaPlugin):
    """Money travels as a decimal string; the contract must say so (Litestar would say "number").

    The bound declared in the type's ``msgspec.Meta(extra=...)`` (sign, largest value, decimal places: see
    ``contracts.models.common.DecimalBound``) becomes the string's pattern and maximum length, since JSON
    Schema's numeric bounds do not apply to strings. Requests are checked against the same pattern
    (``refuse_decimal_numbers``), so what the contract accepts and what the server accepts are one set."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return value is Decimal

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        meta = next((m for m in field_definition.metadata if isinstance(m, msgspec.Meta)), None)
        bound = decimal_bound(meta.extra if meta is not None else None)
        return Schema(
            type=OpenAPIType.STRING,
            format="decimal",  # type: ignore[arg-type]
            pattern=bound.pattern,
            max_length=bound.max_length,
            description=(meta.description if meta is not None else None)
            or "Decimal number as a string (money is never a float).",
            examples=["1234.50"],
        )


async def refuse_decimal_numbers(request: Request[Any, Any, Any]) -> None:
    """422 naming each decimal field of the JSON body that is a JSON number or a string outside its
    pattern: the parser would take a number (through a float) and forms the contract does not allow."""
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return
    try:
        raw = await request.json()
    except SerializationException:
        return  # not JSON: the body's own decoding answers with its problem
    errors = decimal_text_errors(data.annotation, raw)
    if errors:
        raise ProblemError(
            "validation-failed",
            "The request does not match the contract.",
            errors=[FieldError(location="body", field=path, message=message) for path, message in errors],
        )


class ClosedStructs(StructSchemaPlugin):
    """A struct that forbids unknown fields says so (``additionalProperties: false``), so the contract
    tells clients and contract tests what the server enforces."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if isinstance(info, msgspec.inspect.StructType):
            if info.forbid_unknown_fields:
                schema.additional_properties = False
            _constrain_string_items(info, schema)
        return schema


def _constrain_string_items(info: msgspec.inspect.StructType, schema: Schema) -> None:
    """Litestar drops the constraints of a list's items (``list[RecordId]``); msgspec enforces them, so
    the contract must state them too."""
    for field in info.fields:
        list_type = field.type
        if isinstance(list_type, msgspec.inspect.UnionType):
            lists = [t for t in list_type.types if isinstance(t, msgspec.inspect.ListType)]
            list_type = lists[0] if lists else list_type
        if not isinstance(list_type, msgspec.inspect.ListType):
            continue
        item = list_type.item_type
        if isinstance(item, msgspec.inspect.Metadata):
            item = item.type
        prop = (schema.properties or {}).get(field.encode_name)
        if not isinstance(item, msgspec.inspect.StrType) or not isinstance(prop, Schema):
            continue
        if isinstance(prop.items, Schema):
            prop.items.min_length = item.min_length
            prop.items.max_length = item.max_length
            prop.items.pattern = item.pattern


def _http_date(value: str) -> str:
    return format_datetime(dt.datetime.fromisoformat(value).astimezone(dt.UTC), usegmt=True)


def deprecation_headers(deprecation: Deprecation) -> list[tuple[bytes, bytes]]:
    """RFC 9745 ``Deprecation: @<epoch>``, RFC 8594 ``Sunset: <HTTP-date>``, ``Link rel=deprecation``."""
    epoch = int(dt.datetime.fromisoformat(deprecation.deprecated_at).timestamp())
    headers = [(b"deprecation", f"@{epoch}".encode())]
    if deprecation.sunset_at:
        headers.append((b"sunset", _http_date(deprecation.sunset_at).encode()))
    if deprecation.link:
        headers.append((b"link", f'<{deprecation.link}>; rel="deprecation"; type="text/html"'.encode()))
    return headers


class GovernancePlugin(InitPluginProtocol):
    def __init__(self, tier: TierSpec, runtime: Runtime) -> None:
        self.tier = tier
        self.runtime = runtime

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        runtime, tier = self.runtime, self.tier
        app_config.middleware = [GovernanceMiddleware(runtime, tier.name), *app_config.middleware]
        app_config.exception_handlers = {**exception_handlers, **app_config.exception_handlers}
        app_config.request_max_body_size = runtime.settings.max_body_bytes
        app_config.type_encoders = {**(app_config.type_encoders or {}), Decimal: str}
        # First, so they win over Litestar's built-in schema plugins (already in the list).
        app_config.plugins = [DecimalAsString(), ClosedStructs(), *app_config.plugins]
        if app_config.before_request is None:
            app_config.before_request = refuse_decimal_numbers
        app_config.debug = False
        deprecation = runtime.settings.deprecations.get(tier.key)
        if deprecation is not None:
            headers = deprecation_headers(deprecation)

            async def add_deprecation(message: Message, scope: Scope) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), *headers]

            app_config.before_send = [*app_config.before_send, add_deprecation]
        app_config.openapi_config = self.openapi_config()
        return app_config

    def openapi_config(self) -> OpenAPIConfig:
        tier = self.tier
        token_url = f"{self.runtime.settings.issuer}/oauth/token"
        return OpenAPIConfig(
            title=tier.title,
            version=tier.api_version,
            description=tier.description,
            use_handler_docstrings=False,
            create_examples=False,
            components=Components(
                security_schemes={
                    "oauth2": SecurityScheme(
                        type="oauth2",
                        description="OAuth 2.0 client credentials; JWT access tokens (RFC 9068).",
                        flows=OAuthFlows(
                            client_credentials=OAuthFlow(
                                token_url=token_url,
                                scopes={s: _SCOPE_DESCRIPTIONS[s] for s in ALL_SCOPES},
                            )
                        ),
                    )
                }
            ),
            # Under {prefix}/schema: Litestar's schema router answers unknown paths below it itself.
            # The reference page's files come from the gateway (apis/reference_assets.py), pinned: a CDN
            # would leave it blank offline or behind a proxy, and change it under us.
            render_plugins=[
                ReferencePage(path="/docs"),
                JsonRenderPlugin(path="/openapi.json"),
            ],
            openapi_router=Router(
                path=tier.schema_path, route_handlers=[], opt={"public": True}, include_in_schema=False
            ),
        )
