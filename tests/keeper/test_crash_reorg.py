"""The keeper against a real anvil: SIGKILL at random moments, reorgs, an RPC outage, SIGTERM.

Each test starts its own anvil (paygent.localchain, chain id 338) and deploys the registry, router,
wallet and an event spammer with web3 (tests/keeper/chainkit.py); the keeper reads the deployment
from a manifest, exactly as in production. "The store equals the chain" means: every registry /
router / wallet log exactly once and nothing else, and the projections equal the contracts' views
(getService, serviceStats, paymentCount). The reorg test runs on SQLite and on PostgreSQL (the
`where` fixture); SIGKILL on PostgreSQL is tests/keeper/test_postgres_keepers.py's failover test.
"""

import random
import signal
import threading
import time

import pytest
from starlette.testclient import TestClient

from chainkit import (TcpProxy, assert_store_matches_chain, cursor_of, keeper_env,
                      spawn_keeper, wait_for_cursor)
from keeper.api import Telemetry, create_app
from keeper.indexer import (ChainIdentity, Health, Indexer, IndexerConfig, Rpc, Source, contracts_from_manifest,
                            default_decoder)
from keeper.store import Store


def in_process_indexer(stack, path, url=None, identity=None, **config):
    store = Store(path, stack.manifest.chain_id)
    contracts = contracts_from_manifest(stack.manifest)
    decoder = default_decoder()
    health = Health()
    cfg = IndexerConfig(start_block=stack.manifest.deployment_block, poll_interval=0.05, max_backoff=0.5, **config)
    indexer = Indexer(lambda: Source(Rpc(url or stack.url, timeout=2), contracts, decoder), store, cfg, health,
                      identity=identity)
    thread = threading.Thread(target=indexer.run, daemon=True)
    thread.start()
    return indexer, thread, store, health


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(stack, tmp_path):
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    for _ in range(60):  # several thousand events over many blocks
        stack.spam(60, 2)
    data = tmp_path / "keeper"
    store_path = data / "keeper.sqlite"
    env = keeper_env(stack, data, max_block_range=1)
    producing = threading.Event()
    producing.set()

    def produce() -> None:  # the chain keeps moving while the keeper is killed and restarted
        while producing.is_set():
            stack.spam(40, 1)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    kills, mid_batch_kills = 0, 0
    try:
        for round_ in range(6):
            before = cursor_of(store_path)
            proc = spawn_keeper(env, tmp_path / "keeper.log")
            if round_ % 2 == 0:  # a random moment: start-up, first batch, anywhere
                time.sleep(rng.uniform(0.2, 2.0))
            else:  # while batches are being written
                wait_for_cursor(store_path, before + 1, timeout=30, proc=proc)
                time.sleep(rng.uniform(0.0, 0.3))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
            mid_batch_kills += cursor_of(store_path) > before
    finally:
        producing.clear()
        producer.join(30)
    assert kills >= 5 and mid_batch_kills >= 3, f"seed {seed}"

    proc = spawn_keeper(env, tmp_path / "keeper.log")
    head = stack.w3.eth.block_number
    wait_for_cursor(store_path, head, timeout=60, proc=proc)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - began < 10
    events = assert_store_matches_chain(stack, store_path)
    assert events > 4_000, f"seed {seed}"


def test_reorg_deeper_than_one_block_is_followed(stack, where):
    w3 = stack.w3
    stack.spam(5, 1)
    path = where
    indexer, thread, store, health = in_process_indexer(stack, path)
    try:
        fork = w3.eth.block_number
        snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
        for _ in range(4):  # the old branch: 4 blocks of payments the keeper indexes
            stack.spam(7, 1)
        old_head = w3.eth.block_number
        wait_for_cursor(path, old_head)
        old_hash = store.cursor().block_hash
        assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True
        w3.provider.make_request("evm_increaseTime", [5])
        for _ in range(6):  # the new branch: longer, different payments and updates
            stack.spam(3, 2, price=12_345)
        new_head = w3.eth.block_number
        assert new_head > old_head and new_head - fork == 6
        wait_for_cursor(path, new_head)
        deadline = time.monotonic() + 10
        while store.cursor().block_hash != w3.eth.get_block(new_head)["hash"].to_0x_hex() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        indexer.stop.set()
        thread.join(10)
    assert health.reorgs >= 1
    assert store.cursor().block_hash != old_hash
    assert_store_matches_chain(stack, path)
    prices = {r[0] for r in store.query("SELECT price FROM service_events WHERE block_number > ?", (fork,))}
    assert prices == {"12345"}


def test_rpc_outage_degrades_health_then_catches_up(stack, chain, tmp_path):
    proxy = TcpProxy(chain.port).start()
    path = tmp_path / "k.sqlite"
    indexer, thread, store, health = in_process_indexer(stack, path, url=proxy.url)
    client = TestClient(create_app(store, health, Telemetry(health)))
    try:
        stack.spam(10, 1)
        wait_for_cursor(path, stack.w3.eth.block_number)
        assert client.get("/healthz").json()["status"] == "ok"
        proxy.stop()
        for _ in range(5):  # the chain moves on while the keeper cannot see it
            stack.spam(20, 1)
        deadline = time.monotonic() + 10
        while health.rpc_ok and time.monotonic() < deadline:
            time.sleep(0.05)
        reply = client.get("/healthz")
        assert reply.status_code == 503 and reply.json()["status"] == "degraded"
        assert reply.json()["rpc"] == "down"
        behind = cursor_of(path)
        time.sleep(1.5)  # several retries with backoff, nothing indexed meanwhile
        assert cursor_of(path) == behind
        proxy.start()
        wait_for_cursor(path, stack.w3.eth.block_number, timeout=20)
        deadline = time.monotonic() + 5
        while client.get("/healthz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/healthz").json()["status"] == "ok"
    finally:
        indexer.stop.set()
        thread.join(10)
        proxy.stop()
    assert_store_matches_chain(stack, path)


def test_getlogs_range_shrinks_when_the_node_refuses_it(stack, tmp_path):
    for _ in range(3):
        stack.spam(30, 0)
    path = tmp_path / "k.sqlite"
    refused = []

    class PickyRpc(Rpc):
        def call(self, method, params=None):
            if method == "eth_getLogs":
                span = int(params[0]["toBlock"], 16) - int(params[0]["fromBlock"], 16) + 1
                if span > 2:
                    refused.append(span)
                    from keeper.indexer import RpcError
                    raise RpcError(method, {"code": -32005, "message": "query returned more than 10000 results"})
            return super().call(method, params)

    store = Store(path, 338)
    contracts = contracts_from_manifest(stack.manifest)
    decoder = default_decoder()
    indexer = Indexer(lambda: Source(PickyRpc(stack.url), contracts, decoder), store,
                      IndexerConfig(start_block=stack.manifest.deployment_block, max_range=64, poll_interval=0.05))
    thread = threading.Thread(target=indexer.run, daemon=True)
    thread.start()
    try:
        wait_for_cursor(path, stack.w3.eth.block_number)
    finally:
        indexer.stop.set()
        thread.join(10)
    assert refused and indexer._range <= 4
    assert_store_matches_chain(stack, path)


def test_a_node_answer_the_fetcher_cannot_use_stops_the_indexer_and_writes_nothing(stack, tmp_path):
    """eth_getLogs answering `null` (seen from broken proxies) is no reason to guess: the fetcher
    fails, the whole indexer stops (the daemon then exits and its supervisor restarts it), and the
    store keeps its cursor."""
    stack.spam(5, 0)
    path = tmp_path / "k.sqlite"

    class NullRpc(Rpc):
        def call(self, method, params=None):
            return None if method == "eth_getLogs" else super().call(method, params)

    store = Store(path, 338)
    indexer = Indexer(lambda: Source(NullRpc(stack.url), contracts_from_manifest(stack.manifest), default_decoder()),
                      store, IndexerConfig(start_block=stack.manifest.deployment_block, poll_interval=0.05))
    thread = threading.Thread(target=indexer.run, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and indexer.stop.is_set()
    assert store.cursor().block_number == stack.manifest.deployment_block - 1
    assert store.query("SELECT COUNT(*) FROM payments")[0][0] == 0


def test_another_chain_behind_the_rpc_stops_the_indexer_before_it_rewinds_anything(stack, chain, tmp_path):
    from paygent.localchain import LocalChain, rpc

    stack.spam(10, 1)
    proxy = TcpProxy(chain.port).start()
    identity = ChainIdentity(stack.manifest.chain_id, stack.manifest.genesis_hash)
    indexer, thread, store, _health = in_process_indexer(stack, tmp_path / "k.sqlite", url=proxy.url,
                                                          identity=identity)
    try:
        head = stack.w3.eth.block_number
        wait_for_cursor(tmp_path / "k.sqlite", head)
        before = (store.cursor(), store.query("SELECT COUNT(*) FROM payments")[0][0])
        proxy.stop()
        with LocalChain(extra_args=["--timestamp", "1000000000"]) as other:  # same chain id, other genesis
            rpc(other.url, "anvil_mine", [hex(head + 3)])  # taller than ours: the indexer sees new blocks
            swapped = TcpProxy(other.port, port=proxy.port).start()
            try:
                thread.join(30)
            finally:
                swapped.stop()
    finally:
        indexer.stop.set()
        thread.join(10)
    assert indexer.fatal and "genesis differs" in indexer.fatal
    assert (store.cursor(), store.query("SELECT COUNT(*) FROM payments")[0][0]) == before  # nothing rewound
