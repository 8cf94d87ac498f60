"""The API reference pages and the catalogue render in a real browser with the network cut.

`stratum serve` in a subprocess and Debian's headless Chromium, whose resolver fails every host but the
loopback one: a page that still needed a CDN would render no operations. Skipped without Chromium unless
STRATUM_TEST_REQUIRE_CHROMIUM is set (scripts/ensure-chromium installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.harness import Server


@pytest.fixture(scope="module")
def chromium() -> str:
    for candidate in (os.environ.get("STRATUM_TEST_CHROMIUM"), "chromium", "chromium-browser"):
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    if os.environ.get("STRATUM_TEST_REQUIRE_CHROMIUM"):
        pytest.fail("Chromium is required (scripts/ensure-chromium installs it)")
    pytest.skip("no Chromium (scripts/ensure-chromium installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("reference-pages"))
    yield running
    running.stop()


# Chromium's own background services; anything else off the loopback host was asked for by the page.
_BROWSER_SERVICES = re.compile(r"(^|\.)(google\.com|googleapis\.com|gstatic\.com|gvt1\.com)$")


def rendered_offline(chromium: str, url: str, profile: Path) -> tuple[str, set[str]]:
    """The DOM once the page's scripts ran, with every host but 127.0.0.1 failing to resolve, and the
    hosts off the loopback the page tried to reach (from Chromium's network log)."""
    net_log = profile.parent / "net-log.json"
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            f"--log-net-log={net_log}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    requested = {urlsplit(u).hostname or "" for u in re.findall(r'"url":"([^"]+)"', net_log.read_text())}
    outside = {h for h in requested if h not in ("127.0.0.1", "") and not _BROWSER_SERVICES.search(h)}
    return result.stdout, outside


@pytest.mark.parametrize(
    ("tier", "summary"),
    [
        ("system", "Read a CRM account as a canonical customer"),
        ("experience", "Account 360 for sales"),
    ],
)
def test_a_reference_page_lists_its_operations_offline(
    chromium: str, server: Server, tmp_path: Path, tier: str, summary: str
) -> None:
    dom, outside = rendered_offline(chromium, f"{server.base}/{tier}/v1/schema/docs", tmp_path / "profile")
    # The operation's summary exists only in the contract: Swagger UI's operation list shows it only if the
    # renderer ran and read the contract (an OpenAPI 3.1 one, which Swagger UI 5 stamps on the page).
    assert f'<div class="opblock-summary-description">{summary}</div>' in dom
    assert '<pre class="version">OAS 3.1</pre>' in dom
    # Nor does the page call out (a CDN, the renderer's telemetry or AI services): it leaks nothing.
    assert outside == set()


def test_the_catalogue_is_a_page_in_a_browser(chromium: str, server: Server, tmp_path: Path) -> None:
    dom, outside = rendered_offline(chromium, f"{server.base}/", tmp_path / "profile")
    assert outside == set()
    assert "<h1>Stratum</h1>" in dom
    for tier in ("system", "process", "experience"):
        assert f'href="/{tier}/v1/schema/docs"' in dom
        assert f'href="/{tier}/v1/schema/openapi.json"' in dom
    assert 'href="/problems"' in dom
