"""VVS stand-in: a UniswapV2-compatible factory / pair / Router02 that quotes and swaps like VVS.

Amounts are checked against UniswapV2's formulas written out here in Python, and the pair address
against CREATE2 computed from the compiled VVSPair creation code.
"""

from __future__ import annotations

from math import isqrt

import pytest
from ape import reverts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from eth_utils import keccak, to_checksum_address

ZERO = "0x0000000000000000000000000000000000000000"
USDC = 10**6
CRO = 10**18
MINIMUM_LIQUIDITY = 1000
POOL_USDC = 100_000 * USDC
POOL_CRO = 1_000_000 * CRO


# ------------------------------------------------------------------------------------------------
# UniswapV2 formulas (facts), in Python


def amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    with_fee = amount_in * 997
    return with_fee * reserve_out // (reserve_in * 1000 + with_fee)


def amount_in(amount_out_: int, reserve_in: int, reserve_out: int) -> int:
    return reserve_in * amount_out_ * 1000 // ((reserve_out - amount_out_) * 997) + 1


def create2(deployer: str, salt: bytes, init_code_hash: bytes) -> str:
    return to_checksum_address(keccak(b"\xff" + bytes.fromhex(deployer[2:]) + salt + init_code_hash)[12:])


def sort(a, b) -> tuple[str, str]:
    a, b = str(a), str(b)
    return (a, b) if int(a, 16) < int(b, 16) else (b, a)


# ------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def factory(project, owner):
    return owner.deploy(project.VVSFactory, owner)


@pytest.fixture
def router(project, owner, factory, wcro):
    return owner.deploy(project.VVSRouter, factory, wcro)


@pytest.fixture
def deadline(chain):
    return chain.pending_timestamp + 3600


@pytest.fixture
def tkn(project, owner):
    """A third token for multi-hop paths."""
    token = owner.deploy(project.FiatTokenLocal)
    token.initialize("Token", "TKN", 18, owner, sender=owner)
    return token


@pytest.fixture
def trader(chain, payer, usdc, wcro, tkn, owner, router):
    """The payer holds 1,000 USDC.e, 10,000 WCRO, 1,000 TKN and 90,000 CRO and has approved the router."""
    chain.set_balance(payer, 100_000 * CRO)
    usdc.mint(payer, 1_000 * USDC, sender=owner)
    wcro.deposit(sender=payer, value=10_000 * CRO)
    tkn.mint(payer, 1_000 * CRO, sender=owner)
    for token in (usdc, wcro, tkn):
        token.approve(router, 2**256 - 1, sender=payer)
    return payer


@pytest.fixture
def pool(project, chain, owner, usdc, wcro, router, factory, deadline):
    """USDC.e/WCRO seeded like the local deployment: 100,000 USDC.e against 1,000,000 WCRO."""
    chain.set_balance(owner, 3 * POOL_CRO)  # ape's test accounts start with 10,000 CRO
    usdc.mint(owner, 10 * POOL_USDC, sender=owner)
    wcro.deposit(sender=owner, value=2 * POOL_CRO)
    usdc.approve(router, 2**256 - 1, sender=owner)
    wcro.approve(router, 2**256 - 1, sender=owner)
    router.addLiquidity(usdc, wcro, POOL_USDC, POOL_CRO, 0, 0, owner, deadline, sender=owner)
    return project.VVSPair.at(factory.getPair(usdc, wcro))


@pytest.fixture
def tkn_pool(owner, wcro, tkn, router, deadline, pool):
    """WCRO/TKN, 1 TKN = 10 WCRO."""
    tkn.mint(owner, 10_000 * CRO, sender=owner)
    tkn.approve(router, 2**256 - 1, sender=owner)
    router.addLiquidity(wcro, tkn, 100_000 * CRO, 10_000 * CRO, 0, 0, owner, deadline, sender=owner)


def reserves(router, a, b) -> tuple[int, int]:
    """Reserves of (a, b) through the pair, ordered as asked."""
    from ape import project

    pair = project.VVSPair.at(_factory(router).getPair(a, b))
    r0, r1, _ = pair.getReserves()
    return (r0, r1) if sort(a, b)[0] == str(a) else (r1, r0)


def _factory(router):
    from ape import project

    return project.VVSFactory.at(router.factory())


# ------------------------------------------------------------------------------------------------
# Factory and pair addresses


def test_init_code_pair_hash_is_keccak_of_the_compiled_pair_creation_code(project, factory, router):
    creation = project.VVSPair.contract_type.deployment_bytecode.bytecode
    expected = keccak(bytes.fromhex(creation.removeprefix("0x")))
    assert bytes(factory.INIT_CODE_PAIR_HASH()) == expected
    assert bytes(router.INIT_CODE_PAIR_HASH()) == expected


def test_created_pair_lives_at_its_create2_address(project, factory, usdc, wcro, stranger):
    receipt = factory.createPair(wcro, usdc, sender=stranger)
    token0, token1 = sort(usdc, wcro)
    salt = keccak(bytes.fromhex(token0[2:]) + bytes.fromhex(token1[2:]))
    expected = create2(factory.address, salt, bytes(factory.INIT_CODE_PAIR_HASH()))
    assert receipt.events == [factory.PairCreated(token0, token1, expected, 1)]
    assert factory.getPair(usdc, wcro) == factory.getPair(wcro, usdc) == expected
    assert factory.allPairs(0) == expected
    assert factory.allPairsLength() == 1
    pair = project.VVSPair.at(expected)
    assert (pair.token0(), pair.token1(), pair.factory()) == (token0, token1, factory.address)
    assert (pair.name(), pair.symbol(), pair.decimals(), pair.MINIMUM_LIQUIDITY()) == (
        "VVS Finance LPs", "VVS-LP", 18, MINIMUM_LIQUIDITY)


def test_create_pair_refuses_duplicates_identical_and_zero_tokens(factory, usdc, wcro, stranger):
    pair = factory.createPair(usdc, wcro, sender=stranger).return_value
    token0, token1 = sort(usdc, wcro)
    with reverts(factory.PairExists, token0=token0, token1=token1, pair=pair):
        factory.createPair(wcro, usdc, sender=stranger)
    with reverts(factory.IdenticalAddresses, token=usdc.address):
        factory.createPair(usdc, usdc, sender=stranger)
    with reverts(factory.ZeroAddress):
        factory.createPair(ZERO, usdc, sender=stranger)


def test_only_fee_to_setter_sets_fee_to_and_hands_over_the_right(factory, owner, stranger):
    assert (factory.feeTo(), factory.feeToSetter()) == (ZERO, owner)
    with reverts(factory.Forbidden, caller=stranger):
        factory.setFeeTo(stranger, sender=stranger)
    assert factory.setFeeTo(stranger, sender=owner).events == [factory.FeeToSet(stranger)]
    assert factory.setFeeToSetter(stranger, sender=owner).events == [factory.FeeToSetterSet(stranger)]
    with reverts(factory.Forbidden, caller=owner):
        factory.setFeeTo(ZERO, sender=owner)
    factory.setFeeTo(ZERO, sender=stranger)
    assert (factory.feeTo(), factory.feeToSetter()) == (ZERO, stranger)


def test_only_the_factory_initialises_a_pair(project, factory, usdc, wcro, stranger):
    pair = project.VVSPair.at(factory.createPair(usdc, wcro, sender=stranger).return_value)
    with reverts(pair.Forbidden, caller=stranger):
        pair.initialize(wcro, usdc, sender=stranger)


# ------------------------------------------------------------------------------------------------
# Liquidity


def test_first_liquidity_mints_sqrt_k_and_locks_the_minimum_forever(project, owner, usdc, wcro, router, factory,
                                                                    deadline, chain):
    chain.set_balance(owner, 2 * POOL_CRO)
    usdc.mint(owner, POOL_USDC, sender=owner)
    wcro.deposit(sender=owner, value=POOL_CRO)
    usdc.approve(router, POOL_USDC, sender=owner)
    wcro.approve(router, POOL_CRO, sender=owner)
    receipt = router.addLiquidity(usdc, wcro, POOL_USDC, POOL_CRO, 0, 0, owner, deadline, sender=owner)

    pair = project.VVSPair.at(factory.getPair(usdc, wcro))
    liquidity = isqrt(POOL_USDC * POOL_CRO) - MINIMUM_LIQUIDITY
    assert list(receipt.return_value) == [POOL_USDC, POOL_CRO, liquidity]
    token0, token1 = sort(usdc, wcro)
    r0, r1 = (POOL_USDC, POOL_CRO) if token0 == usdc.address else (POOL_CRO, POOL_USDC)
    assert receipt.events == [
        factory.PairCreated(token0, token1, pair, 1),
        usdc.Transfer(owner, pair, POOL_USDC),
        wcro.Transfer(owner, pair, POOL_CRO),
        pair.Transfer(ZERO, ZERO, MINIMUM_LIQUIDITY),
        pair.Transfer(ZERO, owner, liquidity),
        pair.Sync(r0, r1),
        pair.Mint(router, r0, r1),
    ]
    assert pair.balanceOf(ZERO) == MINIMUM_LIQUIDITY
    assert pair.totalSupply() == liquidity + MINIMUM_LIQUIDITY
    assert pair.getReserves() == (r0, r1, chain.blocks.head.timestamp)


def test_reserves_and_timestamp_share_one_storage_word(pool, chain):
    """Layout: reserve0 (112 bits) | reserve1 (112) | blockTimestampLast (32), low to high."""
    r0, r1, ts = pool.getReserves()
    slot = 5  # totalSupply, balanceOf, allowance, token0, token1, then the reserves word
    word = int.from_bytes(bytes(chain.provider.get_storage(pool.address, slot)), "big")
    assert word == r0 | (r1 << 112) | (ts << 224)


def test_later_liquidity_is_trimmed_to_the_pool_ratio(pool, router, usdc, wcro, trader, deadline):
    # Offers 100 USDC.e and 2,000 WCRO; the pool price (10 WCRO per USDC.e) takes 1,000 WCRO.
    supply = pool.totalSupply()
    receipt = router.addLiquidity(usdc, wcro, 100 * USDC, 2_000 * CRO, 0, 0, trader, deadline, sender=trader)
    amount_a, amount_b, liquidity = receipt.return_value
    assert (amount_a, amount_b) == (100 * USDC, 1_000 * CRO)
    assert liquidity == min(100 * USDC * supply // POOL_USDC, 1_000 * CRO * supply // POOL_CRO)
    assert pool.balanceOf(trader) == liquidity
    # Offers 100 USDC.e and only 500 WCRO: the USDC.e side is trimmed to 50.
    receipt = router.addLiquidity(usdc, wcro, 100 * USDC, 500 * CRO, 0, 0, trader, deadline, sender=trader)
    assert list(receipt.return_value[:2]) == [50 * USDC, 500 * CRO]


def test_add_liquidity_below_the_minimums_reverts_with_the_amounts(pool, router, usdc, wcro, trader, deadline):
    with reverts(router.InsufficientBAmount, amountB=1_000 * CRO, amountBMin=1_000 * CRO + 1):
        router.addLiquidity(usdc, wcro, 100 * USDC, 2_000 * CRO, 0, 1_000 * CRO + 1, trader, deadline, sender=trader)
    with reverts(router.InsufficientAAmount, amountA=50 * USDC, amountAMin=60 * USDC):
        router.addLiquidity(usdc, wcro, 100 * USDC, 500 * CRO, 60 * USDC, 0, trader, deadline, sender=trader)


def test_remove_liquidity_returns_the_pro_rata_share(pool, router, usdc, wcro, owner, stranger, deadline):
    lp = pool.balanceOf(owner) // 4
    supply = pool.totalSupply()
    pool.approve(router, lp, sender=owner)
    receipt = router.removeLiquidity(usdc, wcro, lp, 0, 0, stranger, deadline, sender=owner)
    expected_usdc, expected_cro = lp * POOL_USDC // supply, lp * POOL_CRO // supply
    assert list(receipt.return_value) == [expected_usdc, expected_cro]
    assert usdc.balanceOf(stranger) == expected_usdc
    assert wcro.balanceOf(stranger) == expected_cro
    assert pool.totalSupply() == supply - lp
    burn = [log for log in receipt.events if log.event_name == "Burn"]
    token0_is_usdc = sort(usdc, wcro)[0] == usdc.address
    amounts = (expected_usdc, expected_cro) if token0_is_usdc else (expected_cro, expected_usdc)
    assert burn == [pool.Burn(router, *amounts, stranger)]


def test_remove_liquidity_below_the_minimum_reverts(pool, router, usdc, wcro, owner, deadline):
    lp = pool.balanceOf(owner) // 4
    pool.approve(router, lp, sender=owner)
    supply = pool.totalSupply()
    expected_usdc = lp * POOL_USDC // supply
    with reverts(router.InsufficientAAmount, amountA=expected_usdc, amountAMin=expected_usdc + 1):
        router.removeLiquidity(usdc, wcro, lp, expected_usdc + 1, 0, owner, deadline, sender=owner)


def test_liquidity_with_cro_wraps_refunds_change_and_unwraps_on_removal(project, chain, router, factory, usdc, wcro,
                                                                        owner, stranger, deadline):
    chain.set_balance(owner, 100_000 * CRO)
    usdc.mint(owner, 2_000 * USDC, sender=owner)
    usdc.approve(router, 2**256 - 1, sender=owner)
    receipt = router.addLiquidityETH(usdc, 1_000 * USDC, 0, 0, owner, deadline, sender=owner, value=10_000 * CRO)
    assert list(receipt.return_value[:2]) == [1_000 * USDC, 10_000 * CRO]
    pair = project.VVSPair.at(factory.getPair(usdc, wcro))
    # Second deposit offers 20,000 CRO for 1,000 USDC.e: 10,000 are used, 10,000 come back.
    before = owner.balance
    receipt = router.addLiquidityETH(usdc, 1_000 * USDC, 0, 0, owner, deadline, sender=owner, value=20_000 * CRO)
    assert list(receipt.return_value[:2]) == [1_000 * USDC, 10_000 * CRO]
    assert owner.balance == before - 10_000 * CRO - receipt.total_fees_paid
    assert router.balance == 0

    lp = pair.balanceOf(owner)
    supply = pair.totalSupply()
    pair.approve(router, lp, sender=owner)
    before = stranger.balance
    receipt = router.removeLiquidityETH(usdc, lp, 0, 0, stranger, deadline, sender=owner)
    expected = [lp * 2_000 * USDC // supply, lp * 20_000 * CRO // supply]
    assert list(receipt.return_value) == expected
    assert usdc.balanceOf(stranger) == expected[0]
    assert stranger.balance == before + expected[1]
    assert router.balance == 0 and wcro.balanceOf(router) == 0 and usdc.balanceOf(router) == 0


# ------------------------------------------------------------------------------------------------
# Quotes and swaps


def test_get_amounts_out_follows_the_formula_and_the_swap_delivers_it(pool, router, usdc, wcro, trader, stranger,
                                                                      deadline):
    path = [usdc.address, wcro.address]
    quoted = router.getAmountsOut(25 * USDC, path)
    expected = amount_out(25 * USDC, POOL_USDC, POOL_CRO)
    assert quoted == [25 * USDC, expected]
    assert router.getAmountOut(25 * USDC, POOL_USDC, POOL_CRO) == expected

    receipt = router.swapExactTokensForTokens(25 * USDC, expected, path, stranger, deadline, sender=trader)
    assert list(receipt.return_value) == quoted
    assert wcro.balanceOf(stranger) == expected
    token0_is_usdc = sort(usdc, wcro)[0] == usdc.address
    r_usdc, r_cro = POOL_USDC + 25 * USDC, POOL_CRO - expected
    sync = (r_usdc, r_cro) if token0_is_usdc else (r_cro, r_usdc)
    swap = (25 * USDC, 0, 0, expected) if token0_is_usdc else (0, 25 * USDC, expected, 0)
    assert receipt.events == [
        usdc.Transfer(trader, pool, 25 * USDC),
        wcro.Transfer(pool, stranger, expected),
        pool.Sync(*sync),
        pool.Swap(router, *swap, stranger),
    ]
    assert reserves(router, usdc, wcro) == (r_usdc, r_cro)


def test_swap_below_the_minimum_output_reverts_with_the_amounts(pool, router, usdc, wcro, trader, deadline):
    path = [usdc.address, wcro.address]
    expected = amount_out(25 * USDC, POOL_USDC, POOL_CRO)
    with reverts(router.InsufficientOutputAmount, amountOut=expected, amountOutMin=expected + 1):
        router.swapExactTokensForTokens(25 * USDC, expected + 1, path, trader, deadline, sender=trader)
    assert usdc.balanceOf(trader) == 1_000 * USDC


def test_get_amounts_in_follows_the_formula_and_exact_output_takes_it(pool, router, usdc, wcro, trader, stranger,
                                                                      deadline):
    path = [usdc.address, wcro.address]
    needed = amount_in(100 * CRO, POOL_USDC, POOL_CRO)
    assert router.getAmountsIn(100 * CRO, path) == [needed, 100 * CRO]
    assert router.getAmountIn(100 * CRO, POOL_USDC, POOL_CRO) == needed
    with reverts(router.ExcessiveInputAmount, amountIn=needed, amountInMax=needed - 1):
        router.swapTokensForExactTokens(100 * CRO, needed - 1, path, stranger, deadline, sender=trader)
    receipt = router.swapTokensForExactTokens(100 * CRO, needed, path, stranger, deadline, sender=trader)
    assert list(receipt.return_value) == [needed, 100 * CRO]
    assert wcro.balanceOf(stranger) == 100 * CRO
    assert usdc.balanceOf(trader) == 1_000 * USDC - needed


def test_multi_hop_path_chains_the_formula_through_each_pool(tkn_pool, router, usdc, wcro, tkn, trader, stranger,
                                                            deadline):
    path = [usdc.address, wcro.address, tkn.address]
    hop1 = amount_out(10 * USDC, POOL_USDC, POOL_CRO)
    hop2 = amount_out(hop1, 100_000 * CRO, 10_000 * CRO)
    assert router.getAmountsOut(10 * USDC, path) == [10 * USDC, hop1, hop2]
    router.swapExactTokensForTokens(10 * USDC, hop2, path, stranger, deadline, sender=trader)
    assert tkn.balanceOf(stranger) == hop2
    assert wcro.balanceOf(router) == 0
    # Exact output the other way round.
    back = [tkn.address, wcro.address, usdc.address]
    amounts = router.getAmountsIn(USDC, back)
    assert amounts[1] == amount_in(USDC, *reserves(router, wcro, usdc))
    assert amounts[0] == amount_in(amounts[1], *reserves(router, tkn, wcro))
    router.swapTokensForExactTokens(USDC, amounts[0], back, stranger, deadline, sender=trader)
    assert usdc.balanceOf(stranger) == USDC


@pytest.mark.parametrize("late", [False, True])
def test_swaps_execute_up_to_the_deadline_and_revert_after_it(pool, router, usdc, wcro, trader, chain, late):
    deadline = chain.pending_timestamp + 100
    chain.pending_timestamp = deadline + (1 if late else 0)
    path = [usdc.address, wcro.address]
    if late:
        with reverts(router.Expired, deadline=deadline, timestamp=deadline + 1):
            router.swapExactTokensForTokens(USDC, 0, path, trader, deadline, sender=trader)
    else:
        router.swapExactTokensForTokens(USDC, 0, path, trader, deadline, sender=trader)
        assert chain.blocks.head.timestamp == deadline


@pytest.mark.parametrize(
    "call",
    [
        lambda r, u, w, t, d: r.swapTokensForExactTokens(CRO, 10 * USDC, [u, w], t, d, sender=t),
        lambda r, u, w, t, d: r.swapExactETHForTokens(0, [w, u], t, d, sender=t, value=CRO),
        lambda r, u, w, t, d: r.swapETHForExactTokens(USDC, [w, u], t, d, sender=t, value=20 * CRO),
        lambda r, u, w, t, d: r.swapExactTokensForETH(USDC, 0, [u, w], t, d, sender=t),
        lambda r, u, w, t, d: r.swapTokensForExactETH(CRO, 10 * USDC, [u, w], t, d, sender=t),
        lambda r, u, w, t, d: r.addLiquidity(u, w, USDC, 10 * CRO, 0, 0, t, d, sender=t),
        lambda r, u, w, t, d: r.addLiquidityETH(u, USDC, 0, 0, t, d, sender=t, value=10 * CRO),
        lambda r, u, w, t, d: r.removeLiquidity(u, w, 1, 0, 0, t, d, sender=t),
        lambda r, u, w, t, d: r.removeLiquidityETH(u, 1, 0, 0, t, d, sender=t),
    ],
    ids=["tokensForExactTokens", "exactETHForTokens", "ETHForExactTokens", "exactTokensForETH",
         "tokensForExactETH", "addLiquidity", "addLiquidityETH", "removeLiquidity", "removeLiquidityETH"],
)
def test_every_router_write_reverts_after_its_deadline(pool, router, usdc, wcro, trader, chain, call):
    deadline = chain.pending_timestamp + 100
    chain.pending_timestamp = deadline + 1
    with reverts(router.Expired, deadline=deadline, timestamp=deadline + 1):
        call(router, usdc, wcro, trader, deadline)


def test_exact_cro_in_is_wrapped_and_swapped(pool, router, usdc, wcro, trader, stranger, deadline):
    expected = amount_out(500 * CRO, POOL_CRO, POOL_USDC)
    with reverts(router.InsufficientOutputAmount, amountOut=expected, amountOutMin=expected + 1):
        router.swapExactETHForTokens(expected + 1, [wcro, usdc], stranger, deadline, sender=trader, value=500 * CRO)
    receipt = router.swapExactETHForTokens(expected, [wcro, usdc], stranger, deadline, sender=trader,
                                           value=500 * CRO)
    assert list(receipt.return_value) == [500 * CRO, expected]
    assert usdc.balanceOf(stranger) == expected
    assert wcro.balanceOf(pool) == POOL_CRO + 500 * CRO


def test_cro_paths_must_start_or_end_with_wcro(pool, router, usdc, wcro, trader, deadline):
    with reverts(router.InvalidPath):
        router.swapExactETHForTokens(0, [usdc, wcro], trader, deadline, sender=trader, value=CRO)
    with reverts(router.InvalidPath):
        router.swapETHForExactTokens(USDC, [usdc, wcro], trader, deadline, sender=trader, value=CRO)
    with reverts(router.InvalidPath):
        router.swapExactTokensForETH(USDC, 0, [wcro, usdc], trader, deadline, sender=trader)
    with reverts(router.InvalidPath):
        router.swapTokensForExactETH(USDC, CRO, [wcro, usdc], trader, deadline, sender=trader)


def test_exact_tokens_out_to_cro_unwraps_to_the_recipient(pool, router, usdc, wcro, trader, stranger, deadline):
    expected = amount_out(30 * USDC, POOL_USDC, POOL_CRO)
    before = stranger.balance
    receipt = router.swapExactTokensForETH(30 * USDC, expected, [usdc, wcro], stranger, deadline, sender=trader)
    assert list(receipt.return_value) == [30 * USDC, expected]
    assert stranger.balance == before + expected
    assert router.balance == 0 and wcro.balanceOf(router) == 0


def test_exact_cro_out_takes_the_quoted_tokens(pool, router, usdc, wcro, trader, stranger, deadline):
    needed = amount_in(50 * CRO, POOL_USDC, POOL_CRO)
    before = stranger.balance
    receipt = router.swapTokensForExactETH(50 * CRO, needed, [usdc, wcro], stranger, deadline, sender=trader)
    assert list(receipt.return_value) == [needed, 50 * CRO]
    assert stranger.balance == before + 50 * CRO
    assert usdc.balanceOf(trader) == 1_000 * USDC - needed


def test_cro_for_exact_tokens_refunds_the_change(pool, router, usdc, wcro, trader, stranger, deadline):
    needed = amount_in(7 * USDC, POOL_CRO, POOL_USDC)
    with reverts(router.ExcessiveInputAmount, amountIn=needed, amountInMax=needed - 1):
        router.swapETHForExactTokens(7 * USDC, [wcro, usdc], stranger, deadline, sender=trader, value=needed - 1)
    before = trader.balance
    receipt = router.swapETHForExactTokens(7 * USDC, [wcro, usdc], stranger, deadline, sender=trader,
                                           value=needed + 5 * CRO)
    assert list(receipt.return_value) == [needed, 7 * USDC]
    assert usdc.balanceOf(stranger) == 7 * USDC
    assert trader.balance == before - needed - receipt.total_fees_paid
    assert router.balance == 0


def test_router_accepts_cro_only_from_wcro(router, stranger):
    with reverts(router.OnlyWCRO, sender=stranger):
        stranger.transfer(router, 1)


def test_quotes_reject_empty_amounts_missing_pools_and_short_paths(router, usdc, wcro, tkn, pool):
    with reverts(router.InsufficientInputAmount):
        router.getAmountOut(0, 1, 1)
    with reverts(router.InsufficientAmount):
        router.getAmountIn(0, 1, 1)
    with reverts(router.InsufficientAmount):
        router.quote(0, 1, 1)
    with reverts(router.InsufficientLiquidity, reserveIn=0, reserveOut=5):
        router.getAmountOut(1, 0, 5)
    with reverts(router.InsufficientLiquidity, reserveIn=5, reserveOut=5):
        router.getAmountIn(5, 5, 5)
    with reverts(router.InvalidPath):
        router.getAmountsOut(1, [usdc])
    with reverts(router.PairNotFound, tokenA=usdc.address, tokenB=tkn.address):
        router.getAmountsOut(USDC, [usdc, tkn])
    assert router.quote(10, 100, 250) == 25
    assert (router.factory(), router.WETH()) == (_factory(router).address, wcro.address)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amount=st.integers(min_value=1, max_value=2**112 - 1),
    reserve_in=st.integers(min_value=1, max_value=2**112 - 1),
    reserve_out=st.integers(min_value=1, max_value=2**112 - 1),
)
def test_get_amount_out_and_in_match_the_formulas_for_any_reserves(router, amount, reserve_in, reserve_out):
    assert router.getAmountOut(amount, reserve_in, reserve_out) == amount_out(amount, reserve_in, reserve_out)
    if amount < reserve_out:
        needed = router.getAmountIn(amount, reserve_in, reserve_out)
        assert needed == amount_in(amount, reserve_in, reserve_out)
        # Paying the quoted input always buys at least the requested output.
        assert amount_out(needed, reserve_in, reserve_out) >= amount


# ------------------------------------------------------------------------------------------------
# Pair core


def _pay_in(token, pair, amount, sender):
    token.transfer(pair, amount, sender=sender)


def test_pair_refuses_output_that_breaks_the_constant_product(pool, usdc, wcro, trader):
    token0_is_usdc = pool.token0() == usdc.address
    _pay_in(usdc, pool, 10 * USDC, trader)
    fair = amount_out(10 * USDC, POOL_USDC, POOL_CRO)
    outs = (0, fair + 1) if token0_is_usdc else (fair + 1, 0)
    with reverts(pool.KDecreased):
        pool.swap(*outs, trader, b"", sender=trader)
    outs = (0, fair) if token0_is_usdc else (fair, 0)
    pool.swap(*outs, trader, b"", sender=trader)
    r0, r1, _ = pool.getReserves()
    assert r0 * r1 >= POOL_USDC * POOL_CRO


def test_pair_swap_guards(pool, usdc, wcro, trader):
    r0, r1, _ = pool.getReserves()
    with reverts(pool.FlashSwapsNotSupported):
        pool.swap(0, 1, trader, b"\x01", sender=trader)
    with reverts(pool.InsufficientOutputAmount):
        pool.swap(0, 0, trader, b"", sender=trader)
    with reverts(pool.InsufficientLiquidity, amount0Out=r0, amount1Out=0, reserve0=r0, reserve1=r1):
        pool.swap(r0, 0, trader, b"", sender=trader)
    with reverts(pool.InvalidTo, to=usdc.address):
        pool.swap(1, 0, usdc, b"", sender=trader)
    with reverts(pool.InsufficientInputAmount):
        pool.swap(1, 0, trader, b"", sender=trader)


def test_skim_removes_the_excess_and_sync_adopts_it(pool, usdc, wcro, trader, stranger):
    _pay_in(usdc, pool, 3 * USDC, trader)
    pool.skim(stranger, sender=stranger)
    assert usdc.balanceOf(stranger) == 3 * USDC
    _pay_in(usdc, pool, 3 * USDC, trader)
    receipt = pool.sync(sender=stranger)
    token0_is_usdc = pool.token0() == usdc.address
    expected = (POOL_USDC + 3 * USDC, POOL_CRO) if token0_is_usdc else (POOL_CRO, POOL_USDC + 3 * USDC)
    assert receipt.events == [pool.Sync(*expected)]
    assert pool.getReserves()[:2] == expected


def test_price_accumulators_add_price_times_elapsed_seconds(pool, chain, stranger):
    r0, r1, last = pool.getReserves()
    chain.pending_timestamp = last + 1000
    pool.sync(sender=stranger)
    assert pool.price0CumulativeLast() == ((r1 << 112) // r0) * 1000
    assert pool.price1CumulativeLast() == ((r0 << 112) // r1) * 1000


def test_lp_token_transfers_and_allowances(pool, owner, stranger, trader):
    lp = pool.balanceOf(owner)
    assert pool.transfer(stranger, 10, sender=owner).events == [pool.Transfer(owner, stranger, 10)]
    pool.approve(trader, 5, sender=stranger)
    pool.transferFrom(stranger, trader, 5, sender=trader)
    assert (pool.balanceOf(stranger), pool.balanceOf(trader), pool.allowance(stranger, trader)) == (5, 5, 0)
    with reverts(pool.InsufficientAllowance, owner=stranger, spender=trader, allowance=0, needed=1):
        pool.transferFrom(stranger, trader, 1, sender=trader)
    with reverts(pool.InsufficientBalance, account=owner, balance=lp - 10, needed=lp):
        pool.transfer(stranger, lp, sender=owner)


def test_protocol_fee_mints_one_sixth_of_the_growth_to_fee_to(pool, factory, router, usdc, wcro, owner, trader,
                                                            stranger, deadline):
    factory.setFeeTo(stranger, sender=owner)
    # kLast is only recorded by a liquidity event while the fee is on.
    router.addLiquidity(usdc, wcro, 10 * USDC, 100 * CRO, 0, 0, owner, deadline, sender=owner)
    k_last = pool.kLast()
    r0, r1, _ = pool.getReserves()
    assert k_last == r0 * r1
    for _ in range(3):
        router.swapExactTokensForTokens(200 * USDC, 0, [usdc, wcro], trader, deadline, sender=trader)
        router.swapExactTokensForTokens(2_000 * CRO, 0, [wcro, usdc], trader, deadline, sender=trader)
    r0, r1, _ = pool.getReserves()
    root_k, root_k_last = isqrt(r0 * r1), isqrt(k_last)
    assert root_k > root_k_last
    expected_fee = pool.totalSupply() * (root_k - root_k_last) // (root_k * 5 + root_k_last)
    router.addLiquidity(usdc, wcro, 10 * USDC, 100 * CRO, 0, 0, owner, deadline, sender=owner)
    assert expected_fee > 0
    assert pool.balanceOf(stranger) == expected_fee
    # Turned off, the next liquidity event clears kLast and mints nothing more.
    factory.setFeeTo(ZERO, sender=owner)
    router.addLiquidity(usdc, wcro, 10 * USDC, 100 * CRO, 0, 0, owner, deadline, sender=owner)
    assert pool.kLast() == 0
    assert pool.balanceOf(stranger) == expected_fee
