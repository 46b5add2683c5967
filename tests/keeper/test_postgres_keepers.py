"""Keepers on PostgreSQL against a real anvil: the daemon end to end, a database outage, two keepers
with one leader and a SIGKILL failover, settlement exactly once across leaders, bad URLs at start.

"The store equals the chain" is tests/keeper/chainkit.py's check (every log once, nothing else,
projections equal the contracts' views), read from the PostgreSQL database.
"""

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest

from chainkit import assert_store_matches_chain, cursor_of, keeper_env, spawn_keeper, wait_for_cursor
from keeper.facilitator import Facilitator, Payment, Web3Backend
from keeper.intents import IntentStore, Status
from paygent import manifest as manifests
from paygent.artifacts import PROJECT_ROOT
from paygent.eip3009 import AuthorizationKind, AuthorizationMessage, DomainReader, digest
from paygent.localchain import free_port, test_key as dev_key
from paygent.networks import LOCAL
from paygent.wire import v2
from paygent.wire.exact import Extra
from pgkit import PASSWORD

PRICE = 10_000
RELAYER = dev_key(3)
PAYER = dev_key(4)
PAYEE = dev_key(6).address


@pytest.fixture
def funded(stack):
    usdc = stack.contracts["USDC"]
    stack.send(usdc.functions.mint(PAYER.address, 100 * 10**6))
    return usdc


def settle_body(stack, value=PRICE):
    """A v2 /settle (or /verify) body: PAYER's EIP-3009 TransferWithAuthorization of `value` to PAYEE."""
    from agent.signer import LocalSigner

    usdc = stack.contracts["USDC"]
    domain = DomainReader(stack.w3).domain(usdc.address)
    requirements = v2.PaymentRequirements(scheme="exact", network="eip155:338", asset=usdc.address, amount=str(value),
                                          pay_to=PAYEE, max_timeout_seconds=300,
                                          extra=Extra(name=domain.name, version=domain.version))
    now = stack.w3.eth.get_block("latest")["timestamp"]
    message = AuthorizationMessage(from_=PAYER.address, to=PAYEE, value=value, valid_after=now - 60,
                                   valid_before=now + 600, nonce=secrets.token_bytes(32))
    signature = LocalSigner(PAYER).sign_digest(digest(domain, AuthorizationKind.TRANSFER, message))
    payload = v2.PaymentPayload.model_validate({
        "x402Version": 2, "accepted": requirements.model_dump(mode="json", by_alias=True, exclude_none=True),
        "payload": {"signature": "0x" + signature.hex(), "authorization": {
            "from": message.from_, "to": message.to, "value": str(value), "validAfter": str(message.valid_after),
            "validBefore": str(message.valid_before), "nonce": "0x" + message.nonce.hex()}}})
    return {"x402Version": 2, "paymentPayload": payload.model_dump(mode="json", by_alias=True, exclude_none=True),
            "paymentRequirements": requirements.model_dump(mode="json", by_alias=True, exclude_none=True)}


def nonce_of(body):
    return body["paymentPayload"]["payload"]["authorization"]["nonce"]


def wait_until(what, check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.05)


def health(base):
    return httpx.get(f"{base}/healthz", timeout=2)


def job_runs(base, outcome="ok"):
    text = httpx.get(f"{base}/metrics", timeout=2).text
    return sum(float(v) for v in re.findall(rf'keeper_job_runs_total{{job="[a-z_]+",outcome="{outcome}"}} ([0-9.]+)',
                                            text))


def database_name(url):
    return urlsplit(url).path.lstrip("/")


def stop(proc):
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    return time.monotonic() - began


# ------------------------------------------------------------------------------------------------


def test_daemon_on_postgres_indexes_serves_and_steps_down_while_the_database_is_away(stack, pg_url, postgres,
                                                                                      tmp_path):
    stack.spam(5, 1)
    port = free_port()
    log = tmp_path / "keeper.log"
    proc = spawn_keeper(keeper_env(stack, tmp_path / "data", port=port, database_url=pg_url, leader_interval=0.3,
                                   log_level="INFO"), log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_cursor(pg_url, stack.w3.eth.block_number, proc=proc)
        body = wait_until("healthy", lambda: (h := health(base)).status_code == 200 and h.json())
        assert (body["status"], body["role"]) == ("ok", "leader")
        services = httpx.get(f"{base}/services", params={"active": "true"}).json()["services"]
        assert [s["name"] for s in services] == ["spam-even"]
        assert httpx.get(f"{base}/payments", params={"limit": 2}).json()["payments"][0]["paymentId"] == 5
        assert 'keeper_role{role="leader"} 1.0' in httpx.get(f"{base}/metrics").text
        assert not (tmp_path / "data" / "keeper.sqlite").exists()  # nothing went to SQLite

        name = database_name(pg_url)
        postgres.admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        postgres.admin(f"SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = '{name}'")
        stack.spam(20, 1)  # the chain moves on while the database is away
        down = wait_until("stepped down", lambda: (h := health(base)).status_code == 503 and
                          h.json()["role"] == "follower" and h.json())
        assert down["status"] == "degraded" and "database unreachable" in down["reasons"]
        assert 'keeper_role{role="follower"} 1.0' in httpx.get(f"{base}/metrics").text

        postgres.admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        wait_for_cursor(pg_url, stack.w3.eth.block_number, proc=proc)
        back = wait_until("healthy again", lambda: (h := health(base)).status_code == 200 and h.json())
        assert back["role"] == "leader"
    finally:
        seconds = stop(proc)
    assert seconds < 10
    assert_store_matches_chain(stack, pg_url)
    text = log.read_text()
    assert "stepping down" in text and PASSWORD not in text


def test_two_keepers_one_leader_and_a_sigkilled_leader_is_replaced(stack, funded, pg_url, tmp_path):
    stack.spam(20, 1)
    ports = [free_port(), free_port()]
    procs, logs = [], []
    for i, port in enumerate(ports):
        logs.append(tmp_path / f"keeper{i}.log")
        env = keeper_env(stack, tmp_path / f"data{i}", port=port, database_url=pg_url, leader_interval=0.3,
                         job_interval=0.3, facilitator="true", jobs="true", log_level="INFO",
                         relayer_key="0x" + RELAYER.key.hex().removeprefix("0x"))
        procs.append(spawn_keeper(env, logs[-1]))
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    producing = threading.Event()
    try:
        roles = wait_until("both keepers answer", lambda: [health(b).json()["role"] for b in bases]
                           if all(health(b).status_code == 200 for b in bases) else None)
        assert sorted(roles) == ["follower", "leader"]
        leader = roles.index("leader")
        follower = 1 - leader
        lead, follow = bases[leader], bases[follower]
        wait_for_cursor(pg_url, stack.w3.eth.block_number, proc=procs[leader])

        body = settle_body(stack)
        refused = httpx.post(f"{follow}/settle", json=body)
        assert refused.status_code == 503 and refused.json()["error"] == "not_leader"
        assert refused.headers["retry-after"] == "2"
        assert httpx.post(f"{follow}/verify", json=body).json()["isValid"] is True
        assert httpx.get(f"{follow}/supported").status_code == 200
        assert funded.functions.balanceOf(PAYEE).call() == 0  # the refusal moved nothing
        settled = httpx.post(f"{lead}/settle", json=body, timeout=30).json()
        assert settled["success"] is True
        assert funded.functions.balanceOf(PAYEE).call() == PRICE
        seen = httpx.get(f"{follow}/payments/{nonce_of(body)}").json()  # the intents are shared
        assert (seen["status"], seen["txHash"]) == ("settled", settled["transaction"])

        wait_until("the leader's jobs run", lambda: job_runs(lead) >= 5)
        assert job_runs(follow) == 0 and job_runs(follow, "failed") == 0
        assert 'keeper_role{role="follower"} 1.0' in httpx.get(f"{follow}/metrics").text

        def produce():  # the chain keeps moving through the failover
            while producing.is_set():
                stack.spam(30, 1)
        producing.set()
        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        time.sleep(0.5)
        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait(10)
        killed = time.monotonic()
        wait_until("the follower takes over", lambda: health(follow).json()["role"] == "leader", timeout=15)
        failover = time.monotonic() - killed
        time.sleep(0.5)
        producing.clear()
        producer.join(30)

        wait_for_cursor(pg_url, stack.w3.eth.block_number, proc=procs[follower])
        assert_store_matches_chain(stack, pg_url)
        runs = job_runs(follow)
        wait_until("the new leader's jobs run", lambda: job_runs(follow) > runs)
        again = httpx.post(f"{follow}/settle", json=body, timeout=30).json()  # the same authorization: same answer
        assert (again["success"], again["transaction"]) == (True, settled["transaction"])
        fresh = httpx.post(f"{follow}/settle", json=settle_body(stack), timeout=30).json()
        assert fresh["success"] is True
        assert funded.functions.balanceOf(PAYEE).call() == 2 * PRICE
    finally:
        producing.clear()
        for proc in procs:
            if proc.poll() is None:
                stop(proc)
    print(f"failover: {failover:.2f}s")
    assert failover < 5
    for log in logs:
        assert PASSWORD not in log.read_text()


class DiesBeforeBroadcast(Web3Backend):
    """Records the signed transaction, then the keeper "dies" before sending it."""

    def send(self, call, before_broadcast):
        def record_then_die(tx_hash, raw):
            assert before_broadcast(tx_hash, raw)
            raise ConnectionResetError("keeper killed between recording and broadcasting")
        return super().send(call, record_then_die)


def test_a_new_leader_settles_what_the_old_one_recorded_exactly_once(stack, funded, pg_url):
    assets = frozenset({funded.address})
    old = Facilitator(DiesBeforeBroadcast(stack.w3, RELAYER), IntentStore(pg_url), LOCAL, assets, receipt_timeout=5)
    new = Facilitator(Web3Backend(stack.w3, RELAYER), IntentStore(pg_url), LOCAL, assets, receipt_timeout=5)
    body = settle_body(stack)
    payment = Payment.from_v2(v2.PaymentPayload.model_validate(body["paymentPayload"]),
                              v2.PaymentRequirements.model_validate(body["paymentRequirements"]))
    assert old.settle(payment).status is Status.PENDING
    assert funded.functions.balanceOf(PAYEE).call() == 0  # recorded, never sent

    wait_until("the new leader closes it", lambda: new.reconcile_pending() or not new.store.pending(), timeout=10)
    (intent,) = new.store.by_nonce(nonce_of(body))
    assert intent.status is Status.SETTLED
    assert new.settle(payment).transaction == intent.tx_hash == old.settle(payment).transaction
    assert funded.functions.balanceOf(PAYEE).call() == PRICE
    assert funded.functions.balanceOf(PAYER.address).call() == 100 * 10**6 - PRICE


# ------------------------------------------------------------------------------------------------


@pytest.fixture
def offline_manifest(tmp_path):
    """A local manifest and no chain: the database is checked before the RPC is ever needed."""
    contracts = {name: manifests.DeployedContract(address="0x" + f"{i:040x}") for i, name in
                 enumerate(("USDC", "ServiceRegistry", "PaymentRouter"), start=1)}
    manifests.save(manifests.Manifest(network="local", chain_id=338, genesis_hash="0x" + "00" * 32,
                                      deployment_block=1, contracts=contracts), tmp_path / "deployments")
    return tmp_path / "deployments"


@pytest.mark.parametrize("case, says", [
    ("unreachable", "Connection refused"),
    ("wrong password", "password authentication failed"),
    ("no such database", 'database "nowhere" does not exist'),
    ("bad url", "not a valid PostgreSQL URL"),
])
def test_a_bad_or_unreachable_database_stops_the_keeper_at_start(case, says, postgres, offline_manifest, tmp_path):
    url = {"unreachable": f"postgresql://paygent:{PASSWORD}@127.0.0.1:{free_port()}/keeper",
           "wrong password": postgres.url(password=PASSWORD + "-wrong"),  # a leak of it would contain PASSWORD
           "no such database": postgres.url("nowhere"),
           "bad url": f"postgresql://paygent:{PASSWORD}@127.0.0.1:port/keeper"}[case]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYGENT_")}
    env.update(PAYGENT_DEPLOYMENTS_DIR=str(offline_manifest), PAYGENT_DATA_DIR=str(tmp_path / "data"),
               PAYGENT_RPC_URL=f"http://127.0.0.1:{free_port()}", PAYGENT_DATABASE_URL=url)
    done = subprocess.run([sys.executable, "-m", "keeper", "run"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("paygent keeper:")]
    assert "PAYGENT_DATABASE_URL" in line and says in line
    assert PASSWORD not in done.stderr and PASSWORD not in done.stdout
