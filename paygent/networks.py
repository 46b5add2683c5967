"""Networks Paygent knows, with the Cronos facts from DESIGN.md.

The local chain is an anvil with chain id 338 whose stand-ins sit at the Cronos *testnet* addresses,
so a local manifest, config or x402 requirement looks exactly like testnet. Unknown names are an
error, never a silent fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import to_checksum_address

MULTICALL3 = to_checksum_address("0xcA11bde05977b3631167028862bE2a173976CA11")
USDC_DOMAIN_NAME = "Bridged USDC (Stargate)"
USDC_DECIMALS = 6


@dataclass(frozen=True)
class Network:
    """One chain Paygent can run on."""

    name: str
    """Paygent's name, also the ape network choice suffix (local / cronos:testnet / cronos:mainnet)."""
    chain_id: int
    rpc_url: str
    """Default JSON-RPC endpoint (override in settings)."""
    x402_v1: str
    """x402 v1 network name (Cronos facilitator spelling)."""
    usdc: str
    """USDC.e address (devUSDC.e on testnet)."""
    wcro: str
    vvs_router: str | None
    """VVS Finance Router02; None where it is deployed per chain (local) or unknown."""
    is_local: bool

    @property
    def caip2(self) -> str:
        """x402 v2 network id, e.g. ``eip155:338``."""
        return f"eip155:{self.chain_id}"


LOCAL = Network(
    name="local",
    chain_id=338,
    rpc_url="http://127.0.0.1:8545",
    x402_v1="cronos-testnet",
    usdc=to_checksum_address("0xc01efAaF7C5C61bEbFAeb358E1161b537b8bC0e0"),
    wcro=to_checksum_address("0x6a3173618859c7cd40faf6921b5e9eb6a76f1fd4"),
    vvs_router=None,
    is_local=True,
)
CRONOS_TESTNET = Network(
    name="cronos-testnet",
    chain_id=338,
    rpc_url="https://evm-t3.cronos.org",
    x402_v1="cronos-testnet",
    usdc=LOCAL.usdc,
    wcro=LOCAL.wcro,
    vvs_router=None,
    is_local=False,
)
CRONOS_MAINNET = Network(
    name="cronos-mainnet",
    chain_id=25,
    rpc_url="https://evm.cronos.org",
    x402_v1="cronos-mainnet",
    usdc=to_checksum_address("0xf951eC28187D9E5Ca673Da8FE6757E6f0Be5F77C"),
    wcro=to_checksum_address("0x5C7F8A570d578ED84E63fdFA7b1eE72dEae1AE23"),
    vvs_router=to_checksum_address("0x145863Eb42Cf62847A6Ca784e6416C1682b1b2Ae"),
    is_local=False,
)

NETWORKS: dict[str, Network] = {n.name: n for n in (LOCAL, CRONOS_TESTNET, CRONOS_MAINNET)}
_ALIASES = {
    "cronos:testnet": "cronos-testnet",
    "cronos:mainnet": "cronos-mainnet",
    "testnet": "cronos-testnet",
    "mainnet": "cronos-mainnet",
    "ethereum:local": "local",
}


class UnknownNetworkError(ValueError):
    """A network name that Paygent does not know."""


def get_network(name: str) -> Network:
    """Look a network up by name (``local``, ``cronos-testnet``, ``cronos:testnet[:node]``, ...)."""
    key = name.strip().lower()
    parts = key.split(":")
    if len(parts) == 3:  # ape choice ecosystem:network:provider
        key = ":".join(parts[:2])
    key = _ALIASES.get(key, key)
    if key not in NETWORKS:
        known = ", ".join(sorted(NETWORKS))
        raise UnknownNetworkError(f"unknown network {name!r}; known networks: {known}")
    return NETWORKS[key]


def network_for_x402(network_id: str) -> Network | None:
    """Map an x402 network id (v1 name like ``cronos-testnet`` or CAIP-2 ``eip155:338``) to a network.

    Returns None for ids this deployment does not serve (the caller turns that into a reason code).
    Chain 338 maps to the testnet entry; a local deployment answers for it too (same chain id).
    """
    for net in (CRONOS_TESTNET, CRONOS_MAINNET):
        if network_id in (net.x402_v1, net.caip2):
            return net
    return None
