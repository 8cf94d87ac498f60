"""The Adaptive Planning sandbox's seeded instance: its versions, accounts, levels, the Project dimension
and the demo project's figures.

==========================  ======================================================================
``DEV_LOGIN``               "integration@stratum.example", password ``DEV_PASSWORD``
``INSTANCE_CODE``           "STRATUM1": the only instance (credentials may name it or leave it out)
``PLAN_VERSION``            "Working Budget": a plan version, importable
``LOCKED_VERSION``          "Budget 2026": a plan version that is locked (imports are refused)
``ACTUALS_VERSION``         "Actuals": the actuals version
``REVENUE_ACCOUNT``         "ServicesRevenue": a GL account below the "Revenue" rollup
``SERVICES_LEVEL``          "Professional Services": a level kept in USD (the corporate currency);
                            "Services UK" is kept in GBP and "Services DE" in EUR (a firm's entities,
                            each in its own currency); all are below the rollup level "Company"
``PROJECT_DIMENSION``       "Project": one dimension value per project, its name the project's id
``DEMO_PROJECT_ID``         "3001": the demo project (as in the other FP&A sandbox), a 12-month 2026 plan
                            with actuals for January to March
==========================  ======================================================================

A project is a value of a custom dimension, not a level or an account: in Adaptive, levels are the
organisation (who owns the figures, in which currency) and accounts are the chart of accounts, both
maintained by the finance team; projects come and go every week, and a dimension on the standard sheet is
how Adaptive slices GL figures by something that is neither (the Knowledge Center's "Dimensions" pages).

The instance's calendar runs monthly from `TIME_START` to `TIME_END`; a period outside it is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACTUALS_VERSION",
    "CORPORATE_CURRENCY",
    "DEMO_PROJECT_ID",
    "DEV_LOGIN",
    "DEV_PASSWORD",
    "INSTANCE_CODE",
    "LOCKED_VERSION",
    "PLAN_VERSION",
    "PROJECT_DIMENSION",
    "RATES_TO_CORPORATE",
    "REVENUE_ACCOUNT",
    "SERVICES_LEVEL",
    "TIME_END",
    "TIME_START",
    "AccountSpec",
    "CellKey",
    "LevelSpec",
    "VersionSpec",
    "seed_cells",
]

DEV_LOGIN = "integration@stratum.example"
DEV_PASSWORD = "stratum-adaptive-sandbox"
INSTANCE_CODE = "STRATUM1"
PLAN_VERSION = "Working Budget"
LOCKED_VERSION = "Budget 2026"
ACTUALS_VERSION = "Actuals"
REVENUE_ACCOUNT = "ServicesRevenue"
SERVICES_LEVEL = "Professional Services"
PROJECT_DIMENSION = "Project"
DEMO_PROJECT_ID = "3001"
CORPORATE_CURRENCY = "USD"
#: Local currency -> corporate, for exportData's ``useCorporate`` currency rule (one rate for every month).
RATES_TO_CORPORATE = {"USD": "1", "GBP": "1.25", "EUR": "1.08"}
TIME_START = (2020, 1)
TIME_END = (2030, 12)

CellKey = tuple[str, str, str, str, str]
"""(version, account code, level name, project dimension value or "", month as YYYY-MM)"""


@dataclass(frozen=True, slots=True)
class VersionSpec:
    id: int
    name: str
    type: str  # "ACTUALS" or "PLANNING"
    is_locked: bool = False
    is_default: bool = False


@dataclass(frozen=True, slots=True)
class AccountSpec:
    id: int
    code: str
    name: str
    parent: str | None  # the parent's code
    account_type: str = "GL_ACCOUNT"  # rollups are "GL_ACCOUNT" too, with children

    @property
    def is_rollup(self) -> bool:
        return self.code in {"Revenue", "Expense"}


@dataclass(frozen=True, slots=True)
class LevelSpec:
    id: int
    name: str
    currency: str
    parent: str | None


VERSIONS = (
    VersionSpec(id=1, name=ACTUALS_VERSION, type="ACTUALS"),
    VersionSpec(id=5, name=PLAN_VERSION, type="PLANNING", is_default=True),
    VersionSpec(id=6, name=LOCKED_VERSION, type="PLANNING", is_locked=True),
)

ACCOUNTS = (
    AccountSpec(id=10, code="Revenue", name="Revenue", parent=None),
    AccountSpec(id=11, code=REVENUE_ACCOUNT, name="Services Revenue", parent="Revenue"),
    AccountSpec(id=12, code="LicenceRevenue", name="Licence Revenue", parent="Revenue"),
    AccountSpec(id=20, code="Expense", name="Expense", parent=None),
    AccountSpec(id=21, code="CostOfServices", name="Cost of Services", parent="Expense"),
)

LEVELS = (
    LevelSpec(id=1, name="Company", currency=CORPORATE_CURRENCY, parent=None),
    LevelSpec(id=2, name=SERVICES_LEVEL, currency="USD", parent="Company"),
    LevelSpec(id=3, name="Services UK", currency="GBP", parent="Company"),
    LevelSpec(id=4, name="Services DE", currency="EUR", parent="Company"),
)


def seed_cells() -> dict[CellKey, str]:
    """The demo project's 2026 plan (a ramp-up, then a plateau) and its first quarter's actuals."""
    plan = ["40000.00", "45000.00", "50000.00", *["55000.00"] * 9]
    actuals = ["38250.50", "47100.00", "49875.25"]
    cells: dict[CellKey, str] = {}
    for index, amount in enumerate(plan, start=1):
        cells[(PLAN_VERSION, REVENUE_ACCOUNT, SERVICES_LEVEL, DEMO_PROJECT_ID, f"2026-{index:02d}")] = amount
    for index, amount in enumerate(actuals, start=1):
        key = (ACTUALS_VERSION, REVENUE_ACCOUNT, SERVICES_LEVEL, DEMO_PROJECT_ID, f"2026-{index:02d}")
        cells[key] = amount
    return cells
