"""The Cronos facilitator variant: POST /v2/x402/verify|settle with {x402Version:1, paymentHeader,
paymentRequirements}; the header carries the flat payload our client produces in Cronos mode."""

import base64

import httpx
import pytest
from starlette.testclient import TestClient


@pytest.fixture
def cronos_request(seller, planner_factory, route):
    planner = planner_factory(v1_flat_payload=True)
    first = TestClient(seller, base_url="http://seller.test").get("/weather")
    pending = planner.authorize("fp", httpx.Response(402, json=first.json()))
    return {"x402Version": 1, "paymentHeader": pending.header_value,
            "paymentRequirements": first.json()["accepts"][0]}


def test_cronos_verify_and_settle_move_exactly_the_price(facilitator_app, cronos_request, funded_usdc, provider,
                                                         payer, route):
    api = TestClient(facilitator_app)
    before = funded_usdc.balanceOf(provider)

    assert api.post("/v2/x402/verify", json=cronos_request).json() == {"isValid": True}
    settled = api.post("/v2/x402/settle", json=cronos_request).json()

    assert settled["event"] == "payment.settled" and settled["txHash"].startswith("0x")
    assert settled["from"] == payer.address and settled["value"] == str(route.price)
    assert settled["network"] == "cronos-testnet"
    assert funded_usdc.balanceOf(provider) == before + route.price
    again = api.post("/v2/x402/verify", json=cronos_request).json()
    assert again == {"isValid": False, "invalidReason": "invalid_exact_evm_nonce_already_used"}


def test_cronos_underpaid_settle_fails_with_reason(facilitator_app, cronos_request, funded_usdc, provider):
    cronos_request["paymentRequirements"]["maxAmountRequired"] = "20000"
    before = funded_usdc.balanceOf(provider)

    settled = TestClient(facilitator_app).post("/v2/x402/settle", json=cronos_request).json()

    assert settled["event"] == "payment.failed"
    assert settled["error"] == "invalid_exact_evm_payload_authorization_value_mismatch"
    assert funded_usdc.balanceOf(provider) == before


@pytest.mark.parametrize("header", ["***", base64.b64encode(b"[1,2]").decode(), "A" * 17000])
def test_cronos_malformed_payment_header_is_400(facilitator_app, cronos_request, header):
    cronos_request["paymentHeader"] = header
    reply = TestClient(facilitator_app).post("/v2/x402/settle", json=cronos_request)
    assert reply.status_code == 400 and reply.json()["errorReason"] in {"invalid_payment_header", "invalid_payload"}
