"""Keeper test fixtures: a real PostgreSQL server for the session, a fresh database per test."""

import uuid

import pytest

from pgkit import Cluster, PostgresMissing


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster (stopped and removed at the end). Missing binaries fail the
    tests that need it: they are never skipped."""
    try:
        cluster = Cluster().start()
    except PostgresMissing as exc:
        pytest.fail(str(exc))
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(postgres):
    """postgresql:// URL of an empty database of its own (dropped afterwards)."""
    name = f"keeper_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name)
    yield url
    postgres.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request, tmp_path):
    """Where a store lives: a SQLite file, or an empty PostgreSQL database (tests that take it
    run once on each)."""
    if request.param == "sqlite":
        return tmp_path / "k.sqlite"
    return request.getfixturevalue("pg_url")
