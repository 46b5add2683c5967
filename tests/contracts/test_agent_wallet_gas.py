"""AgentWallet gas, total per transaction (receipt.gas_used, anvil, paris), against same-run baselines.

Steady state, as bench/gas.py measures it: the payee already holds the token and the agent already
spent in the current window (so the window slot goes nonzero -> nonzero). Run with `-s` to see the
numbers.

Where the gas goes in `pay` (measured with a trace): 21,000 intrinsic + ~1,500 calldata + three cold
SLOADs (slot 0 with the lock and pause flag, the agent, the (agent, token) window, which holds what
remains and the cap: 6,300) + the window write (2,900) + the lock (2,900 + 100 - 2,800 refund) + the
Paid event (2,900) + the token call (2,600 cold + the token's own ~12,700) + ~800 of Solidity: 53,050,
near the 52,000 target; the limit's slot is read only when a spend opens a new window.
"""

from __future__ import annotations

import pytest

from wallet_support import (  # noqa: F401  (fixtures are used by name)
    NATIVE,
    REF,
    USDC,
    bare_wallet,
    factory,
    key_of,
    payee,
    pool,
    sign_intent,
    swap_wallet,
    vvs,
    wallet,
)

PAY_BOUND = 60_000
# The spec's bound: swap <= direct router swap + 25,000. Measured: +24,250 (three cold slots, token
# calls without allocation, the router's answer checked for size but not decoded).
SWAP_OVERHEAD_BOUND = 25_000
# Regression guards for the other paths (measured: 46,674 / 64,551 / 54,646 / 142,480 / 60,398).
OTHER_GUARDS = {"pay CRO": 48_000, "payWithSig": 66_000, "topUpFloat": 56_000, "propose": 145_000,
                "approve (executes)": 62_000}


def next_second(chain) -> None:
    """The next block one second after the last, so the pair's price accumulators always update
    (nonzero -> nonzero): swap gas then does not depend on two blocks sharing a wall-clock second."""
    chain.pending_timestamp = chain.blocks.head.timestamp + 1


@pytest.fixture
def steady(swap_wallet, chain, owner, agent, payer, usdc, wcro, vvs, payee):
    """Baselines and the wallet warmed up the way bench/gas.py does it."""
    usdc.mint(payer, 1_000 * USDC, sender=owner)
    wcro.deposit(sender=payer, value=10**18)
    usdc.approve(vvs, 10**30, sender=payer)
    deadline = chain.pending_timestamp + 10**6
    path = [usdc.address, wcro.address]
    next_second(chain)
    vvs.swapExactTokensForTokens(USDC, 0, path, payer, deadline, sender=payer)  # accumulators now nonzero
    usdc.transfer(payee, 1, sender=payer)
    swap_wallet.pay(usdc, payee, USDC // 10, b"\x01" * 32, sender=agent)  # the window counter is now non-zero
    transfer = usdc.transfer(payee, 1, sender=payer).gas_used
    next_second(chain)
    direct = vvs.swapExactTokensForTokens(USDC, 0, path, payer, deadline, sender=payer).gas_used
    return {"erc20_transfer_existing": transfer, "router_swap_direct": direct, "deadline": deadline, "path": path}


def test_pay_to_an_existing_holder_costs_at_most_60k(swap_wallet, steady, agent, payee, usdc):
    gas = swap_wallet.pay(usdc, payee, USDC // 10, REF, sender=agent).gas_used
    print(f"\nerc20 transfer {steady['erc20_transfer_existing']:,}  wallet pay {gas:,} (bound {PAY_BOUND:,})")
    assert gas <= PAY_BOUND


def test_swap_costs_at_most_a_direct_swap_plus_25k(swap_wallet, steady, chain, agent, vvs):
    next_second(chain)
    gas = swap_wallet.swap(vvs, USDC // 10, 0, steady["path"], steady["deadline"], sender=agent).gas_used
    overhead = gas - steady["router_swap_direct"]
    print(f"\ndirect swap {steady['router_swap_direct']:,}  wallet swap {gas:,}  overhead {overhead:,}")
    assert overhead <= SWAP_OVERHEAD_BOUND


def test_other_paths_stay_within_their_guards(swap_wallet, steady, chain, owner, agent, stranger, payee, usdc):
    """propose writes four fresh slots (and requestCount 0 -> 1 here): it is the expensive one."""
    w = swap_wallet
    msg = {"agent": agent.address, "token": usdc.address, "to": payee.address, "amount": USDC // 10, "ref": REF,
           "nonce": w.nonces(agent), "deadline": chain.pending_timestamp + 600}
    sig = sign_intent(key_of(1), w, chain.chain_id, "Pay", msg)
    usdc.mint(agent, 1, sender=owner)
    gas = {
        "pay CRO": w.pay(NATIVE, payee, 1, REF, sender=agent).gas_used,
        "payWithSig": w.payWithSig(agent, usdc, payee, USDC // 10, REF, msg["deadline"], sig,
                                   sender=stranger).gas_used,
        "topUpFloat": w.topUpFloat(usdc, USDC // 10, sender=agent).gas_used,
        "propose": w.propose(usdc, payee, 500 * USDC, REF, sender=agent).gas_used,
    }
    gas["approve (executes)"] = w.approve(1, sender=owner).gas_used
    print("\n" + "\n".join(f"{k:>20} {v:>8,}" for k, v in gas.items()))
    assert {k: v for k, v in gas.items() if v > OTHER_GUARDS[k]} == {}
