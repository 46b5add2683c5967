"""Interop with the reference SDK (PyPI x402 2.25): its client pays our paywall (through our
facilitator), and our client pays a paywall built with its resource server."""

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from agent.x402_client import X402Client
from paygent.wire import v2
from paygent.wire.common import decode_header

x402 = pytest.importorskip("x402")


def reference_client(payer_key, usdc_address):
    from x402 import x402Client
    from x402.mechanisms.evm.exact.register import register_exact_evm_client
    from x402.mechanisms.evm.signers import EthAccountSigner

    client = register_exact_evm_client(x402Client(), EthAccountSigner(payer_key), networks="eip155:338")
    # chain 338 has no default asset in the SDK: allow the USDC.e stand-in explicitly, capped
    return client.set_spend_controls({"allowed_assets": [
        {"network": "eip155:338", "asset": usdc_address, "max_amount_per_payment": "1000000"}]})


def test_reference_client_pays_our_paywall(seller, payer_key, funded_usdc, payer, provider, route):
    from x402.http.clients.httpx import x402AsyncTransport

    transport = x402AsyncTransport(reference_client(payer_key, funded_usdc.address), transport=httpx.ASGITransport(app=seller))
    before = funded_usdc.balanceOf(payer), funded_usdc.balanceOf(provider)

    async def run():
        async with httpx.AsyncClient(transport=transport, base_url="http://seller.test") as http:
            return await http.get("/weather")

    reply = asyncio.run(run())

    assert reply.status_code == 200 and reply.json() == {"weather": "sunny"}
    receipt = v2.SettleResponse.model_validate(decode_header(reply.headers["PAYMENT-RESPONSE"]))
    assert receipt.success and receipt.payer == payer.address
    assert funded_usdc.balanceOf(payer) == before[0] - route.price
    assert funded_usdc.balanceOf(provider) == before[1] + route.price


class _Adapter:
    """The reference server's HTTPAdapter over a Starlette request."""

    def __init__(self, request: Request):
        self.r = request

    def get_header(self, name):
        return self.r.headers.get(name)

    def get_method(self):
        return self.r.method

    def get_path(self):
        return self.r.url.path

    def get_url(self):
        return str(self.r.url)

    def get_accept_header(self):
        return self.r.headers.get("accept", "")

    def get_user_agent(self):
        return self.r.headers.get("user-agent", "")

    def get_query_params(self):
        return dict(self.r.query_params)

    def get_query_param(self, name):
        return self.r.query_params.get(name)

    def get_body(self):
        return None


def reference_paywall(facilitator_url, route):
    """A seller built with the reference SDK's resource server, settling through our facilitator."""
    from x402 import x402ResourceServer
    from x402.http import FacilitatorConfig, HTTPFacilitatorClient, HTTPRequestContext
    from x402.http.x402_http_server import x402HTTPResourceServer
    from x402.mechanisms.evm.exact.register import register_exact_evm_server
    from x402.schemas import AssetAmount

    server = register_exact_evm_server(x402ResourceServer(HTTPFacilitatorClient(FacilitatorConfig(url=facilitator_url))),
                                       "eip155:338")
    routes = {"GET /weather": {"accepts": {
        "scheme": "exact", "network": "eip155:338", "payTo": route.pay_to,
        "price": AssetAmount(amount=str(route.price), asset=route.asset,
                             extra={"name": route.token_name, "version": route.token_version}),
    }, "description": "weather"}}
    http_server = x402HTTPResourceServer(server, routes)
    http_server.initialize()

    async def weather(request: Request):
        ctx = HTTPRequestContext(adapter=_Adapter(request), path=request.url.path, method=request.method,
                                 payment_header=request.headers.get("payment-signature")
                                 or request.headers.get("x-payment"))
        result = await http_server.process_http_request(ctx)
        if result.type == "payment-error":
            resp = result.response
            return JSONResponse(resp.body or {}, status_code=resp.status, headers=resp.headers)
        settled = await http_server.process_settlement(result.payment_payload, result.payment_requirements,
                                                       context=ctx)
        if not settled.success:
            resp = settled.response
            return JSONResponse((resp.body if resp else None) or {}, status_code=resp.status if resp else 402,
                                headers=resp.headers if resp else {})
        return JSONResponse({"weather": "sunny"}, headers=settled.headers)

    return Starlette(routes=[Route("/weather", weather)])


def test_our_client_pays_a_reference_paywall(facilitator_server, planner_factory, funded_usdc, payer, provider,
                                             route):
    app = reference_paywall(facilitator_server.url, route)
    before = funded_usdc.balanceOf(payer), funded_usdc.balanceOf(provider)

    paid = X402Client(planner_factory(), http=TestClient(app, base_url="http://ref-seller.test")).get("/weather")

    assert paid.response.status_code == 200 and paid.response.json() == {"weather": "sunny"}
    assert paid.receipt is not None and paid.receipt.success and paid.receipt.transaction.startswith("0x")
    assert funded_usdc.balanceOf(payer) == before[0] - route.price
    assert funded_usdc.balanceOf(provider) == before[1] + route.price


def test_reference_client_payload_is_accepted_by_our_facilitator_directly(facilitator_app, payer_key, route,
                                                                          funded_usdc, provider):
    """What the reference client signs for our requirements verifies and settles at our /settle."""
    from x402.mechanisms.evm.exact.client import ExactEvmScheme
    from x402.mechanisms.evm.signers import EthAccountSigner
    from x402.schemas import PaymentRequirements

    req = PaymentRequirements(scheme="exact", network="eip155:338", asset=route.asset, amount=str(route.price),
                              pay_to=route.pay_to, max_timeout_seconds=300,
                              extra={"name": route.token_name, "version": route.token_version})
    inner = ExactEvmScheme(EthAccountSigner(payer_key)).create_payment_payload(req)
    req_json = req.model_dump(mode="json", by_alias=True, exclude_none=True)
    body = {"x402Version": 2, "paymentPayload": {"x402Version": 2, "payload": inner, "accepted": req_json},
            "paymentRequirements": req_json}
    api = TestClient(facilitator_app)
    before = funded_usdc.balanceOf(provider)

    assert api.post("/verify", json=body).json()["isValid"] is True
    assert api.post("/settle", json=body).json()["success"] is True
    assert funded_usdc.balanceOf(provider) == before + route.price
