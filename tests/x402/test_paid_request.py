"""A paid request end to end on anvil: client → paywall → facilitator → token → content."""

import asyncio

from paygent.wire import v2


def test_paid_request_returns_content_and_moves_exactly_the_price(client, funded_usdc, payer, provider, chain, route):
    PRICE = route.price
    before_payer, before_provider = funded_usdc.balanceOf(payer), funded_usdc.balanceOf(provider)

    paid = client.get("/weather")

    assert paid.response.status_code == 200
    assert paid.response.json() == {"weather": "sunny"}
    assert isinstance(paid.receipt, v2.SettleResponse)
    assert paid.receipt.success and paid.receipt.network == "eip155:338"
    assert paid.receipt.payer == payer.address
    receipt = chain.provider.web3.eth.get_transaction_receipt(paid.receipt.transaction)
    assert receipt["status"] == 1
    assert funded_usdc.balanceOf(payer) == before_payer - PRICE
    assert funded_usdc.balanceOf(provider) == before_provider + PRICE
    assert paid.amount == PRICE and client.planner.budget.spent == PRICE


def test_async_client_pays_the_same_way(async_client, funded_usdc, provider, route):
    PRICE = route.price
    before = funded_usdc.balanceOf(provider)

    paid = asyncio.run(async_client.get("/weather"))

    assert paid.response.status_code == 200 and paid.receipt is not None and paid.receipt.success
    assert funded_usdc.balanceOf(provider) == before + PRICE


def test_free_route_is_served_without_payment(client):
    paid = client.get("/free")
    assert paid.response.status_code == 200 and paid.receipt is None and client.planner.budget.spent == 0
