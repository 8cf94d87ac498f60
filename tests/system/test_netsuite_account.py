"""NetSuite's account settings: the account id names the REST host, the service tier and SuiteCloud Plus
licences set the concurrency cap, and `stratum vendors check` reports both (issue 10, NetSuite item 9).

The host is NetSuite's account-specific domain, ``{account id}.suitetalk.api.netsuite.com`` (Oracle, "REST
Web Services URL Schema and Account-Specific URLs", ns-online-help/section_1546938065.html), written in
lowercase with "_" as "-" as public clients do (jacobsvante/netsuite, ``Config.account_slugified``:
``123456_SB1`` -> ``123456-sb1``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from apis.cli import main
from apis.config import NetSuiteSettings, load_settings
from sandboxes.netsuite import DEV_CERTIFICATE_ID, DEV_CLIENT_ID
from system_apis.bootstrap import build_adapters
from system_apis.erp.netsuite import NetSuiteErp
from tests.system.test_netsuite_adapter import FakeNetSuite, ec_pem


def _settings(**values: Any) -> NetSuiteSettings:
    values.setdefault("time_zone", "America/New_York")  # a real account names its own
    return NetSuiteSettings(client_id=DEV_CLIENT_ID, certificate_id=DEV_CERTIFICATE_ID, **values)


@pytest.mark.parametrize(
    ("account", "host"),
    [
        ("1234567", "1234567.suitetalk.api.netsuite.com"),
        ("123456_SB1", "123456-sb1.suitetalk.api.netsuite.com"),
        ("1234567_RP", "1234567-rp.suitetalk.api.netsuite.com"),
        ("TSTDRV1234567", "tstdrv1234567.suitetalk.api.netsuite.com"),
    ],
)
def test_the_account_id_names_the_rest_host(account: str, host: str) -> None:
    assert _settings(account=account).rest_url == f"https://{host}/services/rest"


def test_an_explicit_base_url_wins_and_neither_means_the_sandbox() -> None:
    proxy = "https://netsuite-proxy.internal/services/rest"
    assert _settings(account="1234567", base_url=proxy).rest_url == proxy
    assert _settings().rest_url is None


@pytest.mark.parametrize(
    "account",
    ["123456-SB1", "https://123456.suitetalk.api.netsuite.com", "123 456", "123456_SB1_X", ""],
)
def test_a_malformed_account_id_stops_start_up(account: str) -> None:
    with pytest.raises(SystemExit, match=r"netsuite\.account .* is not a NetSuite account id"):
        load_settings({"STRATUM_NETSUITE__ACCOUNT": account})


async def test_tokens_and_records_go_to_the_accounts_own_host() -> None:
    pem, public = ec_pem()
    fake = FakeNetSuite(public)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return fake.handler(request)

    erp = NetSuiteErp(
        _settings(account="123456_SB1"), transport=httpx.MockTransport(handler), private_key_pem=pem
    )
    await erp.get_customer("1003")
    await erp.close()
    root = "https://123456-sb1.suitetalk.api.netsuite.com/services/rest"
    assert seen[0] == f"{root}/auth/oauth2/v1/token"
    assert seen[1].startswith(f"{root}/record/v1/customer/1003")
    # The assertion's audience is the token endpoint it is sent to.
    assert fake.assertions[0].claims["aud"] == f"{root}/auth/oauth2/v1/token"


@pytest.mark.parametrize(
    ("environ", "cap"),
    [
        ({}, 5),  # standard tier
        ({"STRATUM_NETSUITE__SERVICE_TIER": "premium"}, 15),
        ({"STRATUM_NETSUITE__SERVICE_TIER": "enterprise"}, 20),
        (
            {"STRATUM_NETSUITE__SERVICE_TIER": "ultimate", "STRATUM_NETSUITE__SUITECLOUD_PLUS_LICENSES": "5"},
            70,
        ),
        # Oracle's sample scenario: a standard tier with one SuiteCloud Plus licence allows 15.
        ({"STRATUM_NETSUITE__SUITECLOUD_PLUS_LICENSES": "1"}, 15),
        # The part of the account's limit allocated to this integration.
        ({"STRATUM_NETSUITE__SERVICE_TIER": "premium", "STRATUM_NETSUITE__MAX_CONCURRENT_REQUESTS": "4"}, 4),
    ],
)
def test_the_concurrency_cap_comes_from_the_configuration(environ: dict[str, str], cap: int) -> None:
    settings = load_settings(environ)
    assert settings.netsuite.concurrency_cap == cap
    # The adapter the bootstrap builds (once per account) paces requests to that cap.
    adapters = build_adapters(settings, _sandbox_mounts(settings))
    try:
        assert isinstance(adapters.erp, NetSuiteErp)
        assert adapters.erp.max_concurrent_requests == cap
    finally:
        asyncio.run(adapters.erp.close())


@pytest.mark.parametrize(
    "environ",
    [
        {"STRATUM_NETSUITE__SUITECLOUD_PLUS_LICENSES": "-1"},
        {"STRATUM_NETSUITE__MAX_CONCURRENT_REQUESTS": "0"},
        {"STRATUM_NETSUITE__SERVICE_TIER": "platinum"},
    ],
)
def test_an_impossible_concurrency_setting_stops_start_up(environ: dict[str, str]) -> None:
    with pytest.raises(SystemExit, match="bad configuration"):
        load_settings(environ)


async def test_the_cap_from_settings_holds_requests_in_flight() -> None:
    pem, public = ec_pem()
    fake = FakeNetSuite(public)
    in_flight = peak = 0
    gate = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        if request.url.path.endswith("/token"):
            return fake.handler(request)
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight >= 2:
            gate.set()
        await gate.wait()
        await asyncio.sleep(0)
        in_flight -= 1
        return fake.handler(request)

    settings = _settings(account="1234567", max_concurrent_requests=2)
    erp = NetSuiteErp(settings, transport=httpx.MockTransport(handler), private_key_pem=pem)
    await asyncio.gather(*(erp.get_customer("1003") for _ in range(10)))
    await erp.close()
    assert peak == 2


def test_a_base_url_without_an_account_stops_start_up() -> None:
    settings = load_settings({"STRATUM_NETSUITE__BASE_URL": "https://proxy.internal/services/rest"})
    with pytest.raises(SystemExit, match="STRATUM_NETSUITE__ACCOUNT must be set"):
        build_adapters(settings, _sandbox_mounts(settings))


def test_an_account_without_a_base_url_is_the_real_host_not_the_sandbox(tmp_path: Path) -> None:
    key_file = tmp_path / "netsuite.pem"
    key_file.write_text(ec_pem()[0])
    settings = load_settings(
        {
            "STRATUM_NETSUITE__ACCOUNT": "7654321_SB2",
            "STRATUM_NETSUITE__CLIENT_ID": "integration-client",
            "STRATUM_NETSUITE__CERTIFICATE_ID": "certificate",
            "STRATUM_NETSUITE__PRIVATE_KEY_FILE": str(key_file),
            "STRATUM_NETSUITE__TIME_ZONE": "Europe/London",
        }
    )
    adapters = build_adapters(settings, _sandbox_mounts(settings))
    try:
        assert isinstance(adapters.erp, NetSuiteErp)
        assert str(adapters.erp.http.base_url).rstrip("/") == (
            "https://7654321-sb2.suitetalk.api.netsuite.com/services/rest"
        )
    finally:
        asyncio.run(adapters.erp.close())


# --- stratum vendors check -------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("STRATUM_DATA_DIR", str(path))
    monkeypatch.setenv("STRATUM_ERP_VENDOR", "netsuite")
    return path


def _netsuite_lines(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["vendors", "check"])
    out, _ = capsys.readouterr()
    return code, [line for line in out.splitlines() if line.startswith("netsuite")]


def test_the_check_reports_the_host_and_the_cap(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _netsuite_lines(capsys)
    assert code == 0, lines
    login, cap = lines[0], lines[1]
    assert "login to account 123456_SB1 at netsuite.sandbox.stratum.internal" in login
    assert login.endswith(" ok")
    assert "concurrency cap 5 (account limit 5: standard tier + 0 SuiteCloud Plus licences)" in cap
    assert cap.endswith(" ok")


def test_a_cap_above_the_accounts_limit_is_named(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_NETSUITE__SUITECLOUD_PLUS_LICENSES", "1")
    monkeypatch.setenv("STRATUM_NETSUITE__MAX_CONCURRENT_REQUESTS", "20")
    code, lines = _netsuite_lines(capsys)
    assert code == 1
    [failed] = [line for line in lines if "MISSING" in line]
    assert "concurrency cap 20 (account limit 15: standard tier + 1 SuiteCloud Plus licence)" in failed
    assert "the account allows only 15" in failed
    assert "STRATUM_NETSUITE__MAX_CONCURRENT_REQUESTS" in failed


def test_a_refused_login_names_the_host(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sandbox's account with a certificate id it never issued: its token endpoint refuses the assertion.
    monkeypatch.setenv("STRATUM_NETSUITE__CERTIFICATE_ID", "no-such-certificate")
    code, lines = _netsuite_lines(capsys)
    assert code == 1
    [failed] = lines
    assert "login to account 123456_SB1 at netsuite.sandbox.stratum.internal" in failed
    assert "MISSING: NetSuite token endpoint answered HTTP 4" in failed
    assert "STRATUM_NETSUITE__ACCOUNT" in failed


def _sandbox_mounts(settings: Any) -> dict[str, Any]:
    from apis.gateway import build_sandbox_mounts

    return build_sandbox_mounts(settings)


# --- start-up --------------------------------------------------------------------------------------------


async def test_an_unknown_invoice_item_is_named_at_start_up(make_gateway: Any, make_settings: Any) -> None:
    with capture_logs() as logs:
        await make_gateway(make_settings(netsuite={"invoice_item": "NO-SUCH-ITEM"}))
    [missing] = [line for line in logs if line["event"] == "netsuite_invoice_item_missing"]
    assert missing["log_level"] == "error"
    assert missing["item"] == "NO-SUCH-ITEM"
    assert "STRATUM_NETSUITE__INVOICE_ITEM" in missing["fix"]


async def test_netsuite_behind_the_legal_entity_router_is_checked_at_start_up_too(
    make_gateway: Any, make_settings: Any
) -> None:
    settings = make_settings(
        erp_vendor="business_central",
        erp_by_legal_entity={"US01": "netsuite"},
        netsuite={"invoice_item": "NO-SUCH-ITEM"},
    )
    with capture_logs() as logs:
        await make_gateway(settings)
    assert [line["item"] for line in logs if line["event"] == "netsuite_invoice_item_missing"] == [
        "NO-SUCH-ITEM"
    ]


async def test_the_known_invoice_item_logs_nothing_at_start_up(make_gateway: Any, make_settings: Any) -> None:
    with capture_logs() as logs:
        await make_gateway(make_settings())
    assert [line["event"] for line in logs if line["log_level"] in ("warning", "error")] == []
    # The look-up did happen: it logged in.
    assert any(line["event"] == "netsuite_token_fetched" for line in logs)


def test_a_real_account_without_its_time_zone_stops_start_up_by_name(tmp_path: Path) -> None:
    # SuiteQL shows and reads times in the account's own zone: a real account must name it.
    key_file = tmp_path / "netsuite.pem"
    key_file.write_text(ec_pem()[0])
    settings = load_settings(
        {
            "STRATUM_NETSUITE__ACCOUNT": "7654321",
            "STRATUM_NETSUITE__CLIENT_ID": "integration-client",
            "STRATUM_NETSUITE__CERTIFICATE_ID": "certificate",
            "STRATUM_NETSUITE__PRIVATE_KEY_FILE": str(key_file),
        }
    )
    with pytest.raises(SystemExit, match=r"bad configuration: .*time_zone"):
        build_adapters(settings, _sandbox_mounts(settings))
