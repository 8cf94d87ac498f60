"""Fixtures the end-to-end workflow tests share: a private PostgreSQL database per test module."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

PG_ADMIN = os.environ.get("STRATUM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _postgres_answers() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A fresh database on the shared PostgreSQL for the module's workers, dropped afterwards."""
    if not _postgres_answers():
        if os.environ.get("STRATUM_TEST_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL must answer on 127.0.0.1:5432 for the end-to-end workflow tests")
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    name = f"stratum_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
