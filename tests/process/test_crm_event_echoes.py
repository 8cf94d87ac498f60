"""Echo suppression: the change events of Stratum's own Salesforce writes (invoice status records, the deal's
invoice totals) never start work, decided from the event alone (ChangeEventHeader ``changeOrigin`` carries
the ``Sforce-Call-Options`` client id the adapter sets; ``changedFields`` names what a save changed)."""

from __future__ import annotations

import msgspec
import pytest

from apis.state import MemoryStateStore
from contracts.models.crm import Opportunity
from contracts.models.crm_events import ChangeEventHeader
from process_apis.crm_events import CrmEventIntake, echo_reason
from system_apis.crm.salesforce_mapping import STRATUM_CALL_OPTIONS
from tests.process.test_crm_events import SECRET, FakeCrm, FakeStarter, event_body, receive, won_event

OURS = "com/salesforce/api/rest/61.0;client=stratum"


class CountingStore(MemoryStateStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, key: str) -> bytes | None:
        self.reads += 1
        return await super().get(key)


class CountingCrm(FakeCrm):
    def __init__(self) -> None:
        super().__init__({"006000000000001AAA": True})
        self.reads = 0

    async def get_opportunity(self, opportunity_id: str) -> Opportunity:
        self.reads += 1
        return await super().get_opportunity(opportunity_id)


def _with_origin(body: bytes, origin: str) -> bytes:
    decoded = msgspec.json.decode(body)
    decoded["event"]["payload"]["ChangeEventHeader"]["changeOrigin"] = origin
    return msgspec.json.encode(decoded)


@pytest.fixture
def parts() -> tuple[CrmEventIntake, FakeStarter, CountingStore, CountingCrm]:
    starter, store, crm = FakeStarter(), CountingStore(), CountingCrm()
    return CrmEventIntake(store=store, starter=starter, crm=crm, secret=SECRET), starter, store, crm


def test_the_adapter_writes_with_the_client_id_the_intake_recognises() -> None:
    assert STRATUM_CALL_OPTIONS == {"Sforce-Call-Options": "client=stratum"}


@pytest.mark.parametrize("change_type", ["UPDATE", "GAP_UPDATE", "CREATE"])
async def test_an_event_of_stratums_own_write_starts_nothing_and_reads_nothing(
    parts: tuple[CrmEventIntake, FakeStarter, CountingStore, CountingCrm], change_type: str
) -> None:
    intake, starter, store, crm = parts
    # Even one that looks like a win (a GAP_UPDATE would otherwise be decided by reading the record).
    body = _with_origin(won_event(change_type=change_type), OURS)
    receipt = await receive(intake, body)
    assert (receipt.outcome, receipt.reason) == ("ignored", "own-write")
    assert starter.calls == []
    assert (store.reads, crm.reads) == (0, 0)


async def test_an_update_of_only_the_invoice_totals_is_an_echo(
    parts: tuple[CrmEventIntake, FakeStarter, CountingStore, CountingCrm],
) -> None:
    intake, starter, store, _ = parts
    body = event_body(Invoiced_Amount__c=1000.1, Paid_Amount__c=0, Overdue_Amount__c=0)
    receipt = await receive(intake, body)
    assert (receipt.outcome, receipt.reason) == ("ignored", "own-fields")
    assert starter.calls == []
    assert store.reads == 0


async def test_an_invoice_record_event_is_not_work(
    parts: tuple[CrmEventIntake, FakeStarter, CountingStore, CountingCrm],
) -> None:
    intake, starter, _, _ = parts
    body = event_body(entity="Stratum_Invoice__c", record_ids=["a03000000000001AAA"], Status__c="Paid")
    receipt = await receive(intake, body)
    assert receipt.outcome == "ignored"
    assert starter.calls == []


async def test_a_persons_win_is_still_work(
    parts: tuple[CrmEventIntake, FakeStarter, CountingStore, CountingCrm],
) -> None:
    intake, starter, _, _ = parts
    # Another API client (and a totals field changed alongside the stage) is not an echo.
    body = _with_origin(won_event(Invoiced_Amount__c=5), "com/salesforce/api/rest/61.0;client=stratum-fork")
    receipt = await receive(intake, body)
    assert receipt.outcome == "started"
    assert len(starter.calls) == 1


def test_echo_reason_reads_only_the_client_option() -> None:
    decoded = msgspec.json.decode(won_event())
    header = decoded["event"]["payload"]["ChangeEventHeader"]
    for origin, expected in (
        ("com/salesforce/api/rest/61.0;client=stratum", "own-write"),
        ("com/salesforce/api/soap/49.0;client=Astro", None),
        ("com/salesforce/api/rest/61.0", None),
        ("client=stratum", None),  # no API part: not the documented format
    ):
        parsed = msgspec.convert({**header, "changeOrigin": origin}, ChangeEventHeader)
        assert echo_reason(parsed) == expected, origin
