"""What a sandbox keeps in memory besides the vendor's own records is bounded: a long-running gateway writing
to its sandboxes must not grow without limit (issue 13, memory flat under sustained writes)."""

from __future__ import annotations

import gc
import weakref

from sandboxes.anaplan import AnaplanSandbox, AnaplanSandboxSettings
from sandboxes.anaplan.data import FORECAST_EXPORT_ID, REVENUE_MODEL_ID
from sandboxes.anaplan.tenant import TASKS_KEPT
from sandboxes.netsuite.data import RECORD_TYPES, build_seed
from sandboxes.netsuite.suiteql import _TRANSLATIONS, _TRANSLATIONS_KEPT, build_tables, compile_suiteql


def test_a_suiteql_query_s_database_is_freed_when_the_query_is_done() -> None:
    # Each query gets a database over the records as they are then (a copy of the tables it reads, in an
    # in-memory SQLite). Neither the translation cache nor the SQLite functions may keep it alive: before,
    # every SuiteQL call left its copy behind for good (a cycle through the connection's functions).
    seed = build_seed(42)
    database = build_tables(seed, RECORD_TYPES)
    rows = compile_suiteql(
        "SELECT BUILTIN.DF(c.currency) AS currency, UPPER(c.companyname) AS name FROM customer c", database
    ).run()
    assert rows
    assert rows[0]["name"]  # the functions that reach the database ran
    assert database.tables  # the query loaded the customer table into this database
    gone = weakref.ref(database)
    del database
    gc.collect()
    assert gone() is None


def test_the_suiteql_translation_cache_holds_at_most_its_size() -> None:
    database = build_tables(build_seed(42), RECORD_TYPES)
    for n in range(_TRANSLATIONS_KEPT + 10):
        compile_suiteql(f"SELECT id FROM customer WHERE id = {n}", database)
        assert len(_TRANSLATIONS) <= _TRANSLATIONS_KEPT


def test_an_anaplan_model_keeps_at_most_its_newest_finished_tasks() -> None:
    # Each FP&A publish starts an import task holding its file, result and failed rows, and the sandbox
    # saves its tasks on every write: kept forever, both grew with every import ever run.
    sandbox = AnaplanSandbox(AnaplanSandboxSettings())
    model = sandbox.model(REVENUE_MODEL_ID)
    started = [sandbox.start_task(model, "exports", FORECAST_EXPORT_ID) for _ in range(TASKS_KEPT + 50)]
    assert len(model.tasks) <= TASKS_KEPT
    assert model.tasks_started == TASKS_KEPT + 50  # the model's serial number still counts every task
    newest = started[-1]
    assert not newest.done  # the task a client is about to poll is kept...
    assert sandbox.task(model, "exports", FORECAST_EXPORT_ID, newest.id) is newest
    assert started[0].id not in model.tasks  # ...the oldest finished ones are gone
