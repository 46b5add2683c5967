"""Gas benchmark (`python -m bench.gas`): total gas per transaction on a local anvil, one run.

Baselines are the same jobs done without Paygent (plain token transfer, EIP-3009 transfer, a direct
VVS swap), measured in the same run on the same token and pool, so the table reads as overhead.
"Existing" means sender and recipient already hold the token and any per-window counter is already
non-zero (the steady state of an agent paying all day); "fresh" means a recipient that never held it.
Writes build/bench/gas.json.
"""

from __future__ import annotations

import os
import secrets

from bench import print_table, write_json
from paygent.apectx import ape_on
from paygent.deployment import deploy
from paygent.eip3009 import service_nonce
from paygent.localchain import LocalChain, test_key
from paygent.networks import LOCAL

def _auth_signature(token, key, primary: str, to: str, value: int, valid_before: int,
                    nonce: bytes | None = None) -> tuple:
    from eth_account import Account

    nonce = nonce or secrets.token_bytes(32)
    message = {
        "from": key.address,
        "to": to,
        "value": value,
        "validAfter": 0,
        "validBefore": valid_before,
        "nonce": nonce,
    }
    types = {
        primary: [
            {"name": "from", "type": "address"},
            {"name": "to", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "validAfter", "type": "uint256"},
            {"name": "validBefore", "type": "uint256"},
            {"name": "nonce", "type": "bytes32"},
        ]
    }
    domain = {"name": token.name(), "version": token.version(), "chainId": 338, "verifyingContract": token.address}
    signed = Account.sign_typed_data(key.key, domain, types, message)
    return message, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def next_second(chain) -> None:
    """The next block is one second after the last: a UniswapV2 pair then always updates its
    price accumulators (nonzero -> nonzero once the pool has traded), so a swap's gas does not depend
    on whether two transactions happened to land in the same wall-clock second."""
    chain.pending_timestamp = chain.blocks.head.timestamp + 1


def measure() -> dict:
    from ape import accounts, chain, project

    test = accounts.test_accounts
    owner, agent, provider, payer, relayer, holder = (test[i] for i in range(6))
    result = deploy(LOCAL, owner, directory=_tmpdir(), accounts=test, log=lambda _m: None)
    m = result.manifest
    usdc = project.FiatTokenLocal.at(m.address("USDC"))
    wcro = project.WCRO.at(m.address("WCRO"))
    vvs = project.VVSRouter.at(m.address("VVSRouter"))
    registry = project.ServiceRegistry.at(m.address("ServiceRegistry"))
    router = project.PaymentRouter.at(m.address("PaymentRouter"))
    wallet = project.AgentWallet.at(m.address("AgentWallet"))
    service_id = int(m.demo["service:vvs-price-oracle"])
    price = registry.getService(service_id).price

    one = 10**6
    # Everyone who pays or is paid already holds USDC.e and WCRO ("existing").
    for acct in (payer, holder, provider, relayer):  # not the agent: its float is capped
        usdc.mint(acct, 1_000 * one, sender=owner)
    usdc.mint(owner, 1_000 * one, sender=owner)
    wcro.deposit(sender=payer, value=10**18)
    wcro.deposit(sender=owner, value=10**18)
    wcro.transfer(wallet, 10**18, sender=owner)
    deadline = chain.pending_timestamp + 10**6

    gas: dict[str, dict[str, int]] = {"baseline": {}, "paygent": {}}
    base, ours = gas["baseline"], gas["paygent"]

    # --- baselines --------------------------------------------------------------------------
    usdc.transfer(holder, one, sender=payer)  # warm nothing: every tx is a fresh transaction
    base["erc20_transfer_existing"] = usdc.transfer(holder, one, sender=payer).gas_used
    base["erc20_transfer_fresh"] = usdc.transfer(_fresh(), one, sender=payer).gas_used
    payer_key = test_key(3)
    msg, v, r, s = _auth_signature(usdc, payer_key, "TransferWithAuthorization", holder.address, one, deadline)
    base["transfer_with_authorization_existing"] = usdc.transferWithAuthorization(
        msg["from"], msg["to"], msg["value"], msg["validAfter"], msg["validBefore"], msg["nonce"], v, r, s,
        sender=relayer,
    ).gas_used
    usdc.approve(vvs, 10**30, sender=payer)
    path = [usdc.address, wcro.address]
    next_second(chain)
    vvs.swapExactTokensForTokens(one, 0, path, payer, deadline, sender=payer)  # accumulators now nonzero
    next_second(chain)
    base["router_swap_direct"] = vvs.swapExactTokensForTokens(one, 0, path, payer, deadline, sender=payer).gas_used

    # --- Paygent ----------------------------------------------------------------------------
    wallet.pay(usdc, holder, one // 10, b"\x01" * 32, sender=agent)  # window counter now non-zero
    ours["wallet_pay_existing"] = wallet.pay(usdc, holder, one // 10, b"\x02" * 32, sender=agent).gas_used
    ours["wallet_pay_fresh"] = wallet.pay(usdc, _fresh(), one // 10, b"\x03" * 32, sender=agent).gas_used

    usdc.approve(router, 10**30, sender=payer)
    router.pay(service_id, 1, usdc, price, b"\x04" * 32, sender=payer)
    ours["router_pay_existing"] = router.pay(service_id, 1, usdc, price, b"\x05" * 32,
                                             sender=payer).gas_used
    msg, v, r, s = _auth_signature(usdc, payer_key, "ReceiveWithAuthorization", router.address, price, deadline,
                                   nonce=service_nonce(service_id))
    ours["router_settle_authorization_existing"] = router.settleAuthorization(
        service_id, msg["from"], msg["value"], msg["validAfter"], msg["validBefore"], msg["nonce"], v, r, s,
        b"\x06" * 32, sender=relayer,
    ).gas_used

    next_second(chain)
    ours["wallet_swap"] = wallet.swap(vvs, one // 10, 0, path, deadline, sender=agent).gas_used
    ours["registry_register"] = registry.register(
        "bench-service", "http://127.0.0.1:1/x", 0, usdc, 1_000, 0, provider, "", sender=provider
    ).gas_used
    big = 3 * one  # above the demo per-payment cap: must go through the queue
    receipt = wallet.propose(usdc, holder, big, b"\x07" * 32, sender=agent)
    ours["approval_propose"] = receipt.gas_used
    request_id = receipt.return_value
    ours["approval_approve_and_execute"] = wallet.approve(request_id, sender=owner).gas_used
    ours["float_topup"] = wallet.topUpFloat(usdc, one // 10, sender=agent).gas_used
    return gas


def _fresh() -> str:
    from eth_account import Account

    return Account.create().address


def _tmpdir():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="paygent-bench-gas-"))


def main() -> dict:
    with LocalChain() as node, ape_on(node.url):
        gas = measure()
    base, ours = gas["baseline"], gas["paygent"]
    rows = [("baseline", k, v, "") for k, v in base.items()]
    checks = {
        "wallet_pay_existing": ("<= 60,000", ours["wallet_pay_existing"] <= 60_000),
        "router_settle_authorization_existing": (
            f"<= twa + 30,000 = {base['transfer_with_authorization_existing'] + 30_000:,}",
            ours["router_settle_authorization_existing"] <= base["transfer_with_authorization_existing"] + 30_000,
        ),
        "wallet_swap": (
            f"<= direct + 25,000 = {base['router_swap_direct'] + 25_000:,}",
            ours["wallet_swap"] <= base["router_swap_direct"] + 25_000,
        ),
    }
    for k, v in ours.items():
        bound, ok = checks.get(k, ("", None))
        rows.append(("paygent", k, v, f"{bound} {'ok' if ok else 'OVER'}" if bound else ""))
    print_table("Gas per transaction (total, anvil, paris)", rows, ("set", "operation", "gas", "bound"))
    path = write_json("gas", gas)
    print(f"\nwrote {path}")
    if os.environ.get("PAYGENT_BENCH_STRICT") and not all(ok for _, ok in checks.values()):
        raise SystemExit("gas bounds exceeded")
    return gas


if __name__ == "__main__":
    main()
