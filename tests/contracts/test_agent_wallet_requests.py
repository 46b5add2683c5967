"""AgentWallet approval queue (invariant 2): an agent proposes a payment above its rule; the owner
approves (it executes at once), approves a lower amount, or rejects; the agent may cancel; anyone
expires it once its time is up. A request executes at most once, only while Pending and before
expiresAt, never for more than requested, and never consumes the agent's window."""

from __future__ import annotations

import pytest

from wallet_support import (  # noqa: F401  (fixtures are used by name)
    CANCELLED,
    CRO,
    DAY,
    EXECUTED,
    EXPIRED,
    NATIVE,
    NONE,
    PENDING,
    REJECTED,
    TTL,
    UINT96_MAX,
    USDC,
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
    payee,
    reverts_with,
    wallet,
)

REF = b"\x42" * 32
BIG = 500 * USDC  # five times the agent's daily limit


def fields(req) -> tuple:
    return (req.agent, req.token, req.to, req.amount, req.approvedAmount, req.createdAt, req.expiresAt, req.status,
            bytes(req.ref))


@pytest.fixture
def proposed(wallet, chain, agent, payee, usdc):
    """Request 1: the agent asks for 500 USDC.e to the payee. Returns (id, createdAt, expiresAt)."""
    t = at(chain, chain.pending_timestamp + 5)
    wallet.propose(usdc, payee, BIG, REF, sender=agent)
    return 1, t, t + TTL


# ------------------------------------------------------------------------------------------------
# propose


def test_propose_stores_a_pending_request_and_moves_nothing(wallet, chain, agent, payee, usdc):
    t = at(chain, chain.pending_timestamp + 5)
    receipt = wallet.propose(usdc, payee, BIG, REF, sender=agent)
    assert receipt.return_value == 1
    assert logs(receipt) == [
        ev(wallet, "RequestProposed", requestId=1, agent=agent, token=usdc, to=payee, amount=BIG, ref=REF,
           expiresAt=t + TTL),
    ]
    assert fields(wallet.request(1)) == (agent.address, usdc.address, payee.address, BIG, 0, t, t + TTL, PENDING, REF)
    assert wallet.requestCount() == 1
    assert balance(usdc, wallet) == WALLET_USDC
    assert wallet.spentInWindow(agent, usdc)[0] == 0


def test_request_ids_count_up_from_one(wallet, agent, payee, usdc):
    ids = [wallet.propose(usdc, payee, (k + 1) * USDC, REF, sender=agent).return_value for k in range(3)]
    assert ids == [1, 2, 3]
    assert wallet.requestCount() == 3
    assert wallet.request(4).status == NONE


def test_proposals_are_not_limited_by_the_rule(wallet, agent, payee, wcro):
    """Any token, any amount up to 2^96 - 1: the owner decides."""
    wallet.propose(wcro, payee, UINT96_MAX, REF, sender=agent)  # no rule for WCRO at all
    assert wallet.request(1).amount == UINT96_MAX


def test_propose_refuses_zero_amount_zero_payee_and_amounts_above_96_bits(wallet, agent, payee, usdc):
    with reverts_with(wallet.ZeroAmount):
        wallet.propose(usdc, payee, 0, REF, sender=agent)
    with reverts_with(wallet.ZeroAddress):
        wallet.propose(usdc, ZERO, 1, REF, sender=agent)
    with reverts_with(wallet.AmountTooLarge, amount=UINT96_MAX + 1):
        wallet.propose(usdc, payee, UINT96_MAX + 1, REF, sender=agent)


def test_a_new_ttl_applies_to_new_requests_only(wallet, chain, owner, agent, payee, usdc, proposed):
    _, _, first_expiry = proposed
    wallet.setRequestTtl(60, sender=owner)
    t = at(chain, chain.pending_timestamp + 5)
    wallet.propose(usdc, payee, BIG, REF, sender=agent)
    assert wallet.request(1).expiresAt == first_expiry
    assert wallet.request(2).expiresAt == t + 60


# ------------------------------------------------------------------------------------------------
# approve / approveAmount


def test_approve_executes_the_full_amount_once(wallet, chain, owner, agent, payee, usdc, proposed):
    rid, created, expires = proposed
    before = balance(usdc, payee)
    receipt = wallet.approve(rid, sender=owner)
    assert logs(receipt) == [
        ev(usdc, "Transfer", **{"from": wallet, "to": payee, "value": BIG}),
        ev(wallet, "RequestExecuted", requestId=rid, agent=agent, token=usdc, to=payee, requestedAmount=BIG,
           approvedAmount=BIG),
    ]
    assert balance(usdc, payee) == before + BIG
    assert fields(wallet.request(rid)) == (agent.address, usdc.address, payee.address, BIG, BIG, created, expires,
                                           EXECUTED, REF)
    with reverts_with(wallet.RequestNotPending, requestId=rid, status=EXECUTED):
        wallet.approve(rid, sender=owner)
    with reverts_with(wallet.RequestNotPending, requestId=rid, status=EXECUTED):
        wallet.approveAmount(rid, 1, sender=owner)
    assert balance(usdc, payee) == before + BIG


def test_an_executed_request_does_not_consume_the_agents_window(wallet, owner, agent, payee, usdc, proposed):
    wallet.approve(proposed[0], sender=owner)
    assert wallet.spentInWindow(agent, usdc)[0] == 0
    assert wallet.available(agent, usdc) == 40 * USDC


def test_approve_amount_executes_an_edited_lower_amount(wallet, owner, agent, payee, usdc, proposed):
    rid = proposed[0]
    before = balance(usdc, payee)
    receipt = wallet.approveAmount(rid, 120 * USDC, sender=owner)
    assert logs(receipt) == [
        ev(usdc, "Transfer", **{"from": wallet, "to": payee, "value": 120 * USDC}),
        ev(wallet, "RequestExecuted", requestId=rid, agent=agent, token=usdc, to=payee, requestedAmount=BIG,
           approvedAmount=120 * USDC),
    ]
    assert balance(usdc, payee) == before + 120 * USDC
    req = wallet.request(rid)
    assert (req.status, req.amount, req.approvedAmount) == (EXECUTED, BIG, 120 * USDC)
    with reverts_with(wallet.RequestNotPending, requestId=rid, status=EXECUTED):
        wallet.approveAmount(rid, BIG - 120 * USDC, sender=owner)  # the rest is void


def test_approve_amount_equal_to_the_request_is_a_full_approval(wallet, owner, usdc, proposed):
    wallet.approveAmount(proposed[0], BIG, sender=owner)
    assert wallet.request(proposed[0]).approvedAmount == BIG


def test_approve_amount_refuses_above_requested_and_zero(wallet, owner, proposed):
    rid = proposed[0]
    with reverts_with(wallet.ApprovedAboveRequested, requestId=rid, requested=BIG, approved=BIG + 1):
        wallet.approveAmount(rid, BIG + 1, sender=owner)
    with reverts_with(wallet.ZeroAmount):
        wallet.approveAmount(rid, 0, sender=owner)
    assert wallet.request(rid).status == PENDING


def test_native_cro_request_executes(wallet, owner, agent, payee):
    before = balance(NATIVE, payee)
    wallet.propose(NATIVE, payee, 15 * CRO, REF, sender=agent)
    receipt = wallet.approve(1, sender=owner)
    assert logs(receipt) == [
        ev(wallet, "RequestExecuted", requestId=1, agent=agent, token=NATIVE, to=payee, requestedAmount=15 * CRO,
           approvedAmount=15 * CRO),
    ]
    assert balance(NATIVE, payee) == before + 15 * CRO
    assert balance(NATIVE, wallet) == WALLET_CRO - 15 * CRO


def test_approval_is_possible_until_one_second_before_expiry(wallet, chain, owner, proposed):
    rid, _, expires = proposed
    at(chain, expires - 1)
    wallet.approve(rid, sender=owner)
    assert wallet.request(rid).status == EXECUTED


@pytest.mark.parametrize("fn", ["approve", "approveAmount", "reject"])
def test_from_expires_at_the_owner_can_no_longer_decide(wallet, chain, owner, proposed, fn):
    rid, _, expires = proposed
    at(chain, expires)
    args = (rid, 1) if fn == "approveAmount" else (rid,)
    with reverts_with(wallet.RequestHasExpired, requestId=rid, expiresAt=expires):
        getattr(wallet, fn)(*args, sender=owner)


@pytest.mark.parametrize("fn", ["approve", "approveAmount", "reject", "expire"])
@pytest.mark.parametrize("rid", [0, 2])
def test_unknown_requests_revert(wallet, owner, proposed, fn, rid):
    args = (rid, 1) if fn == "approveAmount" else (rid,)
    with reverts_with(wallet.UnknownRequest, requestId=rid):
        getattr(wallet, fn)(*args, sender=owner)


def test_a_request_the_wallet_cannot_fund_stays_pending_and_blocks_no_other(wallet, owner, agent, payee, usdc):
    wallet.propose(usdc, payee, WALLET_USDC + 1, REF, sender=agent)  # 1: more than the wallet holds
    wallet.propose(usdc, payee, 10 * USDC, REF, sender=agent)  # 2
    with reverts_with(wallet.TransferFailed, token=usdc, to=payee, amount=WALLET_USDC + 1):
        wallet.approve(1, sender=owner)
    assert wallet.request(1).status == PENDING
    wallet.approve(2, sender=owner)  # independent of the stuck one
    usdc.mint(wallet, 11 * USDC, sender=owner)
    wallet.approve(1, sender=owner)  # and it can still execute once funded
    assert wallet.request(1).status == EXECUTED


# ------------------------------------------------------------------------------------------------
# reject / cancel / expire


def test_reject_closes_the_request_without_paying(wallet, owner, agent, usdc, proposed):
    rid = proposed[0]
    receipt = wallet.reject(rid, sender=owner)
    assert logs(receipt) == [ev(wallet, "RequestRejected", requestId=rid, agent=agent)]
    assert wallet.request(rid).status == REJECTED
    assert balance(usdc, wallet) == WALLET_USDC


def test_the_proposing_agent_cancels_its_request(wallet, agent, proposed):
    rid = proposed[0]
    receipt = wallet.cancel(rid, sender=agent)
    assert logs(receipt) == [ev(wallet, "RequestCancelled", requestId=rid, agent=agent)]
    assert wallet.request(rid).status == CANCELLED


@pytest.mark.parametrize("who", ["owner", "agent2", "stranger"])
def test_only_the_proposing_agent_cancels(wallet, owner, agent, agent2, stranger, proposed, who):
    caller = {"owner": owner, "agent2": agent2, "stranger": stranger}[who]
    if who == "agent2":
        wallet.addAgent(agent2, sender=owner)
    with reverts_with(wallet.NotProposer, requestId=1, caller=caller, agent=agent):
        wallet.cancel(1, sender=caller)


@pytest.mark.parametrize("state", ["agent paused", "agent revoked", "wallet paused"])
def test_cancelling_moves_no_funds_so_a_stopped_agent_may_still_cancel(wallet, owner, agent, proposed, state):
    if state == "agent paused":
        wallet.setAgentPaused(agent, True, sender=owner)
    elif state == "agent revoked":
        wallet.revokeAgent(agent, sender=owner)
    else:
        wallet.setPaused(True, sender=owner)
    wallet.cancel(1, sender=agent)
    assert wallet.request(1).status == CANCELLED


def test_cancel_of_unknown_or_lapsed_requests_reverts(wallet, chain, agent, proposed):
    with reverts_with(wallet.UnknownRequest, requestId=2):
        wallet.cancel(2, sender=agent)
    rid, _, expires = proposed
    at(chain, expires)
    with reverts_with(wallet.RequestHasExpired, requestId=rid, expiresAt=expires):
        wallet.cancel(rid, sender=agent)


def test_anyone_expires_a_request_from_its_expiry_on(wallet, chain, agent, stranger, proposed):
    rid, _, expires = proposed
    at(chain, expires - 1)
    with reverts_with(wallet.RequestNotExpired, requestId=rid, expiresAt=expires):
        wallet.expire(rid, sender=stranger)
    at(chain, expires)
    receipt = wallet.expire(rid, sender=stranger)
    assert logs(receipt) == [ev(wallet, "RequestExpired", requestId=rid, agent=agent)]
    assert wallet.request(rid).status == EXPIRED


def test_a_lapsed_request_never_executes_even_if_nobody_expired_it(wallet, chain, owner, usdc, proposed):
    rid, _, expires = proposed
    at(chain, expires + 10 * DAY)
    assert wallet.request(rid).status == PENDING
    with reverts_with(wallet.RequestHasExpired, requestId=rid, expiresAt=expires):
        wallet.approve(rid, sender=owner)
    assert balance(usdc, wallet) == WALLET_USDC


CLOSE = {
    EXECUTED: lambda w, c: w.approve(1, sender=c["owner"]),
    REJECTED: lambda w, c: w.reject(1, sender=c["owner"]),
    CANCELLED: lambda w, c: w.cancel(1, sender=c["agent"]),
    EXPIRED: lambda w, c: w.expire(1, sender=c["stranger"]),
}
ACT = {
    "approve": lambda w, c: w.approve(1, sender=c["owner"]),
    "approveAmount": lambda w, c: w.approveAmount(1, 1, sender=c["owner"]),
    "reject": lambda w, c: w.reject(1, sender=c["owner"]),
    "cancel": lambda w, c: w.cancel(1, sender=c["agent"]),
    "expire": lambda w, c: w.expire(1, sender=c["stranger"]),
}


@pytest.mark.parametrize("action", sorted(ACT))
@pytest.mark.parametrize("status", [EXECUTED, REJECTED, CANCELLED, EXPIRED])
def test_a_closed_request_is_final(wallet, chain, owner, agent, stranger, proposed, status, action):
    """Every terminal status refuses every transition (checked after expiry too, where relevant)."""
    ctx = {"owner": owner, "agent": agent, "stranger": stranger}
    _, _, expires = proposed
    if status == EXPIRED:
        at(chain, expires)
    CLOSE[status](wallet, ctx)
    with reverts_with(wallet.RequestNotPending, requestId=1, status=status):
        ACT[action](wallet, ctx)
    assert wallet.request(1).status == status
