"""The files the API reference pages load, served by the gateway itself (never a CDN).

A reference page is Swagger UI (5.x, which renders OpenAPI 3.1) reading the tier's contract, which Litestar
inlines in the page. Loading the renderer from a public CDN at ``@latest`` left the pages blank offline or
behind a proxy, and let the renderer change under us. Its files come from a pinned PyPI package,
``openapi-ui-bundles``: static files only, no dependencies, so the renderer adds no runtime library. Each
file is served at ``/assets/{digest}/{name}``: the digest of its content is in the URL, so it can be cached
for a year and a new release can never be served stale.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.resources
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import FromPath

from apis.problems import ProblemError
from apis.routing import operation

__all__ = [
    "ASSETS_PREFIX",
    "IMMUTABLE",
    "Asset",
    "ReferencePage",
    "asset",
    "asset_url",
    "get_reference_asset",
]

ASSETS_PREFIX = "/assets"
IMMUTABLE = "public, max-age=31536000, immutable"


class Asset(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    media_type: str
    body: bytes
    gzipped: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()[:16]

    @property
    def url(self) -> str:
        return f"{ASSETS_PREFIX}/{self.digest}/{self.name}"


_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def _swagger_ui_asset(name: str) -> Asset:
    body = importlib.resources.files("openapi_ui_bundles").joinpath("swagger_ui", "vendor", name).read_bytes()
    media_type = _MEDIA_TYPES[name[name.rindex(".") :]]
    # Compressed once, here: the bundle is 1.4 MB, under 400 KB gzipped.
    return Asset(name=name, media_type=media_type, body=body, gzipped=gzip.compress(body, mtime=0))


@functools.cache
def _assets() -> dict[str, Asset]:
    names = ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png")
    return {name: _swagger_ui_asset(name) for name in names}


def asset(digest: str, name: str) -> Asset | None:
    """The asset at ``/assets/{digest}/{name}``; None for an unknown name or another version's digest."""
    found = _assets().get(name)
    return found if found is not None and found.digest == digest else None


def asset_url(name: str) -> str:
    return _assets()[name].url


# Where Litestar's page configures SwaggerUIBundle; the spec it inlines comes before it, never after.
_CONFIG_ANCHOR = b"dom_id: '#swagger-container',"


class ReferencePage(SwaggerRenderPlugin):
    """Litestar's Swagger UI page, loading only the gateway's pinned files and calling no outside service."""

    def __init__(self, path: str) -> None:
        super().__init__(
            path=path,
            js_url=asset_url("swagger-ui-bundle.js"),
            css_url=asset_url("swagger-ui.css"),
            standalone_preset_js_url=asset_url("swagger-ui-standalone-preset.js"),
            # Litestar's default favicon is an image on a CDN.
            favicon=f"<link rel='icon' type='image/png' href='{asset_url('favicon-32x32.png')}'>",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        page = super().render(request, openapi_schema)
        before, anchor, after = page.rpartition(_CONFIG_ANCHOR)
        if not anchor:
            # A Litestar release changed its page: fail the page rather than serve one that calls out.
            raise RuntimeError("Litestar's Swagger UI page no longer has its configuration where expected")
        # Swagger UI's default validatorUrl sends the contract to validator.swagger.io for its badge.
        return before + anchor + b"\n                  validatorUrl: null," + after


def _accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


@operation(
    "GET",
    f"{ASSETS_PREFIX}/{{digest:str}}/{{name:str}}",
    operation_id="getReferenceAsset",
    summary="A file the API reference pages load",
    public=True,
)
async def get_reference_asset(
    digest: FromPath[str], name: FromPath[str], request: Request[Any, Any, Any]
) -> Response[bytes]:
    found = asset(digest, name)
    if found is None:
        raise ProblemError("not-found", "No such asset (a newer release may have replaced it).")
    headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding"}
    # An image is compressed already: gzip would only make it larger.
    if len(found.gzipped) < len(found.body) and _accepts_gzip(request.headers.get("accept-encoding", "")):
        headers["Content-Encoding"] = "gzip"
        return Response(found.gzipped, media_type=found.media_type, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)
