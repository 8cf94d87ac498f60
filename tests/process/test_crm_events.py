"""CRM change events in: signature, dedupe, reordering, and the one activation a won deal gets."""

from __future__ import annotations

import os
import stat
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.di import Provide
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from apis.config import Settings
from apis.plugin import GovernancePlugin
from apis.problems import ProblemError, exception_handlers
from apis.runtime import Runtime
from apis.state import MemoryStateStore
from contracts.models.crm import Opportunity, OpportunityStage
from process_apis.app import PROCESS_V1
from process_apis.crm_events import (
    CRM_EVENT_ROUTES,
    SIGNATURE_HEADER,
    CrmEventIntake,
    crm_events_secret,
    load_or_create_crm_events_secret,
    sign_crm_event,
)

SECRET = "test-crm-events-secret"
OPP = "006000000000001AAA"
PATH = "/process/v1/crm-events"


class FakeStarter:
    """Like the activation workflow: a second start for an opportunity returns the first run."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = False

    async def start_activation(self, opportunity_id: str, *, trigger: str) -> str:
        if self.fail:
            raise ProblemError("vendor-unavailable", "workflow engine down")
        self.calls.append((opportunity_id, trigger))
        return f"run-{opportunity_id}"


class FakeCrm:
    def __init__(self, won: dict[str, bool]) -> None:
        self.won = won

    def set_won(self, opportunity_id: str, won: bool) -> None:
        self.won[opportunity_id] = won

    async def get_opportunity(self, opportunity_id: str) -> Opportunity:
        if opportunity_id not in self.won:
            raise ProblemError("not-found")
        won = self.won[opportunity_id]
        return Opportunity(
            id=opportunity_id,
            name="Deal",
            customer_id="001000000000001AAA",
            stage=OpportunityStage.CLOSED_WON if won else OpportunityStage.NEGOTIATION,
            is_won=won,
            is_closed=won,
        )


def event_body(
    *,
    event_id: str | None = None,
    entity: str = "Opportunity",
    change_type: str = "UPDATE",
    record_ids: list[str] | None = None,
    commit_ms: int = 1_750_000_000_000,
    **fields: Any,
) -> bytes:
    header: dict[str, Any] = {
        "entityName": entity,
        "recordIds": [OPP] if record_ids is None else record_ids,
        "changeType": change_type,
        "changedFields": [*fields, "LastModifiedDate"],
        "commitTimestamp": commit_ms,
        "transactionKey": uuid.uuid4().hex,
        "sequenceNumber": 1,
        "commitNumber": 1234,
        "changeOrigin": "com/salesforce/api/rest/61.0",
        "aNewHeaderFieldFromSalesforce": True,
    }
    payload = {"ChangeEventHeader": header, "LastModifiedDate": commit_ms, **fields}
    body = {
        "replay_id": "AAAAAAAAAAE=",
        "event": {"id": event_id or str(uuid.uuid4()), "schema_id": "sch-1", "payload": payload},
    }
    return msgspec.json.encode(body)


def won_event(event_id: str | None = None, **kw: Any) -> bytes:
    return event_body(event_id=event_id, StageName="Closed Won", IsWon=True, IsClosed=True, **kw)


@pytest.fixture
def starter() -> FakeStarter:
    return FakeStarter()


@pytest.fixture
def crm() -> FakeCrm:
    return FakeCrm({OPP: True})


@pytest.fixture
def intake(starter: FakeStarter, crm: FakeCrm) -> CrmEventIntake:
    return CrmEventIntake(store=MemoryStateStore(), starter=starter, crm=crm, secret=SECRET)


async def receive(intake: CrmEventIntake, body: bytes, signature: str | None = "sign") -> Any:
    header = sign_crm_event(body, SECRET) if signature == "sign" else signature
    return await intake.receive(body, header)


# --- processing ---------------------------------------------------------------------------------------


async def test_a_signed_won_event_starts_the_activation(intake: CrmEventIntake, starter: FakeStarter) -> None:
    body = won_event("evt-1")
    receipt = await receive(intake, body)
    assert receipt.outcome == "started"
    assert [(r.opportunity_id, r.run_id, r.href) for r in receipt.runs] == [
        (OPP, f"run-{OPP}", f"/process/v1/project-activations/run-{OPP}")
    ]
    assert starter.calls == [(OPP, "crm-event:evt-1")]


async def test_the_same_event_three_times_out_of_order_starts_one_activation(
    intake: CrmEventIntake, starter: FakeStarter
) -> None:
    won = won_event("evt-won", commit_ms=2_000)
    older = event_body(event_id="evt-older", StageName="Negotiation", IsWon=False, commit_ms=1_000)
    newer = event_body(event_id="evt-newer", Amount="125000.00", commit_ms=3_000)
    outcomes = [(await receive(intake, body)).outcome for body in (newer, won, older, won, won)]
    assert outcomes == ["ignored", "started", "ignored", "duplicate", "duplicate"]
    assert starter.calls == [(OPP, "crm-event:evt-won")]


async def test_a_duplicate_repeats_the_first_answer(intake: CrmEventIntake) -> None:
    first = await receive(intake, won_event("evt-1"))
    again = await receive(intake, won_event("evt-1"))
    assert again.outcome == "duplicate"
    assert again.reason == "started"
    assert again.runs == first.runs


async def test_an_event_for_a_deal_no_longer_won_is_stale(
    intake: CrmEventIntake, starter: FakeStarter, crm: FakeCrm
) -> None:
    crm.set_won(OPP, False)  # reopened after the win; the win's event arrives late
    receipt = await receive(intake, won_event())
    assert (receipt.outcome, receipt.reason, receipt.runs) == ("ignored", "stale", [])
    assert starter.calls == []


async def test_a_deleted_deal_is_stale(intake: CrmEventIntake, starter: FakeStarter) -> None:
    receipt = await receive(intake, won_event(record_ids=["006000000000404AAA"]))
    assert (receipt.outcome, receipt.reason) == ("ignored", "stale")
    assert starter.calls == []


async def test_other_objects_are_ignored(intake: CrmEventIntake, starter: FakeStarter) -> None:
    receipt = await receive(intake, won_event(entity="Account", record_ids=["001000000000001AAA"]))
    assert (receipt.outcome, receipt.reason) == ("ignored", "not-an-opportunity")
    assert starter.calls == []


async def test_an_update_that_is_not_a_win_reads_nothing(
    intake: CrmEventIntake, starter: FakeStarter
) -> None:
    receipt = await receive(intake, event_body(StageName="Proposal", IsWon=False))
    assert (receipt.outcome, receipt.reason) == ("ignored", "not-closed-won")
    assert starter.calls == []


@pytest.mark.parametrize("change_type", ["GAP_UPDATE", "GAP_CREATE", "CREATE"])
async def test_events_without_reliable_values_are_decided_by_the_record(
    intake: CrmEventIntake, starter: FakeStarter, change_type: str
) -> None:
    receipt = await receive(intake, event_body(change_type=change_type))
    assert receipt.outcome == "started"
    assert [c[0] for c in starter.calls] == [OPP]


async def test_an_overflow_event_names_no_records(intake: CrmEventIntake, starter: FakeStarter) -> None:
    receipt = await receive(intake, event_body(change_type="GAP_OVERFLOW", record_ids=[]))
    assert (receipt.outcome, receipt.reason) == ("ignored", "no-record-ids")


async def test_one_event_for_several_deals_starts_the_won_ones(
    intake: CrmEventIntake, starter: FakeStarter, crm: FakeCrm
) -> None:
    crm.set_won("006000000000002AAA", False)
    crm.set_won("006000000000003AAA", True)
    ids = [OPP, "006000000000002AAA", "006000000000003AAA"]
    receipt = await receive(intake, won_event(record_ids=ids))
    assert receipt.outcome == "started"
    assert [r.opportunity_id for r in receipt.runs] == [OPP, "006000000000003AAA"]


async def test_a_failed_start_is_not_recorded_so_redelivery_starts(
    intake: CrmEventIntake, starter: FakeStarter
) -> None:
    starter.fail = True
    with pytest.raises(ProblemError):
        await receive(intake, won_event("evt-1"))
    starter.fail = False
    receipt = await receive(intake, won_event("evt-1"))
    assert receipt.outcome == "started"
    assert starter.calls == [(OPP, "crm-event:evt-1")]


# --- the signature ------------------------------------------------------------------------------------


def _code(exc: pytest.ExceptionInfo[ProblemError]) -> tuple[int, str]:
    return exc.value.kind.status, exc.value.kind.code


async def test_a_missing_signature_is_refused(intake: CrmEventIntake, starter: FakeStarter) -> None:
    with pytest.raises(ProblemError) as exc:
        await receive(intake, won_event(), signature=None)
    assert _code(exc) == (401, "invalid-signature")
    assert starter.calls == []


@pytest.mark.parametrize(
    "header",
    ["garbage", "t=123", "v1=00", "t=abc,v1=" + "0" * 64],
    ids=["garbage", "no-v1", "no-t", "bad-t"],
)
async def test_a_malformed_signature_is_refused(intake: CrmEventIntake, header: str) -> None:
    with pytest.raises(ProblemError) as exc:
        await receive(intake, won_event(), signature=header)
    assert _code(exc) == (401, "invalid-signature")


async def test_a_signature_by_another_secret_or_over_another_body_is_refused(
    intake: CrmEventIntake, starter: FakeStarter
) -> None:
    body = won_event()
    for header in (sign_crm_event(body, "another-secret"), sign_crm_event(body + b" ", SECRET)):
        with pytest.raises(ProblemError) as exc:
            await intake.receive(body, header)
        assert _code(exc) == (401, "invalid-signature")
    assert starter.calls == []


@pytest.mark.parametrize("skew", [-301, 301])
async def test_a_signature_outside_the_tolerance_is_refused(intake: CrmEventIntake, skew: int) -> None:
    body = won_event()
    with pytest.raises(ProblemError) as exc:
        await intake.receive(body, sign_crm_event(body, SECRET, int(time.time()) + skew))
    assert _code(exc) == (401, "invalid-signature")


async def test_a_signature_within_the_tolerance_is_accepted(intake: CrmEventIntake) -> None:
    body = won_event()
    receipt = await intake.receive(body, sign_crm_event(body, SECRET, int(time.time()) - 290))
    assert receipt.outcome == "started"


async def test_during_rotation_any_v1_may_match(intake: CrmEventIntake) -> None:
    body = won_event()
    t = int(time.time())
    old = sign_crm_event(body, "the-old-secret", t)
    new = sign_crm_event(body, SECRET, t).split(",", 1)[1]
    receipt = await intake.receive(body, f"{old}, {new}")
    assert receipt.outcome == "started"


async def test_the_signature_is_checked_before_the_body_is_read(intake: CrmEventIntake) -> None:
    with pytest.raises(ProblemError) as exc:
        await intake.receive(b'{"not": "an event"}', "t=1,v1=" + "0" * 64)
    assert _code(exc) == (401, "invalid-signature")


async def test_a_signed_body_that_is_not_a_delivery_is_422(intake: CrmEventIntake) -> None:
    body = msgspec.json.encode({"event": {"id": "e", "payload": {}}, "extra": 1})
    with pytest.raises(ProblemError) as exc:
        await receive(intake, body)
    assert _code(exc) == (422, "validation-failed")


async def test_logs_carry_neither_secret_nor_signature(intake: CrmEventIntake) -> None:
    body = won_event()
    header = sign_crm_event(body, SECRET)
    with capture_logs() as logs:
        await intake.receive(body, header)
        with pytest.raises(ProblemError):
            await intake.receive(body, header.replace("v1=", "v1=0"))
    text = repr(logs)
    assert {e["event"] for e in logs} >= {"crm_event_processed", "crm_event_rejected"}
    assert SECRET not in text
    assert header.split("v1=")[1] not in text


# --- the secret ---------------------------------------------------------------------------------------


def test_the_secret_is_made_once_private_and_kept(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    first = load_or_create_crm_events_secret(data_dir)
    path = tmp_path / "data" / "crm-events.secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) >= 43  # 32 random bytes, urlsafe base64
    assert load_or_create_crm_events_secret(data_dir) == first
    assert [p.name for p in path.parent.iterdir()] == ["crm-events.secret"]


def test_a_configured_secret_wins(settings: Settings) -> None:
    configured = msgspec.structs.replace(settings, crm_events_secret="from-config")
    assert crm_events_secret(configured) == "from-config"
    assert crm_events_secret(settings) == load_or_create_crm_events_secret(settings.data_dir)


# --- over HTTP ----------------------------------------------------------------------------------------


def _app(intake: CrmEventIntake, **kwargs: Any) -> Litestar:
    return Litestar(
        route_handlers=CRM_EVENT_ROUTES,
        dependencies={"crm_events": Provide(lambda: intake, use_cache=True, sync_to_thread=False)},
        **kwargs,
    )


async def test_over_http_a_signed_event_is_accepted_once(
    intake: CrmEventIntake, starter: FakeStarter
) -> None:
    body = won_event("evt-http")
    async with AsyncTestClient(_app(intake, exception_handlers=dict(exception_handlers))) as client:
        answers = []
        for _ in range(3):
            headers = {SIGNATURE_HEADER: sign_crm_event(body, SECRET), "Content-Type": "application/json"}
            answers.append(await client.post(PATH, content=body, headers=headers))
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert [a.json()["outcome"] for a in answers] == ["started", "duplicate", "duplicate"]
    assert answers[0].json()["runs"][0]["href"] == f"/process/v1/project-activations/run-{OPP}"
    assert starter.calls == [(OPP, "crm-event:evt-http")]


async def test_over_http_a_bad_signature_is_a_401_problem(intake: CrmEventIntake) -> None:
    body = won_event()
    async with AsyncTestClient(_app(intake, exception_handlers=dict(exception_handlers))) as client:
        missing = await client.post(PATH, content=body, headers={"Content-Type": "application/json"})
        wrong = await client.post(
            PATH,
            content=body,
            headers={SIGNATURE_HEADER: sign_crm_event(body, "nope"), "Content-Type": "application/json"},
        )
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"] == "/problems/invalid-signature"
        assert "www-authenticate" in response.headers


async def test_under_governance_the_route_needs_no_token(
    intake: CrmEventIntake, starter: FakeStarter, settings: Settings
) -> None:
    runtime = Runtime(settings)
    app = _app(intake, plugins=[GovernancePlugin(PROCESS_V1, runtime)])
    body = won_event()
    try:
        async with AsyncTestClient(app) as client:
            signed = {SIGNATURE_HEADER: sign_crm_event(body, SECRET)}
            ok = await client.post(PATH, content=body, headers={**signed, "Content-Type": "application/json"})
            not_json = await client.post(PATH, content=body, headers={**signed, "Content-Type": "text/plain"})
            schema = app.openapi_schema.to_schema()
    finally:
        await runtime.stop()
    assert ok.status_code == 202, ok.text
    assert ok.json()["outcome"] == "started"
    assert not_json.status_code == 415
    operation = schema["paths"][PATH]["post"]
    assert operation["operationId"] == "receiveCrmChangeEvent"
    assert "security" not in operation or operation["security"] in ([], None)
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema["$ref"].endswith("/CrmEventDelivery")
    delivery = schema["components"]["schemas"]["CrmEventDelivery"]
    assert delivery["additionalProperties"] is False
    assert set(operation["responses"]) >= {"202", "401", "502", "503", "504"}
    assert "X-Stratum-Signature" in operation["responses"]["401"]["description"]


async def test_the_problem_type_is_documented(gw: Any) -> None:
    page = await gw.client.get("/problems/invalid-signature")
    assert page.status_code == 200
    assert "X-Stratum-Signature" in page.text
