"""The billing end-to-end fleet (issue 11): `stratum serve` (HTTP and the vendor sandboxes, no workflows of
its own) and two `stratum worker` processes sharing runs through a private PostgreSQL database, gateway state
and events through a real Redis. Work is entered as the people who do it would: deals through the Salesforce
sandbox's REST API, time and expenses through the Kantata sandbox's API (approved through its admin routes,
approval being a person's act in Kantata's web app), and every "exactly one" is read from the sandboxes' own
stores (``/sandboxes/{vendor}/__sandbox/records/...``).

Shared by tests/e2e/test_billing.py (overlapping runs, a killed worker, payments) and
tests/e2e/test_billing_models.py (billing models in two ERPs, faults, late approval, rate fix, cancel).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from sandboxes.kantata.data import DEMO_USER_ID
from sandboxes.netsuite import DEV_CERTIFICATE_ID, DEV_CLIENT_ID, dev_private_key_pem
from system_apis.erp.netsuite_auth import ASSERTION_TYPE, NetSuiteClientAssertionAuth
from tests.e2e import harness

__all__ = [
    "BILLING",
    "EARLIER",
    "FINAL",
    "PERIOD",
    "ROLE",
    "ROLE_NAME",
    "WAIT",
    "Fleet",
    "day",
    "month_before",
]

WAIT = 60
BILLING = "/process/v1/billing-runs"
# The role the team books time as: Kantata names it by id on a time entry, the deal's rate card by name.
ROLE = "4202"
ROLE_NAME = "Project Manager"
KANTATA_AUTH = {"Authorization": "Bearer stratum-kantata-sandbox-token"}
SALESFORCE = "/sandboxes/salesforce"
SALESFORCE_API = f"{SALESFORCE}/services/data/v61.0"
# A run's states after which nothing happens without a person (``exception`` waits for a replay).
FINAL = ("completed", "failed", "cancelled", "exception", "dead_letter")


def month_before(period: str) -> str:
    first = dt.date.fromisoformat(period + "-01")
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


def day(period: str, number: int) -> str:
    return f"{period}-{number:02d}"


PERIOD = month_before(dt.datetime.now(dt.UTC).strftime("%Y-%m"))  # over: a run refuses the current month
EARLIER = month_before(PERIOD)


class Fleet(harness.Fleet):
    """One gateway serving HTTP and the sandboxes, two workers running the billing workflows."""

    def __init__(self, tmp: Path, database: str, redis_url: str, **env: str) -> None:
        super().__init__(
            tmp,
            database,
            redis_url,
            wait=WAIT,
            STRATUM_WORKFLOWS__STEP_MAX_ATTEMPTS="6",
            STRATUM_ERP_VENDOR="netsuite",
            **env,
        )

    # -- process tier ----------------------------------------------------------------------------------

    def activate(self, opportunity_id: str) -> str:
        """The won deal activated (the PSA project, the ERP customer and project): its PSA project id."""
        response = self.post(
            "/process/v1/project-activations", {"opportunity_id": opportunity_id}, Prefer=f"wait={WAIT}"
        )
        run = response.json()
        assert run["state"] == "completed", json.dumps(run, indent=1)
        project: str = run["result"]["psa_project_id"]
        return project

    def start(self, legal_entity: str, period: str, project_ids: list[str]) -> str:
        """A billing run started (202): its id."""
        body = {"legal_entity": legal_entity, "period": period, "project_ids": project_ids}
        response = self.post(BILLING, body)
        assert response.status_code == 202, response.text
        run_id: str = response.json()["run"]["id"]
        return run_id

    def bill(self, project_id: str, period: str = PERIOD, legal_entity: str = "US01") -> str:
        return self.start(legal_entity, period, [project_id])

    def view(self, run_id: str) -> dict[str, Any]:
        response = self.http.get(f"{BILLING}/{run_id}")
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view

    def until(self, run_id: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The billing run's view once ``check`` holds for it (polled, never a fixed sleep)."""
        deadline = time.monotonic() + WAIT
        while True:
            view = self.view(run_id)
            if check(view):
                return view
            assert time.monotonic() < deadline, json.dumps(view, indent=1)
            time.sleep(0.2)

    def settled(self, run_id: str, *child_ids: str) -> dict[str, dict[str, Any]]:
        """The project runs ``child_ids`` of the billing run once each is in a state a person acts on or
        that is final (completed, exception...): by id."""

        def check(view: dict[str, Any]) -> bool:
            runs = {r["id"]: r for r in view["projects"]}
            return all(c in runs and runs[c]["state"] in FINAL for c in child_ids)

        view = self.until(run_id, check)
        return {r["id"]: r for r in view["projects"]}

    def billed(self, run_id: str, project_id: str, period: str = PERIOD) -> dict[str, Any]:
        """The billing run once done, and its project run (``bill-{project}-{period}``)."""
        view = self.until(run_id, lambda v: v["run"]["state"] in FINAL)
        assert view["run"]["state"] == "completed", json.dumps(view, indent=1)
        (child,) = [r for r in view["projects"] if r["id"] == f"bill-{project_id}-{period}"]
        assert child["state"] == "completed", json.dumps(child, indent=1)
        return dict(child)

    def erp_invoice(self, invoice_id: str) -> dict[str, Any]:
        response = self.http.get(f"/system/v1/erp/invoices/{invoice_id}")
        assert response.status_code == 200, response.text
        invoice: dict[str, Any] = response.json()
        return invoice

    def billable(self, project_id: str, through: str) -> list[dict[str, Any]]:
        """The project's billable items in the PSA, as the system tier lists them (every page)."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {
                "through": through,
                "limit": 200,
                **({"cursor": cursor} if cursor else {}),
            }
            response = self.http.get(f"/system/v1/psa/projects/{project_id}/billable-items", params=params)
            assert response.status_code == 200, response.text
            items.extend(response.json()["items"])
            cursor = response.json().get("next_cursor")
            if not cursor:
                return items

    # -- the vendors, as they are --------------------------------------------------------------------------

    def records(self, vendor: str, record_type: str, **where: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/sandboxes/{vendor}/__sandbox/records/{record_type}", params=where)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def fault(self, vendor: str, **rule: Any) -> None:
        response = self.http.post(f"/sandboxes/{vendor}/__sandbox/faults", json=rule)
        assert response.status_code == 201, response.text

    def faults(self, vendor: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.http.get(f"/sandboxes/{vendor}/__sandbox/faults").json()["faults"]
        return found

    def clear_faults(self, vendor: str) -> None:
        assert self.http.delete(f"/sandboxes/{vendor}/__sandbox/faults").status_code == 204

    def _kantata(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.request(
            method, f"/sandboxes/kantata/api/v1{path}", json=body, headers=KANTATA_AUTH
        )
        assert response.status_code == 200, response.text
        payload: dict[str, Any] = response.json()
        return payload

    @staticmethod
    def _kantata_records(body: dict[str, Any]) -> list[dict[str, Any]]:
        return [body[ref["key"]][str(ref["id"])] for ref in body["results"]]

    def book_time(
        self,
        project_id: str,
        day_number: int,
        minutes: int,
        *,
        period: str = PERIOD,
        role: str = ROLE,
        approve: bool = True,
    ) -> str:
        """A time entry booked as ``role`` through Kantata's API (``POST /time_entries.json``), then
        approved (the sandbox's approval) unless ``approve`` is False."""
        body = {
            "time_entry": {
                "workspace_id": project_id,
                "date_performed": day(period, day_number),
                "time_in_minutes": minutes,
                "user_id": DEMO_USER_ID,
                "role_id": role,
                "billable": True,
            }
        }
        entry_id = str(self._kantata_records(self._kantata("POST", "/time_entries.json", body))[0]["id"])
        if approve:
            self.approve_time([entry_id])
        return entry_id

    def approve_time(self, entry_ids: list[str]) -> None:
        approved = self.http.post(
            "/sandboxes/kantata/__sandbox/time_entries/approve", json={"time_entry_ids": entry_ids}
        )
        assert approved.status_code == 200, approved.text

    def expense(
        self, project_id: str, day_number: int, cents: int, currency: str, *, period: str = PERIOD
    ) -> str:
        """A billable expense entered through Kantata's API (``POST /expenses.json``, amount in cents), then
        approved as its expense report's approver would."""
        body = {
            "expense": {
                "workspace_id": project_id,
                "date": day(period, day_number),
                "category": "Travel",
                "amount_in_cents": cents,
                "currency": currency,
                "user_id": DEMO_USER_ID,
                "is_billable": True,
            }
        }
        expense_id = str(self._kantata_records(self._kantata("POST", "/expenses.json", body))[0]["id"])
        approved = self.http.post(
            "/sandboxes/kantata/__sandbox/expenses/approve", json={"expense_ids": [expense_id]}
        )
        assert approved.status_code == 200, approved.text
        return expense_id

    def complete_milestones(self, project_id: str, count: int, *, period: str = PERIOD) -> list[str]:
        """The project's first ``count`` milestones (Kantata stories of type milestone) completed in
        ``period`` (their due date is the day they bill on)."""
        found = self._kantata("GET", f"/stories.json?workspace_id={project_id}&story_type=milestone")
        stories = sorted(self._kantata_records(found), key=lambda s: int(s["id"]))[:count]
        for story in stories:
            assert story["billable"], story  # activation made it billable
            done = {"state": "completed", "due_date": day(period, 20)}
            self._kantata("PUT", f"/stories/{story['id']}.json", {"story": done})
        return [str(s["id"]) for s in stories]

    def _salesforce(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """Salesforce REST as sales operations' tools call it (OAuth client credentials, then the API)."""
        token = self.http.post(
            f"{SALESFORCE}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "stratum-sandbox",
                "client_secret": "stratum-sandbox-secret",
            },
        ).json()["access_token"]
        return self.http.request(
            method, f"{SALESFORCE_API}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        )

    def add_rate(self, opportunity_id: str, rate: str, role: str = ROLE_NAME, unit: str = "Hour") -> None:
        """Sales operations add the role's rate to the deal's rate card (Salesforce REST API)."""
        response = self._salesforce(
            "POST",
            "/sobjects/Rate_Card_Line__c",
            {"Opportunity__c": opportunity_id, "Role__c": role, "Rate__c": float(rate), "Unit__c": unit},
        )
        assert response.status_code == 201, response.text

    def new_deal(self, name: str, *, account_id: str, legal_entity: str, currency: str, amount: str) -> str:
        """A won time-and-materials deal made by sales through Salesforce REST (``POST
        /sobjects/Opportunity`` -> 201 ``{"id", "success", "errors"}``, as developer.salesforce.com's REST API
        guide, "Create a Record", documents): its id. The demo data has one won deal per billing model, and
        a deal activates once: a test that needs a project of its own makes its own deal."""
        response = self._salesforce(
            "POST",
            "/sobjects/Opportunity",
            {
                "Name": name,
                "AccountId": account_id,
                "StageName": "Closed Won",
                "CloseDate": day(EARLIER, 1),
                "Amount": float(amount),
                "CurrencyIsoCode": currency,
                "Billing_Model__c": "Time and Materials",
                "Legal_Entity__c": legal_entity,
                "Payment_Terms_Days__c": 30,
            },
        )
        assert response.status_code == 201, response.text
        opportunity_id: str = response.json()["id"]
        return opportunity_id

    def opportunity(self, opportunity_id: str) -> dict[str, Any]:
        (record,) = self.records("salesforce", "Opportunity", Id=opportunity_id)
        return record

    def erp_invoices(self, key: str) -> list[dict[str, Any]]:
        """NetSuite's invoices under the billing key (its ``externalId``)."""
        return self.records("netsuite", "invoice", externalId=key)

    def psa_invoices(self, project_id: str) -> list[dict[str, Any]]:
        return [
            i
            for i in self.records("kantata", "invoices")
            if str(project_id) in [str(w) for w in i.get("workspace_ids", [i.get("workspace_id")])]
        ]

    def invoiced(self, entry_ids: list[str], record_type: str = "time_entries") -> dict[str, bool]:
        """Kantata's ``is_invoiced`` of each time entry (or expense, ``record_type="expenses"``)."""
        entries = {str(e["id"]): e for e in self.records("kantata", record_type)}
        return {e: bool(entries[e]["is_invoiced"]) for e in entry_ids}

    def crm_statuses(self, erp_invoice_id: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.records("salesforce", "Stratum_Invoice__c")
            if r.get("ERP_Invoice_Id__c") == erp_invoice_id
        ]

    def netsuite_payment(self, invoice_id: str, customer_id: str, amount: str) -> None:
        """Finance enters a customer payment in NetSuite (REST record API: customerPayment with apply),
        signed in as the integration is (client credentials with a JWT client assertion)."""
        rest = f"{self.server.base}/sandboxes/netsuite/services/rest"
        token_url = f"{rest}/auth/oauth2/v1/token"
        assertion = NetSuiteClientAssertionAuth(
            token_url=token_url,
            client_id=DEV_CLIENT_ID,
            certificate_id=DEV_CERTIFICATE_ID,
            private_key_pem=dev_private_key_pem(),
        ).client_assertion()
        token = httpx.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
        )
        assert token.status_code == 200, token.text
        response = httpx.post(
            f"{rest}/record/v1/customerPayment",
            json={
                "customer": {"id": customer_id},
                "payment": float(amount),  # the vendor's JSON: a number
                "apply": {"items": [{"doc": {"id": invoice_id}, "apply": True, "amount": float(amount)}]},
            },
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        assert response.status_code == 204, response.text

    def sync_invoice_status(self) -> dict[str, Any]:
        response = self.post("/process/v1/invoice-status-syncs", {}, Prefer=f"wait={WAIT}")
        assert response.status_code == 202, response.text
        run: dict[str, Any] = response.json()
        assert run["state"] == "completed", json.dumps(run, indent=1)
        return run

    def psa_payment_notes(self, psa_invoice_id: str) -> list[str]:
        """The partial payments noted on the PSA invoice (external references to the ERP payment)."""
        return sorted(
            str(r["service_model_ref"])
            for r in self.records("kantata", "external_references")
            if r.get("service_model") == "Payment" and str(r.get("subject_id")) == psa_invoice_id
        )

    def psa_paid_in_full(self, psa_invoice_id: str) -> int:
        payments = self.records("kantata", "external_payments")
        return len([p for p in payments if str(p.get("invoice_id")) == psa_invoice_id])

    def events(self, type_: str, subject: str) -> list[dict[str, Any]]:
        found, cursor = [], None
        while True:
            params: dict[str, Any] = {"type": type_, "limit": 500, **({"cursor": cursor} if cursor else {})}
            page = self.http.get("/process/v1/events", params=params).json()
            found += [e for e in page["items"] if e["subject"] == subject]
            if not page["items"]:
                return found
            cursor = page["next_cursor"]

    def assert_billed_once(
        self, project_id: str, result: dict[str, Any], period: str = PERIOD
    ) -> Counter[str]:
        """One NetSuite invoice and one PSA invoice for the project and period, each item on one line: the
        invoice's source ids (counted)."""
        key = f"bill:{project_id}:{period}"
        assert result["billing_key"] == key
        assert len(self.erp_invoices(key)) == 1, self.erp_invoices(key)
        psa = self.psa_invoices(project_id)
        assert [str(i["id"]) for i in psa] == [str(result["psa_invoice_id"])], psa
        invoice = self.erp_invoice(result["erp_invoice_id"])
        assert invoice["external_key"] == key
        # The lines are net and add up to the subtotal; the total adds the tax (none in the NetSuite
        # sandbox); the run reports all three as the ERP has them.
        net, tax = Decimal(invoice["subtotal"]["amount"]), Decimal(invoice["tax"]["amount"])
        assert net == sum(Decimal(line["amount"]) for line in invoice["lines"]) == Decimal(result["net"])
        assert tax == Decimal(result["tax"])
        assert Decimal(invoice["total"]["amount"]) == net + tax == Decimal(result["total"])
        traced = Counter(s for line in invoice["lines"] for s in line.get("source_ids", []))
        assert all(count == 1 for count in traced.values()), traced
        assert len(self.crm_statuses(result["erp_invoice_id"])) == 1
        return traced
