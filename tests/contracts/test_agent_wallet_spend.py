"""AgentWallet: an agent's spending (pay, float top-ups) inside its rule, and the window rule itself.

The window rule (see the contract's NatSpec): windows are FIXED and aligned to the epoch, window
i = [i*period, (i+1)*period), i = block.timestamp / period. A spend at (i+1)*period - 1 counts in
window i; at (i+1)*period window i+1 starts with nothing spent; so across an edge an agent can spend
2 x limit within one second. The spend counter rolls over lazily: it is written only by a spend.
"""

from __future__ import annotations

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wallet_support import (  # noqa: F401  (fixtures are used by name)
    CRO,
    CRO_CAP,
    CRO_FLOAT,
    CRO_LIMIT,
    DAY,
    NATIVE,
    REF,
    UINT96_MAX,
    USDC,
    USDC_CAP,
    USDC_FLOAT,
    USDC_LIMIT,
    WALLET_CRO,
    WALLET_USDC,
    ZERO,
    agent2,
    at,
    balance,
    bare_wallet,
    ev,
    logs,
    mapping_slot,
    payee,
    reverts_with,
    storage_word,
    wallet,
)

FREE = {"gas_price": 0}  # agent transactions that leave the agent's CRO balance exact


def day_start(chain, ahead: int = 2) -> int:
    return (chain.pending_timestamp // DAY + ahead) * DAY


def window_word(chain, w, agent, token) -> tuple[int, int, int, int]:
    """Raw (remaining, cap, windowIndex, period) of _windows[agent][token] (slot 5)."""
    word = storage_word(chain, w, mapping_slot(token if isinstance(token, str) else token.address,
                                               mapping_slot(agent, 5)))
    m96 = 2**96 - 1
    return word & m96, (word >> 96) & m96, (word >> 192) & (2**32 - 1), word >> 224


# ------------------------------------------------------------------------------------------------
# pay


def test_pay_sends_usdc_and_reports_the_windows_spend(wallet, chain, agent, payee, usdc):
    t = at(chain, day_start(chain) + 1_000)
    receipt = wallet.pay(usdc, payee, 30 * USDC, REF, sender=agent)
    i = t // DAY
    assert logs(receipt) == [
        ev(usdc, "Transfer", **{"from": wallet, "to": payee, "value": 30 * USDC}),
        ev(wallet, "Paid", agent=agent, token=usdc, to=payee, amount=30 * USDC, ref=REF,
           remainingInWindow=USDC_LIMIT - 30 * USDC, windowIndex=i),
    ]
    assert balance(usdc, wallet) == WALLET_USDC - 30 * USDC
    assert balance(usdc, payee) == 1 * USDC + 30 * USDC
    assert wallet.spentInWindow(agent, usdc) == (30 * USDC, i, (i + 1) * DAY)
    assert wallet.available(agent, usdc) == USDC_CAP  # min(100 - 30, 40)


def test_pay_sends_native_cro(wallet, chain, agent, payee):
    before = balance(NATIVE, payee)
    t = at(chain, day_start(chain) + 5)
    receipt = wallet.pay(NATIVE, payee, CRO_CAP, REF, sender=agent)
    assert logs(receipt) == [
        ev(wallet, "Paid", agent=agent, token=NATIVE, to=payee, amount=CRO_CAP, ref=REF,
           remainingInWindow=CRO_LIMIT - CRO_CAP, windowIndex=t // DAY),
    ]
    assert balance(NATIVE, payee) == before + CRO_CAP
    assert balance(NATIVE, wallet) == WALLET_CRO - CRO_CAP


def test_spends_accumulate_in_a_window_up_to_the_limit_exactly(wallet, chain, agent, payee, usdc):
    t = at(chain, day_start(chain) + 10)
    spent = 0
    for amount in (USDC_CAP, USDC_CAP, USDC_LIMIT - 2 * USDC_CAP):  # 40 + 40 + 20 = 100
        at(chain, t)
        receipt = wallet.pay(usdc, payee, amount, REF, sender=agent)
        spent += amount
        assert logs(receipt)[-1][2]["remainingInWindow"] == USDC_LIMIT - spent
        t += 60
    assert wallet.spentInWindow(agent, usdc)[0] == USDC_LIMIT
    assert wallet.available(agent, usdc) == 0
    at(chain, t)
    with reverts_with(wallet.LimitExceeded, agent=agent, token=usdc, limit=USDC_LIMIT, spentInWindow=USDC_LIMIT,
                      amount=1):
        wallet.pay(usdc, payee, 1, REF, sender=agent)


def test_amount_up_to_the_cap_passes_one_more_unit_reverts(wallet, agent, payee, usdc):
    wallet.pay(usdc, payee, USDC_CAP, REF, sender=agent)
    with reverts_with(wallet.CapExceeded, agent=agent, token=usdc, cap=USDC_CAP, amount=USDC_CAP + 1):
        wallet.pay(usdc, payee, USDC_CAP + 1, REF, sender=agent)
    with reverts_with(wallet.CapExceeded, agent=agent, token=NATIVE, cap=CRO_CAP, amount=CRO_CAP + 1):
        wallet.pay(NATIVE, payee, CRO_CAP + 1, REF, sender=agent)


def test_limit_is_checked_against_what_remains_in_the_window(wallet, chain, agent, payee, usdc):
    t = at(chain, day_start(chain) + 10)
    wallet.pay(usdc, payee, USDC_CAP, REF, sender=agent)
    at(chain, t + 1)
    wallet.pay(usdc, payee, USDC_CAP, REF, sender=agent)
    at(chain, t + 2)
    with reverts_with(wallet.LimitExceeded, agent=agent, token=usdc, limit=USDC_LIMIT, spentInWindow=2 * USDC_CAP,
                      amount=21 * USDC):
        wallet.pay(usdc, payee, 21 * USDC, REF, sender=agent)


def test_a_token_without_a_rule_cannot_be_spent(wallet, agent, payee, wcro, usdc, agent2, owner):
    """No rule means cap 0: CapExceeded with cap 0, for any token and any agent."""
    with reverts_with(wallet.CapExceeded, agent=agent, token=wcro, cap=0, amount=1):
        wallet.pay(wcro, payee, 1, REF, sender=agent)
    wallet.addAgent(agent2, sender=owner)
    with reverts_with(wallet.CapExceeded, agent=agent2, token=usdc, cap=0, amount=1):
        wallet.pay(usdc, payee, 1, REF, sender=agent2)


def test_a_zero_rule_forbids_spending(wallet, owner, agent, payee, usdc):
    wallet.setRule(agent, usdc, 0, 0, DAY, 0, sender=owner)
    with reverts_with(wallet.CapExceeded, agent=agent, token=usdc, cap=0, amount=1):
        wallet.pay(usdc, payee, 1, REF, sender=agent)


def test_pay_refuses_zero_amount_and_zero_payee(wallet, agent, payee, usdc):
    with reverts_with(wallet.ZeroAmount):
        wallet.pay(usdc, payee, 0, REF, sender=agent)
    with reverts_with(wallet.ZeroAddress):
        wallet.pay(usdc, ZERO, 1, REF, sender=agent)


def test_a_failed_transfer_reverts_and_records_no_spend(wallet, owner, agent, payee, usdc):
    wallet.withdraw(usdc, owner, WALLET_USDC - 5 * USDC, sender=owner)  # 5 USDC left
    wallet.withdraw(NATIVE, owner, WALLET_CRO - 1, sender=owner)  # 1 wei left
    with reverts_with(wallet.TransferFailed, token=usdc, to=payee, amount=6 * USDC):
        wallet.pay(usdc, payee, 6 * USDC, REF, sender=agent)
    with reverts_with(wallet.TransferFailed, token=NATIVE, to=payee, amount=2):
        wallet.pay(NATIVE, payee, 2, REF, sender=agent)
    assert wallet.spentInWindow(agent, usdc)[0] == 0
    assert wallet.spentInWindow(agent, NATIVE)[0] == 0


def test_agents_and_tokens_have_separate_windows(wallet, owner, agent, agent2, payee, usdc):
    wallet.addAgent(agent2, sender=owner)
    wallet.setRule(agent2, usdc, USDC_LIMIT, USDC_CAP, DAY, 0, sender=owner)
    wallet.pay(usdc, payee, USDC_CAP, REF, sender=agent)
    wallet.pay(NATIVE, payee, CRO_CAP, REF, sender=agent)
    wallet.pay(usdc, payee, 1 * USDC, REF, sender=agent2)
    assert wallet.spentInWindow(agent, usdc)[0] == USDC_CAP
    assert wallet.spentInWindow(agent, NATIVE)[0] == CRO_CAP
    assert wallet.spentInWindow(agent2, usdc)[0] == 1 * USDC


# ------------------------------------------------------------------------------------------------
# The window rule at its edges


@pytest.fixture(params=[60, 3600, DAY])
def edge_rule(request, wallet, owner, agent, usdc):
    """A USDC rule with cap == limit == 10 USDC and the given period; returns the period."""
    wallet.setRule(agent, usdc, 10 * USDC, 10 * USDC, request.param, 0, sender=owner)
    return request.param


def test_windows_are_aligned_to_the_epoch_not_to_the_first_spend(wallet, chain, agent, payee, usdc, edge_rule):
    p = edge_rule
    t = at(chain, (chain.pending_timestamp // p + 3) * p + p // 3)  # a third into window i
    i = t // p
    receipt = wallet.pay(usdc, payee, 1 * USDC, REF, sender=agent)
    assert logs(receipt)[-1][2]["windowIndex"] == i
    assert wallet.spentInWindow(agent, usdc) == (1 * USDC, i, (i + 1) * p)  # ends at the multiple of p


def test_spend_at_window_end_minus_one_counts_in_the_old_window(wallet, chain, agent, payee, usdc, edge_rule):
    p = edge_rule
    end = (chain.pending_timestamp // p + 3) * p  # window i = [end - p, end)
    i = end // p - 1
    at(chain, end - 2)
    wallet.pay(usdc, payee, 10 * USDC, REF, sender=agent)  # the whole limit of window i
    at(chain, end - 1)
    with reverts_with(wallet.LimitExceeded, agent=agent, token=usdc, limit=10 * USDC, spentInWindow=10 * USDC,
                      amount=1):
        wallet.pay(usdc, payee, 1, REF, sender=agent)
    assert chain.blocks.head.timestamp == end - 1
    assert wallet.spentInWindow(agent, usdc) == (10 * USDC, i, end)


def test_at_window_end_a_fresh_limit_starts(wallet, chain, agent, payee, usdc, edge_rule):
    p = edge_rule
    end = (chain.pending_timestamp // p + 3) * p
    at(chain, end - 1)
    wallet.pay(usdc, payee, 10 * USDC, REF, sender=agent)
    at(chain, end)
    receipt = wallet.pay(usdc, payee, 10 * USDC, REF, sender=agent)
    assert logs(receipt)[-1] == ev(wallet, "Paid", agent=agent, token=usdc, to=payee, amount=10 * USDC, ref=REF,
                                   remainingInWindow=0, windowIndex=end // p)
    assert wallet.spentInWindow(agent, usdc) == (10 * USDC, end // p, end + p)


def test_across_an_edge_an_agent_spends_twice_the_limit_within_one_second(wallet, chain, agent, payee, usdc,
                                                                           edge_rule):
    """The documented consequence of fixed windows: limit at end-1, limit again at end."""
    p = edge_rule
    end = (chain.pending_timestamp // p + 3) * p
    before = balance(usdc, payee)
    at(chain, end - 1)
    first = wallet.pay(usdc, payee, 10 * USDC, REF, sender=agent)
    at(chain, end)
    second = wallet.pay(usdc, payee, 10 * USDC, REF, sender=agent)
    assert second.timestamp - first.timestamp == 1
    assert balance(usdc, payee) - before == 2 * 10 * USDC  # 2 x limit, one second apart
    # ...and not a unit more until the next edge
    at(chain, end + p - 1)
    with reverts_with(wallet.LimitExceeded, agent=agent, token=usdc, limit=10 * USDC, spentInWindow=10 * USDC,
                      amount=1):
        wallet.pay(usdc, payee, 1, REF, sender=agent)


def test_the_window_rolls_over_lazily_on_read_and_is_written_only_by_a_spend(wallet, chain, agent, payee, usdc):
    start = day_start(chain)
    at(chain, start + 100)
    wallet.pay(usdc, payee, 25 * USDC, REF, sender=agent)
    i = start // DAY
    assert window_word(chain, wallet, agent, usdc) == (USDC_LIMIT - 25 * USDC, USDC_CAP, i, DAY)
    chain.mine(timestamp=start + DAY)  # the next window, no transaction to the wallet
    assert wallet.spentInWindow(agent, usdc) == (0, i + 1, start + 2 * DAY)
    assert wallet.available(agent, usdc) == USDC_CAP
    assert window_word(chain, wallet, agent, usdc) == (USDC_LIMIT - 25 * USDC, USDC_CAP, i, DAY)  # untouched
    at(chain, start + DAY + 7)
    wallet.pay(usdc, payee, 3 * USDC, REF, sender=agent)
    assert window_word(chain, wallet, agent, usdc) == (USDC_LIMIT - 3 * USDC, USDC_CAP, i + 1, DAY)


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(period=st.sampled_from([1, 7, 60, 3600, DAY, 7 * DAY]), offset=st.integers(0, 7 * DAY),
       gap=st.one_of(st.integers(0, 3), st.integers(0, 14 * DAY)), amount=st.integers(1, 10 * USDC))
def test_window_twin_spend_counts_iff_same_index(wallet, chain, owner, agent, payee, usdc, period, offset, gap,
                                                 amount):
    """Hypothesis twin of the rule: a spend at t1 shows at t2 >= t1 iff t1 // period == t2 // period,
    and what is left there is min(limit - shown, cap)."""
    snapshot = chain.snapshot()
    try:
        wallet.setRule(agent, usdc, 10 * USDC, 10 * USDC, period, 0, sender=owner)
        t1 = at(chain, (chain.pending_timestamp // DAY + 1) * DAY + offset)
        wallet.pay(usdc, payee, amount, REF, sender=agent)
        t2 = t1 + gap
        if gap:
            chain.mine(timestamp=t2)
        shown = amount if t1 // period == t2 // period else 0
        assert wallet.spentInWindow(agent, usdc) == (shown, t2 // period, (t2 // period + 1) * period)
        assert wallet.available(agent, usdc) == 10 * USDC - shown
    finally:
        chain.restore(snapshot)


# ------------------------------------------------------------------------------------------------
# Changing a rule


def test_same_period_keeps_the_windows_spend(wallet, chain, owner, agent, payee, usdc):
    t = at(chain, day_start(chain) + 50)
    wallet.pay(usdc, payee, 30 * USDC, REF, sender=agent)
    wallet.setRule(agent, usdc, 50 * USDC, 50 * USDC, DAY, 0, sender=owner)
    assert wallet.spentInWindow(agent, usdc) == (30 * USDC, t // DAY, (t // DAY + 1) * DAY)
    assert wallet.available(agent, usdc) == 20 * USDC


def test_lowering_the_limit_below_the_spend_stops_spending_in_this_window(wallet, chain, owner, agent, payee, usdc):
    """The window keeps its true spend (what remains goes negative), so raising the limit again in
    the same window gives back exactly the new limit less what was spent, never more."""
    t = at(chain, day_start(chain) + 50)
    wallet.pay(usdc, payee, 30 * USDC, REF, sender=agent)
    wallet.setRule(agent, usdc, 20 * USDC, 10 * USDC, DAY, 0, sender=owner)
    assert wallet.available(agent, usdc) == 0
    assert wallet.spentInWindow(agent, usdc) == (30 * USDC, t // DAY, (t // DAY + 1) * DAY)
    assert window_word(chain, wallet, agent, usdc)[0] == 2**96 - 10 * USDC  # -10 USDC, two's complement
    with reverts_with(wallet.LimitExceeded, agent=agent, token=usdc, limit=20 * USDC, spentInWindow=30 * USDC,
                      amount=1):
        wallet.pay(usdc, payee, 1, REF, sender=agent)
    wallet.setRule(agent, usdc, 45 * USDC, 10 * USDC, DAY, 0, sender=owner)  # raised again: 15 above the spend
    assert wallet.available(agent, usdc) == 10 * USDC and wallet.spentInWindow(agent, usdc)[0] == 30 * USDC
    wallet.pay(usdc, payee, 10 * USDC, REF, sender=agent)
    with reverts_with(wallet.LimitExceeded, agent=agent, token=usdc, limit=45 * USDC, spentInWindow=40 * USDC,
                      amount=5 * USDC + 1):
        wallet.pay(usdc, payee, 5 * USDC + 1, REF, sender=agent)


def test_raising_the_limit_in_a_window_adds_to_what_remains(wallet, chain, owner, agent, payee, usdc):
    t = at(chain, day_start(chain) + 50)
    wallet.pay(usdc, payee, USDC_CAP, REF, sender=agent)
    wallet.pay(usdc, payee, USDC_CAP, REF, sender=agent)
    wallet.setRule(agent, usdc, 150 * USDC, USDC_CAP, DAY, 0, sender=owner)
    assert window_word(chain, wallet, agent, usdc) == (150 * USDC - 2 * USDC_CAP, USDC_CAP, t // DAY, DAY)
    assert wallet.spentInWindow(agent, usdc)[0] == 2 * USDC_CAP and wallet.available(agent, usdc) == USDC_CAP


def test_a_new_period_starts_the_count_afresh(wallet, chain, owner, agent, payee, usdc):
    t = at(chain, day_start(chain) + 50)
    wallet.pay(usdc, payee, 30 * USDC, REF, sender=agent)
    wallet.setRule(agent, usdc, USDC_LIMIT, USDC_CAP, 3600, 0, sender=owner)
    now = chain.blocks.head.timestamp
    assert wallet.spentInWindow(agent, usdc) == (0, now // 3600, (now // 3600 + 1) * 3600)
    assert wallet.available(agent, usdc) == USDC_CAP
    assert t // DAY != now // 3600


# ------------------------------------------------------------------------------------------------
# Float top-ups


def test_top_up_sends_to_the_agent_and_counts_in_its_window(wallet, chain, agent, payee, usdc):
    t = at(chain, day_start(chain) + 1)
    wallet.pay(usdc, payee, 30 * USDC, REF, sender=agent)
    at(chain, t + 1)
    receipt = wallet.topUpFloat(usdc, 4 * USDC, sender=agent)
    assert logs(receipt) == [
        ev(usdc, "Transfer", **{"from": wallet, "to": agent, "value": 4 * USDC}),
        ev(wallet, "FloatToppedUp", agent=agent, token=usdc, amount=4 * USDC,
           remainingInWindow=USDC_LIMIT - 34 * USDC, windowIndex=t // DAY),
    ]
    assert balance(usdc, agent) == 4 * USDC
    assert wallet.spentInWindow(agent, usdc)[0] == 34 * USDC


def test_top_up_to_exactly_the_float_cap_passes_one_more_unit_reverts(wallet, owner, agent, usdc):
    usdc.mint(agent, 4 * USDC, sender=owner)
    wallet.topUpFloat(usdc, USDC_FLOAT - 4 * USDC, sender=agent)  # 4 + 6 == floatCap
    assert balance(usdc, agent) == USDC_FLOAT
    with reverts_with(wallet.FloatCapExceeded, agent=agent, token=usdc, balanceAfter=USDC_FLOAT + 1,
                      floatCap=USDC_FLOAT):
        wallet.topUpFloat(usdc, 1, sender=agent)


def test_a_spent_float_can_be_topped_up_again_within_the_limit(wallet, agent, payee, usdc):
    wallet.topUpFloat(usdc, USDC_FLOAT, sender=agent)
    usdc.transfer(payee, 7 * USDC, sender=agent)  # the hot key pays someone (e.g. an x402 payment)
    wallet.topUpFloat(usdc, 7 * USDC, sender=agent)
    assert balance(usdc, agent) == USDC_FLOAT
    assert wallet.spentInWindow(agent, usdc)[0] == USDC_FLOAT + 7 * USDC


def test_top_up_obeys_cap_and_limit(wallet, owner, agent, payee, usdc):
    wallet.setRule(agent, usdc, USDC_LIMIT, USDC_CAP, DAY, 1_000 * USDC, sender=owner)
    with reverts_with(wallet.CapExceeded, agent=agent, token=usdc, cap=USDC_CAP, amount=USDC_CAP + 1):
        wallet.topUpFloat(usdc, USDC_CAP + 1, sender=agent)
    wallet.pay(usdc, payee, USDC_CAP, REF, sender=agent)
    wallet.pay(usdc, payee, USDC_CAP, REF, sender=agent)
    with reverts_with(wallet.LimitExceeded, agent=agent, token=usdc, limit=USDC_LIMIT, spentInWindow=2 * USDC_CAP,
                      amount=USDC_CAP):
        wallet.topUpFloat(usdc, USDC_CAP, sender=agent)


def test_float_cap_zero_refuses_every_top_up(wallet, owner, agent, usdc):
    wallet.setRule(agent, usdc, USDC_LIMIT, USDC_CAP, DAY, 0, sender=owner)
    with reverts_with(wallet.FloatCapExceeded, agent=agent, token=usdc, balanceAfter=1, floatCap=0):
        wallet.topUpFloat(usdc, 1, sender=agent)


def test_top_up_native_cro_checks_the_agents_cro_balance(wallet, chain, agent):
    chain.set_balance(agent, 1 * CRO)
    t = at(chain, day_start(chain) + 3)
    receipt = wallet.topUpFloat(NATIVE, CRO_FLOAT - 1 * CRO, sender=agent, **FREE)  # 1 + 2 == floatCap (3)
    assert logs(receipt) == [
        ev(wallet, "FloatToppedUp", agent=agent, token=NATIVE, amount=CRO_FLOAT - 1 * CRO,
           remainingInWindow=CRO_LIMIT - (CRO_FLOAT - 1 * CRO), windowIndex=t // DAY),
    ]
    assert balance(NATIVE, agent) == CRO_FLOAT
    with reverts_with(wallet.FloatCapExceeded, agent=agent, token=NATIVE, balanceAfter=CRO_FLOAT + 1,
                      floatCap=CRO_FLOAT):
        wallet.topUpFloat(NATIVE, 1, sender=agent, **FREE)


def test_top_up_refuses_zero(wallet, agent, usdc):
    with reverts_with(wallet.ZeroAmount):
        wallet.topUpFloat(usdc, 0, sender=agent)


def test_limit_is_shared_by_pay_and_top_up(wallet, agent, payee, usdc, chain):
    t = at(chain, day_start(chain) + 1)
    wallet.topUpFloat(usdc, USDC_FLOAT, sender=agent)
    for k in range(2):
        at(chain, t + 1 + k)
        wallet.pay(usdc, payee, USDC_CAP, REF, sender=agent)
    at(chain, t + 3)
    remaining = USDC_LIMIT - USDC_FLOAT - 2 * USDC_CAP  # 10
    with reverts_with(wallet.LimitExceeded, agent=agent, token=usdc, limit=USDC_LIMIT,
                      spentInWindow=USDC_LIMIT - remaining, amount=remaining + 1):
        wallet.pay(usdc, payee, remaining + 1, REF, sender=agent)
    wallet.pay(usdc, payee, remaining, REF, sender=agent)
    assert wallet.available(agent, usdc) == 0


# ------------------------------------------------------------------------------------------------
# Re-entry


@pytest.fixture
def reentrant(project, owner, wallet, usdc):
    """A payee contract that is also an agent (with CRO and USDC rules), so a nested call it makes would
    pass every rule: only the lock can stop it."""
    r = owner.deploy(project.ReentrantReceiver)
    wallet.addAgent(r, sender=owner)
    wallet.setRule(r, NATIVE, CRO_LIMIT, CRO_CAP, DAY, UINT96_MAX, sender=owner)
    wallet.setRule(r, usdc, USDC_LIMIT, USDC_CAP, DAY, UINT96_MAX, sender=owner)
    return r


NESTED = {
    "pay": lambda w, r, c: w.pay.encode_input(c["usdc"], r, 1, REF),
    "topUpFloat": lambda w, r, c: w.topUpFloat.encode_input(c["usdc"], 1),
    "swap": lambda w, r, c: w.swap.encode_input(r, 1, 0, [c["usdc"].address, c["wcro"].address], 2**40),
    "payWithSig": lambda w, r, c: w.payWithSig.encode_input(r, c["usdc"], r, 1, REF, 2**40, b"\x00" * 65),
}


@pytest.mark.parametrize("fn", sorted(NESTED))
def test_a_payee_cannot_re_enter_a_function_that_moves_funds(wallet, reentrant, agent, usdc, wcro, fn):
    data = NESTED[fn](wallet, reentrant, {"usdc": usdc, "wcro": wcro})
    reentrant.arm(wallet, data, sender=agent)
    wallet.pay(NATIVE, reentrant, 1, REF, sender=agent)  # the receipt of CRO triggers the nested call
    assert reentrant.called() and not reentrant.succeeded()
    assert bytes(reentrant.result()) == keccak(text="Reentrancy()")[:4]


def test_the_same_call_outside_a_payment_succeeds(wallet, reentrant, agent, usdc):
    """So it was the lock, not a rule, that refused the nested pay above."""
    reentrant.arm(wallet, wallet.pay.encode_input(usdc, reentrant, 1, REF), sender=agent)
    reentrant.poke(sender=agent)
    assert reentrant.succeeded()
    assert balance(usdc, reentrant) == 1
