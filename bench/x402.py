"""x402 benchmark (`python -m bench.x402`): signing, recovery, facilitator verify, and paid requests.

- sign_per_s / recover_per_s: Paygent's EIP-3009 signer and recovery (direct digest + coincurve),
  one core, against the baseline measured in the same process: eth-account's typed-data signing
  with eth-keys' pure-Python backend forced (`baseline_*_pure_python`).
- facilitator_verify_per_s: full verification of a valid payment (signature + one batched RPC for
  chain time, balance and authorizationState) against a private anvil.
- e2e_paid_request_ms: client → paywall → facilitator → chain → content, each over real HTTP
  (uvicorn on localhost) on a private anvil with instant mining; `requests` paid requests in a row.
Writes build/bench/x402.json.
"""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from bench import print_table, write_json

REQUESTS = int(os.environ.get("PAYGENT_BENCH_X402_REQUESTS", "200"))
PRICE = 10_000


def _rate(fn: Any, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def crypto_rates() -> dict[str, float]:
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    from agent.signer import LocalSigner
    from paygent.eip3009 import AuthorizationKind, TokenDomain, digest, recover, typed_data
    from paygent.localchain import test_key

    key = test_key(3)
    signer = LocalSigner(key)
    domain = TokenDomain("Bridged USDC (Stargate)", "1", 338, "0xc01efAaF7C5C61bEbFAeb358E1161b537b8bC0e0")
    payee = "0x" + "22" * 20
    signed = signer.authorize(domain, AuthorizationKind.TRANSFER, payee, PRICE, 300, now=1_700_000_000)
    message_hash = digest(domain, signed.kind, signed.message)
    assert recover(message_hash, signed.signature) == signer.address

    rates = {
        "sign_per_s": _rate(lambda: signer.authorize(domain, AuthorizationKind.TRANSFER, payee, PRICE, 300), 5000),
        "recover_per_s": _rate(lambda: recover(message_hash, signed.signature), 5000),
    }
    full = typed_data(domain, signed.kind, signed.message)
    signable = encode_typed_data(full_message=full)
    vrs = (signed.signature[64], int.from_bytes(signed.signature[:32], "big"),
           int.from_bytes(signed.signature[32:64], "big"))
    rates["eth_account_sign_per_s_coincurve"] = _rate(lambda: Account.sign_typed_data(key.key, full_message=full), 500)
    previous = os.environ.get("ECC_BACKEND_CLASS")
    os.environ["ECC_BACKEND_CLASS"] = "eth_keys.backends.NativeECCBackend"  # eth-keys reads it per call
    try:
        rates["baseline_sign_per_s_pure_python"] = _rate(
            lambda: Account.sign_typed_data(key.key, full_message=full), 200)
        rates["baseline_recover_per_s_pure_python"] = _rate(
            lambda: Account.recover_message(signable, vrs=vrs), 200)
    finally:
        if previous is None:
            os.environ.pop("ECC_BACKEND_CLASS", None)
        else:
            os.environ["ECC_BACKEND_CLASS"] = previous
    return rates


class _Server:
    def __init__(self, app: Any):
        import uvicorn

        from paygent.localchain import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "_Server":
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(5)


def _deploy_token(w3: Any, deployer: Any) -> Any:
    """A FiatTokenLocal (USDC.e stand-in) deployed with web3 from the compiled artifact."""
    from paygent.artifacts import abi, deployment_bytecode

    def send(tx: dict) -> Any:
        tx.update(nonce=w3.eth.get_transaction_count(deployer.address), gasPrice=0, chainId=338,
                  gas=tx.get("gas", 6_000_000))
        rcpt = w3.eth.wait_for_transaction_receipt(
            w3.eth.send_raw_transaction(deployer.sign_transaction(tx).raw_transaction))
        assert rcpt["status"] == 1
        return rcpt

    factory = w3.eth.contract(abi=abi("FiatTokenLocal"), bytecode=deployment_bytecode("FiatTokenLocal"))
    address = send(factory.constructor().build_transaction({"from": deployer.address, "gasPrice": 0}))[
        "contractAddress"]
    token = w3.eth.contract(address=address, abi=abi("FiatTokenLocal"))
    send(token.functions.initialize("Bridged USDC (Stargate)", "USDC.e", 6, deployer.address).build_transaction(
        {"from": deployer.address, "gasPrice": 0, "gas": 500_000}))
    return token, send


@contextmanager
def _stack() -> Iterator[dict[str, Any]]:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from web3 import Web3

    from keeper.facilitator import Facilitator, Web3Backend, create_app
    from keeper.intents import IntentStore
    from paygent.localchain import LocalChain, test_key
    from paygent.networks import LOCAL
    from paygent.paywall import HttpFacilitator, PaidRoute, Paywall, ServedLog

    with LocalChain() as node, tempfile.TemporaryDirectory() as tmp:
        w3 = Web3(Web3.HTTPProvider(node.url))
        deployer, payer, provider, relayer = test_key(0), test_key(3), test_key(2), test_key(7)
        token, send = _deploy_token(w3, deployer)
        send(token.functions.mint(payer.address, 1_000 * 10**6).build_transaction(
            {"from": deployer.address, "gasPrice": 0, "gas": 200_000}))
        facilitator = Facilitator(Web3Backend(w3, relayer, poll_latency=0.005), IntentStore(Path(tmp) / "i.sqlite"),
                                  LOCAL, frozenset({token.address}))

        async def content(_request: Any) -> JSONResponse:
            return JSONResponse({"price": 0.1})

        route = PaidRoute(path="/price", price=PRICE, asset=token.address, pay_to=provider.address,
                          token_name="Bridged USDC (Stargate)", token_version="1")
        with _Server(create_app(facilitator)) as fac:
            seller_app = Paywall(Starlette(routes=[Route("/price", content)]), [route], HttpFacilitator(fac.url),
                                 LOCAL, served=ServedLog(Path(tmp) / "served.sqlite"))
            with _Server(seller_app) as seller:
                yield {"w3": w3, "token": token, "payer": payer, "provider": provider, "facilitator": facilitator,
                       "seller": seller.url}


def verify_rate(env: dict[str, Any], n: int = 300) -> float:
    from agent.signer import LocalSigner
    from keeper.facilitator import Payment
    from paygent.eip3009 import AuthorizationKind, DomainReader
    from paygent.wire import v2
    from paygent.wire.exact import Extra

    token, facilitator = env["token"], env["facilitator"]
    domain = DomainReader(env["w3"]).domain(token.address)
    requirements = v2.PaymentRequirements(scheme="exact", network="eip155:338", asset=token.address,
                                          amount=str(PRICE), pay_to=env["provider"].address, max_timeout_seconds=300,
                                          extra=Extra(name=domain.name, version=domain.version))
    signed = LocalSigner(env["payer"]).authorize(domain, AuthorizationKind.TRANSFER, requirements.pay_to, PRICE,
                                                 300, nonce=secrets.token_bytes(32))
    payment = Payment.from_v2(v2.PaymentPayload(payload=signed.payload(), accepted=requirements), requirements)
    assert facilitator.verify(payment).is_valid
    return _rate(lambda: facilitator.verify(payment), n)


def e2e(env: dict[str, Any], n: int) -> list[float]:
    import httpx

    from agent.signer import LocalSigner
    from agent.x402_client import Budget, PaymentPlanner, X402Client
    from paygent.eip3009 import DomainReader
    from paygent.networks import LOCAL

    token = env["token"]
    planner = PaymentPlanner(LocalSigner(env["payer"]), DomainReader(env["w3"]), LOCAL, token.address,
                             Budget(per_request=PRICE, session=PRICE * (n + 10)))
    before = token.functions.balanceOf(env["provider"].address).call()
    samples = []
    with httpx.Client(base_url=env["seller"], timeout=30) as http:
        client = X402Client(planner, http=http)
        for _ in range(5):  # warm-up: connections, domain cache
            assert client.get("/price").response.status_code == 200
        for _ in range(n):
            start = time.perf_counter()
            paid = client.get("/price")
            samples.append((time.perf_counter() - start) * 1000)
            assert paid.response.status_code == 200 and paid.receipt is not None and paid.receipt.success
    moved = token.functions.balanceOf(env["provider"].address).call() - before
    assert moved == PRICE * (n + 5), f"moved {moved}, expected {PRICE * (n + 5)}"
    return samples


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> dict[str, Any]:
    result: dict[str, Any] = {k: round(v, 1) for k, v in crypto_rates().items()}
    with _stack() as env:
        result["facilitator_verify_per_s"] = round(verify_rate(env), 1)
        samples = e2e(env, REQUESTS)
    result["e2e_paid_request_ms"] = {"p50": round(statistics.median(samples), 2),
                                     "p95": round(_percentile(samples, 0.95), 2)}
    result["requests"] = len(samples)
    result["sign_speedup_vs_baseline"] = round(result["sign_per_s"] / result["baseline_sign_per_s_pure_python"], 1)
    result["recover_speedup_vs_baseline"] = round(
        result["recover_per_s"] / result["baseline_recover_per_s_pure_python"], 1)
    rows = [
        ("sign (Paygent, coincurve)", f"{result['sign_per_s']:,.0f}/s", ">= 3,000/s"),
        ("recover (Paygent, coincurve)", f"{result['recover_per_s']:,.0f}/s", ">= 3,000/s"),
        ("sign (eth-account typed data, coincurve)", f"{result['eth_account_sign_per_s_coincurve']:,.0f}/s", ""),
        ("baseline sign (eth-account, pure Python)", f"{result['baseline_sign_per_s_pure_python']:,.0f}/s", ""),
        ("baseline recover (eth-account, pure Python)", f"{result['baseline_recover_per_s_pure_python']:,.0f}/s", ""),
        ("speedup sign / recover", f"{result['sign_speedup_vs_baseline']}x / {result['recover_speedup_vs_baseline']}x",
         ""),
        ("facilitator verify (with RPC)", f"{result['facilitator_verify_per_s']:,.0f}/s", ""),
        ("e2e paid request p50", f"{result['e2e_paid_request_ms']['p50']} ms", "<= 200 ms"),
        ("e2e paid request p95", f"{result['e2e_paid_request_ms']['p95']} ms", ""),
        ("paid requests", result["requests"], ">= 200"),
    ]
    print_table("x402 (one core; anvil with instant mining)", rows, ("measure", "value", "target"))
    path = write_json("x402", result)
    print(f"\nwritten: {path}")
    return result


if __name__ == "__main__":
    main()
