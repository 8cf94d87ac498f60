"""CRM change events in: a won opportunity starts its project activation, once.

A webhook relay subscribes to Salesforce Change Data Capture over the Pub/Sub API and posts each event to
``POST /process/v1/crm-events``, signed with a shared secret (``X-Stratum-Signature``, Stripe-style:
``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + raw body>``). Delivery is at least once and in no
particular order, so ``CrmEventIntake``:

- verifies the signature over the raw body bytes, within 300 seconds of the gateway's clock;
- answers a redelivered event id with what the first delivery did (kept 72 h in the state store);
- never trusts the stage an event carries (an older change may arrive after a newer one): it reads the
  opportunity's current state and starts the activation only if the deal is won now;
- drops the echoes of the gateway's own writes (invoice status records, the deal's invoice totals, the
  activation write-back) before anything else: by ``changeOrigin``, which names the API client the gateway
  sets on its writes (``client=stratum``), and, should an org's relay strip it, by an update that changed
  only the invoice totals the gateway writes. Neither ever starts work.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from litestar import Request
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import SkipValidation

from apis.data_dir import private_dir
from apis.json_limits import MAX_JSON_DEPTH, json_too_deep
from apis.logging import get_logger
from apis.problems import PROBLEM_MEDIA_TYPE, FieldError, Problem, ProblemError
from apis.routing import VENDOR_ERRORS, operation
from apis.state import StateStore, StateStoreUnavailable, needed_by
from contracts.models.crm import Opportunity
from contracts.models.crm_events import (
    ChangeEventHeader,
    ChangeEventPayload,
    ChangeType,
    CrmChangeEvent,
    CrmEventDelivery,
    CrmEventReceipt,
    RunLink,
)
from system_apis.crm.salesforce_mapping import INVOICE_TOTAL_FIELDS, STRATUM_CLIENT_ID

if TYPE_CHECKING:
    from apis.config import Settings

__all__ = [
    "CRM_EVENT_ROUTES",
    "LAST_EVENT_KEY",
    "SIGNATURE_HEADER",
    "SIGNATURE_TOLERANCE_SECONDS",
    "ActivationStarter",
    "CrmEventIntake",
    "LastCrmEvent",
    "OpportunityReader",
    "crm_events_secret",
    "echo_reason",
    "load_or_create_crm_events_secret",
    "receive_crm_change_event",
    "sign_crm_event",
    "verify_crm_event_signature",
]

log = get_logger("stratum.process.crm_events")

SIGNATURE_HEADER = "X-Stratum-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
SEEN_TTL_SECONDS = 72 * 3600  # longer than any relay's redelivery window (Salesforce keeps events 72 h)
SECRET_FILE = "crm-events.secret"
_CHALLENGE = {"WWW-Authenticate": f'Stratum-Signature realm="stratum", header="{SIGNATURE_HEADER}"'}
_MAX_SIGNATURES = 8  # v1 values checked per request: rotation needs two, more is abuse
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_WON_STAGE = "Closed Won"
# Change types whose payload carries no field values (GAP_*) or whose values the gateway does not rely on
# (CREATE): the record itself decides.
_READ_TO_KNOW = frozenset(
    {
        ChangeType.CREATE,
        ChangeType.GAP_CREATE,
        ChangeType.GAP_UPDATE,
        ChangeType.GAP_DELETE,
        ChangeType.GAP_UNDELETE,
        ChangeType.GAP_OVERFLOW,
    }
)

# Fields Salesforce lists in changedFields on every save, whoever made it.
_SYSTEM_STAMPS = frozenset({"LastModifiedDate", "LastModifiedById", "SystemModstamp"})
# An update that changed only these was the gateway's own totals write (an echo).
_OWN_FIELDS = frozenset(INVOICE_TOTAL_FIELDS) | _SYSTEM_STAMPS

# The newest change event seen (its commit time, when it arrived), for the sync lag operations read
# (GET /process/v1/sync-status). Kept as long as the invoice status watermark.
LAST_EVENT_KEY = "crm-events:last"
LAST_EVENT_TTL_SECONDS = 400 * 24 * 3600


class LastCrmEvent(msgspec.Struct, kw_only=True, frozen=True):
    commit_timestamp: int  # epoch milliseconds, as the event header carries it
    received_at: dt.datetime


_delivery_decoder = msgspec.json.Decoder(CrmEventDelivery)
_receipt_decoder = msgspec.json.Decoder(CrmEventReceipt)
_encoder = msgspec.json.Encoder()


class ActivationStarter(Protocol):
    """The project activation workflow's start: idempotent per opportunity (a second start returns the
    run the first one made)."""

    async def start_activation(self, opportunity_id: str, *, trigger: str) -> str:
        """Start (or find) the opportunity's activation run; its run id."""
        ...


class OpportunityReader(Protocol):
    """The opportunity as the CRM holds it now (``system_apis.client.SystemApiClient`` is one)."""

    async def get_opportunity(self, opportunity_id: str) -> Opportunity: ...


# --- the shared secret and the signature ---------------------------------------------------------------


def load_or_create_crm_events_secret(data_dir: str) -> str:
    """The secret in ``{data_dir}/crm-events.secret``, made once (32 random bytes, urlsafe) with mode 0600."""
    path = Path(data_dir) / SECRET_FILE
    if not path.exists():
        private_dir(path.parent)
        # Written whole under a private name, then linked into place: a worker starting at the same time
        # either wins the link or reads the complete file of the one that did, never a half-written one.
        staging = path.with_name(f".{SECRET_FILE}.{secrets.token_hex(8)}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_urlsafe(32).encode())
            with contextlib.suppress(FileExistsError):
                os.link(staging, path)
        finally:
            staging.unlink(missing_ok=True)
    secret = path.read_text().strip()
    if not secret:
        raise RuntimeError(f"{path} is empty: delete it to have a new secret made, or write one into it")
    return secret


def crm_events_secret(settings: Settings) -> str:
    """``crm_events_secret`` from the settings, else the one kept in the data dir."""
    return settings.crm_events_secret or load_or_create_crm_events_secret(settings.data_dir)


def _mac(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign_crm_event(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``X-Stratum-Signature`` value for ``body`` (what a relay sends; tests use it too)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_mac(body, secret, t)}"


def _rejected(reason: str, detail: str) -> ProblemError:
    log.warning("crm_event_rejected", reason=reason)
    return ProblemError("invalid-signature", detail, headers=_CHALLENGE)


def verify_crm_event_signature(body: bytes, header: str | None, secret: str, *, now: float) -> None:
    """Raise the 401 ``invalid-signature`` problem unless ``header`` signs ``body`` with ``secret``, dated
    within ``SIGNATURE_TOLERANCE_SECONDS`` of ``now`` (either way: a replayed old request is refused)."""
    if not header:
        raise _rejected("missing", f"No {SIGNATURE_HEADER} header.")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header[:2048].split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit() and timestamp is None:
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value.strip().lower())
    if timestamp is None or not candidates:
        raise _rejected("malformed", f"{SIGNATURE_HEADER} must be t=<unix seconds>,v1=<hex HMAC-SHA256>.")
    if abs(now - timestamp) > SIGNATURE_TOLERANCE_SECONDS:
        raise _rejected(
            "expired",
            f"The signature's timestamp is more than {SIGNATURE_TOLERANCE_SECONDS} seconds from the "
            "gateway's clock.",
        )
    expected = _mac(body, secret, timestamp).encode()
    matched = False
    for candidate in candidates[:_MAX_SIGNATURES]:
        # Every candidate is compared (no early exit), each in constant time.
        if _HEX_SHA256.fullmatch(candidate) and hmac.compare_digest(expected, candidate.encode()):
            matched = True
    if not matched:
        raise _rejected("mismatch", "No v1 signature matches the body.")


# --- processing ----------------------------------------------------------------------------------------


def _from_stratum(change_origin: str | None) -> bool:
    """True when ``changeOrigin`` (``com/salesforce/api/<api>/<version>;client=<id>``) names the gateway's
    client id (ChangeEventHeader, "changeOrigin")."""
    if not change_origin:
        return False
    options = change_origin.split(";")[1:]
    return any(option.strip() == f"client={STRATUM_CLIENT_ID}" for option in options)


def echo_reason(header: ChangeEventHeader) -> str | None:
    """Why the event is an echo of the gateway's own write (None when it is not one)."""
    if _from_stratum(header.change_origin):
        return "own-write"
    changed = set(header.changed_fields)
    if header.change_type is ChangeType.UPDATE and changed - _SYSTEM_STAMPS and changed <= _OWN_FIELDS:
        return "own-fields"
    return None


def _claims_won(payload: ChangeEventPayload) -> bool:
    return payload.is_won is True or payload.stage_name == _WON_STAGE


class CrmEventIntake:
    """Turns verified CRM change events into activation starts, once per event and only for won deals."""

    def __init__(
        self,
        *,
        store: StateStore,
        starter: ActivationStarter,
        crm: OpportunityReader,
        secret: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the CRM events secret must not be empty")
        self.store = store
        self.starter = starter
        self.crm = crm
        self._secret = secret
        self._clock = clock

    async def receive(self, body: bytes, signature: str | None) -> CrmEventReceipt:
        """Verify, decode and process one delivery as the relay posted it (``body`` is the raw bytes)."""
        verify_crm_event_signature(body, signature, self._secret, now=self._clock())
        # Only now is the body parsed, so an unsigned body never costs a parse.
        if json_too_deep(body):
            raise ProblemError("malformed-request", f"The body nests deeper than {MAX_JSON_DEPTH} levels.")
        try:
            delivery = _delivery_decoder.decode(body)
        except msgspec.ValidationError as exc:
            message = str(exc)
            field = message.rsplit("at `$.", 1)[1].rstrip("`") if "at `$." in message else None
            raise ProblemError(
                "validation-failed",
                "The body is not a CRM change event delivery.",
                errors=[FieldError(location="body", field=field, message=message)],
            ) from exc
        except msgspec.DecodeError as exc:
            raise ProblemError("malformed-request", "The body is not valid JSON.") from exc
        return await self.process(delivery.event)

    async def process(self, event: CrmChangeEvent) -> CrmEventReceipt:
        """What to do with one (already verified) change event; the same answer for every redelivery."""
        header = event.payload.change_event_header
        bound = log.bind(
            event_id=event.id,
            entity=header.entity_name,
            change_type=header.change_type.value,
            record_ids=header.record_ids,
            commit_timestamp=header.commit_timestamp,
        )
        echo = echo_reason(header)
        if echo is not None:
            # Decided by the event alone: no state read, no CRM read, nothing started.
            bound.info("crm_event_ignored", reason=echo)
            return CrmEventReceipt(event_id=event.id, outcome="ignored", reason=echo)
        # An echo is not news from the CRM: only others' changes move the CRM flow's newest point.
        await self._note_arrival(header.commit_timestamp)
        if header.entity_name != "Opportunity":
            bound.info("crm_event_ignored", reason="not-an-opportunity")
            return CrmEventReceipt(event_id=event.id, outcome="ignored", reason="not-an-opportunity")
        seen_key = f"crm-events:seen:{event.id}"
        # Unavailable: a 503 problem, so the relay redelivers; an event is never acted on unchecked.
        with needed_by("crm_event_dedupe"):
            first = await self.store.get(seen_key)
        if first is not None:
            earlier = _receipt_decoder.decode(first)
            bound.info("crm_event_duplicate", first_outcome=earlier.outcome)
            return CrmEventReceipt(
                event_id=event.id,
                outcome="duplicate",
                reason=earlier.outcome if earlier.reason is None else f"{earlier.outcome}: {earlier.reason}",
                runs=earlier.runs,
            )
        receipt = await self._act_on(event)
        # Recorded only now, after every start succeeded: a failure above leaves no record, so the relay's
        # redelivery tries again. Two concurrent deliveries of one event can both get here and both call
        # start_activation; that start is idempotent per opportunity, so they get the same run.
        with needed_by("crm_event_dedupe"):
            await self.store.set(seen_key, _encoder.encode(receipt), SEEN_TTL_SECONDS)
        bound.info(
            "crm_event_processed",
            outcome=receipt.outcome,
            reason=receipt.reason,
            run_ids=[r.run_id for r in receipt.runs],
        )
        return receipt

    async def _note_arrival(self, commit_timestamp: int) -> None:
        """Record the event's commit time if it is the newest seen. Only a figure for operations: a store
        that does not answer skips it (the dedupe read just after says whether the event can go on)."""
        with contextlib.suppress(StateStoreUnavailable, msgspec.DecodeError, msgspec.ValidationError):
            raw = await self.store.get(LAST_EVENT_KEY)
            newest = msgspec.json.decode(raw, type=LastCrmEvent) if raw is not None else None
            if newest is not None and newest.commit_timestamp >= commit_timestamp:
                return
            last = LastCrmEvent(commit_timestamp=commit_timestamp, received_at=dt.datetime.now(dt.UTC))
            await self.store.set(LAST_EVENT_KEY, _encoder.encode(last), LAST_EVENT_TTL_SECONDS)

    async def _act_on(self, event: CrmChangeEvent) -> CrmEventReceipt:
        payload = event.payload
        header = payload.change_event_header
        claims_won = _claims_won(payload)
        if not claims_won and header.change_type not in _READ_TO_KNOW:
            return CrmEventReceipt(event_id=event.id, outcome="ignored", reason="not-closed-won")
        if not header.record_ids:
            # An overflow event names no records; the changes it stands for are not visible here.
            return CrmEventReceipt(event_id=event.id, outcome="ignored", reason="no-record-ids")
        runs: list[RunLink] = []
        for opportunity_id in dict.fromkeys(header.record_ids):
            # Events arrive reordered: the stage in this one may be long gone. Only the record now decides.
            if not await self._is_won_now(opportunity_id):
                continue
            run_id = await self.starter.start_activation(opportunity_id, trigger=f"crm-event:{event.id}")
            runs.append(
                RunLink(
                    opportunity_id=opportunity_id,
                    run_id=run_id,
                    href=f"/process/v1/project-activations/{run_id}",
                )
            )
        if runs:
            return CrmEventReceipt(event_id=event.id, outcome="started", runs=runs)
        # "stale": the event said won but the deal is not won any more (or is gone).
        reason = "stale" if claims_won else "not-closed-won"
        return CrmEventReceipt(event_id=event.id, outcome="ignored", reason=reason)

    async def _is_won_now(self, opportunity_id: str) -> bool:
        try:
            opportunity = await self.crm.get_opportunity(opportunity_id)
        except ProblemError as exc:
            if exc.kind.code == "not-found":  # deleted since the change: nothing to activate
                return False
            raise
        return opportunity.is_won


# --- the route -----------------------------------------------------------------------------------------


class _SignedBodyRequest(Request[Any, Any, Any]):
    """Litestar decodes a ``data`` body before the handler runs. This route's body must not be parsed
    before its signature is verified, so its ``data`` (declared for the contract) is never decoded: the
    handler verifies and decodes the raw bytes itself."""

    async def json(self) -> Any:
        return None


@operation(
    "POST",
    "/process/v1/crm-events",
    operation_id="receiveCrmChangeEvent",
    summary="Receive a CRM change event",
    description=(
        "A webhook relay posts each Salesforce Change Data Capture event here (one Pub/Sub API "
        "ConsumerEvent, payload decoded to JSON). The route is public to OAuth: the relay authenticates "
        f"with an HMAC-SHA256 signature of the raw body in `{SIGNATURE_HEADER}: t=<unix seconds>,v1=<hex>` "
        f"(several `v1` while a secret is rotated; `t` within {SIGNATURE_TOLERANCE_SECONDS} s). "
        "An opportunity that is closed-won *now* (read from the CRM, since events arrive out of order) "
        "gets its project activation started. Redeliveries of an event id answer `duplicate` with the "
        "first delivery's runs; a failed delivery is not recorded, so redelivering it tries again."
    ),
    public=True,
    errors=[401, *VENDOR_ERRORS],
    status_code=202,
    tags=["events"],
    request_class=_SignedBodyRequest,
)
async def receive_crm_change_event(
    request: Request[Any, Any, Any],
    data: SkipValidation[CrmEventDelivery],
    crm_events: NamedDependency[SkipValidation[CrmEventIntake]],
) -> CrmEventReceipt:
    # ``data`` only documents the body in the contract (``_SignedBodyRequest`` leaves it undecoded); the
    # signature covers the raw bytes, so those are what is verified, then decoded.
    del data
    return await crm_events.receive(await request.body(), request.headers.get(SIGNATURE_HEADER))


# The generic 401 text speaks of bearer tokens; this route's 401 is about the signature.
receive_crm_change_event.responses = {
    **(receive_crm_change_event.responses or {}),
    401: ResponseSpec(
        data_container=Problem,
        media_type=PROBLEM_MEDIA_TYPE,
        description=f"Missing, malformed, expired or non-matching `{SIGNATURE_HEADER}`.",
        generate_examples=False,
    ),
}

CRM_EVENT_ROUTES = [receive_crm_change_event]
