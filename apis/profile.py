"""The production profile: what a production deployment must not run on.

``STRATUM_PROFILE=production`` makes ``stratum serve`` and ``stratum worker`` check the configuration before
anything starts and refuse, listing every violation at once, when any development shortcut is left on:

- the development issuer (no ``STRATUM_OAUTH_ISSUER``): tokens signed with a key from the data directory;
- mounted sandboxes (``STRATUM_MOUNT_SANDBOXES``): their admin routes (faults, reset, records) need no auth;
- a vendor with no ``base_url`` (NetSuite: no ``account`` either): its adapter would call the in-process
  sandbox;
- a vendor's default sandbox credentials (or none, where none means the sandbox's development client);
- gateway state in process (no ``STRATUM_REDIS_URL``): rate limits and idempotency keys per process and
  lost on restart;
- workflow runs in SQLite (no ``STRATUM_WORKFLOWS__DATABASE_URL``): one host, one worker, no takeover of a
  dead worker's runs; production checkpoints runs in PostgreSQL;
- tier clients without their own secrets or token endpoint, which the external issuer needs.

What a vendor's org or account lacks (a Salesforce custom field) is not checked here and never refuses a
start: the vendor may simply be down at start-up. The adapters check it when the process starts serving,
log what is missing by name and answer calls that need it with a problem naming it (README, "Running
against real Salesforce"); `stratum vendors check` reports it all before a deployment.

``GET /metrics`` is off in production unless ``STRATUM_METRICS=public`` says otherwise (it is not a
violation: the safe default applies).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from apis.config import NetSuiteSettings

if TYPE_CHECKING:
    from apis.config import Settings, VendorConnection

__all__ = ["production_violations", "refusal_message"]

# The fields of each vendor's settings that hold credentials. A value equal to the field's default is the
# sandbox's development credential (or None: "use the sandbox's development client").
_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "salesforce": ("client_id", "client_secret"),
    "kantata": ("token",),
    "certinia": ("client_id", "client_secret"),
    "netsuite": ("client_id", "certificate_id", "private_key_file"),
    "business_central": ("client_id", "client_secret"),
    "anaplan": ("user", "password"),
    "adaptive": ("login", "password"),
}

# Settings whose default (None) stands for the sandbox's own value, so a real connection must set them.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "business_central": ("tenant_id", "company"),
    "netsuite": ("account", "time_zone"),
}


def _vendors_in_use(settings: Settings) -> list[str]:
    used = [
        settings.crm_vendor,
        settings.psa_vendor,
        *settings.psa_by_legal_entity.values(),
        settings.erp_vendor,
        *settings.erp_by_legal_entity.values(),
        settings.fpa_vendor,
    ]
    return list(dict.fromkeys(used))


def _env(*names: str) -> str:
    return "STRATUM_" + "__".join(name.upper() for name in names)


def _vendor_violations(settings: Settings, vendor: str) -> Iterable[str]:
    if vendor == "certinia" and settings.certinia.base_url is None:
        # Certinia in the CRM's own org: the Salesforce connection is the one to check (it is checked as
        # the CRM's when the CRM is Salesforce).
        if settings.crm_vendor != "salesforce":
            yield from _vendor_violations(settings, "salesforce")
        return
    connection: VendorConnection = getattr(settings, vendor)
    if vendor == "certinia":
        # A second org: its credentials are its own, or else the Salesforce settings' (resolved here).
        connection = settings.certinia.org_settings(settings.salesforce)
    required = _REQUIRED.get(vendor, ())
    if isinstance(connection, NetSuiteSettings):
        # NetSuite's host derives from the account id; a base URL is only for a proxy.
        if connection.rest_url is None:
            yield (
                "STRATUM_NETSUITE__ACCOUNT is not set (nor a base URL): the netsuite adapter would call the "
                "in-process sandbox"
            )
            required = tuple(name for name in required if name != "account")  # said just above
    elif connection.base_url is None:
        yield f"{_env(vendor, 'base_url')} is not set: the {vendor} adapter would call the in-process sandbox"
    for name in required:
        if getattr(connection, name) is None:
            yield f"{_env(vendor, name)} is not set: only the sandbox has a default"
    defaults = type(connection)()
    for name in _CREDENTIALS[vendor]:
        value = getattr(connection, name)
        if value is None:
            yield f"{_env(vendor, name)} is not set: {vendor} would be called as the sandbox's dev client"
        elif value == getattr(defaults, name):
            yield f"{_env(vendor, name)} is the sandbox's default credential"


def production_violations(settings: Settings, tiers: Sequence[str]) -> list[str]:
    """Every development shortcut ``settings`` leaves on for a process serving ``tiers``; [] when none, or
    when the profile is not production."""
    if settings.profile != "production":
        return []
    violations: list[str] = []
    if settings.oauth_issuer is None:
        violations.append(
            "STRATUM_OAUTH_ISSUER is not set: the development issuer would sign tokens with a key kept in "
            "the data directory"
        )
    elif "process" in tiers or "experience" in tiers:
        if not settings.oauth_token_url:
            violations.append("STRATUM_OAUTH_TOKEN_URL is not set: the tiers could not get their own tokens")
        for tier in ("process", "experience"):
            if tier in tiers and not getattr(settings, f"{tier}_client").client_secret:
                violations.append(
                    f"{_env(tier + '_client', 'client_secret')} is not set: the {tier} tier could not call "
                    "the other tiers"
                )
    if settings.mount_sandboxes:
        violations.append(
            "STRATUM_MOUNT_SANDBOXES is not false: the vendor sandboxes and their unauthenticated admin "
            "routes (faults, reset, records) would be served"
        )
    if "system" in tiers:
        for vendor in _vendors_in_use(settings):
            violations.extend(_vendor_violations(settings, vendor))
    if settings.redis_url is None:
        violations.append(
            "STRATUM_REDIS_URL is not set: rate limits, idempotency keys and events would live in this "
            "process only, and be lost on restart"
        )
    if "process" in tiers and settings.workflows.database_url is None:
        violations.append(
            "STRATUM_WORKFLOWS__DATABASE_URL is not set: workflow runs would be checkpointed in SQLite in "
            "the data directory (one host, no takeover of a dead worker's runs); use PostgreSQL"
        )
    return violations


def refusal_message(violations: Sequence[str]) -> str:
    lines = "\n".join(f"  - {violation}" for violation in violations)
    return (
        f"stratum: refusing to start with STRATUM_PROFILE=production: {len(violations)} development "
        f'setting(s) left on:\n{lines}\n(README.md, "Running in production", lists what to set)'
    )
