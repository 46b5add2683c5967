"""PostgreSQL without a chain: leader election by advisory lock, the write fence, shared intents,
and database URLs whose password never shows. All against the real server of tests/keeper/pgkit.py."""

import threading

import pytest

from keeper import db as dbapi
from keeper.intents import Intent, IntentKey, IntentStore, Status
from keeper.leader import AdvisoryLock, NotLeader, lock_key
from keeper.settings import ConfigError, KeeperSettings
from keeper.store import Cursor, Store

from keeper_logs import CHAIN, blocks_for, payment_log
from pgkit import PASSWORD

DEPLOYMENT = {"chain_id": "338", "genesis_hash": "0x01", "contracts": "0xaa,0xbb"}


@pytest.fixture
def target(pg_url):
    return dbapi.parse(pg_url)


def terminate(postgres, pid):
    postgres.admin(f"SELECT pg_terminate_backend({int(pid)}, 5000)")  # waits until it is gone


def test_one_keeper_holds_the_lock_and_another_takes_it_once_released(target):
    first, second = AdvisoryLock(target, lock_key(DEPLOYMENT)), AdvisoryLock(target, lock_key(DEPLOYMENT))
    assert first.check() and not second.check()
    assert first.check() and not second.check()  # checking again changes nothing
    assert (first.name, second.name) == ("leader", "follower")
    first.release()
    assert second.check() and not first.check()


def test_keepers_of_another_deployment_do_not_compete(target):
    ours = AdvisoryLock(target, lock_key(DEPLOYMENT))
    theirs = AdvisoryLock(target, lock_key({**DEPLOYMENT, "genesis_hash": "0x02"}))
    assert ours.check() and theirs.check()


def test_a_leader_whose_session_dies_steps_down_and_a_follower_takes_over(target, postgres):
    leader, follower = AdvisoryLock(target, lock_key(DEPLOYMENT)), AdvisoryLock(target, lock_key(DEPLOYMENT))
    assert leader.check() and not follower.check()
    terminate(postgres, leader._pid)  # what PostgreSQL does when the leader's process is killed

    assert follower.check()
    assert not leader.check() and leader.error  # it notices, and says why
    assert PASSWORD not in leader.error
    follower.release()
    assert leader.check() and leader.error is None  # and competes again on the next check


def test_a_keeper_that_lost_the_lock_writes_nothing(target):
    leader, rival = AdvisoryLock(target, lock_key(DEPLOYMENT)), AdvisoryLock(target, lock_key(DEPLOYMENT))
    store = Store(target, CHAIN)
    store.fence = leader.fence
    assert leader.check()
    store.commit_batch([payment_log(5, 0, 1)], blocks_for(5), Cursor(5, "0xhash5"))
    leader.release()
    assert rival.check()

    with pytest.raises(NotLeader):
        store.commit_batch([payment_log(6, 0, 2)], blocks_for(6), Cursor(6, "0xhash6"))
    assert store.cursor() == Cursor(5, "0xhash5")
    assert store.query("SELECT COUNT(*) FROM payments")[0][0] == 1


def test_the_lock_is_checked_in_the_database_not_only_remembered(target, postgres):
    leader = AdvisoryLock(target, lock_key(DEPLOYMENT))
    store = Store(target, CHAIN)
    store.fence = leader.fence
    assert leader.check()
    terminate(postgres, leader._pid)  # the session (and its lock) is gone; the keeper has not looked yet
    with pytest.raises(NotLeader):
        store.commit_batch([payment_log(5, 0, 1)], blocks_for(5), Cursor(5, "0xhash5"))
    assert store.cursor() is None


def intent(nonce, value=10_000):
    return Intent(IntentKey.of("0x" + "c0" * 20, "0x" + "33" * 20, nonce), request_hash="0xrequest", kind="transfer",
                  payee="0x" + "22" * 20, value=value, network="eip155:338", service_id=None, status=Status.PENDING)


def test_one_claim_per_authorization_wins_across_keepers(pg_url):
    keepers = [IntentStore(pg_url) for _ in range(4)]  # four processes' worth of connections
    nonce = "0x" + "ab" * 32
    wins, start = [], threading.Barrier(16)

    def claim(i):
        start.wait()
        _row, created = keepers[i % 4].claim(intent(nonce))
        wins.append(created)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(wins) == [False] * 15 + [True]
    assert [i.status for i in keepers[3].by_nonce(nonce)] == [Status.PENDING]


def test_an_intent_recorded_by_one_keeper_is_closed_once_by_another(pg_url):
    old_leader, new_leader = IntentStore(pg_url), IntentStore(pg_url)
    key = old_leader.claim(intent("0x" + "01" * 32))[0].key
    assert old_leader.record_tx(key, "0xtx", "0xraw")

    assert [i.key for i in new_leader.pending()] == [key]
    assert new_leader.get(key).raw_tx == "0xraw"  # the new leader can re-send the very same transaction
    assert new_leader.finish(key, Status.SETTLED, tx_hash="0xtx").status is Status.SETTLED
    assert old_leader.finish(key, Status.FAILED, error="late").status is Status.SETTLED  # closed stays closed
    assert not old_leader.record_tx(key, "0xother", "0xraw2")
    assert new_leader.counts() == {"settled": 1}
    assert abs(new_leader.get(key).updated_at - new_leader.get(key).created_at) < 60  # times keep sub-second precision


@pytest.mark.parametrize("url, says", [
    ("postgresql://keeper:{pw}@127.0.0.1:abc/keeper", "not a valid PostgreSQL URL"),
    ("postgresql://keeper:{pw}@127.0.0.1:0/keeper", "port 0"),
    ("postgresql://keeper:{pw}@127.0.0.1:5432/a/b", "database name"),
    ("mysql://keeper:{pw}@127.0.0.1/keeper", "mysql:// is not a database"),
    ("keeper.sqlite", "must look like sqlite:///"),
])
def test_a_bad_database_url_is_refused_naming_the_variable_not_the_password(url, says):
    settings = KeeperSettings(database_url=url.format(pw=PASSWORD))
    with pytest.raises(ConfigError) as refused:
        settings.database  # noqa: B018
    message = str(refused.value)
    assert message.startswith("PAYGENT_DATABASE_URL") and says in message
    assert PASSWORD not in message and "\n" not in message


@pytest.mark.parametrize("url, shown", [
    ("postgresql://keeper:{pw}@db:5432/k", "postgresql://keeper:***@db:5432/k"),
    ("postgres://keeper:{pw}@db/k?sslmode=require", "postgres://keeper:***@db/k?sslmode=require"),
    ("postgresql://db/k?user=keeper&password={pw}", "postgresql://db/k?user=keeper&password=***"),
    ("postgresql://keeper@db/k", "postgresql://keeper@db/k"),
    ("postgresql://keeper:tops@{pw}@db/k", "postgresql://keeper:***@db/k"),  # an unencoded @ in the password
])
def test_urls_are_shown_with_the_password_replaced(url, shown):
    target = dbapi.parse(url.format(pw=PASSWORD))
    assert (target.redacted, str(target), PASSWORD in repr(target)) == (shown, shown, False)


def test_sqlite_stays_the_default_next_to_its_intents(tmp_path):
    settings = KeeperSettings(data_dir=tmp_path)
    assert (settings.database, settings.intents_database) == (
        dbapi.Target("sqlite", str(tmp_path / "keeper.sqlite")), dbapi.Target("sqlite", str(tmp_path / "intents.sqlite")))
    shared = KeeperSettings(data_dir=tmp_path, database_url="postgresql://k@db/k")
    assert shared.database == shared.intents_database == dbapi.Target("postgresql", "postgresql://k@db/k")


def test_status_reads_the_postgres_store_and_hides_the_password(pg_url):
    import json

    from click.testing import CliRunner

    from keeper.cli import keeper

    store = Store(pg_url, CHAIN)
    store.commit_batch([payment_log(5, 0, 1), payment_log(5, 1, 2)], blocks_for(5), Cursor(5, "0xhash5"))
    done = CliRunner().invoke(keeper, ["status"], env={"PAYGENT_DATABASE_URL": pg_url})
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    assert (out["cursor"], out["payments"]) == ([{"chainId": CHAIN, "block": 5, "hash": "0xhash5"}], 2)
    assert PASSWORD not in done.output and out["store"] == dbapi.redact(pg_url)
