"""The PSA port: projects as delivered, their milestones and staffing, and the time and expenses booked."""

from __future__ import annotations

import datetime as dt
from typing import Protocol, runtime_checkable

import msgspec

from contracts.models import (
    ExpensePage,
    Project,
    ProjectCreate,
    ProjectPage,
    StaffingDemand,
    StaffingDemandCreate,
    TimeEntryPage,
)

__all__ = ["PeriodFilter", "PsaPort", "TimeEntryFilter"]


class PeriodFilter(msgspec.Struct, kw_only=True, frozen=True):
    project_id: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    approved: bool | None = None
    modified_since: dt.datetime | None = None


TimeEntryFilter = PeriodFilter


@runtime_checkable
class PsaPort(Protocol):
    vendor: str

    async def get_project(self, project_id: str) -> Project:
        """The project with its milestones; ``NotFound`` when there is none."""
        ...

    async def find_project(self, external_key: str) -> Project | None:
        """The project created under this business key, if any."""
        ...

    async def list_projects(
        self, *, limit: int, cursor: str | None = None, modified_since: dt.datetime | None = None
    ) -> ProjectPage: ...

    async def create_project(self, command: ProjectCreate) -> tuple[Project, bool]:
        """Create the project and its milestones; ``(project, created)``. A project already made under
        ``command.external_key`` is returned instead (``created`` False): never a second one."""
        ...

    async def close_project(self, project_id: str) -> Project:
        """Close (archive) a project, e.g. when an activation is cancelled. Closing twice is harmless."""
        ...

    async def list_staffing_demands(self, project_id: str) -> list[StaffingDemand]: ...

    async def create_staffing_demand(
        self, project_id: str, command: StaffingDemandCreate
    ) -> tuple[StaffingDemand, bool]:
        """Raise staffing demand; one per ``external_key`` per project, like ``create_project``."""
        ...

    async def list_time_entries(
        self, query: PeriodFilter, *, limit: int, cursor: str | None = None
    ) -> TimeEntryPage: ...

    async def list_expenses(
        self, query: PeriodFilter, *, limit: int, cursor: str | None = None
    ) -> ExpensePage: ...

    async def close(self) -> None: ...
