"""x402 fixtures: a real FiatTokenLocal on the session's anvil, our facilitator over web3, a seller
app behind our paywall, and a paying client — all wired in-process through ASGI transports."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from agent.signer import LocalSigner
from agent.x402_client import AsyncX402Client, Budget, PaymentPlanner, X402Client
from keeper.facilitator import Facilitator, Web3Backend, create_app
from keeper.intents import IntentStore
from paygent.eip3009 import DomainReader
from paygent.localchain import test_key as local_key
from paygent.networks import LOCAL
from paygent.paywall import HttpFacilitator, PaidRoute, Paywall, ServedLog

PRICE = 10_000  # 0.01 USDC.e
FACILITATOR_URL = "http://facilitator.test"
SELLER_URL = "http://seller.test"


@pytest.fixture(scope="session")
def w3(chain):
    return chain.provider.web3


@pytest.fixture(scope="session")
def relayer_key():
    """The facilitator's gas-paying account (ape test account 7; anvil funds it)."""
    return local_key(7)


@pytest.fixture(scope="session")
def payer_key():
    """The buyer's hot key (ape test account 3, the `payer` fixture)."""
    return local_key(3)


@pytest.fixture
def funded_usdc(usdc, owner, payer):
    usdc.mint(payer, 100 * 10**6, sender=owner)
    return usdc


@pytest.fixture
def chain_clock(chain):
    """Signing time taken from the chain (tests never read the wall clock)."""
    return lambda: chain.pending_timestamp


@pytest.fixture
def facilitator(w3, relayer_key, funded_usdc):
    backend = Web3Backend(w3, relayer_key, poll_latency=0.01)
    return Facilitator(backend, IntentStore(), LOCAL, frozenset({funded_usdc.address}), receipt_timeout=10)


@pytest.fixture
def facilitator_app(facilitator):
    return create_app(facilitator)


@pytest.fixture
def route(funded_usdc, provider):
    return PaidRoute(path="/weather", price=PRICE, asset=funded_usdc.address, pay_to=provider.address,
                     token_name=funded_usdc.name(), token_version=funded_usdc.version(),
                     description="today's weather")


def content_app() -> Starlette:
    async def weather(_request):
        return JSONResponse({"weather": "sunny"})

    async def free(_request):
        return JSONResponse({"free": True})

    return Starlette(routes=[Route("/weather", weather), Route("/free", free)])


@pytest.fixture
def seller(facilitator_app, route):
    """Our paywall in front of a small app; facilitator reached over an in-process transport."""
    fac_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=facilitator_app), base_url=FACILITATOR_URL)
    return Paywall(content_app(), [route], HttpFacilitator(FACILITATOR_URL, fac_http), LOCAL, served=ServedLog())


@pytest.fixture
def planner_factory(w3, payer_key, funded_usdc, chain_clock):
    def make(per_request: int = 50_000, session: int = 1_000_000, **kwargs) -> PaymentPlanner:
        signer = LocalSigner(payer_key, clock=chain_clock)
        return PaymentPlanner(signer, DomainReader(w3), LOCAL, funded_usdc.address, Budget(per_request, session),
                              **kwargs)
    return make


@pytest.fixture
def client(seller, planner_factory):
    http = TestClient(seller, base_url=SELLER_URL)
    return X402Client(planner_factory(), http=http, max_retries=2)


@pytest.fixture
def async_client(seller, planner_factory):
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=seller), base_url=SELLER_URL)
    return AsyncX402Client(planner_factory(), http=http, max_retries=2)


class Served:
    """An ASGI app served by uvicorn on a free local port, in a background thread."""

    def __init__(self, app):
        import threading

        import uvicorn

        from paygent.localchain import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture
def facilitator_server(facilitator_app):
    with Served(facilitator_app) as served:
        yield served


@pytest.fixture
def python_recursion_limit():
    """The interpreter's default recursion limit for the test (ape raises it to 100,000; a service
    runs with 1,000, where json.loads of deep nesting raises RecursionError, not a ValueError)."""
    import sys

    before = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000)
    yield
    sys.setrecursionlimit(before)
