"""WCRO: WETH9 semantics (1 WCRO = 1 CRO held by the contract), working after anvil_setCode."""

from __future__ import annotations

import pytest
from ape import reverts
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

ONE = 10**18
TESTNET_WCRO = to_checksum_address("0x6a3173618859c7cd40faf6921b5e9eb6a76f1fd4")


@pytest.fixture
def wrapped(wcro, payer):
    """The payer wrapped 10 CRO."""
    wcro.deposit(sender=payer, value=10 * ONE)
    return wcro


def test_metadata_is_wrapped_cro(wcro):
    assert wcro.name() == "Wrapped CRO"
    assert wcro.symbol() == "WCRO"
    assert wcro.decimals() == 18
    assert wcro.totalSupply() == 0


def test_deposit_wraps_cro_one_to_one(wcro, payer):
    receipt = wcro.deposit(sender=payer, value=3 * ONE)
    assert receipt.events == [wcro.Deposit(payer, 3 * ONE)]
    assert wcro.balanceOf(payer) == 3 * ONE
    assert wcro.totalSupply() == 3 * ONE == wcro.balance


def test_sending_cro_to_the_contract_wraps_it(wcro, payer):
    receipt = payer.transfer(wcro, 2 * ONE)
    assert [(log.event_name, log.to, log.amount) for log in receipt.events] == [("Deposit", payer, 2 * ONE)]
    assert wcro.balanceOf(payer) == 2 * ONE


def test_withdraw_unwraps_and_pays_cro_back(wrapped, payer):
    before = payer.balance
    receipt = wrapped.withdraw(4 * ONE, sender=payer)
    assert receipt.events == [wrapped.Withdrawal(payer, 4 * ONE)]
    assert wrapped.balanceOf(payer) == 6 * ONE
    assert wrapped.totalSupply() == 6 * ONE
    assert payer.balance == before + 4 * ONE - receipt.total_fees_paid


def test_withdraw_above_balance_reverts_with_the_numbers(wrapped, payer):
    with reverts(wrapped.InsufficientBalance, account=payer, balance=10 * ONE, needed=10 * ONE + 1):
        wrapped.withdraw(10 * ONE + 1, sender=payer)


def test_transfer_moves_balance(wrapped, payer, stranger):
    receipt = wrapped.transfer(stranger, ONE, sender=payer)
    assert receipt.events == [wrapped.Transfer(payer, stranger, ONE)]
    assert (wrapped.balanceOf(payer), wrapped.balanceOf(stranger)) == (9 * ONE, ONE)


def test_transfer_above_balance_reverts_with_the_numbers(wrapped, payer, stranger):
    with reverts(wrapped.InsufficientBalance, account=payer, balance=10 * ONE, needed=11 * ONE):
        wrapped.transfer(stranger, 11 * ONE, sender=payer)


def test_transfer_from_spends_allowance(wrapped, payer, stranger, owner):
    assert wrapped.approve(stranger, 3 * ONE, sender=payer).events == [wrapped.Approval(payer, stranger, 3 * ONE)]
    receipt = wrapped.transferFrom(payer, owner, 2 * ONE, sender=stranger)
    assert receipt.events == [wrapped.Transfer(payer, owner, 2 * ONE)]
    assert wrapped.allowance(payer, stranger) == ONE
    with reverts(wrapped.InsufficientAllowance, owner=payer, spender=stranger, allowance=ONE, needed=2 * ONE):
        wrapped.transferFrom(payer, owner, 2 * ONE, sender=stranger)


def test_maximum_allowance_is_never_decreased(wrapped, payer, stranger, owner):
    wrapped.approve(stranger, 2**256 - 1, sender=payer)
    wrapped.transferFrom(payer, owner, ONE, sender=stranger)
    assert wrapped.allowance(payer, stranger) == 2**256 - 1


def test_transfer_from_own_account_needs_no_allowance(wrapped, payer, owner):
    wrapped.transferFrom(payer, owner, ONE, sender=payer)
    assert wrapped.balanceOf(owner) == ONE


def test_copy_placed_at_testnet_address_works_without_initialisation(project, chain, owner, payer):
    template = owner.deploy(project.WCRO)
    code = chain.provider.get_code(template.address)
    chain.provider.make_request("anvil_setCode", [TESTNET_WCRO, "0x" + bytes(code).hex()])
    placed = project.WCRO.at(TESTNET_WCRO)
    assert (placed.name(), placed.symbol(), placed.decimals()) == ("Wrapped CRO", "WCRO", 18)
    placed.deposit(sender=payer, value=ONE)
    placed.withdraw(ONE // 2, sender=payer)
    assert placed.balanceOf(payer) == ONE // 2 == placed.totalSupply()



def withdraw_failed(to, amount) -> bytes:
    return keccak(text="WithdrawFailed(address,uint256)")[:4] + encode(["address", "uint256"], [str(to), amount])


def test_withdraw_to_a_contract_that_refuses_cro_reverts_with_recipient_and_amount(project, wcro, owner):
    """Multicall3 has no receive(): unwrapping into it fails."""
    holder = owner.deploy(project.Multicall3)
    wcro.deposit(sender=owner, value=ONE)
    wcro.transfer(holder, ONE, sender=owner)
    data = bytes(wcro.withdraw.encode_input(ONE))
    ((success, revert_data),) = holder.tryAggregate.call(False, [(wcro.address, data)])
    assert success is False
    assert bytes(revert_data) == withdraw_failed(holder, ONE)


@pytest.mark.parametrize(
    ("code", "pays"),
    [
        ("0x00", True),  # STOP: needs no gas
        ("0x600160005500", False),  # SSTORE(0, 1): needs far more than the 2300-gas stipend
    ],
    ids=["cheap-receiver", "storage-writing-receiver"],
)
def test_withdraw_gives_the_recipient_only_the_2300_gas_stipend(accounts, chain, wcro, owner, code, pays):
    """As WETH9 on Cronos: a recipient that does real work on receipt cannot unwrap."""
    holder = "0x000000000000000000000000000000000000bEEF"
    chain.provider.make_request("anvil_setCode", [holder, code])
    chain.set_balance(holder, ONE)
    wcro.deposit(sender=owner, value=ONE)
    wcro.transfer(holder, ONE, sender=owner)
    sender = accounts[holder]  # impersonated
    if pays:
        wcro.withdraw(ONE, sender=sender)
        assert wcro.balanceOf(holder) == 0
    else:
        with reverts(wcro.WithdrawFailed, to=holder, amount=ONE):
            wcro.withdraw(ONE, sender=sender, gas=200_000)
        assert wcro.balanceOf(holder) == ONE
