"""The Adaptive Planning sandbox on the wire: the XML API's envelope, methods and errors.

Sources, from the Adaptive Knowledge Center (knowledge.adaptiveplanning.com, Integration > Managing Data
Integration > API Documentation): "Adaptive REST API" (one endpoint per version, ``/api/v{NN}``; stateless
calls), "Request and Response Message Formats" (``<call method callerName>``, callerName required;
``<response success>`` with ``<messages>`` and ``<output>``), "exportVersions", "importCubeData" (the
``importDataOptions``/``version``/``rowData`` request, pipe-separated, ``MM/YYYY`` columns) and
"exportConfigurableModelData" (``filters``/``timeSpan``); and a public client's ``exportData`` call
(``filters`` ``accounts``/``levels``/``timeSpan``, ``dimensions``, ``rules`` ``currency``; the CSV read from
``<output>``'s text).
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import httpx
import pytest

from sandboxes.adaptive import DEV_LOGIN, DEV_PASSWORD, create_adaptive_sandbox
from sandboxes.adaptive.data import DEMO_PROJECT_ID

XML = {"Content-Type": "text/xml"}
_LOCAL = '<currency useLocal="true"/>'


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_adaptive_sandbox()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://adaptive.test"
    ) as c:
        yield c


def _call(
    method: str,
    body: str = "",
    *,
    password: str = DEV_PASSWORD,
    caller: str = "stratum-tests",
    extra: str = "",
) -> str:
    caller_attr = f' callerName="{caller}"' if caller is not None else ""
    return (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f'<call method="{method}"{caller_attr}>'
        f'<credentials login="{DEV_LOGIN}" password="{password}"{extra}/>'
        f"{body}</call>"
    )


async def _post(
    http: httpx.AsyncClient, document: str, version: str = "v40"
) -> tuple[httpx.Response, ET.Element]:
    response = await http.post(f"/api/{version}", content=document.encode(), headers=XML)
    return response, ET.fromstring(response.content)


def _messages(root: ET.Element) -> list[tuple[str, str]]:
    return [(m.get("key") or "", m.text or "") for m in root.iterfind("messages/message")]


def _import(version: str, header: str, *rows: str, plan_or_actuals: str = "Plan") -> str:
    body = (
        f'<importDataOptions planOrActuals="{plan_or_actuals}" allowParallel="false" moveBPtr="false"/>'
        f'<version name="{version}" isDefault="false"/>'
        f"<rowData><header>{header}</header>"
        f"<rows>{''.join(f'<row>{row}</row>' for row in rows)}</rows></rowData>"
    )
    return _call("importStandardData", body)


def _export(version: str, *, level: str = "Professional Services", span: str = "", currency: str = "") -> str:
    body = (
        f'<version name="{version}" isDefault="false"/>'
        '<format useInternalCodes="true" includeUnmappedItems="false"/>'
        '<filters><accounts><account code="ServicesRevenue" isAssumption="false" includeDescendants="false"/>'
        "</accounts>"
        f'<levels><level name="{level}" isRollup="false" includeDescendants="false"/></levels>'
        f"{span}</filters>"
        '<dimensions><dimension name="Project"/></dimensions>'
        f'<rules includeZeroRows="false">{currency or _LOCAL}</rules>'
    )
    return _call("exportData", body)


def _csv(root: ET.Element) -> list[dict[str, str]]:
    output = root.find("output")
    assert output is not None
    return list(csv.DictReader(io.StringIO(output.text or "")))


# --- the envelope ("Request and Response Message Formats") ----------------------------------------------


async def test_every_answer_is_a_response_envelope_with_success(http: httpx.AsyncClient) -> None:
    response, root = await _post(http, _call("exportVersions"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert root.tag == "response"
    assert root.get("success") == "true"
    versions = {v.get("name"): v.get("type") for v in root.iterfind("output/versions/version")}
    assert versions == {"Actuals": "ACTUALS", "Working Budget": "PLANNING", "Budget 2026": "PLANNING"}


@pytest.mark.parametrize(
    ("document", "key"),
    [
        (_call("exportVersions", password="wrong"), "error-authentication-failure"),
        (_call("exportVersions", extra=' instanceCode="OTHER"'), "error-invalid-instance"),
        (_call("exportEverything"), "error-invalid-method"),
        (_call("exportVersions", caller=""), "error-missing-caller-name"),
        ("<call method='exportVersions'", "error-malformed-request"),
        (
            '<!DOCTYPE call [<!ENTITY x "y">]><call method="exportVersions" callerName="a">&x;</call>',
            "error-malformed-request",
        ),
    ],
    ids=["bad-credentials", "wrong-instance", "unknown-method", "no-callerName", "malformed", "doctype"],
)
async def test_a_failed_call_is_http_200_with_success_false_and_a_message(
    http: httpx.AsyncClient, document: str, key: str
) -> None:
    response, root = await _post(http, document)
    assert response.status_code == 200
    assert root.get("success") == "false"
    assert [k for k, _ in _messages(root)] == [key]
    assert root.find("output") is None


async def test_the_password_is_not_echoed_in_a_refusal(http: httpx.AsyncClient) -> None:
    response, _ = await _post(http, _call("exportVersions", password="s3cret-wrong"))
    assert b"s3cret-wrong" not in response.content


# --- versions of the API ("Adaptive REST API": a version is supported a year after its successor) ---------


async def test_the_current_version_and_the_previous_years_are_served(http: httpx.AsyncClient) -> None:
    for version in ("v38", "v39", "v40"):
        _, root = await _post(http, _call("exportVersions"), version)
        assert root.get("success") == "true", version
    _, root = await _post(http, _call("exportVersions"), "v99")
    assert root.get("success") == "false"
    assert _messages(root)[0][0] == "error-invalid-api-version"
    assert (
        await http.post("/api/latest", content=_call("exportVersions").encode(), headers=XML)
    ).status_code == 404


async def test_a_body_that_is_not_xml_is_415(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v40", content=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 415


# --- metadata -------------------------------------------------------------------------------------------


async def test_levels_carry_their_currency_and_accounts_nest(http: httpx.AsyncClient) -> None:
    _, levels = await _post(http, _call("exportLevels"))
    currencies = {level.get("name"): level.get("currency") for level in levels.iter("level")}
    assert currencies == {
        "Company": "USD",
        "Professional Services": "USD",
        "Services UK": "GBP",
        "Services DE": "EUR",
    }
    _, accounts = await _post(http, _call("exportAccounts"))
    revenue = next(a for a in accounts.iter("account") if a.get("code") == "Revenue")
    assert [child.get("code") for child in revenue] == ["ServicesRevenue", "LicenceRevenue"]
    _, dimensions = await _post(http, _call("exportDimensions"))
    project = dimensions.find("output/dimensions/dimension")
    assert project is not None
    assert project.get("name") == "Project"
    assert [value.get("name") for value in project] == [DEMO_PROJECT_ID]


# --- importStandardData (the importCubeData request shape) and exportData ---------------------------------


async def test_an_import_overwrites_cells_so_repeating_it_is_harmless(http: httpx.AsyncClient) -> None:
    document = _import(
        "Working Budget",
        "Account|Level|Project|01/2027|02/2027",
        "ServicesRevenue|Professional Services|P-1|100.50|200",
    )
    for _ in range(2):
        _, root = await _post(http, document)
        assert root.get("success") == "true"
        assert _messages(root)[0][0] == "import-success"
    _, exported = await _post(
        http, _export("Working Budget", span='<timeSpan start="01/2027" end="03/2027"/>')
    )
    assert _csv(exported) == [
        {
            "Account Name": "Services Revenue",
            "Account Code": "ServicesRevenue",
            "Level Name": "Professional Services",
            "Project": "P-1",
            "01/2027": "100.50",
            "02/2027": "200.00",
            "03/2027": "0.00",
        }
    ]
    _, dimensions = await _post(http, _call("exportDimensions"))
    assert "P-1" in [value.get("name") for value in dimensions.iter("dimensionValue")]


async def test_a_refused_cell_is_reported_and_the_rest_imported(http: httpx.AsyncClient) -> None:
    document = _import(
        "Working Budget",
        "Account|Level|Project|01/2027|01/2041|02/2027",
        "ServicesRevenue|Professional Services|P-2|10|20|abc",
        "NoSuchAccount|Professional Services|P-2|10|20|30",
    )
    _, root = await _post(http, document)
    assert root.get("success") == "true"
    assert _messages(root)[1:] == [
        ("import-cell-error", "Row 1, 01/2041: time period not found"),
        ("import-cell-error", "Row 1, 02/2027: invalid number 'abc'"),
        ("import-row-error", "Row 2: Account not found or not importable: NoSuchAccount"),
    ]
    nothing = _import(
        "Working Budget", "Account|Level|Project|01/2041", "ServicesRevenue|Professional Services|P-3|5"
    )
    _, refused = await _post(http, nothing)
    assert refused.get("success") == "false"


@pytest.mark.parametrize(
    ("version", "plan_or_actuals", "key"),
    [
        ("Actuals", "Plan", "error-invalid-version"),
        ("Working Budget", "Actuals", "error-invalid-version"),
        ("Budget 2026", "Plan", "error-version-locked"),
        ("No Such Version", "Plan", "error-invalid-version"),
    ],
)
async def test_an_import_into_the_wrong_version_is_refused(
    http: httpx.AsyncClient, version: str, plan_or_actuals: str, key: str
) -> None:
    document = _import(
        version,
        "Account|Level|Project|01/2027",
        "ServicesRevenue|Professional Services|P-4|1",
        plan_or_actuals=plan_or_actuals,
    )
    _, root = await _post(http, document)
    assert root.get("success") == "false"
    assert _messages(root)[0][0] == key


async def test_export_data_answers_csv_in_the_level_or_corporate_currency(http: httpx.AsyncClient) -> None:
    document = _import(
        "Working Budget", "Account|Level|Project|01/2027", "ServicesRevenue|Services UK|P-5|100.00"
    )
    assert (await _post(http, document))[1].get("success") == "true"
    span = '<timeSpan start="01/2027" end="01/2027"/>'
    response, local = await _post(http, _export("Working Budget", level="Services UK", span=span))
    assert b"<output><![CDATA[Account Name," in response.content
    assert [row["01/2027"] for row in _csv(local)] == ["100.00"]
    corporate = '<currency useCorporate="true" useLocal="false"/>'
    _, converted = await _post(
        http, _export("Working Budget", level="Services UK", span=span, currency=corporate)
    )
    assert [row["01/2027"] for row in _csv(converted)] == ["125.00"]  # GBP at the seeded 1.25


@pytest.mark.parametrize(
    ("export", "key"),
    [
        (_export("No Such Version"), "error-invalid-version"),
        (_export("Working Budget", level="No Such Level"), "error-invalid-level"),
        (
            _export("Working Budget", span='<timeSpan start="13/2026" end="01/2027"/>'),
            "error-invalid-time-span",
        ),
    ],
)
async def test_an_export_naming_something_unknown_is_refused(
    http: httpx.AsyncClient, export: str, key: str
) -> None:
    _, root = await _post(http, export)
    assert root.get("success") == "false"
    assert _messages(root)[0][0] == key


async def test_the_seeded_project_has_a_plan_and_actuals(http: httpx.AsyncClient) -> None:
    span = '<timeSpan start="01/2026" end="04/2026"/>'
    _, plan = await _post(http, _export("Working Budget", span=span))
    _, actuals = await _post(http, _export("Actuals", span=span))
    assert [row["01/2026"] for row in _csv(plan)] == ["40000.00"]
    assert [(row["03/2026"], row["04/2026"]) for row in _csv(actuals)] == [("49875.25", "0.00")]


# --- the sandbox's own routes ---------------------------------------------------------------------------


async def test_faults_and_records_like_every_sandbox(http: httpx.AsyncClient) -> None:
    rule = {"kind": "error", "status": 503, "path_pattern": "^/api/"}
    assert (await http.post("/__sandbox/faults", json=rule)).status_code == 201
    assert (
        await http.post("/api/v40", content=_call("exportVersions").encode(), headers=XML)
    ).status_code == 503
    assert (await http.delete("/__sandbox/faults")).status_code in (200, 204)
    records = await http.get(
        "/__sandbox/records/cells", params={"project": DEMO_PROJECT_ID, "version": "Actuals"}
    )
    assert records.json()["count"] == 3
    assert (await http.post("/__sandbox/reset")).status_code == 204
