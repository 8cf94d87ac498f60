"""The files the API reference pages load, served by the gateway itself (never a CDN).

A reference page is Scalar's standalone bundle reading the tier's contract. Loading it from a public CDN at
``@latest`` left the pages blank offline or behind a proxy, and let the renderer change under us. The
bundle comes from a pinned PyPI package (``flask-openapi3-scalar``, whose version is Scalar's), the small
stylesheet is ours. Each file is served at ``/assets/{digest}/{name}``: the digest of its content is in the
URL, so it can be cached for a year and a new release can never be served stale.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.metadata
import importlib.resources
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.params import FromPath

from apis.problems import ProblemError
from apis.routing import operation

__all__ = [
    "ASSETS_PREFIX",
    "IMMUTABLE",
    "SCALAR_VERSION",
    "Asset",
    "asset",
    "asset_url",
    "get_reference_asset",
    "scalar_render_kwargs",
]

ASSETS_PREFIX = "/assets"
SCALAR_VERSION = importlib.metadata.version("flask-openapi3-scalar")
IMMUTABLE = "public, max-age=31536000, immutable"

# Scalar's own web fonts come from its CDN; the system's fonts need no network.
_STYLESHEET = b"""\
:root, .light-mode, .dark-mode {
  --scalar-font: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  --scalar-font-code: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
}
body { margin: 0; }
"""


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


def _scalar_file(*parts: str) -> bytes:
    package = importlib.resources.files("flask_openapi3_scalar")
    return package.joinpath("templates", "scalar", *parts).read_bytes()


def _asset(name: str, media_type: str, body: bytes) -> Asset:
    # Compressed once, here: the bundle is 3.4 MB, about a third of that gzipped.
    return Asset(name=name, media_type=media_type, body=body, gzipped=gzip.compress(body, mtime=0))


@functools.cache
def _assets() -> dict[str, Asset]:
    assets = [
        _asset(
            f"scalar-{SCALAR_VERSION}.js",
            "text/javascript",
            _scalar_file("js", "scalar.standalone.js"),
        ),
        _asset("scalar.svg", "image/svg+xml", _scalar_file("images", "scalar.svg")),
        _asset("reference.css", "text/css", _STYLESHEET),
    ]
    return {a.name: a for a in assets}


def asset(digest: str, name: str) -> Asset | None:
    """The asset at ``/assets/{digest}/{name}``; None for an unknown name or another version's digest."""
    found = _assets().get(name)
    return found if found is not None and found.digest == digest else None


def asset_url(name: str) -> str:
    return _assets()[name].url


def scalar_render_kwargs() -> dict[str, Any]:
    """Arguments for Litestar's ``ScalarRenderPlugin`` so the page loads nothing from outside."""
    return {
        "js_url": asset_url(f"scalar-{SCALAR_VERSION}.js"),
        "css_url": asset_url("reference.css"),
        "favicon": f"<link rel='icon' type='image/svg+xml' href='{asset_url('scalar.svg')}'>",
        # Nothing that talks to Scalar's own services: their web fonts, telemetry, the AI agent (which
        # loads a registry through their proxy) and the developer toolbar (uploads to their registry).
        "options": {
            "withDefaultFonts": False,
            "telemetry": False,
            "agent": {"disabled": True},
            "showDeveloperTools": "never",
        },
    }


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
    if _accepts_gzip(request.headers.get("accept-encoding", "")):
        headers["Content-Encoding"] = "gzip"
        return Response(found.gzipped, media_type=found.media_type, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)
