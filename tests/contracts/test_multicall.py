"""Multicall3: the standard ABI and behaviour, at its standard address on the local chain."""

from __future__ import annotations

import pytest
from ape import reverts
from eth_abi import decode
from eth_utils import to_checksum_address

# The batch functions are payable, so ape sends them as transactions unless `.call(...)` is used;
# reads below use `.call` (an eth_call), writes send a transaction.

MULTICALL3 = to_checksum_address("0xcA11bde05977b3631167028862bE2a173976CA11")
ONE = 10**6


@pytest.fixture
def multicall(project, chain, owner):
    """Multicall3 placed at its standard address, the way the local deployment does it."""
    template = owner.deploy(project.Multicall3)
    code = chain.provider.get_code(template.address)
    chain.provider.make_request("anvil_setCode", [MULTICALL3, "0x" + bytes(code).hex()])
    return project.Multicall3.at(MULTICALL3)


@pytest.fixture
def funded(usdc, owner, payer):
    usdc.mint(payer, 5 * ONE, sender=owner)
    usdc.mint(owner, 7 * ONE, sender=owner)
    return usdc


def call_data(contract, method: str, *args) -> bytes:
    return bytes(getattr(contract, method).encode_input(*args))


def as_uint(data) -> int:
    return decode(["uint256"], bytes(data))[0]


def test_aggregate_returns_block_number_and_each_result(multicall, funded, payer, owner, chain):
    calls = [(funded.address, call_data(funded, "balanceOf", payer)),
             (funded.address, call_data(funded, "balanceOf", owner)),
             (funded.address, call_data(funded, "totalSupply"))]
    block_number, results = multicall.aggregate.call(calls)
    assert block_number == chain.blocks.head.number
    assert [as_uint(r) for r in results] == [5 * ONE, 7 * ONE, 12 * ONE]


def test_aggregate_reverts_if_any_call_fails(multicall, funded, payer):
    calls = [(funded.address, call_data(funded, "balanceOf", payer)), (funded.address, b"\xde\xad\xbe\xef")]
    with reverts("Multicall3: call failed"):
        multicall.aggregate.call(calls)


def test_try_aggregate_reports_failures_unless_success_is_required(multicall, funded, payer):
    calls = [(funded.address, call_data(funded, "balanceOf", payer)), (funded.address, b"\xde\xad\xbe\xef")]
    results = multicall.tryAggregate.call(False, calls)
    assert [r.success for r in results] == [True, False]
    assert as_uint(results[0].returnData) == 5 * ONE
    with reverts("Multicall3: call failed"):
        multicall.tryAggregate.call(True, calls)


def test_block_and_aggregate_variants(multicall, funded, payer, chain):
    calls = [(funded.address, call_data(funded, "balanceOf", payer))]
    number, block_hash, results = multicall.blockAndAggregate.call(calls)
    assert number == chain.blocks.head.number
    assert bytes(block_hash) == b"\0" * 32  # blockhash of the current block, as in the standard Multicall3
    # Results nested in a multi-value return decode as plain (success, returnData) tuples.
    assert [(r[0], as_uint(r[1])) for r in results] == [(True, 5 * ONE)]
    number, _, results = multicall.tryBlockAndAggregate.call(False, [*calls, (funded.address, b"\x00")])
    assert [r[0] for r in results] == [True, False]
    with reverts("Multicall3: call failed"):
        multicall.blockAndAggregate.call([(funded.address, b"\x00")])


def test_aggregate3_allows_failure_per_call(multicall, funded, payer):
    ok = (funded.address, False, call_data(funded, "balanceOf", payer))
    tolerated = (funded.address, True, b"\x00")
    results = multicall.aggregate3.call([ok, tolerated])
    assert [r.success for r in results] == [True, False]
    with reverts("Multicall3: call failed"):
        multicall.aggregate3.call([ok, (funded.address, False, b"\x00")])


def test_aggregate3_runs_state_changes_as_the_multicall(multicall, funded, owner, payer):
    funded.transfer(multicall, 2 * ONE, sender=owner)
    receipt = multicall.aggregate3([(funded.address, False, call_data(funded, "transfer", payer, ONE))],
                                   sender=owner)
    assert receipt.events == [funded.Transfer(multicall, payer, ONE)]
    assert funded.balanceOf(payer) == 6 * ONE


def test_aggregate3_value_forwards_exactly_msg_value(multicall, wcro, owner):
    deposit = call_data(wcro, "deposit")
    receipt = multicall.aggregate3Value([(wcro.address, False, 3, deposit), (wcro.address, False, 4, deposit)],
                                        sender=owner, value=7)
    assert receipt.events == [wcro.Deposit(multicall, 3), wcro.Deposit(multicall, 4)]
    assert wcro.balanceOf(multicall) == 7
    with reverts("Multicall3: value mismatch"):
        multicall.aggregate3Value([(wcro.address, False, 3, deposit)], sender=owner, value=4)


def test_aggregate3_value_reverts_on_a_failed_call_unless_allowed(multicall, wcro, owner):
    failing = (wcro.address, False, 1, b"\x00")
    with reverts("Multicall3: call failed"):
        multicall.aggregate3Value([failing], sender=owner, value=1)


def test_block_and_chain_views(multicall, chain, owner):
    head = chain.blocks.head
    assert multicall.getChainId() == 338
    assert multicall.getBlockNumber() == head.number
    assert multicall.getCurrentBlockTimestamp() >= head.timestamp
    assert multicall.getCurrentBlockGasLimit() > 0
    assert multicall.getBasefee() >= 0
    assert multicall.getEthBalance(owner) == owner.balance
    assert multicall.getCurrentBlockCoinbase() == multicall.getCurrentBlockCoinbase()
    assert multicall.getCurrentBlockDifficulty() >= 0
    chain.mine(2)
    head = chain.blocks.head
    parent = chain.blocks[head.number - 1]
    assert bytes(multicall.getLastBlockHash(block_id=head.number)) == bytes(parent.hash)
    assert bytes(multicall.getBlockHash(parent.number)) == bytes(parent.hash)
