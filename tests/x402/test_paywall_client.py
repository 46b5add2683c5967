"""Paywall and client rules: 402 shape, replay refused, malformed headers are 400 with a reason,
the client refuses unknown networks / assets and over-budget prices, and never signs twice."""

import base64
import json

import httpx
import pytest
from starlette.testclient import TestClient

from agent.x402_client import PaymentRefused, X402Client
from paygent.wire import v1, v2
from paygent.wire.common import decode_header


@pytest.fixture
def raw(seller):
    return TestClient(seller, base_url="http://seller.test")


def test_unpaid_request_gets_v1_body_and_v2_header(raw, route):
    reply = raw.get("/weather")
    assert reply.status_code == 402
    body = v1.PaymentRequired.model_validate(reply.json())
    assert body.accepts[0].network == "cronos-testnet" and body.accepts[0].max_amount_required == str(route.price)
    assert body.accepts[0].resource == "http://seller.test/weather"
    header = v2.PaymentRequired.model_validate(decode_header(reply.headers["PAYMENT-REQUIRED"]))
    offer = header.accepts[0]
    assert (offer.network, offer.asset, offer.amount, offer.pay_to) == ("eip155:338", route.asset, str(route.price),
                                                                        route.pay_to)
    assert (offer.extra.name, offer.extra.version) == ("Bridged USDC (Stargate)", "1")


def test_replayed_header_is_refused_and_moves_nothing_more(client, raw, funded_usdc, payer, route):
    captured = {}
    original_send = client.http.send

    def spy(request, **kw):
        if "payment-signature" in request.headers:
            captured["header"] = request.headers["payment-signature"]
        return original_send(request, **kw)

    client.http.send = spy
    assert client.get("/weather").response.status_code == 200
    after_first = funded_usdc.balanceOf(payer)

    replay = raw.get("/weather", headers={"PAYMENT-SIGNATURE": captured["header"]})

    assert replay.status_code == 402
    assert replay.json()["error"].startswith("invalid_exact_evm_nonce_already_used")
    assert funded_usdc.balanceOf(payer) == after_first == 100 * 10**6 - route.price


def _b64(obj) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


GOOD_AUTH = {"from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "value": "10000", "validAfter": "0",
             "validBefore": "99999999999", "nonce": "0x" + "33" * 32}
MALFORMED = {
    "bad_base64": ("X-PAYMENT", "%%%not-base64%%%"),
    "not_json": ("X-PAYMENT", base64.b64encode(b"\xff\xfe garbage").decode()),
    "missing_fields": ("X-PAYMENT", _b64({"x402Version": 1, "scheme": "exact"})),
    "wrong_types": ("X-PAYMENT", _b64({"x402Version": 1, "scheme": "exact", "network": "cronos-testnet",
                                       "payload": {"signature": 5, "authorization": GOOD_AUTH}})),
    "huge_value": ("X-PAYMENT", _b64({"x402Version": 1, "scheme": "exact", "network": "cronos-testnet",
                                      "payload": {"signature": "0x" + "44" * 65,
                                                  "authorization": {**GOOD_AUTH, "value": str(2**256)}}})),
    "negative_value": ("PAYMENT-SIGNATURE", _b64({"x402Version": 2, "accepted": {}, "payload": {
        "signature": "0x" + "44" * 65, "authorization": {**GOOD_AUTH, "value": "-1"}}})),
    "oversized_header": ("PAYMENT-SIGNATURE", "A" * 20000),
    "v2_header_with_v1_body": ("PAYMENT-SIGNATURE", _b64({"x402Version": 1, "scheme": "exact"})),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_payment_header_is_400_with_a_reason_and_moves_nothing(case, raw, funded_usdc, payer):
    name, value = MALFORMED[case]
    before = funded_usdc.balanceOf(payer)

    reply = raw.get("/weather", headers={name: value})

    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid_payment_header" and reply.json()["message"]
    assert funded_usdc.balanceOf(payer) == before


def test_client_refuses_over_budget_price_without_signing(seller, planner_factory, funded_usdc, payer, route):
    client = X402Client(planner_factory(per_request=route.price - 1), http=TestClient(seller,
                                                                                      base_url="http://seller.test"))
    with pytest.raises(PaymentRefused) as err:
        client.get("/weather")
    assert err.value.reason == "over_budget" and client.planner.budget.spent == 0


def test_client_stops_when_the_session_budget_is_used(seller, planner_factory, route):
    client = X402Client(planner_factory(session=route.price), http=TestClient(seller, base_url="http://seller.test"))
    assert client.get("/weather").response.status_code == 200
    with pytest.raises(PaymentRefused) as err:
        client.get("/weather")
    assert err.value.reason == "over_budget" and client.planner.budget.spent == route.price


def test_client_refuses_unknown_network_and_asset(seller, planner_factory, route):
    from paygent.networks import CRONOS_MAINNET

    planner = planner_factory()
    planner.network = CRONOS_MAINNET
    with pytest.raises(PaymentRefused) as err:
        X402Client(planner, http=TestClient(seller, base_url="http://seller.test")).get("/weather")
    assert err.value.reason == "unknown_network"

    planner = planner_factory()
    planner.asset = "0x" + "99" * 20
    with pytest.raises(PaymentRefused) as err:
        X402Client(planner, http=TestClient(seller, base_url="http://seller.test")).get("/weather")
    assert err.value.reason == "unknown_asset" and planner.budget.spent == 0


def payment_spy(seller, sent: list[str], **client) -> TestClient:
    """A client to the seller that records every PAYMENT-SIGNATURE header it sends, in order."""
    http = TestClient(seller, base_url="http://seller.test", **client)
    original = http.send

    def spy(request, **kw):
        if "payment-signature" in request.headers:
            sent.append(request.headers["payment-signature"])
        return original(request, **kw)

    http.send = spy
    return http


def test_client_retries_pending_with_the_same_authorization(seller, planner_factory, facilitator, funded_usdc,
                                                            payer, route):
    """The first paid attempt gets 503 pending; the retry resends the same header and is served."""
    sent: list[str] = []
    pending_once = {"left": 1}
    real_settle = facilitator.settle

    def settle(p):
        result = real_settle(p)
        if pending_once["left"]:
            pending_once["left"] -= 1
            from dataclasses import replace
            from keeper.intents import Status
            return replace(result, status=Status.PENDING, reason="settlement_pending")
        return result

    facilitator.settle = settle
    http = payment_spy(seller, sent)
    paid = X402Client(planner_factory(), http=http, max_retries=3).get("/weather")

    assert paid.response.status_code == 200
    assert len(sent) == 2 and sent[0] == sent[1]
    assert funded_usdc.balanceOf(payer) == 100 * 10**6 - route.price


def test_refused_payment_is_not_signed_again(seller, planner_factory, facilitator, funded_usdc, payer):
    facilitator.assets = frozenset()  # the facilitator will refuse this asset
    client = X402Client(planner_factory(), http=TestClient(seller, base_url="http://seller.test"))
    with pytest.raises(PaymentRefused) as err:
        client.get("/weather")
    assert err.value.reason == "payment_rejected" and "unsupported_asset" in err.value.detail
    assert funded_usdc.balanceOf(payer) == 100 * 10**6


def test_v1_flat_cronos_payload_is_paid(seller, planner_factory, funded_usdc, provider, route):
    """The Cronos paymentHeader form (flat payload with asset) sent as X-PAYMENT is settled."""
    import httpx

    planner = planner_factory(v1_flat_payload=True)
    http = TestClient(seller, base_url="http://seller.test")
    first = http.get("/weather")
    stripped = httpx.Response(402, json=first.json())  # a v1-only seller: no PAYMENT-REQUIRED header
    pending = planner.authorize("fp", stripped)
    assert pending.header_name == "X-PAYMENT"
    assert "authorization" not in decode_header(pending.header_value)["payload"]
    before = funded_usdc.balanceOf(provider)

    reply = http.get("/weather", headers={"X-PAYMENT": pending.header_value})

    assert reply.status_code == 200
    receipt = v1.SettlementResponse.model_validate(decode_header(reply.headers["X-PAYMENT-RESPONSE"]))
    assert receipt.success and receipt.network == "cronos-testnet"
    assert funded_usdc.balanceOf(provider) == before + route.price


def test_a_facilitator_that_cannot_settle_now_is_a_503_with_its_retry_after(raw, facilitator, funded_usdc, payer,
                                                                              planner_factory):
    """A keeper that is not the leader answers /settle 503 not_leader: the paywall passes that on
    as 503 with the facilitator's Retry-After (not a 402 that would invite a new signature), and
    nothing moves."""
    facilitator.leader = lambda: False
    paid = planner_factory().authorize("fp", raw.get("/weather"))
    answer = raw.get("/weather", headers={paid.header_name: paid.header_value})
    assert answer.status_code == 503 and answer.headers["retry-after"] == "2"
    assert answer.json()["error"] == "facilitator_unavailable" and "not_leader" in answer.json()["message"]
    assert funded_usdc.balanceOf(payer) == 100 * 10**6


def test_the_client_resends_the_same_header_until_the_leader_settles(seller, planner_factory, facilitator,
                                                                     funded_usdc, payer, route):
    sent: list[str] = []
    facilitator.leader = lambda: len(sent) > 1  # a follower for the first paid attempt
    http = payment_spy(seller, sent)
    paid = X402Client(planner_factory(), http=http, max_retries=3).get("/weather")
    assert paid.response.status_code == 200
    assert len(sent) == 2 and sent[0] == sent[1]
    assert funded_usdc.balanceOf(payer) == 100 * 10**6 - route.price


@pytest.mark.parametrize(("given", "passed_on"), [("7", "7"), ("-1", "2"), ("nan", "2"), ("1e9", "2"),
                                                  ("Wed, 21 Oct 2026 07:28:00 GMT", "2"), ("", "2"), ("99999", "2")])
def test_only_a_sane_retry_after_is_passed_on(route, funded_usdc, planner_factory, given, passed_on):
    """A facilitator's 503 reaches the buyer with its Retry-After only when that is whole seconds
    (at most 4 digits); anything else becomes 2, so no buyer is told to wait forever or never."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from paygent.networks import LOCAL
    from paygent.paywall import HttpFacilitator, Paywall

    async def busy(_request):
        return JSONResponse({"error": "not_leader"}, status_code=503, headers={"Retry-After": given} if given else {})

    async def weather(_request):
        return JSONResponse({"weather": "sunny"})

    facilitator = Starlette(routes=[Route("/settle", busy, methods=["POST"])])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=facilitator), base_url="http://busy.test")
    content = Starlette(routes=[Route("/weather", weather)])
    seller = TestClient(Paywall(content, [route], HttpFacilitator("http://busy.test", http), LOCAL),
                        base_url="http://seller.test")
    paid = planner_factory().authorize("fp", seller.get("/weather"))
    answer = seller.get("/weather", headers={paid.header_name: paid.header_value})
    assert answer.status_code == 503 and answer.headers["retry-after"] == passed_on


@pytest.mark.parametrize(("header", "wait"), [("1.5", 1.5), ("0", 0.0), ("60", 5.0), ("-1", 0.8), ("nan", 0.8),
                                              ("inf", 0.8), ("soon", 0.8), (None, 0.8)])
def test_the_client_waits_a_sane_time_whatever_retry_after_says(header, wait):
    """Retry-After within 0..5 s is honoured (capped at 5); negative, NaN, infinite or non-numeric
    values fall back to the exponential backoff (attempt 2: 0.8 s) instead of breaking the retry."""
    from agent.x402_client import _retry_after

    response = httpx.Response(503, headers={"Retry-After": header} if header is not None else {})
    assert _retry_after(response, 2) == pytest.approx(wait)


def paywall_over(app, facilitator_app, route, served=None):
    """Our paywall in front of `app`, the facilitator in-process."""
    from paygent.networks import LOCAL
    from paygent.paywall import HttpFacilitator, Paywall

    fac = httpx.AsyncClient(transport=httpx.ASGITransport(app=facilitator_app), base_url="http://facilitator.test")
    return Paywall(app, [route], HttpFacilitator("http://facilitator.test", fac), LOCAL, served=served)


def weather_app(fail_first: int = 0):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    left = {"failures": fail_first}

    async def weather(_request):
        if left["failures"]:
            left["failures"] -= 1
            raise RuntimeError("the weather station is down")
        return JSONResponse({"weather": "sunny"})

    return Starlette(routes=[Route("/weather", weather)])


def test_a_payment_whose_response_failed_buys_it_on_the_retry_once(facilitator_app, route, planner_factory,
                                                                    funded_usdc, payer):
    seller = paywall_over(weather_app(fail_first=1), facilitator_app, route)
    sent: list[str] = []
    http = payment_spy(seller, sent, raise_server_exceptions=False)

    paid = X402Client(planner_factory(), http=http, max_retries=2).get("/weather")

    assert paid.response.status_code == 200 and paid.response.json() == {"weather": "sunny"}
    assert len(sent) == 2 and sent[0] == sent[1]  # the same header: the app's 500 did not use up the payment
    assert funded_usdc.balanceOf(payer) == 100 * 10**6 - route.price
    replay = http.get("/weather", headers={"PAYMENT-SIGNATURE": sent[0]})
    assert replay.status_code == 402  # ... and it bought one response, not two


def test_served_payments_survive_a_restart_and_are_shared_by_workers(facilitator_app, route, planner_factory,
                                                                     funded_usdc, payer, tmp_path):
    from paygent.paywall import ServedLog

    log_file = tmp_path / "served.sqlite"
    first = paywall_over(weather_app(), facilitator_app, route, ServedLog(log_file))
    sent: list[str] = []
    paid = X402Client(planner_factory(), http=payment_spy(first, sent)).get("/weather")
    assert paid.response.status_code == 200

    for _ in range(2):  # a second worker now, and the service restarted later: same file, new process state
        other = TestClient(paywall_over(weather_app(), facilitator_app, route, ServedLog(log_file)),
                           base_url="http://seller.test")
        replay = other.get("/weather", headers={"PAYMENT-SIGNATURE": sent[0]})
        assert replay.status_code == 402 and replay.json()["error"].startswith("invalid_exact_evm_nonce_already_used")
    assert funded_usdc.balanceOf(payer) == 100 * 10**6 - route.price


def test_a_lost_response_is_reported_as_paid_not_refused_and_not_paid_again(seller, planner_factory, funded_usdc,
                                                                            payer, route):
    http = TestClient(seller, base_url="http://seller.test")
    original = http.send
    lost = {"left": 1}

    def lose_first_paid_answer(request, **kw):
        reply = original(request, **kw)
        if "payment-signature" in request.headers and lost["left"]:
            lost["left"] -= 1
            raise httpx.ReadError("connection reset after the response started", request=request)
        return reply

    http.send = lose_first_paid_answer
    with pytest.raises(PaymentRefused) as err:
        X402Client(planner_factory(), http=http, max_retries=2).get("/weather")

    assert err.value.reason == "paid_response_lost" and "not paying again" in err.value.detail
    assert funded_usdc.balanceOf(payer) == 100 * 10**6 - route.price


@pytest.mark.parametrize("answer", [b"<html>bad request</html>", b"[1, 2]"])
def test_a_facilitator_400_that_is_not_a_json_object_is_a_502_not_a_crash(answer, route, planner_factory,
                                                                         funded_usdc, payer):
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def odd(_request):
        return Response(answer, status_code=400)

    facilitator = Starlette(routes=[Route("/settle", odd, methods=["POST"])])
    seller = TestClient(paywall_over(weather_app(), facilitator, route), base_url="http://seller.test")
    paid = planner_factory().authorize("fp", seller.get("/weather"))

    answer = seller.get("/weather", headers={paid.header_name: paid.header_value})

    assert answer.status_code == 502 and answer.json()["error"] == "facilitator_unavailable"
    assert funded_usdc.balanceOf(payer) == 100 * 10**6


def test_a_402_body_that_is_a_json_list_is_a_refusal_with_a_reason(planner_factory):
    planner = planner_factory()
    reply = httpx.Response(402, content=b"[1, 2]", request=httpx.Request("GET", "http://seller.test/x"))
    with pytest.raises(PaymentRefused) as err:
        planner.offers(reply)
    assert err.value.reason == "invalid_payment_required"


@pytest.mark.parametrize("name", ["X-PAYMENT", "PAYMENT-SIGNATURE"])
def test_a_header_nested_too_deeply_is_400_not_a_crash(name, raw, python_recursion_limit):
    reply = raw.get("/weather", headers={name: base64.b64encode(b"[" * 3000).decode()})

    assert reply.status_code == 400 and reply.json()["error"] == "invalid_payment_header"
