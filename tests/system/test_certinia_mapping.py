"""Certinia records as the org's REST API answers them (SOQL rows, recorded shapes) -> canonical objects."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from contracts.models import MilestoneStatus, ProjectStatus, PsaInvoiceStatus
from system_apis.psa.certinia_mapping import (
    CertiniaBillingEvent,
    CertiniaBillingEventItem,
    CertiniaProject,
    CertiniaTimecardSplit,
    billable_time,
    child_key,
    decode_batch,
    invoice_from_records,
    payment_ids,
    project_status,
    time_entry_from_record,
)

# A SOQL batch of timecard splits with the header's fields through pse__Timecard_Header__r, as the REST
# API nests a child-to-parent relationship (SOQL and SOSL Reference, "Relationship Queries").
SPLITS = b"""{"totalSize": 2, "done": true, "records": [
 {"attributes": {"type": "pse__Timecard__c", "url": "/services/data/v61.0/sobjects/pse__Timecard__c/a0T1"},
  "Id": "a0TDn0000000001AAA", "Name": "TS-000001", "pse__Project__c": "a0PDn0000000001AAA",
  "pse__Resource__c": "003Dn0000000001AAA", "pse__Start_Date__c": "2026-02-02",
  "pse__End_Date__c": "2026-02-08",
  "pse__Total_Hours__c": 37.5, "pse__Billable__c": true, "pse__Bill_Rate__c": 185.0,
  "pse__Total_Billable_Amount__c": 6937.5, "pse__Billing_Event_Item__c": null, "CurrencyIsoCode": "USD",
  "LastModifiedDate": "2026-02-09T10:15:00.000+0000",
  "pse__Timecard_Header__r": {"attributes": {"type": "pse__Timecard_Header__c"}, "pse__Approved__c": true,
   "pse__Billable__c": true, "pse__Notes__c": "EHR interface build"}},
 {"attributes": {"type": "pse__Timecard__c"}, "Id": "a0TDn0000000002AAA",
  "pse__Project__c": "a0PDn0000000001AAA",
  "pse__Start_Date__c": "2026-02-09", "pse__Total_Hours__c": 8, "pse__Billable__c": true,
  "CurrencyIsoCode": "USD", "pse__Timecard_Header__r": null}
]}"""


def test_a_split_is_time_approved_by_its_header() -> None:
    approved, orphan = decode_batch(CertiniaTimecardSplit, SPLITS).records
    entry = time_entry_from_record(approved)
    assert entry.approved
    assert entry.hours == Decimal("37.5")
    assert entry.rate is not None
    assert entry.rate.amount == Decimal("185.00")
    assert entry.date == dt.date(2026, 2, 2)
    assert entry.notes == "EHR interface build"
    assert entry.updated_at == dt.datetime(2026, 2, 9, 10, 15, tzinfo=dt.UTC)
    # A split whose header the integration user cannot see is not approved.
    assert not time_entry_from_record(orphan).approved
    item = billable_time(approved)
    assert item.quantity == Decimal("37.5")
    assert item.role is None  # neither an assignment nor the resource names a role


# The role, read through the header's assignment and the resource in the same SOQL query (elastic/dbt-sources
# stg_salesforce__pse_timecard_header_c.sql: pse_assignment_c; ..._pse_assignment_c.sql: pse_role_c;
# ..._contact.sql: pse_resource_role_c). A null lookup is rendered as null, a blank role as null.
ROLED_SPLITS = b"""{"totalSize": 4, "done": true, "records": [
 {"Id": "a0T000000000001AAA", "pse__Project__c": "a0P000000000001AAA", "pse__Start_Date__c": "2026-02-02",
  "pse__Total_Hours__c": 8, "pse__Billable__c": true, "CurrencyIsoCode": "USD",
  "pse__Timecard_Header__r": {"pse__Approved__c": true,
   "pse__Assignment__r": {"attributes": {"type": "pse__Assignment__c"},
    "pse__Role__c": " Senior Consultant "}},
  "pse__Resource__r": {"attributes": {"type": "Contact"}, "pse__Resource_Role__c": "Consultant"}},
 {"Id": "a0T000000000002AAA", "pse__Project__c": "a0P000000000001AAA", "pse__Start_Date__c": "2026-02-02",
  "pse__Total_Hours__c": 8, "pse__Billable__c": true, "CurrencyIsoCode": "USD",
  "pse__Timecard_Header__r": {"pse__Approved__c": true, "pse__Assignment__r": null},
  "pse__Resource__r": {"pse__Resource_Role__c": "Business Analyst"}},
 {"Id": "a0T000000000003AAA", "pse__Project__c": "a0P000000000001AAA", "pse__Start_Date__c": "2026-02-02",
  "pse__Total_Hours__c": 8, "pse__Billable__c": true, "CurrencyIsoCode": "USD",
  "pse__Timecard_Header__r": {"pse__Approved__c": true, "pse__Assignment__r": {"pse__Role__c": null}},
  "pse__Resource__r": {"pse__Resource_Role__c": "Engagement Manager"}},
 {"Id": "a0T000000000004AAA", "pse__Project__c": "a0P000000000001AAA", "pse__Start_Date__c": "2026-02-02",
  "pse__Total_Hours__c": 8, "pse__Billable__c": true, "CurrencyIsoCode": "USD",
  "pse__Timecard_Header__r": {"pse__Approved__c": true, "pse__Assignment__r": null},
  "pse__Resource__r": {"pse__Resource_Role__c": "  "}}
]}"""


def test_a_splits_role_is_its_assignments_else_its_resources() -> None:
    splits = decode_batch(CertiniaTimecardSplit, ROLED_SPLITS).records
    roles = [billable_time(split).role for split in splits]
    assert roles == ["Senior Consultant", "Business Analyst", "Engagement Manager", None]
    assert [time_entry_from_record(split).role for split in splits] == roles


@pytest.mark.parametrize(
    ("stage", "active", "status"),
    [
        ("Planned", True, ProjectStatus.PLANNED),
        ("In Progress", True, ProjectStatus.ACTIVE),
        ("Completed", False, ProjectStatus.COMPLETED),
        ("Canceled", False, ProjectStatus.CLOSED),
        ("In Progress", False, ProjectStatus.CLOSED),
        ("Some org stage", True, ProjectStatus.ACTIVE),
    ],
)
def test_project_status_from_stage_and_activity(stage: str, active: bool, status: ProjectStatus) -> None:
    record = CertiniaProject(id="a0P1", name="p", stage=stage, is_active=active)
    assert project_status(record) is status


def _event(**fields: object) -> CertiniaBillingEvent:
    base: dict[str, object] = {"id": "a0V1", "project_id": "a0P1", "currency": "USD", "status": "Issued"}
    return CertiniaBillingEvent(**{**base, **fields})  # type: ignore[arg-type]


def _item(n: int, amount: str, **fields: str) -> CertiniaBillingEventItem:
    return CertiniaBillingEventItem(id=f"a0W{n}", billing_event_id="a0V1", amount=Decimal(amount), **fields)


def test_a_billing_event_is_an_invoice_paid_once_its_items_are_covered() -> None:
    items = [
        _item(1, "1200.00", timecard_split_id="a0T1"),
        _item(2, "310.25", expense_id="a0U1"),
        _item(3, "5000.50", milestone_id="a0Q1"),
    ]
    open_ = invoice_from_records(_event(paid_amount=Decimal("1000.00")), items)
    assert open_.status is PsaInvoiceStatus.OPEN  # a partial payment leaves it open
    assert open_.total.amount == Decimal("6510.75")
    assert (open_.time_entry_ids, open_.expense_ids, open_.milestone_ids) == (["a0T1"], ["a0U1"], ["a0Q1"])
    assert invoice_from_records(_event(paid_amount=Decimal("6510.75")), items).status is PsaInvoiceStatus.PAID
    assert invoice_from_records(_event(status="Draft"), items).status is PsaInvoiceStatus.DRAFT
    assert invoice_from_records(_event(status="Cancelled"), items).status is PsaInvoiceStatus.CANCELLED


def test_payment_ids_are_one_per_line() -> None:
    assert payment_ids(_event(payment_ids="PAY-1\r\nPAY-2\n\n")) == ["PAY-1", "PAY-2"]
    assert payment_ids(_event()) == []


def test_a_child_key_fits_the_external_id_field() -> None:
    assert child_key("a0PDn0000000001AAA", "milestone:1") == "a0PDn0000000001AAA:milestone:1"
    long = child_key("a0PDn0000000001AAA", "k" * 80)
    assert len(long) <= 80
    assert long == child_key("a0PDn0000000001AAA", "k" * 80)
    assert long != child_key("a0PDn0000000001AAA", "k" * 79 + "j")


def test_milestone_status_reads_approval() -> None:
    from system_apis.psa.certinia_mapping import CertiniaMilestone, milestone_status

    def status(value: str, approved: bool = False) -> MilestoneStatus:
        return milestone_status(
            CertiniaMilestone(id="a0Q1", name="m", project_id="a0P1", status=value, approved=approved)
        )

    assert status("Approved") is MilestoneStatus.COMPLETED
    assert status("Planned", approved=True) is MilestoneStatus.COMPLETED
    assert status("Open") is MilestoneStatus.IN_PROGRESS
    assert status("Planned") is MilestoneStatus.NOT_STARTED


def test_whole_hours_are_written_without_an_exponent() -> None:
    # JSON's 40.0 decoded exactly is Decimal("40.0"); normalising it would print "4E+1".
    split = CertiniaTimecardSplit(
        id="a0T1", project_id="a0P1", start_date="2026-02-02", hours=Decimal("40.0")
    )
    assert str(time_entry_from_record(split).hours) == "40.00"
    assert str(billable_time(split).quantity) == "40.00"
