"""Configuration, read once from ``STRATUM_*`` environment variables.

Every setting has an embedded default, so ``stratum serve`` works with no Redis, no external issuer and no
vendor account. Settings are documented field by field in README.md ("Configuration").
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "AdaptiveSettings",
    "AnaplanSettings",
    "BillingSettings",
    "BusinessCentralSettings",
    "Deprecation",
    "KantataSettings",
    "LegalEntityBilling",
    "NetSuiteSettings",
    "OperationsSettings",
    "SalesforceSettings",
    "Settings",
    "TierClientCredentials",
    "VendorConnection",
    "WorkflowSettings",
    "load_settings",
]

Tier = Literal["system", "process", "experience"]


class Deprecation(msgspec.Struct, kw_only=True, frozen=True):
    """A tier version being retired: RFC 9745 ``Deprecation``, RFC 8594 ``Sunset`` and a ``Link``."""

    deprecated_at: str  # RFC 3339 timestamp; rendered as an RFC 9745 @epoch value
    sunset_at: str | None = None
    link: str | None = None


class VendorConnection(msgspec.Struct, kw_only=True, frozen=True):
    """How an adapter reaches its vendor: pool, timeouts, retries of safe calls, circuit breaker.

    No ``base_url`` means the vendor's sandbox, in process."""

    base_url: str | None = None
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 3.0
    max_connections: int = 50
    retry_max_attempts: int = 3  # safe calls only (reads, idempotent writes); 1 turns retries off
    breaker_failure_threshold: int = 5  # consecutive failed attempts that open the circuit; 0 disables it
    breaker_cooldown_seconds: float = 30.0  # open time before one probe call is let through


class SalesforceSettings(VendorConnection, kw_only=True, frozen=True):
    """Salesforce (CRM): client credentials against the org's My Domain."""

    token_url: str | None = None  # default: {base_url}/services/oauth2/token
    client_id: str = "stratum-sandbox"
    client_secret: str = "stratum-sandbox-secret"
    api_version: str = "v61.0"


class KantataSettings(VendorConnection, kw_only=True, frozen=True):
    """Kantata OX (PSA): a bearer token (an OAuth token or an account admin's token)."""

    # The real service: https://api.mavenlink.com/api/v1
    token: str = "stratum-kantata-sandbox-token"


# A NetSuite account id: letters and digits, with a suffix for a sandbox or Release Preview account
# ("1234567_SB1", "1234567_RP"); a test drive account is "TSTDRV1234567". It becomes a DNS label.
_NETSUITE_ACCOUNT = re.compile(r"[0-9A-Za-z]{1,40}(?:_[0-9A-Za-z]{1,20})?")
# Base concurrency limit by service tier, before the 10 each SuiteCloud Plus licence adds: Oracle,
# "Concurrency Governance Limits Based on Service Tiers and SuiteCloud Plus Licenses", under "Web Services
# and RESTlet Concurrency Governance",
# https://docs.oracle.com/en/cloud/saas/netsuite/ns-online-help/section_1500275531.html (its sample
# scenario, section_1525253248.html: standard tier and one licence allow 15).
_NETSUITE_TIER_LIMITS = {"standard": 5, "premium": 15, "enterprise": 20, "ultimate": 20}


class NetSuiteSettings(VendorConnection, kw_only=True, frozen=True):
    """NetSuite (ERP): OAuth 2.0 client credentials with a signed JWT client assertion (certificate)."""

    # The account id as Setup > Company > Company Information shows it: "1234567", a sandbox "1234567_SB1".
    # It names the account-specific REST host (`rest_url`); with neither it nor base_url set the adapter
    # calls the embedded sandbox. An explicit base_url (a proxy) wins over the derived host.
    account: str | None = None
    # NetSuite governs concurrent requests per account: a base limit by service tier, plus 10 per SuiteCloud
    # Plus licence (`account_concurrency_limit`). The adapter keeps its requests in flight at or below
    # max_concurrent_requests, by default that whole limit; set it lower to leave room for the account's
    # other integrations (the limit allocated to this integration record in Integration Governance).
    service_tier: Literal["standard", "premium", "enterprise", "ultimate"] = "standard"
    suitecloud_plus_licenses: int = 0
    max_concurrent_requests: int | None = None

    def __post_init__(self) -> None:
        if self.account is not None and not _NETSUITE_ACCOUNT.fullmatch(self.account):
            raise ValueError(
                f"netsuite.account {self.account!r} is not a NetSuite account id: write it as Setup > "
                "Company > Company Information shows it, e.g. 1234567 or 1234567_SB1"
            )
        if self.suitecloud_plus_licenses < 0:
            raise ValueError("netsuite.suitecloud_plus_licenses cannot be negative")
        if self.max_concurrent_requests is not None and self.max_concurrent_requests < 1:
            raise ValueError("netsuite.max_concurrent_requests must be at least 1")

    @property
    def rest_url(self) -> str | None:
        """The REST root the adapter calls: base_url, else the account-specific domain NetSuite documents,
        ``https://{account id, lowercase, "_" as "-"}.suitetalk.api.netsuite.com/services/rest`` (sandbox
        ``1234567_SB1`` is host ``1234567-sb1``); None when neither is set (the embedded sandbox)."""
        if self.base_url:
            return self.base_url
        if self.account:
            host = self.account.lower().replace("_", "-")
            return f"https://{host}.suitetalk.api.netsuite.com/services/rest"
        return None

    @property
    def account_concurrency_limit(self) -> int:
        """The account's concurrent-request limit by its service tier and SuiteCloud Plus licences."""
        return _NETSUITE_TIER_LIMITS[self.service_tier] + 10 * self.suitecloud_plus_licenses

    @property
    def concurrency_cap(self) -> int:
        """Requests the adapter lets run at once against the account."""
        return self.max_concurrent_requests or self.account_concurrency_limit

    token_url: str | None = None  # default: {base_url}/auth/oauth2/v1/token
    client_id: str | None = None  # None: the sandbox's development client
    certificate_id: str | None = None  # the "kid" NetSuite assigned to the uploaded certificate
    private_key_file: str | None = None  # PEM; None with the sandbox's development client
    # What NetSuite accepts for the client assertion: RSA-PSS or ECDSA; RS256 (PKCS#1 v1.5) is refused.
    algorithm: Literal["PS256", "PS384", "PS512", "ES256", "ES384", "ES512"] = "ES256"
    invoice_item: str = "PS-CONSULT"  # the service item ("Item Name/Number") invoice lines bill
    # The account's time zone (IANA name, e.g. "America/New_York"): SuiteQL shows and reads dates and times
    # in it, so the adapter converts watermarks and TO_CHAR'd timestamps with it. Required for a real
    # account; None with the sandbox means the sandbox's own (sandboxes.netsuite.data.ACCOUNT_TIME_ZONE).
    time_zone: str | None = None
    # Legal entity -> internal id of the subsidiary that keeps its books (the account's own setup).
    subsidiaries: dict[str, str] = msgspec.field(
        default_factory=lambda: {"US01": "1", "GB01": "2", "DE01": "3"}
    )


class AnaplanSettings(VendorConnection, kw_only=True, frozen=True):
    """Anaplan (FP&A): Integration API v2 with an Anaplan auth token from Basic authentication.

    ``base_url`` is the API host, ``auth_url`` the authentication service; the sandbox serves both."""

    # The real service: base_url https://api.anaplan.com, auth_url https://auth.anaplan.com
    # Anaplan's own authentication host, never derived from base_url (the API host is another); the
    # bootstrap points both at the sandbox when base_url is unset.
    auth_url: str = "https://auth.anaplan.com"
    user: str = "integration@stratum.example"  # the sandbox's development user
    password: str = "stratum-anaplan-sandbox"
    workspace_id: str = "8a868cd985f53e7701860542f59e276e"  # "Stratum FP&A" in the sandbox
    model_id: str = "7F1CB4D6F8A24B0C9E5D3A2B1C0D9E8F"  # "Revenue Planning" in the sandbox
    baseline_import: str = "Import Revenue Baseline"  # the model's actions, by name
    actuals_import: str = "Import Revenue Actuals"
    forecast_export: str = "Export Forecast"
    task_timeout_seconds: float = 300.0  # how long an import or export task is polled before giving up
    # Anaplan's request limit per tenant, which the vendor API budgets report use against: about 600 a
    # minute (Anaplan answers 429 past it).
    requests_per_minute_limit: int = 600


class AdaptiveSettings(VendorConnection, kw_only=True, frozen=True):
    """Workday Adaptive Planning (FP&A): the XML API, every call carrying the login and password.

    ``base_url`` is the versioned endpoint (the real service: https://api.adaptiveinsights.com/api/v40);
    None is the sandbox in process. A project's figures are the revenue account's cells at ``level``, on
    the value of ``project_dimension`` named after the project (created by the first import)."""

    login: str = "integration@stratum.example"  # the sandbox's development user
    password: str = "stratum-adaptive-sandbox"
    instance_code: str | None = None  # None: the login's default instance
    caller_name: str = "stratum"  # identifies this client in Adaptive's logs (callerName is required)
    plan_version: str = "Working Budget"  # the plan version a baseline is imported into
    actuals_version: str = "Actuals"
    revenue_account: str = "ServicesRevenue"  # the account's code
    # The level a project's figures are kept at, by the project's currency: each level has one currency
    # (a firm's entities), and Adaptive files an import under the level's currency unconverted. A currency
    # not named in ``levels_by_currency`` goes to ``level``; a plan whose level is kept in another currency
    # is refused. The defaults are the sandbox's levels.
    level: str = "Professional Services"
    levels_by_currency: dict[str, str] = msgspec.field(
        default_factory=lambda: {"GBP": "Services UK", "EUR": "Services DE"}
    )
    project_dimension: str = "Project"


class BusinessCentralSettings(VendorConnection, kw_only=True, frozen=True):
    """Dynamics 365 Business Central (ERP), API v2.0: Microsoft Entra ID client credentials (a secret).

    One adapter keeps the books of one company, which is one legal entity: ``company`` (its name or id)
    holds the books of ``legal_entity``. ``base_url`` is the service root; the API is under
    ``/v2.0/{tenant_id}/{environment}/api/v2.0``."""

    # The real service: https://api.businesscentral.dynamics.com
    # The Entra tenant and the company's name (looked up once) or id. None: the sandbox's (its tenant and
    # "CRONUS DE"), which only makes sense without a base_url: a real tenant must name both.
    tenant_id: str | None = None
    environment: str = "production"
    company: str | None = None
    legal_entity: str = "DE01"  # the legal entity whose books that company keeps
    local_currency: str = "EUR"  # the company's local currency, which Business Central stores as blank
    revenue_account: str = "8400"  # the G/L account invoice lines post to
    token_url: str | None = None  # default: https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token
    client_id: str | None = None  # the Entra app registration; None: the sandbox's development client
    client_secret: str | None = None
    scope: str = "https://api.businesscentral.dynamics.com/.default"
    # Business Central's operational limits per principal (the app registration), which the vendor API budgets
    # report use against: 6,000 requests per 5-minute sliding window and 100 requests in flight; past
    # either, 429 with Retry-After. Microsoft, "API limits in Dynamics 365 Business Central",
    # https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/dynamics-rate-limits
    # (and "Operational limits for Business Central online", .../administration/operational-limits-online).
    requests_per_window_limit: int = 6000
    request_window_seconds: int = 300
    concurrent_requests_limit: int = 100


# Money in the billing settings has at most as many decimals as a currency's minor unit can (ISO 4217's
# largest is 4, CLF and UYW). Write amounts as strings ("250000.00"); a JSON number is read by its
# shortest repr (msgspec), which is what was written for any amount of up to 15 significant digits.
_SETTINGS_MONEY_PLACES = 4


def _settings_money(name: str, value: Decimal) -> None:
    exponent = value.as_tuple().exponent
    if not value.is_finite() or not isinstance(exponent, int) or value < 0:
        raise ValueError(f'{name} must be a decimal string of 0 or more, e.g. "250000.00"')
    if -exponent > _SETTINGS_MONEY_PLACES:
        raise ValueError(f"{name} {value} has more decimals than any currency: write it as a string")


class LegalEntityBilling(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """How one legal entity bills: its tax code, whether finance reviews invoices before they are posted,
    the largest invoice it lets through unreviewed, and its default payment terms."""

    # The entity's functional currency: ``invoice_threshold`` is in it.
    currency: str
    # The ERP tax code set on every invoice line; None: the ERP's default for the customer.
    tax_code: str | None = None
    # True: invoices are created as drafts and posted when finance approves the billing run.
    finance_review: bool = False
    # An invoice above this (in ``currency``) parks its run for finance; None: no threshold.
    invoice_threshold: Decimal | None = None
    # Thresholds for invoices in other currencies than ``currency`` (no exchange rates are guessed: with a
    # threshold set, an invoice in a currency that has none here parks for finance).
    invoice_thresholds: dict[str, Decimal] = {}
    # Days from invoice date to due date when the deal names none.
    payment_terms_days: int = 30
    # The invoice date of a period's invoice: the first day after the period, or its last day.
    invoice_date: Literal["day_after_period", "last_day_of_period"] = "day_after_period"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValueError(f"billing currency {self.currency!r} is not an ISO 4217 code such as USD")
        if self.tax_code is not None and not 1 <= len(self.tax_code) <= 32:
            raise ValueError("billing tax_code must be 1 to 32 characters")
        if self.invoice_threshold is not None:
            _settings_money("billing invoice_threshold", self.invoice_threshold)
        for currency, threshold in self.invoice_thresholds.items():
            if not re.fullmatch(r"[A-Z]{3}", currency):
                raise ValueError(f"billing invoice_thresholds: {currency!r} is not a currency code")
            _settings_money(f"billing invoice_thresholds[{currency}]", threshold)
        if not 0 <= self.payment_terms_days <= 365:
            raise ValueError("billing payment_terms_days must be between 0 and 365")

    def threshold_for(self, currency: str) -> Decimal | None:
        """The threshold an invoice in ``currency`` is held to, or None when none is set for it."""
        if currency == self.currency and self.invoice_threshold is not None:
            return self.invoice_threshold
        return self.invoice_thresholds.get(currency)

    @property
    def has_threshold(self) -> bool:
        return self.invoice_threshold is not None or bool(self.invoice_thresholds)


def _sandbox_billing_entities() -> dict[str, LegalEntityBilling]:
    # The sandboxes' three legal entities: US01 and GB01 on NetSuite, whose customers carry their tax item
    # (the tax jurisdiction's sales tax item, so no tax code: the ERP's default for the customer), and DE01
    # on Business Central, whose lines take a VAT product posting group (the sandbox's "VAT19", 19 %).
    return {
        "US01": LegalEntityBilling(currency="USD", invoice_threshold=Decimal("250000.00")),
        "GB01": LegalEntityBilling(currency="GBP", invoice_threshold=Decimal("200000.00")),
        "DE01": LegalEntityBilling(
            currency="EUR", tax_code="VAT19", invoice_threshold=Decimal("225000.00"), payment_terms_days=14
        ),
    }


class BillingSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Billing runs: each legal entity's billing settings (a legal entity missing here parks its runs for
    finance) and how many hours a day rate buys."""

    # Replaced as a whole when set (STRATUM_BILLING__LEGAL_ENTITIES='{"US01": {"currency": "USD", ...}}').
    legal_entities: dict[str, LegalEntityBilling] = msgspec.field(default_factory=_sandbox_billing_entities)
    # A rate card's day rate is this many hours' work (hours / hours_per_day days).
    hours_per_day: Decimal = Decimal(8)
    # Monthly billing runs on the workflow engine's scheduler: legal entity -> cron (6 fields, seconds
    # first, UTC), e.g. {"US01": "0 0 6 1 * *"} bills last month at 06:00 on the 1st. Empty: none (default).
    schedules: dict[str, str] = {}
    # Milestone deals billed on completion, on the same scheduler: legal entity -> cron, e.g.
    # {"DE01": "0 0 7 * * *"} bills, at 07:00 each day, the milestones of the entity's fixed-fee and
    # milestone deals completed and not yet invoiced (one invoice per project and day). Empty: none (default);
    # such milestones are then billed by the month's run.
    milestone_schedules: dict[str, str] = {}

    def __post_init__(self) -> None:
        if not self.hours_per_day.is_finite() or not Decimal(0) < self.hours_per_day <= 24:
            raise ValueError("billing hours_per_day must be above 0 and at most 24")

    def for_entity(self, legal_entity: str | None) -> LegalEntityBilling | None:
        """The settings of ``legal_entity`` (case-insensitive), or None when it has none."""
        if not legal_entity:
            return None
        return self.legal_entities.get(legal_entity.upper())


class InvoiceStatusSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Invoice status back (ERP -> CRM and PSA): how often the scheduled sync runs, and how far behind the
    watermark each read starts (vendor timestamps are coarse: NetSuite's lastModifiedDate is to the second,
    a change saved in the same second as the previous read would otherwise be missed)."""

    # False: no scheduled syncs (tests; a deployment driven by webhooks and POST /invoice-status-syncs only).
    schedule_enabled: bool = True
    # When the scheduled sync runs (cron, UTC; DBOS's scheduler, which also takes 6 fields with seconds).
    schedule_cron: str = "* * * * *"
    overlap_seconds: float = 120.0
    # Shared secret a Business Central subscription carries as clientState; None: derived from the data dir's
    # CRM events secret (a separate value per purpose, see process_apis/invoice_status.py).
    business_central_client_state: str | None = None
    # Where an ERP is Business Central, Stratum subscribes {public_url}/process/v1/erp-notifications/
    # business-central to its invoice changes at start-up and renews the subscriptions on
    # `business_central_renewal_cron` (they expire after 3 days). False: no subscription; status comes by
    # the polling schedule (and POST /process/v1/invoice-status-syncs) alone.
    business_central_subscriptions: bool = True
    business_central_renewal_cron: str = "17 */6 * * *"

    def __post_init__(self) -> None:
        for name in ("schedule_cron", "business_central_renewal_cron"):
            cron: str = getattr(self, name)
            if not 9 <= len(cron) <= 100 or len(cron.split()) not in (5, 6):
                raise ValueError(f"invoice_status {name} must be a cron expression (5 or 6 fields)")
        if not 0 <= self.overlap_seconds <= 3600:
            raise ValueError("invoice_status overlap_seconds must be between 0 and 3600")


# The business SLA of each workflow's exceptions, in business hours, when `operations.sla_business_hours`
# does not name it: an activation blocks a project's start (4 h), a billing run a month's invoices (8 h).
DEFAULT_SLA_BUSINESS_HOURS: Mapping[str, float] = {
    "project_activation": 4.0,
    "billing_run": 8.0,
    "invoice_status_sync": 4.0,
    "customer_sync": 8.0,
}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class OperationsSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The operations view's business clock: when the people who fix parked runs work, and how many of
    their business hours an exception may wait before it breaches its workflow's SLA
    (`GET /experience/v1/ops/exceptions`). Public holidays are not modelled: they count as working days."""

    # IANA time zone the working hours are in (e.g. "Europe/Berlin"); daylight saving follows it.
    timezone: str = "UTC"
    # Working days, comma-separated three-letter English day names.
    working_days: str = "mon,tue,wed,thu,fri"
    # Working hours on a working day, local time: from start_hour:00 to end_hour:00.
    start_hour: int = 9
    end_hour: int = 17
    # Workflow -> business hours an exception may wait; a workflow not named keeps its default
    # (project_activation 4, billing_run 8, invoice_status_sync 4, customer_sync 8).
    sla_business_hours: Mapping[str, float] = {}

    def __post_init__(self) -> None:
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"operations timezone {self.timezone!r} is not an IANA time zone") from exc
        days = [d.strip().lower() for d in self.working_days.split(",") if d.strip()]
        if not days or any(d not in _WEEKDAYS for d in days):
            raise ValueError("operations working_days must be day names such as mon,tue,wed,thu,fri")
        if not 0 <= self.start_hour < self.end_hour <= 24:
            raise ValueError("operations hours must satisfy 0 <= start_hour < end_hour <= 24")
        for workflow, hours in self.sla_business_hours.items():
            if workflow not in DEFAULT_SLA_BUSINESS_HOURS:
                raise ValueError(f"operations sla_business_hours: {workflow!r} is not a workflow")
            if not 0 < hours <= 10_000:
                raise ValueError(f"operations sla_business_hours[{workflow}] must be above 0")

    @property
    def weekdays(self) -> frozenset[int]:
        """The working days as ISO weekdays (Monday 1 ... Sunday 7)."""
        names = [d.strip().lower() for d in self.working_days.split(",") if d.strip()]
        return frozenset(_WEEKDAYS.index(name) + 1 for name in names)

    def sla_hours(self, workflow: str) -> float:
        """The business hours an exception of ``workflow`` may wait before it breaches."""
        return float(self.sla_business_hours.get(workflow, DEFAULT_SLA_BUSINESS_HOURS.get(workflow, 8.0)))


class TierClientCredentials(msgspec.Struct, kw_only=True, frozen=True):
    """The OAuth client a tier uses when it calls another tier."""

    client_id: str
    client_secret: str | None = None  # None with the dev issuer: taken from its client registry


class WorkflowSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Durable workflow runs (DBOS): where they are checkpointed, who runs them, how steps are retried."""

    # None: SQLite in the data directory (one host). postgresql://... lets many workers share the runs.
    database_url: str | None = None
    # `stratum serve` runs workflows itself; false leaves them to `stratum worker` processes.
    run_in_process: bool = True
    # Runs one worker holds at once, parked runs included (a parked run is a cheap waiting task).
    worker_concurrency: int = 100
    # How often a worker looks for queued runs (the longest a queued run waits before its first step; with
    # the embedded SQLite run database, activations and customer syncs started by a request do not wait).
    poll_interval_seconds: float = 0.1
    # A step that fails technically is tried again, with exponential backoff (capped at
    # `step_backoff_max_seconds`, at least the Retry-After it was given) and full jitter, for this long
    # after its first attempt; only then does its run go to the dead-letter list. Minutes, so a vendor's
    # partial outage of a minute or two is ridden out, and a dead letter means a person is needed.
    step_retry_window_seconds: float = 900.0
    # An optional cap on the attempts within the window (None: the window alone decides).
    step_max_attempts: int | None = None
    step_backoff_base_seconds: float = 1.0
    step_backoff_max_seconds: float = 60.0
    # Workers beat every `heartbeat_seconds` in the run database; one silent for `worker_timeout_seconds` is
    # dead, and another worker takes its runs over (PostgreSQL only: SQLite has a single worker).
    heartbeat_seconds: float = 2.0
    worker_timeout_seconds: float = 10.0


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    # "production" refuses to start on any development shortcut (the dev issuer, mounted sandboxes, default
    # sandbox credentials, in-process gateway state, SQLite runs) and lists them all: apis/profile.py.
    profile: Literal["development", "production"] = "development"
    # Who may read GET /metrics: "public" (anyone who reaches the port; keep it behind the network's
    # policy) or "off" (404; scrape the workers' --metrics-port instead). None: public in development,
    # off in production.
    metrics: Literal["public", "off"] | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # A connection that has not sent a request's complete headers this long after it opened (or after the
    # request's first byte) is closed: slow clients must not hold connections open forever (slowloris).
    header_timeout_seconds: float = 10.0
    # Where the gateway is reached; the dev issuer's identifier and absolute links derive from it.
    public_url: str = "http://127.0.0.1:8000"
    data_dir: str = ".stratum"
    log_level: str = "info"
    log_format: Literal["json", "console"] = "json"

    # OAuth 2.0 resource server. No issuer: the embedded development authorization server issues tokens.
    oauth_issuer: str | None = None
    oauth_jwks_url: str | None = None  # default: discovered from the issuer's RFC 8414 metadata
    oauth_audience: str = "stratum"
    oauth_algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")
    oauth_leeway_seconds: int = 30
    oauth_token_url: str | None = None  # token endpoint the tiers use for their own tokens (external issuer)
    dev_token_ttl_seconds: int = 3600

    # Shared gateway state. No URL: an in-process store (one process only), which keeps at most this much
    # (keys and values) and then drops its oldest keys: see apis.state.MEMORY_STORE_MAX_BYTES.
    redis_url: str | None = None
    state_memory_max_mib: Annotated[int, msgspec.Meta(ge=1)] = 64

    # Rate limits per client and tier, in the `limits` notation ("600/minute", "10/second;1000/hour").
    rate_limit_system: str = "1200/minute"
    rate_limit_process: str = "600/minute"
    rate_limit_experience: str = "600/minute"
    rate_limit_token: str = "60/minute"  # token endpoint, per client id
    # What a tier's own clients may spend per caller they call for (README "Budgets"): an experience view
    # fans out to ~50 inner calls, so these are sized for fan-out, and a caller who spends them gets 429s
    # (or view sections unavailable) while everyone else's calls and the workflows go on.
    rate_limit_system_inner: str = "3000/minute"
    rate_limit_process_inner: str = "1200/minute"
    # The workflow steps' calls, per client that started the runs: never spent by anyone's views.
    rate_limit_system_workflows: str = "6000/minute"
    rate_limit_process_workflows: str = "6000/minute"

    idempotency_ttl_seconds: int = 24 * 3600
    idempotency_lock_seconds: int = 60
    max_body_bytes: int = 1024 * 1024

    # Shared secret the CRM event relay signs `POST /process/v1/crm-events` with (HMAC-SHA256 in the
    # `X-Stratum-Signature` header). None: a random one is made once in {data_dir}/crm-events.secret (mode
    # 0600) and kept; give the relay that file's content.
    crm_events_secret: str | None = None

    # Remote tiers: set a base URL and the typed client calls it over HTTP instead of in process.
    system_url: str | None = None
    process_url: str | None = None
    inter_tier_timeout_seconds: float = 15.0
    process_client: TierClientCredentials = TierClientCredentials(client_id="stratum-process-tier")
    experience_client: TierClientCredentials = TierClientCredentials(client_id="stratum-experience-tier")

    # "system/v1" -> Deprecation: adds Deprecation/Sunset/Link headers to that tier version.
    deprecations: Mapping[str, Deprecation] = {}

    workflows: WorkflowSettings = WorkflowSettings()
    billing: BillingSettings = BillingSettings()
    invoice_status: InvoiceStatusSettings = InvoiceStatusSettings()
    # The operations view's business hours and SLA per workflow (STRATUM_OPERATIONS__TIMEZONE=...).
    operations: OperationsSettings = OperationsSettings()

    # Which adapter serves each domain, and how it reaches its vendor.
    crm_vendor: Literal["salesforce"] = "salesforce"
    psa_vendor: Literal["kantata"] = "kantata"
    erp_vendor: Literal["netsuite", "business_central"] = "netsuite"
    # Legal entities billed from another ERP than ``erp_vendor`` (a firm mid-migration), e.g.
    # {"DE01": "business_central"}; ``erp_vendor`` keeps every other entity.
    erp_by_legal_entity: Mapping[str, Literal["netsuite", "business_central"]] = {}
    fpa_vendor: Literal["anaplan", "adaptive"] = "anaplan"
    salesforce: SalesforceSettings = SalesforceSettings()
    kantata: KantataSettings = KantataSettings()
    netsuite: NetSuiteSettings = NetSuiteSettings()
    business_central: BusinessCentralSettings = BusinessCentralSettings()
    anaplan: AnaplanSettings = AnaplanSettings()
    adaptive: AdaptiveSettings = AdaptiveSettings()
    mount_sandboxes: bool = True
    # The mounted Salesforce sandbox's DailyApiRequests limit (a real org's is 15,000 and up).
    sandbox_salesforce_daily_api_limit: int = 100_000
    # The mounted Kantata sandbox's request rate; over it Kantata answers 429 without Retry-After.
    sandbox_kantata_requests_per_second: int = 200
    # The mounted Anaplan sandbox's per-token request window (Anaplan answers 429 past about 600 a minute).
    sandbox_anaplan_requests_per_minute: int = 600
    # The mounted Business Central sandbox's requests per principal per sliding window (Business Central:
    # 6,000 per 5 minutes); a test lowers it to reach the 429 cheaply.
    sandbox_business_central_requests_per_window: int = 6000

    @property
    def dev_issuer_enabled(self) -> bool:
        return self.oauth_issuer is None

    @property
    def metrics_public(self) -> bool:
        return self.metrics == "public" or (self.metrics is None and self.profile == "development")

    @property
    def issuer(self) -> str:
        return self.oauth_issuer or self.public_url.rstrip("/")

    def rate_limit_for(self, quota: str) -> str:
        """The spec of a quota: ``system``, ``system-inner``, ``system-workflows``, ``token``... (a tier's
        inner or workflows quota with no setting of its own has the tier's)."""
        limit: str | None = getattr(self, f"rate_limit_{quota.replace('-', '_')}", None)
        if limit is None:
            limit = getattr(self, f"rate_limit_{quota.split('-')[0]}")
        return limit


_PREFIX = "STRATUM_"
# Nested settings are given as JSON (STRATUM_SALESFORCE='{"base_url": ...}') or per field with a double
# underscore (STRATUM_SALESFORCE__BASE_URL=...).
_NESTED = {
    "salesforce",
    "kantata",
    "netsuite",
    "business_central",
    "anaplan",
    "adaptive",
    "erp_by_legal_entity",
    "process_client",
    "experience_client",
    "deprecations",
    "workflows",
    "billing",
    "invoice_status",
    "operations",
}


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(_PREFIX):
            continue
        name = key[len(_PREFIX) :].lower()
        if "__" in name:
            outer, inner = name.split("__", 1)
            if outer in _NESTED:
                raw.setdefault(outer, {})
                if isinstance(raw[outer], dict):
                    # A JSON object for a mapping setting (STRATUM_NETSUITE__SUBSIDIARIES={"US01": "1"}).
                    raw[outer][inner] = msgspec.json.decode(value) if value.strip()[:1] == "{" else value
            continue
        if name in _NESTED or name == "oauth_algorithms":
            raw[name] = msgspec.json.decode(value) if value.strip()[:1] in "[{" else value.split(",")
        else:
            raw[name] = value
    return raw


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment (or ``environ``), then ``overrides``; raises on a bad value."""
    raw = _from_env(os.environ if environ is None else environ)
    raw.update(overrides)
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"stratum: bad configuration: {exc}") from exc
