"""The seed of the Anaplan sandbox: workspaces, models, the revenue model's actions and its revenue cells.

The tenant holds two workspaces and three models, so the lists page:

==========================  ======================================================================
constant                    what it is
==========================  ======================================================================
``WORKSPACE_ID``            "Stratum FP&A" (active), holds ``REVENUE_MODEL_ID`` and ``HEADCOUNT_MODEL_ID``
``ARCHIVE_WORKSPACE_ID``    "Stratum Archive" (inactive), holds ``ARCHIVED_MODEL_ID``
``REVENUE_MODEL_ID``        "Revenue Planning": the model the FP&A adapter loads and reads
``HEADCOUNT_MODEL_ID``      "Headcount Planning": no actions (an empty model, for listings)
``ARCHIVED_MODEL_ID``       "Revenue Planning FY24" (``activeState`` ARCHIVED)
``BASELINE_FILE_ID``        113000000000 "revenue_baseline.csv", the source of ``BASELINE_IMPORT_ID``
``ACTUALS_FILE_ID``         113000000001 "revenue_actuals.csv", the source of ``ACTUALS_IMPORT_ID``
``BASELINE_IMPORT_ID``      112000000000 "Import Revenue Baseline"
``ACTUALS_IMPORT_ID``       112000000001 "Import Revenue Actuals"
``FORECAST_EXPORT_ID``      116000000000 "Export Forecast" (its output file has the same id)
``DEMO_PROJECT_ID``         "3001": the NetSuite sandbox's demo project, USD, a 12-month 2026 baseline
                            with actuals for January to March
==========================  ======================================================================

Ids follow Anaplan's id spaces (files 113..., imports 112..., exports 116..., actions 117..., processes
118...), which clients such as anaplan-sdk use to tell an action's kind from its id.

The revenue module ("REV01 Revenue") is a store of cells keyed by project, version (``baseline`` or
``actual``) and month, each holding a currency, a decimal amount (kept as its exact string) and an optional
reference text. The model's timescale runs from `TIMESCALE_START` to `TIMESCALE_END`; rows for months
outside it fail, as rows for periods outside a model's timescale do in Anaplan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACTUALS_FILE_ID",
    "ACTUALS_IMPORT_ID",
    "ARCHIVED_MODEL_ID",
    "ARCHIVE_WORKSPACE_ID",
    "BASELINE_FILE_ID",
    "BASELINE_IMPORT_ID",
    "DEMO_PROJECT_ID",
    "DEV_PASSWORD",
    "DEV_USER",
    "DEV_USER_GUID",
    "FORECAST_COLUMNS",
    "FORECAST_EXPORT_ID",
    "HEADCOUNT_MODEL_ID",
    "IMPORT_COLUMNS",
    "MODULE_NAME",
    "REVENUE_MODEL_ID",
    "TIMESCALE_END",
    "TIMESCALE_START",
    "VERSIONS",
    "WORKSPACE_ID",
    "Cell",
    "CellKey",
    "ExportColumn",
    "ExportSpec",
    "FileSpec",
    "ImportSpec",
    "ModelSpec",
    "WorkspaceSpec",
    "seed_cells",
    "seed_models",
    "seed_workspaces",
]

DEV_USER = "integration@stratum.example"
"""The development user every sandbox accepts with `DEV_PASSWORD` (Basic authentication)."""
DEV_PASSWORD = "stratum-anaplan-sandbox"
DEV_USER_GUID = "8a868cd985f53e7701860542f59e0001"

WORKSPACE_ID = "8a868cd985f53e7701860542f59e276e"
ARCHIVE_WORKSPACE_ID = "8a868cd985f53e7701860542f59e2770"
REVENUE_MODEL_ID = "7F1CB4D6F8A24B0C9E5D3A2B1C0D9E8F"
HEADCOUNT_MODEL_ID = "2B7D0E4C1A9F4E3D8C6B5A4F3E2D1C0B"
ARCHIVED_MODEL_ID = "C0FFEE00BADC4A5E9D8C7B6A5F4E3D2C"

BASELINE_FILE_ID = "113000000000"
ACTUALS_FILE_ID = "113000000001"
BASELINE_IMPORT_ID = "112000000000"
ACTUALS_IMPORT_ID = "112000000001"
FORECAST_EXPORT_ID = "116000000000"

MODULE_NAME = "REV01 Revenue"
VERSIONS = ("baseline", "actual")
IMPORT_COLUMNS = ("project", "month", "currency", "version", "amount")
"""The columns both imports map (header names, any order); an optional ``reference`` column is kept too."""
TIMESCALE_START = "2020-01"
TIMESCALE_END = "2030-12"

DEMO_PROJECT_ID = "3001"

CellKey = tuple[str, str, str]
"""(project, version, month)"""


@dataclass(slots=True)
class Cell:
    currency: str
    amount: str
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class WorkspaceSpec:
    id: str
    name: str
    active: bool
    size_allowance: int
    current_size: int


@dataclass(frozen=True, slots=True)
class FileSpec:
    id: str
    name: str
    format: str = "txt"
    delimiter: str = '"'
    encoding: str = "UTF-8"
    separator: str = ","
    header_row: int = 1
    first_data_row: int = 2


@dataclass(frozen=True, slots=True)
class ImportSpec:
    id: str
    name: str
    file_id: str
    import_type: str = "MODULE_DATA"


@dataclass(frozen=True, slots=True)
class ExportColumn:
    """One column an export writes: its header, Anaplan's data type of it and, for a list, the list's name."""

    header: str
    data_type: str  # NUMBER, ENTITY (a list item), TIME_ENTITY, TEXT, ...
    list_name: str = ""


FORECAST_COLUMNS = (
    ExportColumn("project", "ENTITY", "Projects"),
    ExportColumn("month", "TIME_ENTITY"),
    ExportColumn("currency", "TEXT"),
    ExportColumn("amount", "NUMBER"),
    ExportColumn("source", "TEXT"),
)
"""The columns of "Export Forecast", in file order: what it writes and what its metadata describes."""


@dataclass(frozen=True, slots=True)
class ExportSpec:
    id: str
    name: str
    columns: tuple[ExportColumn, ...] = FORECAST_COLUMNS
    export_type: str = "TABULAR_MULTI_COLUMN"
    export_format: str = "text/csv"
    encoding: str = "UTF-8"
    separator: str = ","
    delimiter: str = '"'


@dataclass(frozen=True, slots=True)
class ModelSpec:
    id: str
    name: str
    workspace_id: str
    active_state: str
    created: str
    last_modified: str
    memory_usage: int
    files: tuple[FileSpec, ...] = ()
    imports: tuple[ImportSpec, ...] = ()
    exports: tuple[ExportSpec, ...] = ()
    category_values: tuple[dict[str, Any], ...] = field(default=())


def seed_workspaces() -> list[WorkspaceSpec]:
    return [
        WorkspaceSpec(
            id=WORKSPACE_ID,
            name="Stratum FP&A",
            active=True,
            size_allowance=10 * 1024**3,
            current_size=1_482_193_024,
        ),
        WorkspaceSpec(
            id=ARCHIVE_WORKSPACE_ID,
            name="Stratum Archive",
            active=False,
            size_allowance=2 * 1024**3,
            current_size=301_989_888,
        ),
    ]


def seed_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            id=REVENUE_MODEL_ID,
            name="Revenue Planning",
            workspace_id=WORKSPACE_ID,
            active_state="UNLOCKED",
            created="2024-01-15T09:30:00.000+0000",
            last_modified="2026-03-31T17:05:12.000+0000",
            memory_usage=412_316_860,
            files=(
                FileSpec(id=BASELINE_FILE_ID, name="revenue_baseline.csv"),
                FileSpec(id=ACTUALS_FILE_ID, name="revenue_actuals.csv"),
            ),
            imports=(
                ImportSpec(id=BASELINE_IMPORT_ID, name="Import Revenue Baseline", file_id=BASELINE_FILE_ID),
                ImportSpec(id=ACTUALS_IMPORT_ID, name="Import Revenue Actuals", file_id=ACTUALS_FILE_ID),
            ),
            exports=(ExportSpec(id=FORECAST_EXPORT_ID, name="Export Forecast"),),
            category_values=({"id": "1", "attribute": "Finance", "categoryName": "Business Function"},),
        ),
        ModelSpec(
            id=HEADCOUNT_MODEL_ID,
            name="Headcount Planning",
            workspace_id=WORKSPACE_ID,
            active_state="UNLOCKED",
            created="2024-02-01T08:00:00.000+0000",
            last_modified="2026-02-27T12:00:00.000+0000",
            memory_usage=96_468_992,
        ),
        ModelSpec(
            id=ARCHIVED_MODEL_ID,
            name="Revenue Planning FY24",
            workspace_id=ARCHIVE_WORKSPACE_ID,
            active_state="ARCHIVED",
            created="2023-01-09T10:00:00.000+0000",
            last_modified="2024-12-20T16:45:00.000+0000",
            memory_usage=0,
        ),
    ]


def seed_cells() -> dict[CellKey, Cell]:
    """The demo project's 2026 baseline (a ramp-up, then a plateau) and its first quarter's actuals."""
    baseline = ["40000.00", "45000.00", "50000.00", *["55000.00"] * 9]
    actuals = ["38250.50", "47100.00", "49875.25"]
    cells: dict[CellKey, Cell] = {}
    for index, amount in enumerate(baseline, start=1):
        cells[(DEMO_PROJECT_ID, "baseline", f"2026-{index:02d}")] = Cell("USD", amount, "seed-baseline")
    for index, amount in enumerate(actuals, start=1):
        cells[(DEMO_PROJECT_ID, "actual", f"2026-{index:02d}")] = Cell("USD", amount, "seed-actuals")
    return cells
