"""What a sandbox keeps in memory besides the vendor's own records is bounded: a long-running gateway writing
to its sandboxes must not grow without limit (issue 13, memory flat under sustained writes)."""

from __future__ import annotations

import gc
import weakref

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
