"""Business Central's tenant and company have no defaults outside the sandbox: a real tenant names both,
or Stratum refuses to start and says which setting is missing."""

from __future__ import annotations

import pytest

from apis.config import BusinessCentralSettings
from system_apis.bootstrap import _business_central
from system_apis.erp.business_central import BusinessCentralErp

REAL = "https://api.businesscentral.dynamics.com"


def _settings(**given: str) -> BusinessCentralSettings:
    return BusinessCentralSettings(base_url=REAL, client_id="app", client_secret="secret", **given)


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"company": "Contoso GmbH"}, "STRATUM_BUSINESS_CENTRAL__TENANT_ID"),
        ({"tenant_id": "contoso.onmicrosoft.com"}, "STRATUM_BUSINESS_CENTRAL__COMPANY"),
    ],
)
def test_a_real_tenant_without_tenant_or_company_stops_start_up(given: dict[str, str], missing: str) -> None:
    with pytest.raises(SystemExit, match=missing):
        _business_central(_settings(**given), sandboxes={})


def test_the_adapter_itself_refuses_a_missing_company() -> None:
    with pytest.raises(ValueError, match="company"):
        BusinessCentralErp(
            BusinessCentralSettings(base_url=REAL, client_id="a", client_secret="s", tenant_id="t")
        )


def test_a_real_tenant_naming_both_calls_that_tenant() -> None:
    erp = _business_central(_settings(tenant_id="contoso.onmicrosoft.com", company="Contoso GmbH"), {})
    assert isinstance(erp, BusinessCentralErp)
    assert "contoso.onmicrosoft.com" in repr(erp)
