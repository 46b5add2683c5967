"""AgentWallet: deployment, deposits, the owner's controls (agents, rules, routers, pause, request TTL,
withdraw, two-step ownership) and that nobody else can use them (invariant 3)."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from wallet_support import (  # noqa: F401  (fixtures are used by name)
    CRO,
    DAY,
    NATIVE,
    TTL,
    UINT96_MAX,
    USDC,
    USDC_CAP,
    USDC_FLOAT,
    USDC_LIMIT,
    WALLET_CRO,
    WALLET_USDC,
    ZERO,
    addr,
    agent2,
    balance,
    bare_wallet,
    deploy_revert_data,
    error_data,
    ev,
    logs,
    mapping_slot,
    payee,
    reverts_with,
    storage_word,
    wallet,
)

MAX_TTL = 365 * DAY


# ------------------------------------------------------------------------------------------------
# Deployment


def test_constructor_sets_owner_and_ttl_and_emits_both(project, chain, owner, stranger):
    w = stranger.deploy(project.AgentWallet, owner, 3600)
    receipt = chain.get_receipt(w.creation_metadata.txn_hash)
    assert logs(receipt) == [
        ev(w, "OwnershipTransferred", previousOwner=ZERO, newOwner=owner),
        ev(w, "RequestTtlSet", ttl=3600),
    ]
    assert w.owner() == owner.address  # the deployer (stranger) gets nothing
    assert w.requestTtl() == 3600
    assert w.pendingOwner() == ZERO
    assert w.paused() is False
    assert w.requestCount() == 0


@pytest.mark.parametrize(
    "owner_is_zero, ttl, error, args",
    [
        (True, DAY, "ZeroAddress", ()),
        (False, 0, "InvalidRequestTtl", (0,)),
        (False, MAX_TTL + 1, "InvalidRequestTtl", (MAX_TTL + 1,)),
    ],
)
def test_constructor_rejects_zero_owner_and_ttl_outside_1_to_a_year(project, chain, owner, owner_is_zero, ttl, error,
                                                                    args):
    who = ZERO if owner_is_zero else owner
    data = deploy_revert_data(chain, project.AgentWallet, owner, who, ttl)
    assert data == error_data(project.AgentWallet.contract_type, error, *args)


def test_ttl_of_exactly_one_year_is_accepted(project, owner):
    assert owner.deploy(project.AgentWallet, owner, MAX_TTL).requestTtl() == MAX_TTL


def test_fresh_wallet_views_are_empty(bare_wallet, usdc, agent, stranger, owner):
    w = bare_wallet
    assert w.agentInfo(agent) == (False, False)
    assert w.nonces(agent) == 0
    assert w.rule(agent, usdc) == (0, 0, 0, 0)
    assert w.spentInWindow(agent, usdc) == (0, 0, 0)  # no rule: no window
    assert w.available(agent, usdc) == 0
    assert w.isRouterAllowed(stranger) is False
    assert w.isRouterAllowed(ZERO) is False
    assert w.MAX_REQUEST_TTL() == MAX_TTL
    req = w.request(1)
    assert (req.agent, req.token, req.to, req.amount, req.status) == (ZERO, ZERO, ZERO, 0, 0)


def test_storage_layout_is_as_documented(bare_wallet, chain, owner, agent, usdc, project):
    """The slot layout comment in AgentWallet.sol, read back from raw storage."""
    w = bare_wallet
    router = owner.deploy(project.MockSwapRouter)
    w.addAgent(agent, sender=owner)
    w.setAgentPaused(agent, True, sender=owner)
    w.setRule(agent, usdc, 100, 40, 3600, 7, sender=owner)
    index = chain.blocks.head.timestamp // 3600  # setRule starts the window it was set in
    w.setRouter(router, True, sender=owner)
    w.setPaused(True, sender=owner)
    w.transferOwnership(agent, sender=owner)
    # slot 0: _lock (1 byte, 1 = unlocked) | paused (1) | requestTtl (8) | _firstRouter (20)
    word = storage_word(chain, w, 0)
    assert word & 0xFF == 1
    assert (word >> 8) & 0xFF == 1
    assert (word >> 16) & (2**64 - 1) == TTL
    assert word >> 80 == int(router.address, 16)
    assert storage_word(chain, w, 1) == int(owner.address, 16)
    assert storage_word(chain, w, 2) == int(agent.address, 16)
    assert storage_word(chain, w, 3) == 0  # requestCount
    # _agents[agent]: active (1) | paused (1) | nonce (8)
    assert storage_word(chain, w, mapping_slot(agent, 4)) == 1 | (1 << 8)
    # _windows[agent][usdc]: remaining (12) | cap (12) | windowIndex (4) | period (4)
    assert storage_word(chain, w, mapping_slot(usdc, mapping_slot(agent, 5))) == (
        100 | (40 << 96) | (index << 192) | (3600 << 224))
    # _limits[agent][usdc]: limit (12) | floatCap (12)
    assert storage_word(chain, w, mapping_slot(usdc, mapping_slot(agent, 6))) == 100 | (7 << 96)


# ------------------------------------------------------------------------------------------------
# Deposits


def test_native_deposit_emits_deposited(bare_wallet, stranger):
    receipt = stranger.transfer(bare_wallet, 3 * CRO)
    assert logs(receipt) == [ev(bare_wallet, "Deposited", **{"from": stranger, "amount": 3 * CRO})]
    assert balance(NATIVE, bare_wallet) == 3 * CRO


def test_native_deposit_fits_the_2300_gas_stipend(bare_wallet, stranger):
    """21,000 intrinsic + 2,300 for the wallet: what a contract sending with transfer() gives."""
    receipt = stranger.transfer(bare_wallet, 1, gas_limit=21_000 + 2_300)
    assert logs(receipt) == [ev(bare_wallet, "Deposited", **{"from": stranger, "amount": 1})]


# ------------------------------------------------------------------------------------------------
# Only the owner (invariant 3)

OWNER_CALLS = {
    "addAgent": lambda c: (c["stranger"],),
    "revokeAgent": lambda c: (c["agent"],),
    "setAgentPaused": lambda c: (c["agent"], True),
    "setRule": lambda c: (c["agent"], c["usdc"], 1, 1, DAY, 0),
    "setRouter": lambda c: (c["stranger"], True),
    "setPaused": lambda c: (True,),
    "setRequestTtl": lambda c: (60,),
    "withdraw": lambda c: (c["usdc"], c["stranger"], 1),
    "approve": lambda c: (1,),
    "approveAmount": lambda c: (1, 1),
    "reject": lambda c: (1,),
    "transferOwnership": lambda c: (c["stranger"],),
}


@pytest.mark.parametrize("who", ["agent", "stranger"])
@pytest.mark.parametrize("fn", sorted(OWNER_CALLS))
def test_owner_functions_revert_not_owner_for_everyone_else(wallet, usdc, owner, agent, stranger, payee, fn, who):
    ctx = {"agent": agent, "stranger": stranger, "usdc": usdc}
    wallet.propose(usdc, payee, 500 * USDC, b"\x01" * 32, sender=agent)  # request 1 exists
    caller = ctx[who]
    with reverts_with(wallet.NotOwner, caller=caller):
        getattr(wallet, fn)(*OWNER_CALLS[fn](ctx), sender=caller)


# ------------------------------------------------------------------------------------------------
# Agents


def test_add_agent_makes_an_active_unpaused_agent(bare_wallet, owner, agent):
    receipt = bare_wallet.addAgent(agent, sender=owner)
    assert logs(receipt) == [ev(bare_wallet, "AgentAdded", agent=agent)]
    assert bare_wallet.agentInfo(agent) == (True, False)


def test_add_agent_refuses_zero_and_an_active_agent(wallet, owner, agent):
    with reverts_with(wallet.ZeroAddress):
        wallet.addAgent(ZERO, sender=owner)
    with reverts_with(wallet.AlreadyAgent, agent=agent):
        wallet.addAgent(agent, sender=owner)


def test_revoke_agent_deactivates_and_clears_its_pause(wallet, owner, agent):
    wallet.setAgentPaused(agent, True, sender=owner)
    receipt = wallet.revokeAgent(agent, sender=owner)
    assert logs(receipt) == [ev(wallet, "AgentRevoked", agent=agent)]
    assert wallet.agentInfo(agent) == (False, False)


def test_revoke_refuses_an_address_that_is_not_an_active_agent(wallet, owner, agent, stranger):
    with reverts_with(wallet.NotAgent, agent=stranger):
        wallet.revokeAgent(stranger, sender=owner)
    wallet.revokeAgent(agent, sender=owner)
    with reverts_with(wallet.NotAgent, agent=agent):
        wallet.revokeAgent(agent, sender=owner)


def test_re_added_agent_keeps_its_rules_and_is_unpaused(wallet, owner, agent, usdc):
    wallet.setAgentPaused(agent, True, sender=owner)
    wallet.revokeAgent(agent, sender=owner)
    wallet.addAgent(agent, sender=owner)
    assert wallet.agentInfo(agent) == (True, False)
    assert wallet.rule(agent, usdc) == (USDC_LIMIT, USDC_CAP, DAY, USDC_FLOAT)


@pytest.mark.parametrize("paused", [True, False])
def test_set_agent_paused_sets_the_flag_and_emits(wallet, owner, agent, paused):
    if not paused:
        wallet.setAgentPaused(agent, True, sender=owner)
    receipt = wallet.setAgentPaused(agent, paused, sender=owner)
    assert logs(receipt) == [ev(wallet, "AgentPauseSet", agent=agent, paused=paused)]
    assert wallet.agentInfo(agent) == (True, paused)


def test_set_agent_paused_refuses_inactive_agents(wallet, owner, agent, stranger):
    with reverts_with(wallet.NotAgent, agent=stranger):
        wallet.setAgentPaused(stranger, True, sender=owner)
    wallet.revokeAgent(agent, sender=owner)
    with reverts_with(wallet.NotAgent, agent=agent):
        wallet.setAgentPaused(agent, False, sender=owner)


# ------------------------------------------------------------------------------------------------
# Rules


INT96_MAX = 2**95 - 1


def test_a_limit_above_int96_is_refused(bare_wallet, owner, agent, usdc):
    """What remains of a window is signed (it goes below 0 when a limit is lowered under the spend),
    so limits stop at type(int96).max: 39.6 billion tokens of 18 decimals."""
    with reverts_with(bare_wallet.AmountTooLarge, amount=INT96_MAX + 1):
        bare_wallet.setRule(agent, usdc, INT96_MAX + 1, 1, DAY, 0, sender=owner)


@pytest.mark.parametrize(
    "limit, cap, period, float_cap",
    [
        (100 * USDC, 40 * USDC, DAY, 10 * USDC),
        (100 * USDC, 100 * USDC, 3600, 0),  # cap == limit
        (0, 0, DAY, 0),  # forbids spending
        (INT96_MAX, INT96_MAX, 2**32 - 1, UINT96_MAX),  # widest values (a limit fits int96: see Window)
        (5, 1, 1, 1),  # one-second windows
    ],
)
def test_set_rule_stores_every_field_and_emits_them(bare_wallet, owner, agent, usdc, limit, cap, period, float_cap):
    receipt = bare_wallet.setRule(agent, usdc, limit, cap, period, float_cap, sender=owner)
    assert logs(receipt) == [
        ev(bare_wallet, "RuleSet", agent=agent, token=usdc, limit=limit, cap=cap, period=period, floatCap=float_cap)
    ]
    assert bare_wallet.rule(agent, usdc) == (limit, cap, period, float_cap)


def test_rules_are_per_agent_and_token(bare_wallet, owner, agent, agent2, usdc, wcro):
    bare_wallet.setRule(agent, usdc, 10, 5, DAY, 1, sender=owner)
    bare_wallet.setRule(agent, NATIVE, 20, 6, 60, 2, sender=owner)
    bare_wallet.setRule(agent2, usdc, 30, 7, 3600, 3, sender=owner)
    assert bare_wallet.rule(agent, usdc) == (10, 5, DAY, 1)
    assert bare_wallet.rule(agent, NATIVE) == (20, 6, 60, 2)
    assert bare_wallet.rule(agent2, usdc) == (30, 7, 3600, 3)
    assert bare_wallet.rule(agent, wcro) == (0, 0, 0, 0)
    assert bare_wallet.rule(agent2, NATIVE) == (0, 0, 0, 0)


def test_a_rule_may_be_set_before_the_agent_is_added(bare_wallet, owner, agent, usdc):
    bare_wallet.setRule(agent, usdc, 10, 5, DAY, 0, sender=owner)
    assert bare_wallet.agentInfo(agent) == (False, False)
    assert bare_wallet.rule(agent, usdc) == (10, 5, DAY, 0)


def test_set_rule_refuses_cap_above_limit_zero_period_and_zero_agent(bare_wallet, owner, agent, usdc):
    with reverts_with(bare_wallet.CapAboveLimit, cap=11, limit=10):
        bare_wallet.setRule(agent, usdc, 10, 11, DAY, 0, sender=owner)
    with reverts_with(bare_wallet.InvalidPeriod):
        bare_wallet.setRule(agent, usdc, 10, 5, 0, 0, sender=owner)
    with reverts_with(bare_wallet.ZeroAddress):
        bare_wallet.setRule(ZERO, usdc, 10, 5, DAY, 0, sender=owner)


# ------------------------------------------------------------------------------------------------
# Routers (the first allowlisted router lives in slot 0, any others in a mapping)


@pytest.fixture
def routers(project, owner):
    return [owner.deploy(project.MockSwapRouter) for _ in range(3)]


def allowed(w, routers) -> list[bool]:
    return [w.isRouterAllowed(r) for r in routers]


def test_set_router_allows_and_forbids_and_emits(bare_wallet, owner, routers):
    w, (a, b, c) = bare_wallet, routers
    receipt = w.setRouter(a, True, sender=owner)
    assert logs(receipt) == [ev(w, "RouterSet", router=a, allowed=True)]
    assert allowed(w, routers) == [True, False, False]
    receipt = w.setRouter(a, False, sender=owner)
    assert logs(receipt) == [ev(w, "RouterSet", router=a, allowed=False)]
    assert allowed(w, routers) == [False, False, False]


@pytest.mark.parametrize(
    "steps, expected",
    [
        # (router index, allowed) in order -> which of a, b, c are allowed afterwards
        ([(0, True), (1, True), (2, True)], [True, True, True]),
        ([(0, True), (1, True), (0, False)], [False, True, False]),  # removing the first keeps the second
        ([(0, True), (1, True), (1, False)], [True, False, False]),
        ([(0, True), (1, True), (0, False), (2, True)], [False, True, True]),  # c takes the free first place
        ([(0, True), (1, True), (0, False), (1, True)], [False, True, False]),  # b allowed twice: still once
        ([(0, True), (1, True), (0, False), (1, True), (1, False)], [False, False, False]),
        ([(0, True), (0, True), (0, False)], [False, False, False]),  # re-allowing is idempotent
        ([(1, False), (0, True)], [True, False, False]),  # forbidding an unknown router is harmless
    ],
)
def test_router_allowlist_is_a_set_whatever_the_order(bare_wallet, owner, routers, steps, expected):
    for i, allow in steps:
        bare_wallet.setRouter(routers[i], allow, sender=owner)
    assert allowed(bare_wallet, routers) == expected
    assert bare_wallet.isRouterAllowed(ZERO) is False


def test_set_router_refuses_zero_address(bare_wallet, owner):
    with reverts_with(bare_wallet.ZeroAddress):
        bare_wallet.setRouter(ZERO, True, sender=owner)


# ------------------------------------------------------------------------------------------------
# Pause and request TTL


@pytest.mark.parametrize("paused", [True, False])
def test_set_paused_sets_the_flag_and_emits(bare_wallet, owner, paused):
    if not paused:
        bare_wallet.setPaused(True, sender=owner)
    receipt = bare_wallet.setPaused(paused, sender=owner)
    assert logs(receipt) == [ev(bare_wallet, "WalletPauseSet", paused=paused)]
    assert bare_wallet.paused() is paused


@pytest.mark.parametrize("ttl", [1, 60, DAY, MAX_TTL])
def test_set_request_ttl_accepts_one_second_to_one_year(bare_wallet, owner, ttl):
    receipt = bare_wallet.setRequestTtl(ttl, sender=owner)
    assert logs(receipt) == [ev(bare_wallet, "RequestTtlSet", ttl=ttl)]
    assert bare_wallet.requestTtl() == ttl


@pytest.mark.parametrize("ttl", [0, MAX_TTL + 1, 2**64 - 1])
def test_set_request_ttl_refuses_zero_and_above_a_year(bare_wallet, owner, ttl):
    with reverts_with(bare_wallet.InvalidRequestTtl, ttl=ttl):
        bare_wallet.setRequestTtl(ttl, sender=owner)


# ------------------------------------------------------------------------------------------------
# Withdraw


def test_withdraw_usdc_moves_it_to_the_recipient(wallet, owner, usdc, stranger):
    receipt = wallet.withdraw(usdc, stranger, 250 * USDC, sender=owner)
    assert logs(receipt) == [
        ev(usdc, "Transfer", **{"from": wallet, "to": stranger, "value": 250 * USDC}),
        ev(wallet, "Withdrawn", token=usdc, to=stranger, amount=250 * USDC),
    ]
    assert balance(usdc, wallet) == WALLET_USDC - 250 * USDC
    assert balance(usdc, stranger) == 250 * USDC


def test_withdraw_native_cro_moves_it_to_the_recipient(wallet, owner, stranger):
    before = balance(NATIVE, stranger)
    receipt = wallet.withdraw(NATIVE, stranger, WALLET_CRO, sender=owner)
    assert logs(receipt) == [ev(wallet, "Withdrawn", token=NATIVE, to=stranger, amount=WALLET_CRO)]
    assert balance(NATIVE, wallet) == 0
    assert balance(NATIVE, stranger) == before + WALLET_CRO


def test_withdraw_works_while_paused(wallet, owner, usdc):
    wallet.setPaused(True, sender=owner)
    wallet.withdraw(usdc, owner, WALLET_USDC, sender=owner)
    assert balance(usdc, owner) == WALLET_USDC


def test_withdraw_refuses_zero_recipient_and_zero_amount(wallet, owner, usdc):
    with reverts_with(wallet.ZeroAddress):
        wallet.withdraw(usdc, ZERO, 1, sender=owner)
    with reverts_with(wallet.ZeroAmount):
        wallet.withdraw(usdc, owner, 0, sender=owner)


def test_withdraw_above_the_balance_reverts_transfer_failed(wallet, owner, usdc, stranger):
    """SafeTransfer reports any failed transfer (the token's own revert included) as TransferFailed."""
    with reverts_with(wallet.TransferFailed, token=usdc, to=stranger, amount=WALLET_USDC + 1):
        wallet.withdraw(usdc, stranger, WALLET_USDC + 1, sender=owner)
    with reverts_with(wallet.TransferFailed, token=NATIVE, to=stranger, amount=WALLET_CRO + 1):
        wallet.withdraw(NATIVE, stranger, WALLET_CRO + 1, sender=owner)


# ------------------------------------------------------------------------------------------------
# Ownership (two steps)


def test_ownership_moves_in_two_steps(wallet, owner, stranger, usdc):
    receipt = wallet.transferOwnership(stranger, sender=owner)
    assert logs(receipt) == [ev(wallet, "OwnershipTransferStarted", previousOwner=owner, newOwner=stranger)]
    assert wallet.owner() == owner.address and wallet.pendingOwner() == stranger.address
    receipt = wallet.acceptOwnership(sender=stranger)
    assert logs(receipt) == [ev(wallet, "OwnershipTransferred", previousOwner=owner, newOwner=stranger)]
    assert wallet.owner() == stranger.address and wallet.pendingOwner() == ZERO
    # the new owner rules; the old one is nobody
    wallet.withdraw(usdc, stranger, 1, sender=stranger)
    with reverts_with(wallet.NotOwner, caller=owner):
        wallet.setPaused(True, sender=owner)


def test_only_the_pending_owner_accepts(wallet, owner, agent, stranger):
    with reverts_with(wallet.NotOwner, caller=stranger):
        wallet.acceptOwnership(sender=stranger)  # nothing pending
    wallet.transferOwnership(stranger, sender=owner)
    for caller in (agent, owner):
        with reverts_with(wallet.NotOwner, caller=caller):
            wallet.acceptOwnership(sender=caller)


def test_transfer_to_zero_withdraws_the_offer(wallet, owner, stranger):
    wallet.transferOwnership(stranger, sender=owner)
    receipt = wallet.transferOwnership(ZERO, sender=owner)
    assert logs(receipt) == [ev(wallet, "OwnershipTransferStarted", previousOwner=owner, newOwner=ZERO)]
    with reverts_with(wallet.NotOwner, caller=stranger):
        wallet.acceptOwnership(sender=stranger)
    assert wallet.owner() == owner.address


def test_constants_are_the_documented_strings(bare_wallet):
    assert bytes(bare_wallet.PAY_TYPEHASH()) == keccak(
        text="Pay(address agent,address token,address to,uint256 amount,bytes32 ref,uint256 nonce,uint256 deadline)")
    assert bytes(bare_wallet.PROPOSE_TYPEHASH()) == keccak(
        text="Propose(address agent,address token,address to,uint256 amount,bytes32 ref,uint256 nonce,"
             "uint256 deadline)")


def test_the_revert_helper_is_strict(wallet, owner, usdc):
    """reverts_with fails on a wrong value, a missing or unknown input, another error, or no revert."""
    call = lambda: wallet.setRule(owner, usdc, 10, 11, DAY, 0, sender=owner)  # noqa: E731
    with reverts_with(wallet.CapAboveLimit, cap=11, limit=10):
        call()
    for bad in ({"cap": 11, "limit": 9}, {"cap": 11}, {"cap": 11, "limit": 10, "extra": 1}):
        with pytest.raises(AssertionError):
            with reverts_with(wallet.CapAboveLimit, **bad):
                call()
    with pytest.raises(AssertionError):
        with reverts_with(wallet.InvalidPeriod):
            call()
    with pytest.raises(AssertionError):
        with reverts_with(wallet.CapAboveLimit, cap=10, limit=10):
            wallet.setRule(owner, usdc, 10, 10, DAY, 0, sender=owner)
