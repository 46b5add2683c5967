"""Jobs and decoding against a real anvil: expiry, float top-up, alerts — each idempotent and counted;
the generated decoders agree with web3's own event decoding."""

import threading

import pytest

from chainkit import deploy_stack, local_chain, wait_for_cursor
from keeper.api import Telemetry
from keeper.indexer import Health, Indexer, IndexerConfig, Rpc, Source, contracts_from_manifest, default_decoder
from keeper.jobs import JobContext, jobs
from keeper.settings import KeeperSettings
from keeper.store import PAYMENT_FIELDS, Store
from paygent.localchain import test_key as dev_key

DAY = 86_400
ONE = 10**6
EXPIRED = 5  # RequestStatus.Expired


@pytest.fixture
def stack(tmp_path):
    with local_chain() as chain:
        yield deploy_stack(chain.url, tmp_path / "deployments")


def index_to_head(stack, store):
    indexer = Indexer(lambda: Source(Rpc(stack.url), contracts_from_manifest(stack.manifest), default_decoder()),
                      store, IndexerConfig(start_block=stack.manifest.deployment_block, poll_interval=0.05))
    thread = threading.Thread(target=indexer.run, daemon=True)
    thread.start()
    try:
        wait_for_cursor(__import__("pathlib").Path(store.path), stack.w3.eth.block_number)
    finally:
        indexer.stop.set()
        thread.join(10)


@pytest.fixture
def wallet_setup(stack):
    w3, wallet, usdc = stack.w3, stack.contracts["AgentWallet"], stack.contracts["USDC"]
    owner, agent = w3.eth.accounts[0], w3.eth.accounts[1]
    stack.send(wallet.functions.addAgent(agent))
    stack.send(wallet.functions.setRule(agent, usdc.address, 5 * ONE, 2 * ONE, DAY, 1 * ONE))
    stack.send(usdc.functions.mint(wallet.address, 3 * ONE))
    stack.send(wallet.functions.propose(usdc.address, owner, 4 * ONE, b"\x01" * 32), sender=agent)
    return wallet, usdc, agent


def context(stack, store, tmp_path, **settings):
    health = Health()
    telemetry = Telemetry(health)
    cfg = KeeperSettings(data_dir=tmp_path, **settings)
    return JobContext(settings=cfg, store=store, w3=stack.w3, manifest=stack.manifest, relayer=dev_key(3),
                      agent=dev_key(1), telemetry=telemetry)


def runs(ctx, job, outcome="ok"):
    return ctx.telemetry.job_runs.labels(job, outcome)._value.get()


def test_expire_job_expires_stale_requests_once(stack, wallet_setup, tmp_path):
    wallet, _usdc, _agent = wallet_setup
    store = Store(tmp_path / "k.sqlite", 338)
    ctx = context(stack, store, tmp_path)
    index_to_head(stack, store)
    assert jobs.run("expire_requests", ctx) == 0  # not expired yet: nothing sent
    stack.w3.provider.make_request("evm_increaseTime", [DAY + 1])
    stack.mine()
    assert jobs.run("expire_requests", ctx) == 1
    assert jobs.run("expire_requests", ctx) == 0  # the store still says pending; the chain says expired
    request = wallet.functions.request(1).call()
    status_index = [c["name"] for c in next(i for i in wallet.abi if i.get("name") == "request")["outputs"][0]
                    ["components"]].index("status")
    assert request[status_index] == EXPIRED
    index_to_head(stack, store)
    assert [tuple(r) for r in store.query("SELECT request_id, status FROM approvals")] == [(1, "expired")]
    assert runs(ctx, "expire_requests") == 3


def test_float_top_up_refills_the_agent_key_once(stack, wallet_setup, tmp_path):
    _wallet, usdc, agent = wallet_setup
    store = Store(tmp_path / "k.sqlite", 338)
    ctx = context(stack, store, tmp_path, topup_threshold=ONE // 2)
    index_to_head(stack, store)
    assert usdc.functions.balanceOf(agent).call() == 0
    assert jobs.run("top_up_floats", ctx) == 1
    assert usdc.functions.balanceOf(agent).call() == ONE  # up to the float cap
    assert jobs.run("top_up_floats", ctx) == 0
    index_to_head(stack, store)
    spend = store.query("SELECT spent FROM spend WHERE agent = ?", (agent.lower(),))
    assert spend[0][0] == str(ONE)


def test_low_balance_alerts_once_until_it_clears(stack, wallet_setup, tmp_path):
    store = Store(tmp_path / "k.sqlite", 338)
    ctx = context(stack, store, tmp_path, low_balance=10 * ONE)
    index_to_head(stack, store)
    assert jobs.run("alerts", ctx) == 1
    assert jobs.run("alerts", ctx) == 0
    assert ctx.telemetry.alerts.labels("low_balance")._value.get() == 1


def test_failing_job_is_counted_and_others_keep_running(stack, tmp_path):
    store = Store(tmp_path / "k.sqlite", 338)
    ctx = context(stack, store, tmp_path)
    ctx.w3 = None  # every chain call now fails
    assert jobs.run("expire_requests", ctx) is None
    assert runs(ctx, "expire_requests", "failed") == 1


def test_generated_decoders_agree_with_web3(stack, wallet_setup):
    """Every event the keeper decodes, including PaymentMade's record fast path, equals web3's
    decoding of the same raw log."""
    stack.spam(3, 2)
    decoder = default_decoder()
    source = Source(Rpc(stack.url), contracts_from_manifest(stack.manifest), decoder)
    head = stack.w3.eth.block_number
    batch = source.fetch(stack.manifest.deployment_block, head)
    logs, payments = source.decode(batch.raws)
    assert len(logs) + len(payments) == len(batch.raws) > 10 and len(payments) >= 3
    ours = {(lg.block_number, lg.log_index): (lg.address, lg.event, lg.args) for lg in logs}
    router = stack.manifest.address("PaymentRouter").lower()
    for bn, li, tx, *values in payments:
        ours[(bn, li)] = (router, "PaymentMade", dict(zip(PAYMENT_FIELDS, values)))
    by_address = {c.address.lower(): c for c in stack.contracts.values()}
    from hexbytes import HexBytes

    for raw in batch.raws:
        address, name, args = ours[(int(raw["blockNumber"], 16), int(raw["logIndex"], 16))]
        contract = by_address[address]
        event = getattr(contract.events, name)()
        formatted = dict(raw, topics=[HexBytes(t) for t in raw["topics"]], data=HexBytes(raw["data"]),
                         blockNumber=int(raw["blockNumber"], 16), logIndex=int(raw["logIndex"], 16),
                         transactionIndex=int(raw["transactionIndex"], 16), blockHash=HexBytes(raw["blockHash"]),
                         transactionHash=HexBytes(raw["transactionHash"]))
        expected = event.process_log(formatted)["args"]
        normal = {k: (v.lower() if isinstance(v, str) and v.startswith("0x") and len(v) == 42 else
                      "0x" + v.hex() if isinstance(v, bytes) else v) for k, v in expected.items()}
        assert args == normal, name
