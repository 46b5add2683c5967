"""AgentWallet signed intents: payWithSig / proposeWithSig, EIP-712 (domain "Paygent AgentWallet",
version "1"), sequential per-agent nonces, deadlines; relayed by anyone (here the stranger), so the
agent key needs no CRO. Signatures come from eth-account with the agent key derived from the test
mnemonic in ape-config.yaml; the typehashes and domain separator are re-derived here in Python."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak

from wallet_support import (  # noqa: F401  (fixtures are used by name)
    CRO,
    DAY,
    NATIVE,
    PAY_TYPE,
    PENDING,
    PROPOSE_TYPE,
    TTL,
    USDC,
    USDC_CAP,
    USDC_LIMIT,
    addr,
    agent2,
    at,
    balance,
    bare_wallet,
    ev,
    key_of,
    logs,
    payee,
    reverts_with,
    sign_intent,
    wallet,
)

REF = keccak(text="GET /price/BTC")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture
def agent_key(accounts):
    key = key_of(1)
    assert key.address == accounts[1].address  # the `agent` fixture's key
    return key


def intent(wallet, agent, token, to, amount, deadline, nonce=None, ref=REF) -> dict:
    return {"agent": addr(agent), "token": addr(token) if not isinstance(token, str) else token, "to": addr(to),
            "amount": amount, "ref": ref, "nonce": wallet.nonces(agent) if nonce is None else nonce,
            "deadline": deadline}


def args(msg: dict) -> tuple:
    return (msg["agent"], msg["token"], msg["to"], msg["amount"], msg["ref"], msg["deadline"])


# ------------------------------------------------------------------------------------------------
# Types and domain


def test_typehashes_are_the_eip712_encodings_of_the_documented_types(bare_wallet):
    assert bytes(bare_wallet.PAY_TYPEHASH()) == keccak(text=PAY_TYPE)
    assert bytes(bare_wallet.PROPOSE_TYPEHASH()) == keccak(text=PROPOSE_TYPE)


def test_domain_separator_is_name_version_chain_and_wallet(bare_wallet, chain):
    domain_type = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    expected = keccak(encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                             [domain_type, keccak(text="Paygent AgentWallet"), keccak(text="1"), chain.chain_id,
                              bare_wallet.address]))
    assert chain.chain_id == 338
    assert bytes(bare_wallet.DOMAIN_SEPARATOR()) == expected


# ------------------------------------------------------------------------------------------------
# payWithSig


def test_a_relayer_submits_a_signed_payment_and_pays_the_gas(wallet, chain, agent, agent_key, stranger, payee, usdc):
    t = at(chain, chain.pending_timestamp + 10)
    msg = intent(wallet, agent, usdc, payee, 25 * USDC, t + 300)
    sig = sign_intent(agent_key, wallet, chain.chain_id, "Pay", msg)
    agent_cro = balance(NATIVE, agent)
    receipt = wallet.payWithSig(*args(msg), sig, sender=stranger)
    assert receipt.sender == stranger.address
    assert logs(receipt) == [
        ev(wallet, "NonceUsed", agent=agent, nonce=0),
        ev(usdc, "Transfer", **{"from": wallet, "to": payee, "value": 25 * USDC}),
        ev(wallet, "Paid", agent=agent, token=usdc, to=payee, amount=25 * USDC, ref=REF,
           remainingInWindow=USDC_LIMIT - 25 * USDC, windowIndex=t // DAY),
    ]
    assert wallet.nonces(agent) == 1
    assert balance(NATIVE, agent) == agent_cro  # the agent key spent no gas
    assert wallet.spentInWindow(agent, usdc)[0] == 25 * USDC


def test_a_signed_native_cro_payment(wallet, chain, agent, agent_key, stranger, payee):
    before = balance(NATIVE, payee)
    msg = intent(wallet, agent, NATIVE, payee, 1 * CRO, chain.pending_timestamp + 300)
    wallet.payWithSig(*args(msg), sign_intent(agent_key, wallet, chain.chain_id, "Pay", msg), sender=stranger)
    assert balance(NATIVE, payee) == before + 1 * CRO


def test_a_replayed_intent_is_refused(wallet, chain, agent, agent_key, stranger, payee, usdc):
    msg = intent(wallet, agent, usdc, payee, 1 * USDC, chain.pending_timestamp + 300)
    sig = sign_intent(agent_key, wallet, chain.chain_id, "Pay", msg)
    wallet.payWithSig(*args(msg), sig, sender=stranger)
    with reverts_with(wallet.InvalidSignature):
        wallet.payWithSig(*args(msg), sig, sender=stranger)
    assert wallet.nonces(agent) == 1


def test_nonces_are_used_in_order(wallet, chain, agent, agent_key, stranger, payee, usdc):
    dl = chain.pending_timestamp + 300
    first, second = (intent(wallet, agent, usdc, payee, 1 * USDC, dl, nonce=n) for n in (0, 1))
    sig0, sig1 = (sign_intent(agent_key, wallet, chain.chain_id, "Pay", m) for m in (first, second))
    with reverts_with(wallet.InvalidSignature):
        wallet.payWithSig(*args(second), sig1, sender=stranger)  # nonce 1 before nonce 0
    wallet.payWithSig(*args(first), sig0, sender=stranger)
    wallet.payWithSig(*args(second), sig1, sender=stranger)
    assert wallet.nonces(agent) == 2


TAMPER = {
    "token": lambda m, c: {**m, "token": NATIVE},
    "to": lambda m, c: {**m, "to": c["stranger"].address},
    "amount": lambda m, c: {**m, "amount": m["amount"] + 1},
    "ref": lambda m, c: {**m, "ref": keccak(text="another request")},
    "deadline": lambda m, c: {**m, "deadline": m["deadline"] + 1},
    "agent": lambda m, c: {**m, "agent": c["agent2"].address},  # another active agent's rule and nonce
}


@pytest.mark.parametrize("field", sorted(TAMPER))
def test_any_altered_field_invalidates_the_signature(wallet, chain, owner, agent, agent2, agent_key, stranger,
                                                     payee, usdc, field):
    wallet.addAgent(agent2, sender=owner)
    wallet.setRule(agent2, usdc, 100 * USDC, 40 * USDC, DAY, 0, sender=owner)
    msg = intent(wallet, agent, usdc, payee, 1 * USDC, chain.pending_timestamp + 300)
    sig = sign_intent(agent_key, wallet, chain.chain_id, "Pay", msg)
    altered = TAMPER[field](msg, {"stranger": stranger, "agent2": agent2})
    with reverts_with(wallet.InvalidSignature):
        wallet.payWithSig(*args(altered), sig, sender=stranger)
    assert wallet.nonces(agent) == 0


@pytest.mark.parametrize("what", ["other signer", "other wallet", "other chain", "other name", "propose type"])
def test_signatures_for_anything_else_are_refused(wallet, project, chain, owner, agent, agent_key, stranger, payee,
                                                  usdc, what):
    from eth_account import Account

    msg = intent(wallet, agent, usdc, payee, 1 * USDC, chain.pending_timestamp + 300)
    domain = {"name": "Paygent AgentWallet", "version": "1", "chainId": chain.chain_id,
              "verifyingContract": wallet.address}
    key, primary = agent_key, "Pay"
    if what == "other signer":
        key = key_of(4)  # the stranger
    elif what == "other wallet":
        domain["verifyingContract"] = owner.deploy(project.AgentWallet, owner, TTL).address
    elif what == "other chain":
        domain["chainId"] = 25
    elif what == "other name":
        domain["name"] = "AgentWallet"
    else:
        primary = "Propose"  # a proposal's signature is not a payment's
    fields = [{"name": n, "type": t} for n, t in (("agent", "address"), ("token", "address"), ("to", "address"),
                                                  ("amount", "uint256"), ("ref", "bytes32"), ("nonce", "uint256"),
                                                  ("deadline", "uint256"))]
    sig = bytes(Account.sign_typed_data(key.key, domain, {primary: fields}, msg).signature)
    with reverts_with(wallet.InvalidSignature):
        wallet.payWithSig(*args(msg), sig, sender=stranger)


@pytest.mark.parametrize("shape", ["64 bytes", "66 bytes", "v = 29", "high s", "empty", "zeros"])
def test_malformed_signatures_are_invalid(wallet, chain, agent, agent_key, stranger, payee, usdc, shape):
    msg = intent(wallet, agent, usdc, payee, 1 * USDC, chain.pending_timestamp + 300)
    sig = sign_intent(agent_key, wallet, chain.chain_id, "Pay", msg)
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    bad = {
        "64 bytes": sig[:64],
        "66 bytes": sig + b"\x00",
        "v = 29": r + sig[32:64] + bytes([29]),
        "high s": r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v]),  # the malleable twin
        "empty": b"",
        "zeros": b"\x00" * 65,
    }[shape]
    with reverts_with(wallet.InvalidSignature):
        wallet.payWithSig(*args(msg), bad, sender=stranger)


def test_the_deadline_is_inclusive(wallet, chain, agent, agent_key, stranger, payee, usdc):
    t = chain.pending_timestamp + 10
    on_time = intent(wallet, agent, usdc, payee, 1 * USDC, t)
    at(chain, t)
    wallet.payWithSig(*args(on_time), sign_intent(agent_key, wallet, chain.chain_id, "Pay", on_time),
                      sender=stranger)
    late = intent(wallet, agent, usdc, payee, 1 * USDC, t)
    at(chain, t + 1)
    with reverts_with(wallet.DeadlinePassed, deadline=t, timestamp=t + 1):
        wallet.payWithSig(*args(late), sign_intent(agent_key, wallet, chain.chain_id, "Pay", late), sender=stranger)
    assert wallet.nonces(agent) == 1


def test_a_signed_payment_obeys_the_rule_and_a_refused_one_keeps_its_nonce(wallet, chain, agent, agent_key,
                                                                            stranger, payee, usdc):
    msg = intent(wallet, agent, usdc, payee, USDC_CAP + 1, chain.pending_timestamp + 300)
    with reverts_with(wallet.CapExceeded, agent=agent, token=usdc, cap=USDC_CAP, amount=USDC_CAP + 1):
        wallet.payWithSig(*args(msg), sign_intent(agent_key, wallet, chain.chain_id, "Pay", msg), sender=stranger)
    assert wallet.nonces(agent) == 0


# ------------------------------------------------------------------------------------------------
# proposeWithSig


def test_a_relayed_signed_proposal_is_queued_for_the_signer(wallet, chain, agent, agent_key, stranger, payee, usdc):
    t = at(chain, chain.pending_timestamp + 10)
    msg = intent(wallet, agent, usdc, payee, 700 * USDC, t + 300)
    receipt = wallet.proposeWithSig(*args(msg), sign_intent(agent_key, wallet, chain.chain_id, "Propose", msg),
                                    sender=stranger)
    assert receipt.return_value == 1
    assert logs(receipt) == [
        ev(wallet, "NonceUsed", agent=agent, nonce=0),
        ev(wallet, "RequestProposed", requestId=1, agent=agent, token=usdc, to=payee, amount=700 * USDC, ref=REF,
           expiresAt=t + TTL),
    ]
    req = wallet.request(1)
    assert (req.agent, req.amount, req.status) == (agent.address, 700 * USDC, PENDING)
    assert wallet.nonces(agent) == 1


def test_pay_and_propose_share_one_nonce_sequence(wallet, chain, agent, agent_key, stranger, payee, usdc):
    dl = chain.pending_timestamp + 300
    p0 = intent(wallet, agent, usdc, payee, 1 * USDC, dl, nonce=0)
    q1 = intent(wallet, agent, usdc, payee, 900 * USDC, dl, nonce=1)
    p2 = intent(wallet, agent, usdc, payee, 2 * USDC, dl, nonce=2)
    wallet.payWithSig(*args(p0), sign_intent(agent_key, wallet, chain.chain_id, "Pay", p0), sender=stranger)
    wallet.proposeWithSig(*args(q1), sign_intent(agent_key, wallet, chain.chain_id, "Propose", q1), sender=stranger)
    wallet.payWithSig(*args(p2), sign_intent(agent_key, wallet, chain.chain_id, "Pay", p2), sender=stranger)
    assert wallet.nonces(agent) == 3


def test_signed_proposals_check_signature_and_deadline(wallet, chain, agent, agent_key, stranger, payee, usdc):
    t = chain.pending_timestamp + 10
    msg = intent(wallet, agent, usdc, payee, 700 * USDC, t)
    sig = sign_intent(agent_key, wallet, chain.chain_id, "Propose", msg)
    with reverts_with(wallet.InvalidSignature):
        wallet.proposeWithSig(*args({**msg, "amount": 701 * USDC}), sig, sender=stranger)
    with reverts_with(wallet.InvalidSignature):  # a payment's signature is not a proposal's
        wallet.proposeWithSig(*args(msg), sign_intent(agent_key, wallet, chain.chain_id, "Pay", msg),
                              sender=stranger)
    at(chain, t + 1)
    with reverts_with(wallet.DeadlinePassed, deadline=t, timestamp=t + 1):
        wallet.proposeWithSig(*args(msg), sig, sender=stranger)
    assert wallet.nonces(agent) == 0 and wallet.requestCount() == 0
