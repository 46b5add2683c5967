"""The store alone (no chain): idempotent writes, cursor atomicity, rewind rebuilding projections —
each on SQLite and on a real PostgreSQL server (the same SQL for both)."""

import pytest

from keeper import db as dbapi
from keeper.store import Cursor, Log, Store

from keeper_logs import AGENT, CHAIN, PAYER, PROVIDER, USDC, blocks_for, payment_log, service_log, wallet_log


@pytest.fixture
def store(where):
    return Store(where, CHAIN)


def snapshot(store):
    tables = ("services", "payments", "service_stats", "agents", "rules", "spend", "approvals", "subscriptions")
    return {t: sorted(tuple(r) for r in store.query(f"SELECT * FROM {t}")) for t in tables}


def test_a_batch_stored_twice_changes_nothing(store):
    logs = [service_log(5, 0), payment_log(6, 0, 1), payment_log(6, 1, 2)]
    first = store.commit_batch(logs, blocks_for(5, 6), Cursor(6, "0xhash6"))
    before = snapshot(store)
    again = store.commit_batch(logs, blocks_for(5, 6), Cursor(6, "0xhash6"))
    assert (first.inserted, first.duplicates) == (3, 0)
    assert (again.inserted, again.duplicates) == (0, 3)
    assert snapshot(store) == before
    assert store.query("SELECT volume, fees, payments FROM service_stats")[0][:] == ("20000", "200", 2)


def test_cursor_moves_only_with_its_rows(store):
    store.commit_batch([service_log(5, 0)], blocks_for(5), Cursor(5, "0xhash5"))
    broken = [payment_log(6, 0, 1), Log(6, 1, "0xbad", "0xregistry", "registry", "ServiceUpdated", {})]
    with pytest.raises(KeyError):
        store.commit_batch(broken, blocks_for(6), Cursor(6, "0xhash6"))
    assert store.cursor() == Cursor(5, "0xhash5")
    assert store.query("SELECT COUNT(*) FROM payments")[0][0] == 0


def test_rewind_restores_the_state_before_the_fork(store):
    store.commit_batch([service_log(5, 0), payment_log(5, 1, 1),
                        wallet_log(5, 2, "AgentAdded", agent=AGENT),
                        wallet_log(5, 3, "RuleSet", agent=AGENT, token=USDC, limit=5_000_000, cap=2_000_000,
                                   period=86_400, floatCap=1_000_000)],
                       blocks_for(5), Cursor(5, "0xhash5"))
    at_fork = snapshot(store)
    store.commit_batch([service_log(7, 0, "ServiceUpdated", price=99, name="renamed"), payment_log(7, 1, 2),
                        wallet_log(7, 2, "AgentPauseSet", agent=AGENT, paused=True),
                        wallet_log(7, 3, "Paid", agent=AGENT, token=USDC, to=PROVIDER, amount=5, ref="0x00",
                                   remainingInWindow=5_000_000 - 5, windowIndex=0),
                        wallet_log(7, 4, "RequestProposed", requestId=1, agent=AGENT, token=USDC, to=PROVIDER,
                                   amount=9_000_000, ref="0x00", expiresAt=99_999)],
                       blocks_for(7), Cursor(8, "0xhash8"))
    assert snapshot(store) != at_fork
    removed = store.rewind(Cursor(5, "0xhash5"))
    assert removed == 5
    assert snapshot(store) == at_fork
    assert store.cursor() == Cursor(5, "0xhash5")


def test_approval_status_follows_its_events(store):
    store.commit_batch([wallet_log(3, 0, "RequestProposed", requestId=7, agent=AGENT, token=USDC, to=PROVIDER,
                                   amount=9, ref="0x00", expiresAt=500),
                        wallet_log(4, 0, "RequestExecuted", requestId=7, agent=AGENT, token=USDC, to=PROVIDER,
                                   requestedAmount=9, approvedAmount=4)],
                       blocks_for(3, 4), Cursor(4, "0xhash4"))
    row = store.query("SELECT status, amount, approved_amount FROM approvals")[0]
    assert tuple(row) == ("executed", "9", "4")


def test_store_refuses_another_deployment(where):
    first = Store(where, CHAIN)
    assert first.bind({"chain_id": "338", "genesis_hash": "0x01"})
    assert first.bind({"chain_id": "338", "genesis_hash": "0x01"})
    assert not Store(where, CHAIN).bind({"chain_id": "338", "genesis_hash": "0x02"})


def test_other_connections_see_committed_batches_only(where):
    store = Store(where, CHAIN)
    reader = dbapi.connect(where, readonly=True)
    store.commit_batch([payment_log(5, 0, 1)], blocks_for(5), Cursor(5, "0xhash5"))
    with pytest.raises(KeyError):  # a failed batch is invisible to everyone
        store.commit_batch([payment_log(6, 0, 2), Log(6, 1, "0xbad", "0xregistry", "registry", "ServiceUpdated", {})],
                           blocks_for(6), Cursor(6, "0xhash6"))
    assert reader.execute("SELECT COUNT(*) FROM payments").fetchone()[0] == 1
    assert reader.execute("SELECT block_number FROM cursor").fetchone()[0] == 5


def test_numbers_wider_than_64_bits_round_trip_exactly(store):
    huge = 2**96 - 1  # a uint96 price / amount: stored as decimal text, compared by its padded key
    store.commit_batch([service_log(5, 0, price=huge), payment_log(5, 1, 1, amount=huge, fee=huge)],
                       blocks_for(5), Cursor(5, "0xhash5"))
    assert store.query("SELECT price, price_key FROM services")[0][:] == (str(huge), f"{huge:032d}")
    assert store.query("SELECT volume, fees FROM service_stats")[0][:] == (str(huge), str(huge))
    assert store.query("SELECT price FROM services WHERE price_key <= ?", (f"{huge - 1:032d}",)) == []


def test_rows_answer_by_index_and_by_column_name(store):
    store.commit_batch([service_log(5, 0, name="oracle")], blocks_for(5), Cursor(5, "0xhash5"))
    (row,) = store.query("SELECT service_id, name FROM services")
    assert (row[0], row[1]) == (1, "oracle") and (row["service_id"], row["name"]) == (1, "oracle")


def registry_history():
    """Two services over three blocks: registered, renamed, repriced, deactivated, another registered."""
    return [service_log(5, 0), service_log(5, 1, "ServiceUpdated", name="renamed"),
            service_log(6, 0, "ServiceUpdated", price=77, name="renamed"),
            service_log(6, 1, "ServiceRegistered", service_id=2, name="second"),
            service_log(7, 0, "ServiceDeactivated", price=77, name="renamed", active=False)]


def test_registry_events_stored_together_equal_one_at_a_time(where, tmp_path):
    """A batch's registry events are written in bulk (first and last per service projected): the
    result is what applying them one by one gives, registration block included."""
    together = Store(where, CHAIN)
    result = together.commit_batch(registry_history(), blocks_for(5, 6, 7), Cursor(7, "0xhash7"))
    alone = Store(tmp_path / "alone.sqlite", CHAIN)
    for lg in registry_history():
        alone.commit_batch([lg], blocks_for(lg.block_number), Cursor(lg.block_number, f"0xhash{lg.block_number}"))
    assert (result.inserted, result.duplicates) == (5, 0)
    assert snapshot(together)["services"] == snapshot(alone)["services"]
    assert [tuple(r) for r in together.query("SELECT service_id, registered_block, active, price FROM services "
                                             "ORDER BY service_id")] == [(1, 5, 0, "77"), (2, 6, 1, "10000")]
    assert together.query("SELECT COUNT(*) FROM service_events")[0][0] == 5


def test_a_partly_replayed_registry_batch_stores_only_the_new_events(store):
    """Overlapping batches (the second repeats two events the first stored): every event is stored
    once and the state is the last event's, never an older one applied again."""
    events = registry_history()
    store.commit_batch(events[:3], blocks_for(5, 6), Cursor(6, "0xhash6"))
    result = store.commit_batch(events[1:], blocks_for(5, 6, 7), Cursor(7, "0xhash7"))
    assert (result.inserted, result.duplicates) == (2, 2)
    assert store.query("SELECT COUNT(*) FROM service_events")[0][0] == 5
    assert [tuple(r) for r in store.query("SELECT service_id, active, price, name FROM services ORDER BY service_id")] \
        == [(1, 0, "77", "renamed"), (2, 1, "10000", "second")]


def test_bulk_inserts_stay_within_the_databases_parameter_limit(where):
    """Multi-row inserts are cut to what one statement may bind: with SQLite's old limit of 999
    parameters a batch of 200 payments (15 columns each) still lands whole."""
    store = Store(where, CHAIN)
    if store._db.dialect == "sqlite":
        import sqlite3

        store._db._conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # as an older SQLite build
    logs = [payment_log(5, i, i + 1) for i in range(200)]
    result = store.commit_batch(logs, blocks_for(5), Cursor(5, "0xhash5"))
    assert result.inserted == 200 and store.query("SELECT COUNT(*) FROM payments")[0][0] == 200
