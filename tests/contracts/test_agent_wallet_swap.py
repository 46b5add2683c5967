"""AgentWallet.swap: exact-input swaps through an owner-allowlisted UniswapV2 router (the local VVS
stand-in), output back to the wallet, input counted against the agent's rule for path[0].

Pool: 100,000 USDC.e / 1,000,000 WCRO. Agent rules: USDC.e limit 100 / cap 40, WCRO limit 1,000 / cap
400 per UTC day. The wallet holds 1,000 USDC.e and 500 WCRO.
"""

from __future__ import annotations

import pytest

from wallet_support import (  # noqa: F401  (fixtures are used by name)
    CRO,
    DAY,
    USDC,
    USDC_CAP,
    USDC_LIMIT,
    WALLET_USDC,
    agent2,
    amount_out,
    at,
    balance,
    bare_wallet,
    error_data,
    ev,
    factory,
    logs,
    payee,
    pool,
    reverts_with,
    reverts_with_data,
    swap_wallet,
    vvs,
    wallet,
)

REF = b"\x07" * 32


def reserves(pool, token_in) -> tuple[int, int]:
    r0, r1, _ = pool.getReserves()
    return (r0, r1) if pool.token0() == token_in.address else (r1, r0)


def later(chain) -> int:
    return chain.pending_timestamp + 600


def test_swap_usdc_for_wcro_lands_the_output_in_the_wallet(swap_wallet, chain, vvs, pool, usdc, wcro, agent):
    w = swap_wallet
    amount_in = 10 * USDC
    r_in, r_out = reserves(pool, usdc)
    out = amount_out(amount_in, r_in, r_out)
    assert out == vvs.getAmountsOut(amount_in, [usdc, wcro])[-1]
    wcro_before = balance(wcro, w)
    t = at(chain, chain.pending_timestamp + 10)
    receipt = w.swap(vvs, amount_in, out, [usdc, wcro], t + 600, sender=agent)
    usdc_is_0 = pool.token0() == usdc.address
    assert logs(receipt) == [
        ev(usdc, "Approval", owner=w, spender=vvs, value=amount_in),
        ev(usdc, "Transfer", **{"from": w, "to": pool, "value": amount_in}),
        ev(wcro, "Transfer", **{"from": pool, "to": w, "value": out}),
        ev(pool, "Sync", reserve0=(r_in + amount_in) if usdc_is_0 else r_out - out,
           reserve1=(r_out - out) if usdc_is_0 else r_in + amount_in),
        ev(pool, "Swap", sender=vvs, amount0In=amount_in if usdc_is_0 else 0, amount1In=0 if usdc_is_0 else amount_in,
           amount0Out=0 if usdc_is_0 else out, amount1Out=out if usdc_is_0 else 0, to=w),
        ev(w, "Swapped", agent=agent, router=vvs, tokenIn=usdc, tokenOut=wcro, amountIn=amount_in, amountOut=out,
           remainingInWindow=USDC_LIMIT - amount_in, windowIndex=t // DAY),
    ]
    assert receipt.return_value == out
    assert balance(usdc, w) == WALLET_USDC - amount_in
    assert balance(wcro, w) == wcro_before + out
    assert usdc.allowance(w, vvs) == 0
    assert w.spentInWindow(agent, usdc)[0] == amount_in
    assert w.spentInWindow(agent, wcro)[0] == 0  # output is not spending


def test_swap_wcro_for_usdc_counts_against_the_wcro_rule(swap_wallet, chain, vvs, pool, usdc, wcro, agent):
    w = swap_wallet
    amount_in = 400 * CRO  # the WCRO cap
    out = amount_out(amount_in, *reserves(pool, wcro))
    receipt = w.swap(vvs, amount_in, 0, [wcro, usdc], later(chain), sender=agent)
    assert receipt.return_value == out
    assert balance(usdc, w) == WALLET_USDC + out
    assert balance(wcro, w) == 100 * CRO
    assert wcro.allowance(w, vvs) == 0
    assert w.spentInWindow(agent, wcro)[0] == 400 * CRO
    with reverts_with(w.CapExceeded, agent=agent, token=wcro, cap=400 * CRO, amount=400 * CRO + 1):
        w.swap(vvs, 400 * CRO + 1, 0, [wcro, usdc], later(chain), sender=agent)


def test_swap_obeys_cap_and_limit_of_the_input_token(swap_wallet, chain, vvs, usdc, wcro, agent, payee):
    w = swap_wallet
    with reverts_with(w.CapExceeded, agent=agent, token=usdc, cap=USDC_CAP, amount=USDC_CAP + 1):
        w.swap(vvs, USDC_CAP + 1, 0, [usdc, wcro], later(chain), sender=agent)
    w.pay(usdc, payee, USDC_CAP, REF, sender=agent)
    w.swap(vvs, USDC_CAP, 0, [usdc, wcro], later(chain), sender=agent)
    with reverts_with(w.LimitExceeded, agent=agent, token=usdc, limit=USDC_LIMIT, spentInWindow=2 * USDC_CAP,
                      amount=USDC_LIMIT - 2 * USDC_CAP + 1):
        w.swap(vvs, USDC_LIMIT - 2 * USDC_CAP + 1, 0, [usdc, wcro], later(chain), sender=agent)


def test_swap_refuses_zero_input(swap_wallet, chain, vvs, usdc, wcro, agent):
    with reverts_with(swap_wallet.ZeroAmount):
        swap_wallet.swap(vvs, 0, 0, [usdc, wcro], later(chain), sender=agent)


def test_router_must_be_allowlisted(swap_wallet, project, chain, owner, factory, wcro, usdc, vvs, agent):
    other = owner.deploy(project.VVSRouter, factory, wcro)  # a real router, never allowlisted
    with reverts_with(swap_wallet.RouterNotAllowed, router=other):
        swap_wallet.swap(other, 1 * USDC, 0, [usdc, wcro], later(chain), sender=agent)
    swap_wallet.setRouter(vvs, False, sender=owner)
    with reverts_with(swap_wallet.RouterNotAllowed, router=vvs):
        swap_wallet.swap(vvs, 1 * USDC, 0, [usdc, wcro], later(chain), sender=agent)


def test_a_second_allowlisted_router_works_too(swap_wallet, project, chain, owner, factory, wcro, usdc, agent, pool):
    """The first router sits in slot 0, others in a mapping: both kinds swap."""
    second = owner.deploy(project.VVSRouter, factory, wcro)
    swap_wallet.setRouter(second, True, sender=owner)
    out = amount_out(1 * USDC, *reserves(pool, usdc))
    receipt = swap_wallet.swap(second, 1 * USDC, out, [usdc, wcro], later(chain), sender=agent)
    assert receipt.return_value == out
    assert usdc.allowance(swap_wallet, second) == 0


def test_deadline_is_inclusive(swap_wallet, chain, vvs, usdc, wcro, agent):
    t = at(chain, chain.pending_timestamp + 10)
    swap_wallet.swap(vvs, 1 * USDC, 0, [usdc, wcro], t, sender=agent)  # deadline == now: valid
    t = at(chain, t + 1)
    with reverts_with(swap_wallet.DeadlinePassed, deadline=t - 1, timestamp=t):
        swap_wallet.swap(vvs, 1 * USDC, 0, [usdc, wcro], t - 1, sender=agent)


def test_min_out_is_passed_to_the_router_which_refuses_less(swap_wallet, chain, vvs, pool, usdc, wcro, agent):
    out = amount_out(5 * USDC, *reserves(pool, usdc))
    expected = error_data(vvs.contract_type, "InsufficientOutputAmount", out, out + 1)
    with reverts_with_data(expected):
        swap_wallet.swap(vvs, 5 * USDC, out + 1, [usdc, wcro], later(chain), sender=agent)
    assert swap_wallet.swap(vvs, 5 * USDC, out, [usdc, wcro], later(chain), sender=agent).return_value == out


@pytest.mark.parametrize("shape", ["empty", "one", "same-ends", "round-trip"])
def test_path_needs_two_tokens_and_different_ends(swap_wallet, chain, vvs, usdc, wcro, agent, shape):
    path = {"empty": [], "one": [usdc], "same-ends": [usdc, usdc], "round-trip": [usdc, wcro, usdc]}[shape]
    with reverts_with(swap_wallet.InvalidPath):
        swap_wallet.swap(vvs, 1 * USDC, 0, path, later(chain), sender=agent)


# ------------------------------------------------------------------------------------------------
# The wallet's own checks, against a router that misbehaves (allowlisted by the owner, by mistake)


@pytest.fixture
def mock_router(project, owner, swap_wallet, wcro):
    r = owner.deploy(project.MockSwapRouter)
    swap_wallet.setRouter(r, True, sender=owner)
    wcro.deposit(sender=owner, value=100 * CRO)
    wcro.transfer(r, 100 * CRO, sender=owner)
    return r


def test_output_is_measured_at_the_wallet_and_held_to_min_out(swap_wallet, chain, mock_router, usdc, wcro, agent):
    mock_router.configure(5 * USDC, 3 * CRO, sender=agent)  # pays 3 WCRO, ignores minOut
    with reverts_with(swap_wallet.InsufficientOutput, received=3 * CRO, minimum=3 * CRO + 1):
        swap_wallet.swap(mock_router, 5 * USDC, 3 * CRO + 1, [usdc, wcro], later(chain), sender=agent)
    receipt = swap_wallet.swap(mock_router, 5 * USDC, 3 * CRO, [usdc, wcro], later(chain), sender=agent)
    assert receipt.return_value == 3 * CRO


def test_an_allowance_the_router_left_is_revoked(swap_wallet, chain, mock_router, usdc, wcro, agent):
    mock_router.configure(2 * USDC, 1 * CRO, sender=agent)  # pulls 2 of the 5 approved
    t = at(chain, chain.pending_timestamp + 10)
    receipt = swap_wallet.swap(mock_router, 5 * USDC, 0, [usdc, wcro], t + 60, sender=agent)
    assert logs(receipt) == [
        ev(usdc, "Approval", owner=swap_wallet, spender=mock_router, value=5 * USDC),
        ev(usdc, "Transfer", **{"from": swap_wallet, "to": mock_router, "value": 2 * USDC}),
        ev(wcro, "Transfer", **{"from": mock_router, "to": swap_wallet, "value": 1 * CRO}),
        ev(usdc, "Approval", owner=swap_wallet, spender=mock_router, value=0),
        ev(swap_wallet, "Swapped", agent=agent, router=mock_router, tokenIn=usdc, tokenOut=wcro, amountIn=5 * USDC,
           amountOut=1 * CRO, remainingInWindow=USDC_LIMIT - 5 * USDC, windowIndex=t // DAY),
    ]
    assert usdc.allowance(swap_wallet, mock_router) == 0
    assert swap_wallet.spentInWindow(agent, usdc)[0] == 5 * USDC  # the whole amountIn counts


@pytest.mark.parametrize("router", ["no code", "accepts any call"])
def test_a_router_that_does_not_answer_like_one_moves_nothing(swap_wallet, chain, project, owner, usdc, wcro, agent,
                                                              router):
    """An allowlisted address without code (a typo, another chain's router) or a contract whose
    fallback takes the call: the call "succeeds" with no answer, and the swap must not count it."""
    if router == "no code":
        target = "0x000000000000000000000000000000000000bEEF"
    else:
        target = owner.deploy(project.OddToken).address
        project.OddToken.at(target).setMode(1, sender=owner)  # Nothing: every call succeeds, answers nothing
    swap_wallet.setRouter(target, True, sender=owner)
    before = (balance(usdc, swap_wallet), balance(wcro, swap_wallet), swap_wallet.spentInWindow(agent, usdc)[0])
    with reverts_with(swap_wallet.NotARouter, router=target):
        swap_wallet.swap(target, 1 * USDC, 0, [usdc, wcro], later(chain), sender=agent)
    assert (balance(usdc, swap_wallet), balance(wcro, swap_wallet), swap_wallet.spentInWindow(agent, usdc)[0]) == before
    assert usdc.allowance(swap_wallet, target) == 0
