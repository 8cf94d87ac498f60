"""The portfolio's listings of many projects' time and expenses: pages of the PSA's largest size for them
(``MAX_LISTING_PAGE``), every page followed, each record under its project."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from experience_apis.compose import SectionFailure
from experience_apis.delivery import _projects_expenses, _projects_time
from system_apis.psa.port import MAX_LISTING_PAGE, MAX_PROJECTS_AT_ONCE


class _System:
    """A system client whose time and expense listings answer from a list of records, noting each call."""

    def __init__(self, records: list[Any], *, pages: int | None = None) -> None:
        self.records = records
        self.pages = pages  # None: as many as the records need; else always one more
        self.calls: list[dict[str, Any]] = []

    async def _listing(self, *, project_ids: list[str], limit: int, cursor: str | None) -> Any:
        self.calls.append({"project_ids": project_ids, "limit": limit, "cursor": cursor})
        start = int(cursor) if cursor else 0
        mine = [r for r in self.records if r.project_id in project_ids]
        page = mine[start : start + limit]
        more = self.pages is not None or start + limit < len(mine)
        return SimpleNamespace(items=page, next_cursor=str(start + limit) if more else None)

    async def list_time_entries(self, *, project_ids: list[str], limit: int, cursor: str | None) -> Any:
        return await self._listing(project_ids=project_ids, limit=limit, cursor=cursor)

    async def list_expenses(self, *, project_ids: list[str], limit: int, cursor: str | None) -> Any:
        return await self._listing(project_ids=project_ids, limit=limit, cursor=cursor)


@pytest.mark.parametrize("read", [_projects_time, _projects_expenses])
async def test_many_projects_records_are_read_in_pages_of_1000_every_page_followed(read: Any) -> None:
    projects = [str(p) for p in range(1, MAX_PROJECTS_AT_ONCE + 11)]  # two listings of projects
    records = [SimpleNamespace(id=str(i), project_id=projects[i % len(projects)]) for i in range(2500)]
    system = _System(records)
    by_project = await read(SimpleNamespace(system=system), projects)
    assert {call["limit"] for call in system.calls} == {MAX_LISTING_PAGE}
    assert sorted(len(call["project_ids"]) for call in system.calls if call["cursor"] is None) == [
        10,
        MAX_PROJECTS_AT_ONCE,
    ]
    # The first listing's 2,500 * 50/60 records: three pages of 1,000 (the second listing's one).
    assert len(system.calls) == 3 + 1
    assert sorted(r.id for found in by_project.values() for r in found) == sorted(r.id for r in records)
    for project, found in by_project.items():
        assert all(r.project_id == project for r in found)


@pytest.mark.parametrize("read", [_projects_time, _projects_expenses])
async def test_a_listing_that_never_ends_is_a_section_failure_not_a_loop(read: Any) -> None:
    system = _System([SimpleNamespace(id="1", project_id="1")], pages=1)
    with pytest.raises(SectionFailure) as caught:
        await read(SimpleNamespace(system=system), ["1"])
    assert caught.value.code == "listing-too-long"
    assert f"more than {50 * MAX_LISTING_PAGE} records" in caught.value.detail
