"""A private anvil with Paygent's registry and router (and AgentWallet when compiled), driven with web3.

Used by the keeper's chain tests and by bench/keeper.py. Transactions come from anvil's unlocked
dev accounts (eth_sendTransaction), so nothing is signed in Python and event generation is fast.
The deployment is written as a normal manifest, so the keeper under test starts exactly as it
would in production. Store helpers take a SQLite path or a postgresql:// URL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from web3 import Web3

from keeper import db as dbapi
from paygent import manifest as manifests
from paygent.artifacts import PROJECT_ROOT, abi, deployment_bytecode
from paygent.localchain import LocalChain, free_port

ONE_USDC = 10**6
PRICE = 10_000


@dataclass
class Stack:
    url: str
    w3: Web3
    manifest: manifests.Manifest
    directory: Path
    contracts: dict[str, Any] = field(default_factory=dict)
    deployer: str = ""

    def send(self, fn: Any, sender: str | None = None, gas: int | None = None) -> Any:
        params: dict[str, Any] = {"from": sender or self.deployer}
        if gas:
            params["gas"] = gas
        tx = fn.transact(params)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, poll_latency=0.01)
        assert receipt["status"] == 1, f"transaction reverted: {fn.fn_name}"
        return receipt

    def spam(self, payments: int, updates: int = 0, price: int = PRICE, wait: bool = True) -> Any:
        fn = self.contracts["EventSpammer"].functions.spam(payments, updates, price)
        if wait:
            return self.send(fn, gas=max(1_000_000, 90_000 * (payments + updates)))
        return fn.transact({"from": self.deployer, "gas": max(1_000_000, 90_000 * (payments + updates))})

    def mine(self, blocks: int = 1) -> None:
        self.w3.provider.make_request("anvil_mine", [hex(blocks)])


def _deploy(w3: Web3, name: str, sender: str, *args: Any) -> Any:
    factory = w3.eth.contract(abi=abi(name), bytecode=deployment_bytecode(name))
    tx = factory.constructor(*args).transact({"from": sender})
    receipt = w3.eth.wait_for_transaction_receipt(tx, poll_latency=0.01)
    return w3.eth.contract(address=receipt["contractAddress"], abi=abi(name)), receipt


def deploy_stack(url: str, directory: Path, with_spammer: bool = True, spam_funds: int = 10**15) -> Stack:
    """Token, registry, router (+ wallet, + spammer) on the anvil at `url`; manifest in `directory`."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
    deployer = w3.eth.accounts[0]
    start = w3.eth.block_number + 1
    token, _ = _deploy(w3, "FiatTokenLocal", deployer)
    w3.eth.wait_for_transaction_receipt(token.functions.initialize("Bridged USDC (Stargate)", "USDC.e", 6, deployer)
                                        .transact({"from": deployer}))
    registry, r1 = _deploy(w3, "ServiceRegistry", deployer)
    router, r2 = _deploy(w3, "PaymentRouter", deployer, registry.address, deployer, w3.eth.accounts[5], 100, 500)
    record = {
        "USDC": manifests.DeployedContract(address=token.address),
        "ServiceRegistry": manifests.DeployedContract(address=registry.address, tx_hash=r1["transactionHash"].hex(),
                                                      block=r1["blockNumber"]),
        "PaymentRouter": manifests.DeployedContract(address=router.address, tx_hash=r2["transactionHash"].hex(),
                                                    block=r2["blockNumber"]),
    }
    contracts: dict[str, Any] = {"USDC": token, "ServiceRegistry": registry, "PaymentRouter": router}
    wallet, r3 = _deploy(w3, "AgentWallet", deployer, deployer, 86_400)
    record["AgentWallet"] = manifests.DeployedContract(address=wallet.address, tx_hash=r3["transactionHash"].hex(),
                                                       block=r3["blockNumber"])
    contracts["AgentWallet"] = wallet
    if with_spammer:
        spammer, _ = _deploy(w3, "EventSpammer", deployer, registry.address, router.address, token.address)
        contracts["EventSpammer"] = spammer
        w3.eth.wait_for_transaction_receipt(token.functions.mint(spammer.address, spam_funds).transact({"from": deployer}))
        w3.eth.wait_for_transaction_receipt(spammer.functions.setUp(PRICE).transact({"from": deployer}))
    genesis = w3.eth.get_block(0)["hash"].hex()
    manifest = manifests.Manifest(network="local", chain_id=w3.eth.chain_id, genesis_hash=genesis,
                                  deployment_block=start, deployer=deployer, contracts=record)
    manifests.save(manifest, directory)
    return Stack(url, w3, manifest, directory, contracts, deployer)


# ------------------------------------------------------------------------------------------------
# The keeper as a real process


def keeper_env(stack: Stack, data_dir: Path, port: int | None = None, **extra: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYGENT_")}
    env.update({
        "PAYGENT_RPC_URL": stack.url, "PAYGENT_DEPLOYMENTS_DIR": str(stack.directory),
        "PAYGENT_DATA_DIR": str(data_dir), "PAYGENT_PORT": str(port or free_port()), "PAYGENT_JOBS": "false",
        "PAYGENT_FACILITATOR": "false", "PAYGENT_POLL_INTERVAL": "0.1", "PAYGENT_LOG_LEVEL": "WARNING",
    })
    env.update({f"PAYGENT_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def spawn_keeper(env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "keeper", "run"], cwd=PROJECT_ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT)


def wait_for_health(base: str, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> httpx.Response:
    """The keeper's first /healthz answer (200 or 503), once its HTTP server is up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(f"{base}/healthz", timeout=2)
        except httpx.HTTPError:
            assert time.monotonic() < deadline, f"no /healthz answer from {base} within {timeout}s"
            assert proc is None or proc.poll() is None, f"keeper exited with {proc.returncode}"
            time.sleep(0.1)


def _reader(where: Path | str) -> Any:
    return dbapi.connect(where if isinstance(where, Path) or "://" in where else Path(where), readonly=True)


def cursor_of(where: Path | str) -> int:
    """The stored cursor of a SQLite file or a PostgreSQL database; -1 if there is none yet."""
    if isinstance(where, Path) and not where.exists():
        return -1
    try:
        db = _reader(where)
        try:
            row = db.execute("SELECT block_number FROM cursor").fetchone()
        finally:
            db.close()
    except dbapi.ERRORS:
        return -1
    return row[0] if row else -1


def wait_for_cursor(where: Path | str, block: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cursor_of(where) >= block:
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"keeper exited with {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError(f"keeper cursor {cursor_of(where)} did not reach block {block} in {timeout}s")


# ------------------------------------------------------------------------------------------------
# The chain's truth vs the store


def chain_events(stack: Stack) -> set[tuple[str, int]]:
    """(tx hash, log index) of every log the keeper should have, straight from the node."""
    addresses = [stack.manifest.address(n).lower() for n in ("ServiceRegistry", "PaymentRouter", "AgentWallet")
                 if n in stack.manifest.contracts]
    head = stack.w3.eth.block_number
    raw = stack.w3.provider.make_request("eth_getLogs", [{"fromBlock": hex(stack.manifest.deployment_block),
                                                          "toBlock": hex(head), "address": addresses}])["result"]
    return {(r["transactionHash"].lower(), int(r["logIndex"], 16)) for r in raw}


def store_events(where: Path | str) -> list[tuple[str, int]]:
    db = _reader(where)
    try:
        rows = []
        for table in ("service_events", "payments", "subscription_events", "contract_events"):
            rows += db.execute(f"SELECT tx_hash, log_index FROM {table}").fetchall()  # noqa: S608
        return [(t, i) for t, i in rows]
    finally:
        db.close()


def assert_store_matches_chain(stack: Stack, where: Path | str) -> int:
    """Every log once, nothing else; projections equal the contracts' own views. Returns the count."""
    want = chain_events(stack)
    have = store_events(where)
    assert len(have) == len(set(have)), "duplicated rows"
    missing, extra = want - set(have), set(have) - want
    assert not missing and not extra, f"{len(missing)} missing, {len(extra)} extra"
    db = _reader(where)
    try:
        router, registry = stack.contracts["PaymentRouter"], stack.contracts["ServiceRegistry"]
        assert db.execute("SELECT COUNT(*) FROM payments").fetchone()[0] == router.functions.paymentCount().call()
        count = registry.functions.serviceCount().call()
        assert db.execute("SELECT COUNT(*) FROM services").fetchone()[0] == count
        for service_id in range(1, count + 1):
            s = registry.functions.getService(service_id).call()
            row = db.execute("SELECT pay_to, price, token, model, active, period, provider, name, endpoint, "
                             "metadata_uri FROM services WHERE service_id = ?", (service_id,)).fetchone()
            assert row == (s[0].lower(), str(s[1]), s[2].lower(), s[3], int(s[4]), s[5], s[6].lower(), s[7], s[8],
                           s[9]), f"service {service_id}"
            volume, payments, last = router.functions.serviceStats(service_id).call()
            stats = db.execute("SELECT volume, payments, last_paid_at FROM service_stats WHERE service_id = ?",
                               (service_id,)).fetchone() or ("0", 0, 0)
            assert (int(stats[0]), stats[1], stats[2]) == (volume, payments, last), f"stats of service {service_id}"
    finally:
        db.close()
    return len(want)


# ------------------------------------------------------------------------------------------------
# An RPC that can be switched off


class TcpProxy:
    """127.0.0.1:<port> -> target; `stop()` drops the listener and every open connection."""

    def __init__(self, target_port: int, port: int | None = None):
        self.target = target_port
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> "TcpProxy":
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self._server is not None:
            try:
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() call; close() alone does not
            except OSError:
                pass
            self._server.close()
            self._server = None
        with self._lock:
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self._conns.clear()


def local_chain(**kwargs: Any) -> LocalChain:
    return LocalChain(extra_args=["--gas-limit", "3000000000", "--disable-code-size-limit"], **kwargs)
