"""The catalogue at ``/`` (JSON for API clients, a page for browsers), the reference pages' own assets, and
the headers every answer carries against type sniffing and framing."""

from __future__ import annotations

import re
from typing import Any

import pytest

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html"])
async def test_api_clients_get_the_catalogue_as_json(gw: Any, accept: str | None) -> None:
    response = await gw.client.get("/", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "accept" in response.headers["vary"].lower()
    body = response.json()
    assert [t["reference"] for t in body["tiers"]] == [
        "/system/v1/schema/docs",
        "/process/v1/schema/docs",
        "/experience/v1/schema/docs",
    ]


@pytest.mark.parametrize("accept", [BROWSER_ACCEPT, "text/html", "application/json;q=0.5, text/html"])
async def test_browsers_get_the_catalogue_as_a_page(gw: Any, accept: str) -> None:
    response = await gw.client.get("/", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "accept" in response.headers["vary"].lower()
    page = response.text
    for tier in ("system", "process", "experience"):
        assert f'<a href="/{tier}/v1/schema/docs">' in page
        assert f'<a href="/{tier}/v1/schema/openapi.json">' in page
    for link in ("/oauth/token", "/.well-known/oauth-authorization-server", "/health/ready", "/problems"):
        assert f'<a href="{link}">' in page


async def test_a_reference_page_loads_only_pinned_files_from_the_gateway(gw: Any) -> None:
    page = (await gw.client.get("/system/v1/schema/docs")).text
    loaded = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert loaded, page
    # Nothing from another host (a CDN), nothing unpinned (``@latest``).
    assert all(url.startswith("/") for url in loaded), loaded
    # Nor does Swagger UI send the contract to its online validator (its default, for a badge).
    assert re.search(r"^\s*validatorUrl: null,$", page, re.MULTILINE), page
    for url in loaded:
        if url.startswith("/assets/"):
            asset = await gw.client.get(url, headers={"Accept-Encoding": "identity"})
            assert asset.status_code == 200, url
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert asset.content


async def test_the_renderer_bundle_is_served_compressed_to_those_who_accept_it(gw: Any) -> None:
    page = (await gw.client.get("/system/v1/schema/docs")).text
    script = re.search(r'<script src="(/assets/[^"]+\.js)"', page)
    assert script is not None, page
    plain = await gw.client.get(script.group(1), headers={"Accept-Encoding": "identity"})
    assert plain.headers["content-type"].startswith("text/javascript")
    assert "content-encoding" not in plain.headers
    compressed = await gw.client.get(script.group(1), headers={"Accept-Encoding": "gzip"})
    assert compressed.headers["content-encoding"] == "gzip"
    assert int(compressed.headers["content-length"]) < len(plain.content) / 2
    assert compressed.content == plain.content  # httpx decoded it: the same bundle


async def test_an_image_is_never_gzipped_larger(gw: Any) -> None:
    page = (await gw.client.get("/system/v1/schema/docs")).text
    icon = re.search(r"""<link rel='icon' type='image/png' href='(/assets/[^']+\.png)'>""", page)
    assert icon is not None, page
    response = await gw.client.get(icon.group(1), headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert "content-encoding" not in response.headers
    assert response.content.startswith(b"\x89PNG")


async def test_an_unknown_or_outdated_asset_is_404(gw: Any) -> None:
    response = await gw.client.get("/assets/0000000000000000/swagger-ui.css")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        ("/", False),
        ("/health/live", False),
        ("/no/such/path", False),  # 404 from the gateway
        ("/system/v1/crm/accounts", True),  # a tier
        ("/system/v1/crm/accounts", False),  # a 401 problem
        ("/experience/v1/nowhere", False),  # a tier's 404
        ("/sandboxes/salesforce/services/oauth2/token", False),  # a sandbox (405 / 4xx)
        ("/problems", False),
    ],
)
async def test_every_answer_forbids_type_sniffing(gw: Any, path: str, auth: bool) -> None:
    response = await gw.client.get(path, headers=gw.auth() if auth else {})
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/", "text/html"),
        ("/system/v1/schema/docs", "text/html"),
        ("/problems", "text/html"),
        ("/problems/not-found", "text/html"),
    ],
)
async def test_html_pages_refuse_to_be_framed(gw: Any, path: str, accept: str) -> None:
    response = await gw.client.get(path, headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_json_answers_carry_no_page_only_headers(gw: Any) -> None:
    response = await gw.client.get("/health/live")
    assert "x-frame-options" not in response.headers
