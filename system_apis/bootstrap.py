"""Which adapter serves each domain, built from configuration in one place.

``Settings.crm_vendor`` / ``psa_vendor`` / ``erp_vendor`` / ``fpa_vendor`` name the adapter; a vendor with
no ``base_url`` is served by its sandbox in process (an ``httpx.ASGITransport`` to the mounted sandbox app:
no socket, no port to know), so the embedded default needs no vendor account.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
import msgspec

from apis.context import current_correlation_id
from system_apis.crm.port import CrmPort
from system_apis.erp.port import ErpPort
from system_apis.fpa.port import FpaPort
from system_apis.psa.port import PsaPort

if TYPE_CHECKING:
    from apis.config import (
        AdaptiveSettings,
        AnaplanSettings,
        BusinessCentralSettings,
        CertiniaSettings,
        KantataSettings,
        NetSuiteSettings,
        SalesforceSettings,
        Settings,
    )

__all__ = ["Adapters", "build_adapters"]

SANDBOX_HOST = "http://{vendor}.sandbox.stratum.internal"


class Adapters(msgspec.Struct, kw_only=True, frozen=True):
    crm: CrmPort
    psa: PsaPort
    erp: ErpPort
    fpa: FpaPort

    @property
    def closers(self) -> list[Callable[[], Awaitable[Any]]]:
        return [self.crm.close, self.psa.close, self.erp.close, self.fpa.close]

    @property
    def starters(self) -> list[Callable[[], Awaitable[Any]]]:
        """What the adapters do when the process starts serving (Salesforce describes the org to name the
        custom fields it lacks, NetSuite looks up the invoice item). A starter waits a bounded time and
        never fails: a vendor down at start-up must not keep the gateway from starting."""
        from system_apis.vendor_checks import inner_adapters

        ports = (self.crm, self.psa, self.erp, self.fpa)
        adapters = [each for port in ports for each in inner_adapters(port)]
        return [start for adapter in adapters if callable(start := getattr(adapter, "start", None))]


def _sandbox(
    vendor: str, sandboxes: Mapping[str, Any], api_root: str = ""
) -> tuple[str, httpx.AsyncBaseTransport]:
    app = sandboxes.get(f"/sandboxes/{vendor}")
    if app is None:
        raise SystemExit(
            f"stratum: no {vendor} base URL is configured and its sandbox is not mounted: set "
            f"STRATUM_{vendor.upper().replace('-', '_')}__BASE_URL, or leave STRATUM_MOUNT_SANDBOXES on"
        )
    return SANDBOX_HOST.format(vendor=vendor) + api_root, httpx.ASGITransport(app=app)


def _salesforce(settings: SalesforceSettings, sandboxes: Mapping[str, Any]) -> CrmPort:
    from system_apis.crm.salesforce import SalesforceCrm

    transport: httpx.AsyncBaseTransport | None = None
    if settings.base_url is None:
        base_url, transport = _sandbox("salesforce", sandboxes)
        settings = msgspec.structs.replace(settings, base_url=base_url)
    return SalesforceCrm(settings, transport=transport, correlation_id=current_correlation_id)


def _kantata(settings: KantataSettings, sandboxes: Mapping[str, Any]) -> PsaPort:
    from system_apis.psa.kantata import KantataPsa

    transport: httpx.AsyncBaseTransport | None = None
    if settings.base_url is None:
        base_url, transport = _sandbox("kantata", sandboxes, "/api/v1")
        settings = msgspec.structs.replace(settings, base_url=base_url)
    return KantataPsa(settings, transport=transport, correlation_id=current_correlation_id)


def _certinia(
    settings: CertiniaSettings, salesforce: SalesforceSettings, sandboxes: Mapping[str, Any]
) -> PsaPort:
    from system_apis.psa.certinia import CertiniaPsa

    # Certinia is a managed package in a Salesforce org: by default the CRM's own org (the same sandbox
    # mount when the CRM has no base URL), so the two adapters share the org's daily API allowance.
    org = settings.org_settings(salesforce)
    transport: httpx.AsyncBaseTransport | None = None
    if org.base_url is None:
        base_url, transport = _sandbox("salesforce", sandboxes)
        org = msgspec.structs.replace(org, base_url=base_url)
    return CertiniaPsa(
        org,
        transport=transport,
        correlation_id=current_correlation_id,
        link_crm_records=settings.base_url is None,
    )


def _netsuite(settings: NetSuiteSettings, sandboxes: Mapping[str, Any]) -> ErpPort:
    from system_apis.erp.netsuite import NetSuiteErp

    transport: httpx.AsyncBaseTransport | None = None
    private_key_pem: str | None = None
    if settings.rest_url is None:
        # Neither an account nor a base URL: the embedded sandbox, as its own account.
        from sandboxes.netsuite import DEV_CERTIFICATE_ID, DEV_CLIENT_ID, dev_private_key_pem
        from sandboxes.netsuite.data import ACCOUNT_ID, ACCOUNT_TIME_ZONE

        base_url, transport = _sandbox("netsuite", sandboxes, "/services/rest")
        settings = msgspec.structs.replace(
            settings,
            base_url=base_url,
            account=ACCOUNT_ID,
            client_id=settings.client_id or DEV_CLIENT_ID,
            certificate_id=settings.certificate_id or DEV_CERTIFICATE_ID,
        )
        settings = msgspec.structs.replace(settings, time_zone=settings.time_zone or ACCOUNT_TIME_ZONE)
        private_key_pem = dev_private_key_pem()
    elif not settings.account:
        # A real account has no sandbox defaults: the account id is what the account's limits and logs name.
        raise SystemExit(
            "stratum: STRATUM_NETSUITE__BASE_URL is set, so STRATUM_NETSUITE__ACCOUNT must be set too"
        )
    else:
        # The account-specific domain, unless a base URL (a proxy) says otherwise.
        settings = msgspec.structs.replace(settings, base_url=settings.rest_url)
    return NetSuiteErp(
        settings, transport=transport, correlation_id=current_correlation_id, private_key_pem=private_key_pem
    )


def _business_central(settings: BusinessCentralSettings, sandboxes: Mapping[str, Any]) -> ErpPort:
    from system_apis.erp.business_central import BusinessCentralErp

    transport: httpx.AsyncBaseTransport | None = None
    if settings.base_url is None:
        from sandboxes.business_central import DEV_CLIENT_ID, DEV_CLIENT_SECRET, TENANT_ID

        # The sandbox serves Entra's token endpoint and the API at its root, as one host.
        base_url, transport = _sandbox("business-central", sandboxes)
        tenant_id = settings.tenant_id or TENANT_ID
        settings = msgspec.structs.replace(
            settings,
            base_url=base_url,
            tenant_id=tenant_id,
            company=settings.company or "CRONUS DE",
            token_url=settings.token_url or f"{base_url}/{tenant_id}/oauth2/v2.0/token",
            client_id=settings.client_id or DEV_CLIENT_ID,
            client_secret=settings.client_secret or DEV_CLIENT_SECRET,
        )
    else:
        # A real tenant has no sandbox defaults: guessing a tenant or a company would post to someone else's.
        missing = [name for name in ("tenant_id", "company") if not getattr(settings, name)]
        if missing:
            names = " and ".join(f"STRATUM_BUSINESS_CENTRAL__{name.upper()}" for name in missing)
            raise SystemExit(
                f"stratum: STRATUM_BUSINESS_CENTRAL__BASE_URL is set, so {names} must be set too"
            )
    return BusinessCentralErp(settings, transport=transport, correlation_id=current_correlation_id)


def _anaplan(settings: AnaplanSettings, sandboxes: Mapping[str, Any]) -> FpaPort:
    from system_apis.fpa.anaplan import AnaplanFpa

    transport: httpx.AsyncBaseTransport | None = None
    if settings.base_url is None:
        # The sandbox serves both of Anaplan's hosts (authentication and API) at its root.
        base_url, transport = _sandbox("anaplan", sandboxes)
        settings = msgspec.structs.replace(settings, base_url=base_url, auth_url=base_url)
    return AnaplanFpa(settings, transport=transport, correlation_id=current_correlation_id)


def _adaptive(settings: AdaptiveSettings, sandboxes: Mapping[str, Any]) -> FpaPort:
    from system_apis.fpa.adaptive import AdaptiveFpa

    transport: httpx.AsyncBaseTransport | None = None
    if settings.base_url is None:
        # The sandbox serves the XML API's versioned endpoint; v40 is the version this adapter speaks.
        base_url, transport = _sandbox("adaptive", sandboxes, "/api/v40")
        settings = msgspec.structs.replace(settings, base_url=base_url)
    return AdaptiveFpa(settings, transport=transport, correlation_id=current_correlation_id)


def build_adapters(settings: Settings, sandboxes: Mapping[str, Any]) -> Adapters:
    """The four ports' adapters. A setting an adapter refuses (a missing certificate id, an unknown time
    zone) stops start-up with the adapter's own words, not a traceback."""
    try:
        return _build_adapters(settings, sandboxes)
    except ValueError as exc:
        raise SystemExit(f"stratum: bad configuration: {exc}") from exc


def _build_adapters(settings: Settings, sandboxes: Mapping[str, Any]) -> Adapters:
    crm = {"salesforce": lambda: _salesforce(settings.salesforce, sandboxes)}[settings.crm_vendor]()
    psa_builders: dict[str, Callable[[], PsaPort]] = {
        "kantata": lambda: _kantata(settings.kantata, sandboxes),
        "certinia": lambda: _certinia(settings.certinia, settings.salesforce, sandboxes),
    }
    psa = psa_builders[settings.psa_vendor]()
    if settings.psa_by_legal_entity:
        # Mid-migration: some legal entities are delivered in another PSA; one port routes between them.
        from system_apis.psa.by_legal_entity import PsaByLegalEntity

        psas: dict[str, PsaPort] = {settings.psa_vendor: psa}
        for psa_name in sorted(set(settings.psa_by_legal_entity.values()) - {settings.psa_vendor}):
            psas[psa_name] = psa_builders[psa_name]()
        psa = PsaByLegalEntity(
            psas, default=settings.psa_vendor, by_legal_entity=dict(settings.psa_by_legal_entity)
        )
    erp_builders: dict[str, Callable[[], ErpPort]] = {
        "netsuite": lambda: _netsuite(settings.netsuite, sandboxes),
        "business_central": lambda: _business_central(settings.business_central, sandboxes),
    }
    erp = erp_builders[settings.erp_vendor]()
    if settings.erp_by_legal_entity:
        # Mid-migration: some legal entities are billed from another ERP; one port routes between them.
        from system_apis.erp.by_legal_entity import ErpByLegalEntity

        erps: dict[str, ErpPort] = {settings.erp_vendor: erp}
        for name in sorted(set(settings.erp_by_legal_entity.values()) - {settings.erp_vendor}):
            erps[name] = erp_builders[name]()
        erp = ErpByLegalEntity(
            erps, default=settings.erp_vendor, by_legal_entity=dict(settings.erp_by_legal_entity)
        )
    fpa_builders: dict[str, Callable[[], FpaPort]] = {
        "anaplan": lambda: _anaplan(settings.anaplan, sandboxes),
        "adaptive": lambda: _adaptive(settings.adaptive, sandboxes),
    }
    fpa = fpa_builders[settings.fpa_vendor]()
    return Adapters(crm=crm, psa=psa, erp=erp, fpa=fpa)
