"""SafeTransfer (contracts/lib/SafeTransfer.sol): which token answers count as success.

The wallet, the router and the VVS stand-in move every ERC-20 through it. The rule: a call is
accepted when it succeeds AND either its answer starts with the word 1, or it answered nothing and
the token has code. Everything else — false, a non-boolean word, a short answer, a revert (with a
reason, without data, or with the word 1 as its data), an address without code — is
TransferFailed(token, to, amount), whatever the function. The probe leaves the word 1 in the scratch
slot before each call, so an implementation that reads it without checking the answer's size fails. The two reads
(balanceOf, allowance) bubble a token's revert unchanged and refuse answers shorter than a word.
"""

from __future__ import annotations

import pytest
from ape.exceptions import ContractLogicError

from custom_errors import fails

TRUE, NOTHING, FALSE, TWO, SHORT, LONG, REVERT, REVERT_EMPTY, REVERT_ONE, SHORT31 = range(10)
ACCEPTED = {TRUE: True, NOTHING: True, FALSE: False, TWO: False, SHORT: False, LONG: True, REVERT: False,
            REVERT_EMPTY: False, REVERT_ONE: False, SHORT31: False}
MODE_IDS = ["true", "nothing", "false", "two", "short", "long", "revert", "revert-empty", "revert-one", "short31"]
NO_CODE = "0x000000000000000000000000000000000000dEaD"


@pytest.fixture
def probe(project, owner):
    return owner.deploy(project.SafeTransferProbe)


@pytest.fixture
def odd(project, owner):
    return owner.deploy(project.OddToken)


def moves(probe, token, who, sender):
    """The three writes, each with the `to` its TransferFailed names (spender for approve)."""
    return {
        "transfer": (lambda: probe.transfer(token, who, 5, sender=sender)),
        "transferFrom": (lambda: probe.transferFrom(token, sender, who, 5, sender=sender)),
        "approve": (lambda: probe.approve(token, who, 5, sender=sender)),
    }


@pytest.mark.parametrize("mode", sorted(ACCEPTED), ids=MODE_IDS)
@pytest.mark.parametrize("call", ["transfer", "transferFrom", "approve"])
def test_a_token_answer_is_accepted_only_if_it_is_true_or_empty_from_code(probe, odd, owner, stranger, mode, call):
    odd.setMode(mode, sender=owner)
    run = moves(probe, odd, stranger, owner)[call]
    if ACCEPTED[mode]:
        run()
    else:
        with fails("TransferFailed", token=odd.address, to=stranger.address, amount=5):
            run()


@pytest.mark.parametrize("call", ["transfer", "transferFrom", "approve"])
def test_an_address_without_code_is_never_a_successful_token(probe, owner, stranger, call):
    with fails("TransferFailed", token=NO_CODE, to=stranger.address, amount=5):
        moves(probe, NO_CODE, stranger, owner)[call]()


def test_reads_return_the_tokens_answer(probe, usdc, owner, stranger):
    usdc.mint(stranger, 123, sender=owner)
    usdc.approve(owner, 77, sender=stranger)
    assert probe.balanceOf(usdc, stranger) == 123
    assert probe.allowance(usdc, stranger, owner) == 77


@pytest.mark.parametrize("read", ["balanceOf", "allowance"])
def test_a_reverting_read_bubbles_the_tokens_reason(probe, odd, owner, stranger, read):
    odd.setMode(REVERT, sender=owner)
    args = (odd, stranger) if read == "balanceOf" else (odd, stranger, owner)
    with pytest.raises(ContractLogicError, match="OddToken: no"):
        getattr(probe, read)(*args)


@pytest.mark.parametrize("mode", [NOTHING, SHORT])
def test_a_read_answered_with_less_than_a_word_reverts(probe, odd, owner, stranger, mode):
    odd.setMode(mode, sender=owner)
    with pytest.raises(ContractLogicError):
        probe.balanceOf(odd, stranger)
    with pytest.raises(ContractLogicError):
        probe.balanceOf(NO_CODE, stranger)
