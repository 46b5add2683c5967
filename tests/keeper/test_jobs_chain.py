"""Jobs and decoding against a real anvil: expiry, float top-up, alerts, subscription renewals — each
idempotent and counted; the generated decoders agree with web3's own event decoding."""

import secrets
import threading

import pytest

from chainkit import wait_for_cursor
from keeper.api import Telemetry
from keeper.indexer import Health, Indexer, IndexerConfig, Rpc, Source, contracts_from_manifest, default_decoder
from keeper.facilitator import Web3Backend
from keeper.intents import IntentKey, IntentStore, Status
from keeper.jobs import JobContext, jobs
from keeper.settings import KeeperSettings
from keeper.store import PAYMENT_FIELDS, Store
from agent.signer import LocalSigner
from paygent.eip3009 import AuthorizationKind, AuthorizationMessage, DomainReader, digest
from paygent.localchain import test_key as dev_key

DAY = 86_400
ONE = 10**6
EXPIRED = 5  # RequestStatus.Expired


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


SUBSCRIPTION = 2  # PricingModel.Subscription
SUBSCRIBER = 4   # anvil account / test key index
PROVIDER = 6


@pytest.fixture
def subscribed(stack):
    """A daily ONE-USDC subscription service and a subscriber who bought its first day."""
    w3, registry, router, usdc = (stack.w3, stack.contracts["ServiceRegistry"], stack.contracts["PaymentRouter"],
                                  stack.contracts["USDC"])
    subscriber, provider = w3.eth.accounts[SUBSCRIBER], w3.eth.accounts[PROVIDER]
    stack.send(registry.functions.register("daily news", "http://127.0.0.1/news", SUBSCRIPTION, usdc.address, ONE,
                                           DAY, provider, ""), sender=provider)
    service_id = registry.functions.serviceCount().call()
    stack.send(usdc.functions.mint(subscriber, 10 * ONE))
    stack.send(usdc.functions.approve(router.address, ONE), sender=subscriber)
    stack.send(router.functions.subscribe(service_id, 1, usdc.address, ONE, DAY, b"\x00" * 32), sender=subscriber)
    return service_id, subscriber, provider


def pre_authorize(stack, store, service_id, *, valid_for=3 * DAY):
    """The subscriber signs one more period in advance (ReceiveWithAuthorization to the router, the
    nonce naming the service) and the keeper stores it, as `paygent keeper add-renewal` does."""
    w3, router, usdc = stack.w3, stack.contracts["PaymentRouter"], stack.contracts["USDC"]
    now = w3.eth.get_block("latest")["timestamp"]
    key = dev_key(SUBSCRIBER)
    nonce = (service_id << 192 | secrets.randbits(192)).to_bytes(32, "big")
    message = AuthorizationMessage(key.address, router.address, ONE, now - 60, now + valid_for, nonce)
    signature = LocalSigner(key).sign_digest(digest(DomainReader(w3).domain(usdc.address), AuthorizationKind.RECEIVE,
                                                    message))
    assert store.add_renewal(service_id, key.address, usdc.address, "0x" + nonce.hex(), ONE, message.valid_after,
                             message.valid_before, "0x" + signature.hex())
    return "0x" + nonce.hex()


def renewal_context(stack, tmp_path):
    """A store and a job context that renews within an hour of expiry, with its settlement intents."""
    store = Store(tmp_path / "k.sqlite", 338)
    ctx = context(stack, store, tmp_path, renew_before=3_600)
    ctx.intents = IntentStore(tmp_path / "intents.sqlite")
    return store, ctx


def advance(stack, seconds):
    stack.w3.provider.make_request("evm_increaseTime", [seconds])
    stack.mine()


def renewal_row(store, nonce):
    return store.query("SELECT status, tx_hash, error FROM renewals WHERE nonce = ?", (nonce,))[0]


def balances(stack, *accounts):
    usdc = stack.contracts["USDC"]
    return [usdc.functions.balanceOf(a).call() for a in accounts]


def test_a_pre_authorized_renewal_extends_the_subscription_once_near_its_expiry(stack, subscribed, tmp_path):
    service_id, subscriber, provider = subscribed
    router = stack.contracts["PaymentRouter"]
    store, ctx = renewal_context(stack, tmp_path)
    nonce = pre_authorize(stack, store, service_id)
    index_to_head(stack, store)
    expiry = router.functions.subscriptionExpiry(service_id, subscriber).call()
    before = balances(stack, subscriber, provider)

    assert jobs.run("renew_subscriptions", ctx) == 0  # a day ahead: not yet
    assert renewal_row(store, nonce)[0] == "waiting"
    advance(stack, DAY - 1_800)  # now within renew_before of the expiry
    assert jobs.run("renew_subscriptions", ctx) == 1
    assert jobs.run("renew_subscriptions", ctx) == 0  # settled once; the next run sends nothing

    assert router.functions.subscriptionExpiry(service_id, subscriber).call() == expiry + DAY
    fee = ONE * router.functions.feeBps().call() // 10_000
    assert balances(stack, subscriber, provider) == [before[0] - ONE, before[1] + ONE - fee]
    status, tx_hash, _error = renewal_row(store, nonce)
    assert status == "settled" and stack.w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
    assert ctx.intents.get(IntentKey.of(stack.contracts["USDC"].address, subscriber, nonce)).status is Status.SETTLED
    index_to_head(stack, store)
    assert store.query("SELECT expires_at FROM subscriptions WHERE subscriber = ?",
                       (subscriber.lower(),))[0][0] == expiry + DAY
    assert runs(ctx, "renew_subscriptions") == 3


class NodeDownOnce(Web3Backend):
    """The node fails the first send (before anything is signed), then works."""

    failures = 1

    def send(self, call, before_broadcast):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("node unreachable")
        return super().send(call, before_broadcast)


def test_a_renewal_the_node_could_not_take_waits_for_the_next_run_and_is_counted_failed(stack, subscribed, tmp_path):
    service_id, subscriber, provider = subscribed
    store, ctx = renewal_context(stack, tmp_path)
    ctx.backend = NodeDownOnce(stack.w3, ctx.relayer, router=stack.manifest.address("PaymentRouter"))
    nonce = pre_authorize(stack, store, service_id)
    index_to_head(stack, store)
    advance(stack, DAY - 1_800)
    before = balances(stack, subscriber, provider)

    assert jobs.run("renew_subscriptions", ctx) is None  # the run failed ...
    assert runs(ctx, "renew_subscriptions", "failed") == 1
    assert renewal_row(store, nonce)[0] == "waiting"  # ... and lost nothing: still waiting, no intent
    assert ctx.intents.get(IntentKey.of(stack.contracts["USDC"].address, subscriber, nonce)) is None
    assert balances(stack, subscriber, provider) == before

    assert jobs.run("renew_subscriptions", ctx) == 1
    assert renewal_row(store, nonce)[0] == "settled"


class ReceiptsLate(Web3Backend):
    """Receipts are not found within the job's wait (a slow node); asked later, they are there."""

    def wait(self, tx_hash, timeout):
        return None if timeout > 0 else super().wait(tx_hash, timeout)


def test_a_renewal_sent_in_time_is_settled_even_if_its_authorization_ends_before_the_next_run(stack, subscribed,
                                                                                             tmp_path):
    service_id, subscriber, provider = subscribed
    store, ctx = renewal_context(stack, tmp_path)
    ctx.backend = ReceiptsLate(stack.w3, ctx.relayer, router=stack.manifest.address("PaymentRouter"))
    nonce = pre_authorize(stack, store, service_id, valid_for=DAY)  # ends shortly after the renewal is due
    index_to_head(stack, store)
    advance(stack, DAY - 1_800)
    before = balances(stack, subscriber, provider)

    assert jobs.run("renew_subscriptions", ctx) == 0  # sent and mined, but no receipt seen this run
    assert renewal_row(store, nonce)[0] == "waiting"
    advance(stack, 3_600)  # the authorization's validBefore has passed; the transaction was mined before
    assert jobs.run("renew_subscriptions", ctx) == 0

    status, tx_hash, error = renewal_row(store, nonce)
    assert (status, error) == ("settled", None) and tx_hash is not None  # not "expired unused"
    assert balances(stack, subscriber, provider)[0] == before[0] - ONE
    assert ctx.telemetry.alerts.labels("settlement_failed")._value.get() == 0


def test_a_renewal_authorization_that_expired_unused_fails_with_an_alert_and_moves_nothing(stack, subscribed,
                                                                                          tmp_path):
    service_id, subscriber, provider = subscribed
    store, ctx = renewal_context(stack, tmp_path)
    nonce = pre_authorize(stack, store, service_id, valid_for=DAY // 2)  # ends before the renewal is due
    index_to_head(stack, store)
    advance(stack, DAY - 1_800)
    before = balances(stack, subscriber, provider)

    assert jobs.run("renew_subscriptions", ctx) == 0
    status, tx_hash, error = renewal_row(store, nonce)
    assert (status, tx_hash, error) == ("failed", None, "authorization expired unused")
    assert ctx.telemetry.alerts.labels("settlement_failed")._value.get() == 1
    assert balances(stack, subscriber, provider) == before


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


def test_jobs_and_the_facilitator_share_one_nonce_lock_per_sender(stack, tmp_path):
    """Two senders of one key (two job contexts here; the facilitator's backend takes the same lock)
    sending at once never reuse a nonce: every transaction is mined."""
    from concurrent.futures import ThreadPoolExecutor

    from keeper.facilitator import sender_lock

    store = Store(tmp_path / "k.sqlite", 338)
    a, b = context(stack, store, tmp_path), context(stack, store, tmp_path)
    usdc = stack.contracts["USDC"]
    backend = Web3Backend(stack.w3, a.relayer, chain_id=338)
    assert backend._send_lock is sender_lock(a.relayer.address.upper().replace("0X", "0x"))

    def approve(i):
        ctx = (a, b)[i % 2]
        return ctx.transact(ctx.relayer, usdc.functions.approve(stack.w3.eth.accounts[i % 5], i + 1))

    with ThreadPoolExecutor(8) as pool:
        hashes = list(pool.map(approve, range(16)))
    nonces = {stack.w3.eth.get_transaction(h)["nonce"] for h in hashes}
    assert len(hashes) == len(nonces) == 16


def test_a_failed_expiry_counts_the_run_as_failed(stack, wallet_setup, tmp_path, monkeypatch):
    store = Store(tmp_path / "k.sqlite", 338)
    ctx = context(stack, store, tmp_path)
    index_to_head(stack, store)
    advance(stack, DAY + 1)

    def out_of_gas(account, fn):
        raise RuntimeError("insufficient funds for gas")

    monkeypatch.setattr(ctx, "transact", out_of_gas)
    assert jobs.run("expire_requests", ctx) is None
    assert runs(ctx, "expire_requests", "failed") == 1 and runs(ctx, "expire_requests") == 0


def test_a_paused_wallet_is_skipped_by_top_ups(stack, wallet_setup, tmp_path):
    wallet, usdc, agent = wallet_setup
    stack.send(wallet.functions.setPaused(True))
    store = Store(tmp_path / "k.sqlite", 338)
    ctx = context(stack, store, tmp_path, topup_threshold=ONE // 2)
    index_to_head(stack, store)
    assert jobs.run("top_up_floats", ctx) == 0 and runs(ctx, "top_up_floats") == 1  # skipped, not failed
    assert usdc.functions.balanceOf(agent).call() == 0


def test_an_alert_the_webhook_did_not_take_is_sent_again_next_run(stack, wallet_setup, tmp_path):
    import http.server

    answers = [500, 200]
    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(answers.pop(0) if answers else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        store = Store(tmp_path / "k.sqlite", 338)
        ctx = context(stack, store, tmp_path, low_balance=10 * ONE,
                      alert_webhook=f"http://127.0.0.1:{server.server_address[1]}/hook")
        index_to_head(stack, store)
        assert jobs.run("alerts", ctx) == 0  # the webhook answered 500: not delivered
        assert jobs.run("alerts", ctx) == 1  # delivered now
        assert jobs.run("alerts", ctx) == 0  # and once only
    finally:
        server.shutdown()
    assert len(received) == 2 and ctx.telemetry.alerts.labels("low_balance")._value.get() == 1
