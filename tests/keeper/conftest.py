"""Keeper test fixtures: a real PostgreSQL server for the session, a fresh database per test; a
private anvil with the contracts deployed (`chain`, `stack`) for the tests that index a chain."""

import uuid

import pytest

from chainkit import deploy_stack, local_chain
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


@pytest.fixture
def chain():
    """A private anvil (chain id 338) for this test."""
    with local_chain() as c:
        yield c


@pytest.fixture
def stack(chain, tmp_path):
    """Token, registry, router, wallet and event spammer on `chain`; manifest in tmp_path."""
    return deploy_stack(chain.url, tmp_path / "deployments")
