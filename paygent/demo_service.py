"""The demo paid service: a CRO/USDC.e price quote from the local VVS pool, behind the x402 paywall.

Routes (prices from their ServiceRegistry entries, paid to the PaymentRouter):
  GET /price          — 1 CRO in USDC.e via VVSRouter.getAmountsOut (service "vvs-price-oracle")
  GET /premium-price  — the same plus pool reserves (service "premium-price-oracle")
  GET /healthz        — free
`python -m paygent.demo_service` runs it with uvicorn, given the deployment manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from paygent.manifest import Manifest
from paygent.networks import Network
from paygent.paywall import FacilitatorClient, HttpFacilitator, Paywall, ServedLog, route_from_registry

ONE_CRO = 10**18


class DemoServiceSettings(BaseSettings):
    """Settings of the demo paid service (environment, prefix PAYGENT_)."""

    model_config = SettingsConfigDict(env_prefix="PAYGENT_", extra="ignore")

    network: str = "local"
    """Paygent network whose manifest names the registry, router, AMM and the demo service ids."""
    rpc_url: str | None = None
    """JSON-RPC endpoint; default the network's."""
    deployments_dir: Path | None = None
    """Where the deployment manifests are (default: the project's deployments/, whatever the working directory)."""
    facilitator_url: str = "http://127.0.0.1:8403"
    """x402 facilitator that verifies and settles payments (ours or any other)."""
    host: str = "127.0.0.1"
    """Address the service listens on."""
    port: int = 8402
    """Port the service listens on."""
    public_url: str | None = None
    """URL clients reach the service at (default: taken from each request's Host header)."""
    served_log: Path = Path(".paygent") / "demo-service" / "served.sqlite"
    """SQLite file of the payments that already bought a response (one response per payment, across
    restarts and worker processes)."""


class PriceOracle:
    """Reads the USDC.e/WCRO price from the VVS router (or the pair's reserves)."""

    def __init__(self, w3: Any, manifest: Manifest):
        from eth_utils import to_checksum_address

        from paygent.artifacts import abi

        self.usdc = to_checksum_address(manifest.address("USDC"))
        self.wcro = to_checksum_address(manifest.address("WCRO"))
        self.router = w3.eth.contract(address=manifest.address("VVSRouter"), abi=abi("VVSRouter"))
        factory = w3.eth.contract(address=manifest.address("VVSFactory"), abi=abi("VVSFactory"))
        self.pair = w3.eth.contract(address=factory.functions.getPair(self.usdc, self.wcro).call(),
                                    abi=abi("VVSPair"))

    def quote(self) -> dict[str, Any]:
        amounts = self.router.functions.getAmountsOut(ONE_CRO, [self.wcro, self.usdc]).call()
        return {"pair": "CRO/USDC.e", "amountIn": str(ONE_CRO), "amountOut": str(amounts[-1]),
                "price": amounts[-1] / 10**6, "source": "VVS getAmountsOut"}

    def depth(self) -> dict[str, Any]:
        r0, r1, ts = self.pair.functions.getReserves().call()
        token0 = self.pair.functions.token0().call()
        usdc, wcro = (r0, r1) if token0.lower() == self.usdc.lower() else (r1, r0)
        return {"reserveUSDC": str(usdc), "reserveWCRO": str(wcro), "updatedAt": ts}


def create_app(w3: Any, manifest: Manifest, network: Network, facilitator: FacilitatorClient,
               public_url: str | None = None, served: ServedLog | None = None) -> Paywall:
    oracle = PriceOracle(w3, manifest)

    async def price(_request: Request) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(oracle.quote))

    async def premium(_request: Request) -> JSONResponse:
        quote = await run_in_threadpool(oracle.quote)
        quote.update(await run_in_threadpool(oracle.depth))
        return JSONResponse(quote)

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/price", price), Route("/premium-price", premium), Route("/healthz", healthz)])
    registry, router = manifest.address("ServiceRegistry"), manifest.address("PaymentRouter")
    routes = []
    for name, path in (("vvs-price-oracle", "/price"), ("premium-price-oracle", "/premium-price")):
        service_id = manifest.demo.get(f"service:{name}")
        if service_id is not None:
            routes.append(route_from_registry(w3, registry, router, int(service_id), path))
    return Paywall(app, routes, facilitator, network, served=served, public_url=public_url)


def main() -> None:
    import uvicorn
    from web3 import Web3

    from paygent import manifest as manifests
    from paygent.networks import get_network

    settings = DemoServiceSettings()
    network = get_network(settings.network)
    m = manifests.require(network.name, settings.deployments_dir)
    w3 = Web3(Web3.HTTPProvider(settings.rpc_url or network.rpc_url))
    app = create_app(w3, m, network, HttpFacilitator(settings.facilitator_url), settings.public_url,
                     ServedLog(settings.served_log))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
