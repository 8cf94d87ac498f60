"""The one composition mechanism every role view is declared with (``experience_apis.compose``).

Each rule a view declares is checked on a small view of its own: sources read concurrently, a section after
another, an optional source down (unavailable with the reason), a required one down (503
``source-unavailable``), a timeout, the caller's own mistake passed on, and the caller's spent budget.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from apis.problems import ProblemError
from contracts.models.experience import SectionStatus
from experience_apis.compose import Composed, Section, SectionFailure, View, registered_views

_names = iter(range(10_000))


def _view(*sections: Section[Any]) -> View[Any]:
    # Every View registers itself under its name: each test's view gets a fresh one.
    return View(f"test.view.{next(_names)}", summary="A test view", sections=sections)


def _returning(value: Any) -> Any:
    async def fetch(context: Any, done: Composed) -> Any:
        return value

    return fetch


def _raising(exc: BaseException) -> Any:
    async def fetch(context: Any, done: Composed) -> Any:
        raise exc

    return fetch


async def test_sections_are_read_concurrently_not_one_after_another() -> None:
    # Each section waits for the other to have started: read one after the other, neither would finish.
    started = {"a": asyncio.Event(), "b": asyncio.Event()}

    def meeting(me: str, other: str) -> Any:
        async def fetch(context: Any, done: Composed) -> str:
            started[me].set()
            await started[other].wait()
            return me

        return fetch

    view = _view(
        Section("a", ("test:a",), meeting("a", "b"), timeout=5),
        Section("b", ("test:b",), meeting("b", "a"), timeout=5),
    )
    done = await view.compose(None)
    assert (done.value("a"), done.value("b")) == ("a", "b")


async def test_a_section_after_another_gets_its_value_and_starts_only_when_it_ends() -> None:
    order: list[str] = []

    async def page(context: Any, done: Composed) -> list[int]:
        await asyncio.sleep(0)
        order.append("page")
        return [1, 2, 3]

    async def detail(context: Any, done: Composed) -> int:
        order.append("detail")
        return sum(done.value("page"))

    view = _view(
        Section("page", ("test:page",), page),
        Section("detail", ("test:detail",), detail, after=("page",)),
    )
    done = await view.compose(None)
    assert order == ["page", "detail"]
    assert done.value("detail") == 6


async def test_an_optional_source_down_leaves_its_section_unavailable_and_fills_the_rest() -> None:
    view = _view(
        Section("kept", ("test:kept",), _returning("here")),
        Section(
            "lost",
            ("system:fpa.forecast",),
            _raising(ProblemError("vendor-unavailable", "Anaplan answered 503")),
        ),
        Section("after_lost", ("test:after",), _returning("never"), after=("lost",)),
    )
    done = await view.compose(None)
    assert done.value("kept") == "here"
    assert done.status("lost") == SectionStatus.UNAVAILABLE
    error = done.error("lost")
    assert error is not None
    assert (error.code, error.detail, error.source) == (
        "vendor-unavailable",
        "Anaplan answered 503",
        "system:fpa.forecast",
    )
    # A section that needed the lost one cannot be filled either, and says why.
    after = done.error("after_lost")
    assert after is not None
    assert after.code == "source-unavailable"
    assert "lost" in (after.detail or "")


async def test_a_required_source_down_fails_the_view_with_a_503_naming_the_section_and_the_cause() -> None:
    view = _view(
        Section("other", ("test:other",), _returning(1)),
        Section(
            "invoices",
            ("system:erp.invoices",),
            _raising(ProblemError("vendor-unavailable", "NetSuite is down")),
            required=True,
        ),
    )
    with pytest.raises(ProblemError) as raised:
        await view.compose(None)
    problem = raised.value
    assert problem.kind.code == "source-unavailable"
    assert problem.status_code == 503
    assert problem.extra_members["section"] == "invoices"
    assert problem.extra_members["source_code"] == "vendor-unavailable"
    assert problem.headers is not None
    assert problem.headers["Retry-After"]
    assert "NetSuite is down" in (problem.problem_detail or "")


async def test_a_section_past_its_timeout_is_treated_as_down() -> None:
    never = asyncio.Event()

    async def hangs(context: Any, done: Composed) -> None:
        await never.wait()

    optional = _view(
        Section("slow", ("test:slow",), hangs, timeout=0.01), Section("fast", ("t:f",), _returning(2))
    )
    done = await optional.compose(None)
    error = done.error("slow")
    assert error is not None
    assert error.code == "source-timeout"
    assert done.value("fast") == 2

    required = _view(Section("slow", ("test:slow",), hangs, timeout=0.01, required=True))
    with pytest.raises(ProblemError) as raised:
        await required.compose(None)
    assert raised.value.kind.code == "source-unavailable"
    assert raised.value.extra_members["source_code"] == "source-timeout"


async def test_the_callers_own_mistake_is_answered_as_such_from_any_section() -> None:
    view = _view(
        Section(
            "account", ("system:crm.accounts",), _raising(ProblemError("not-found", "There is no account"))
        ),
        Section("other", ("test:other",), _returning(1)),
    )
    with pytest.raises(ProblemError) as raised:
        await view.compose(None)
    assert raised.value.kind.code == "not-found"


async def test_the_callers_spent_budget_makes_an_optional_section_unavailable_and_a_required_one_a_429() -> (
    None
):
    spent = ProblemError(
        "rate-limited", "inner budget spent", headers={"Retry-After": "7"}, extra={"retry_after": 7}
    )
    optional = _view(Section("page", ("test:page",), _raising(spent)))
    done = await optional.compose(None)
    error = done.error("page")
    assert error is not None
    assert (error.code, error.retry_after) == ("rate-limited", 7)

    required = _view(Section("page", ("test:page",), _raising(spent), required=True))
    with pytest.raises(ProblemError) as raised:
        await required.compose(None)
    assert raised.value.kind.code == "rate-limited"
    assert raised.value.headers["Retry-After"] == "7"


async def test_a_section_may_say_its_source_cannot_give_what_it_needs() -> None:
    view = _view(Section("runs", ("process:runs",), _raising(SectionFailure("too-many-runs", "over 10,000"))))
    done = await view.compose(None)
    error = done.error("runs")
    assert error is not None
    assert (error.code, error.detail) == ("too-many-runs", "over 10,000")


async def test_a_bug_in_a_section_is_not_mistaken_for_a_source_being_down() -> None:
    view = _view(
        Section("buggy", ("test:buggy",), _raising(KeyError("oops"))), Section("ok", ("t:o",), _returning(1))
    )
    with pytest.raises(KeyError):
        await view.compose(None)


def test_a_view_cannot_wait_on_a_section_it_does_not_declare_before() -> None:
    with pytest.raises(ValueError, match="after unknown or later"):
        _view(Section("a", ("t:a",), _returning(1), after=("b",)), Section("b", ("t:b",), _returning(2)))
    with pytest.raises(ValueError, match="repeat"):
        _view(Section("a", ("t:a",), _returning(1)), Section("a", ("t:b",), _returning(2)))


def test_the_declared_rules_are_what_the_contract_and_the_catalogue_say() -> None:
    view = _view(
        Section("invoices", ("system:erp.invoices",), _returning(1), required=True, timeout=8),
        Section("names", ("system:crm.accounts",), _returning(2), after=("invoices",), timeout=2.5),
    )
    rules = view.rules()
    assert [(s.name, s.required, s.timeout_ms, s.on_down, s.after) for s in rules.sections] == [
        ("invoices", True, 8000, "fail", []),
        ("names", False, 2500, "unavailable", ["invoices"]),
    ]
    text = view.describe()
    assert "`invoices` (system:erp.invoices; required, timeout 8 s)" in text
    assert "`names` (system:crm.accounts; optional, timeout 2.5 s, after invoices)" in text
    assert view in registered_views()


async def test_the_catalogue_lists_every_view_with_its_rules(gw: Any) -> None:
    response = await gw.client.get("/experience/v1/views", headers=gw.auth("experience:sales"))
    assert response.status_code == 200, response.text
    views = {v["name"]: v for v in response.json()["items"]}
    sales = views["sales.account"]
    assert [s["name"] for s in sales["sections"]] == ["account", "opportunities", "readiness"]
    # Readiness is one check of the account's deals, read beside the page (it once waited for the page);
    # the receivables' customer names still wait for the invoices they name.
    assert [s.get("after", []) for s in sales["sections"]] == [[], [], []]
    names = {s["name"]: s for s in views["finance.receivables"]["sections"]}
    assert names["customer_names"]["after"] == ["invoices"]
    # Any role's scope may read it; a token with none of them may not.
    denied = await gw.client.get("/experience/v1/views", headers=gw.auth("system:read"))
    assert denied.status_code == 403


# --- waits: a section that needs another's value for part of its work ------------------------------------


async def test_a_waiting_section_starts_its_own_reads_before_the_value_it_waits_on_is_in() -> None:
    # The waiting section's first read must run while the section it waits on is still reading: it lets
    # that one finish. Were the waiting one started only after it (``after``), neither would finish.
    own_read_started = asyncio.Event()
    log: list[str] = []

    async def deal(context: Any, done: Composed) -> str:
        await asyncio.wait_for(own_read_started.wait(), timeout=2)
        log.append("deal done")
        return "ERP-7"

    async def forecast(context: Any, done: Composed) -> str:
        own_read_started.set()
        log.append("forecast started")
        key = await done.wait("deal")
        log.append("forecast has the deal")
        return f"forecast of {key}"

    view = _view(
        Section("deal", ("test:deal",), deal),
        Section("forecast", ("test:forecast",), forecast, waits=("deal",)),
    )
    done = await view.compose(None)
    assert done.value("forecast") == "forecast of ERP-7"
    assert log == ["forecast started", "deal done", "forecast has the deal"]


async def test_waiting_on_an_unavailable_section_makes_the_waiting_one_unavailable_as_after_does() -> None:
    lost = _raising(ProblemError("vendor-unavailable", "Salesforce answered 503"))
    reached: list[str] = []

    async def waiting(context: Any, done: Composed) -> str:
        await done.wait("lost")
        reached.append("past the wait")
        return "never"

    view = _view(
        Section("lost", ("system:crm.opportunities",), lost),
        Section("waiting", ("test:waiting",), waiting, waits=("lost",)),
        Section("after_lost", ("test:waiting",), _returning("never"), after=("lost",)),
    )
    done = await view.compose(None)
    assert reached == []
    assert done.status("waiting") == SectionStatus.UNAVAILABLE
    # The same reason, in the same shape, as a section declared after the lost one.
    assert done.error("waiting") == done.error("after_lost")
    error = done.error("waiting")
    assert error is not None
    assert error.code == "source-unavailable"
    assert "lost" in (error.detail or "")


async def test_a_required_section_waiting_on_an_unavailable_one_fails_the_view_with_a_503() -> None:
    async def waiting(context: Any, done: Composed) -> str:
        return str(await done.wait("lost"))

    view = _view(
        Section("lost", ("t:lost",), _raising(ProblemError("vendor-unavailable", "down"))),
        Section("waiting", ("t:waiting",), waiting, waits=("lost",), required=True),
    )
    with pytest.raises(ProblemError) as caught:
        await view.compose(None)
    assert caught.value.kind.status == 503
    assert caught.value.extra_members["section"] == "waiting"


async def test_a_wait_not_declared_is_a_bug_not_an_outage() -> None:
    async def undeclared(context: Any, done: Composed) -> Any:
        return await done.wait("a")

    view = _view(Section("a", ("t:a",), _returning(1)), Section("b", ("t:b",), undeclared))
    with pytest.raises(ValueError, match="without declaring it"):
        await view.compose(None)


def test_a_section_may_wait_only_on_one_declared_before_it() -> None:
    with pytest.raises(ValueError, match="waits on unknown or later"):
        _view(Section("a", ("t:a",), _returning(1), waits=("b",)), Section("b", ("t:b",), _returning(2)))


def test_waits_are_published_in_the_rules_and_the_description() -> None:
    view = _view(
        Section("deal", ("system:crm.opportunities",), _returning(1)),
        Section("forecast", ("system:fpa.forecast",), _returning(2), waits=("deal",)),
    )
    assert [s.waits for s in view.rules().sections] == [[], ["deal"]]
    assert "`forecast` (system:fpa.forecast; optional, timeout 5 s, waits on deal)" in view.describe()
