"""AgentWallet invariant 4: a paused or revoked agent, a non-agent, or any agent of a paused wallet
moves no funds by ANY path (pay, swap, float top-up, signed payment, approval execution) and cannot
queue requests (propose, signed propose). The wallet's pause is checked first."""

from __future__ import annotations

import pytest

from wallet_support import (  # noqa: F401  (fixtures are used by name)
    CRO,
    NATIVE,
    USDC,
    agent2,
    balance,
    bare_wallet,
    factory,
    key_of,
    payee,
    pool,
    reverts_with,
    sign_intent,
    swap_wallet,
    vvs,
    wallet,
)

REF = b"\x09" * 32


class World:
    def __init__(self, wallet, chain, usdc, wcro, vvs, owner, agent, stranger, payee):
        self.w, self.chain, self.usdc, self.wcro, self.vvs = wallet, chain, usdc, wcro, vvs
        self.owner, self.agent, self.stranger, self.payee = owner, agent, stranger, payee

    def signed(self, actor, primary: str) -> tuple:
        msg = {"agent": actor.address, "token": self.usdc.address, "to": self.payee.address, "amount": 1 * USDC,
               "ref": REF, "nonce": self.w.nonces(actor), "deadline": self.chain.pending_timestamp + 600}
        key = key_of(1 if actor == self.agent else 4)
        sig = sign_intent(key, self.w, self.chain.chain_id, primary, msg)
        return (msg["agent"], msg["token"], msg["to"], msg["amount"], msg["ref"], msg["deadline"], sig)


PATHS = {
    "pay": lambda x, a: x.w.pay(x.usdc, x.payee, 1 * USDC, REF, sender=a),
    "pay CRO": lambda x, a: x.w.pay(NATIVE, x.payee, 1, REF, sender=a),
    "swap": lambda x, a: x.w.swap(x.vvs, 1 * USDC, 0, [x.usdc, x.wcro], x.chain.pending_timestamp + 600, sender=a),
    "topUpFloat": lambda x, a: x.w.topUpFloat(x.usdc, 1 * USDC, sender=a),
    "payWithSig": lambda x, a: x.w.payWithSig(*x.signed(a, "Pay"), sender=x.stranger),
    "propose": lambda x, a: x.w.propose(x.usdc, x.payee, 500 * USDC, REF, sender=a),
    "proposeWithSig": lambda x, a: x.w.proposeWithSig(*x.signed(a, "Propose"), sender=x.stranger),
    "approve": lambda x, a: x.w.approve(1, sender=x.owner),
    "approveAmount": lambda x, a: x.w.approveAmount(1, 1 * USDC, sender=x.owner),
}
STATES = ["wallet paused", "agent paused", "agent revoked", "never an agent"]


@pytest.fixture
def world(swap_wallet, chain, usdc, wcro, vvs, owner, agent, stranger, payee):
    swap_wallet.propose(usdc, payee, 500 * USDC, REF, sender=agent)  # request 1, for the approve paths
    return World(swap_wallet, chain, usdc, wcro, vvs, owner, agent, stranger, payee)


def enter(x: World, state: str):
    """Put the wallet in `state`; return (actor, the error class, its inputs)."""
    if state == "wallet paused":
        x.w.setPaused(True, sender=x.owner)
        return x.agent, x.w.WalletIsPaused, {}
    if state == "agent paused":
        x.w.setAgentPaused(x.agent, True, sender=x.owner)
        return x.agent, x.w.AgentIsPaused, {"agent": x.agent}
    if state == "agent revoked":
        x.w.revokeAgent(x.agent, sender=x.owner)
        return x.agent, x.w.NotAgent, {"agent": x.agent}
    return x.stranger, x.w.NotAgent, {"agent": x.stranger}


def holdings(x: World) -> tuple:
    """Token balances of everyone involved, and CRO of those who send no transaction (gas is not free)."""
    tokens = tuple(balance(t, h) for t in (x.usdc, x.wcro) for h in (x.w, x.payee, x.agent, x.stranger, x.vvs))
    return tokens + (balance(NATIVE, x.w), balance(NATIVE, x.payee))


# Every (state, path) pair except approving as "never an agent": requests only ever come from agents.
STOPPED = [(state, path) for state in STATES for path in sorted(PATHS)
           if not (state == "never an agent" and path.startswith("approve"))]


@pytest.mark.parametrize(("state", "path"), STOPPED)
def test_a_stopped_agent_moves_nothing_by_any_path(world, state, path):
    actor, error, inputs = enter(world, state)
    before = holdings(world)
    nonce, requests = world.w.nonces(actor), world.w.requestCount()
    with reverts_with(error, **inputs):
        PATHS[path](world, actor)
    assert holdings(world) == before
    assert (world.w.nonces(actor), world.w.requestCount()) == (nonce, requests)
    assert world.w.request(1).status == 1  # still Pending


@pytest.mark.parametrize("path", sorted(PATHS))
def test_every_path_works_again_once_resumed(world, path):
    """So it was the pause that stopped them (the calls above are otherwise valid)."""
    world.w.setPaused(True, sender=world.owner)
    world.w.setAgentPaused(world.agent, True, sender=world.owner)
    world.w.setPaused(False, sender=world.owner)
    world.w.setAgentPaused(world.agent, False, sender=world.owner)
    PATHS[path](world, world.agent)


def test_the_wallet_pause_is_reported_before_the_agents_state(world):
    world.w.setAgentPaused(world.agent, True, sender=world.owner)
    world.w.setPaused(True, sender=world.owner)
    with reverts_with(world.w.WalletIsPaused):
        PATHS["pay"](world, world.agent)
