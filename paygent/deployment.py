"""Deploy Paygent with ape — the logic behind `ape run deploy`.

Local chain (ape's `ethereum:local`, our anvil with chain id 338):
  stand-ins (USDC.e, WCRO, Multicall3) placed at the Cronos testnet addresses with `anvil_setCode`,
  the VVS-compatible AMM with seeded USDC.e/WCRO liquidity, ServiceRegistry, PaymentRouter, demo
  services, and a demo AgentWallet with limits, funded.
Any other network (`cronos:testnet:node`, ...):
  the real token addresses, an ape account, never a stand-in; the token's EIP-712 domain is checked
  on chain before anything is deployed; then ServiceRegistry and PaymentRouter.

Idempotent: when a manifest for the network exists and every contract in it still has code on the
same chain, nothing is sent. The manifest is written once, atomically, after everything succeeded;
a failure leaves the previous manifest (or none) untouched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from eth_abi import encode
from eth_utils import keccak, to_checksum_address
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from paygent import manifest as manifests
from paygent.networks import LOCAL, MULTICALL3, USDC_DECIMALS, USDC_DOMAIN_NAME, Network, get_network

ONE_USDC = 10**USDC_DECIMALS
ONE_CRO = 10**18
DAY = 86_400

# Router fee: 1% now, never above 5% (the immutable cap).
ROUTER_FEE_BPS = 100
ROUTER_MAX_FEE_BPS = 500

# Seeded AMM: 10,000 USDC.e against 100,000 WCRO (1 CRO = 0.10 USDC.e).
POOL_USDC = 10_000 * ONE_USDC
POOL_WCRO = 100_000 * ONE_CRO

DEMO_PORT = 8402


@dataclass(frozen=True)
class DemoService:
    name: str
    path: str
    price: int  # atomic USDC.e
    description: str


DEMO_SERVICES = (
    DemoService("vvs-price-oracle", "/price", 10_000, "CRO/USDC.e price quoted from the VVS pool"),
    DemoService("premium-price-oracle", "/premium-price", 25_000, "CRO/USDC.e price with pool depth"),
)

# Demo wallet rules for the agent (USDC.e): 5 a day, 2 per payment, a float of at most 1.
DEMO_LIMIT = 5 * ONE_USDC
DEMO_CAP = 2 * ONE_USDC
DEMO_FLOAT_CAP = 1 * ONE_USDC
DEMO_WALLET_FUNDING = 100 * ONE_USDC
DEMO_REQUEST_TTL = DAY


class DeploySettings(BaseSettings):
    """Settings of `ape run deploy` (environment, prefix PAYGENT_)."""

    model_config = SettingsConfigDict(env_prefix="PAYGENT_", extra="ignore")

    deployer: str | None = None
    """Alias of the ape account that deploys on real networks (`ape accounts list`)."""
    deployments_dir: Path = Field(default_factory=lambda: manifests.DEFAULT_DIR)
    """Where deployment manifests are read and written (one JSON file per network)."""


class DeployError(RuntimeError):
    """Deployment cannot go on; the message says why and what to do. Nothing was half-written."""


@dataclass
class DeployResult:
    manifest: manifests.Manifest
    changed: bool
    path: Path
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# Entry point


def deploy(
    network: Network,
    deployer: Any,
    *,
    directory: Path | None = None,
    log: Callable[[str], None] = print,
    accounts: Any = None,
) -> DeployResult:
    """Deploy (or verify) Paygent on the connected chain.

    `network` says what the connected chain is meant to be; `deployer` is an ape account.
    `accounts` (local only) are ape test accounts for the demo roles (agent, provider).
    """
    from ape import chain

    chain_id = chain.chain_id
    if chain_id != network.chain_id:
        raise DeployError(
            f"connected chain has chain id {chain_id}, but network {network.name!r} is chain id "
            f"{network.chain_id}: check --network / the RPC URL"
        )

    existing = manifests.load(network.name, directory)
    if existing is not None:
        _verify_existing(existing, network, directory)
        log(f"{network.name}: deployment manifest found and every contract is on chain; nothing to do")
        return DeployResult(existing, changed=False, path=manifests.manifest_path(network.name, directory))

    manifests.check_writable(network.name, directory)  # before any transaction only the manifest would remember
    if network.is_local:
        manifest = _deploy_local(network, deployer, accounts, log)
    else:
        manifest = _deploy_remote(network, deployer, log)
    path = manifests.save(manifest, directory)
    log(f"manifest written: {path}")
    return DeployResult(manifest, changed=True, path=path)


def _genesis_hash() -> str:
    from ape import chain

    return chain.blocks[0].hash.hex()


def _verify_existing(existing: manifests.Manifest, network: Network, directory: Path | None = None) -> None:
    from ape import chain

    if existing.chain_id != chain.chain_id:
        raise DeployError(
            f"the {network.name} manifest is for chain id {existing.chain_id}, the connected chain is "
            f"{chain.chain_id}: wrong --network or RPC URL"
        )
    genesis = _genesis_hash()
    if existing.genesis_hash.removeprefix("0x") != genesis.removeprefix("0x"):
        hint = (
            "the local chain was restarted since the last deploy; remove "
            f"{manifests.manifest_path(network.name, directory)} (or run `make demo`, which does) and deploy again"
            if network.is_local
            else "this manifest belongs to another chain"
        )
        raise DeployError(f"the {network.name} manifest was written for a chain with another genesis block: {hint}")
    for name, deployed in existing.contracts.items():
        if not chain.provider.get_code(deployed.address):
            raise DeployError(
                f"{name} is missing at {deployed.address} (recorded in the {network.name} manifest): "
                "the chain no longer matches the manifest; nothing was changed"
            )


# ------------------------------------------------------------------------------------------------
# Local chain


def _deploy_local(network: Network, deployer: Any, accounts: Any, log: Callable[[str], None]) -> manifests.Manifest:
    from ape import chain, project

    if accounts is None or len(accounts) < 3:
        raise DeployError("local deploy needs the ape test accounts (deployer, agent, provider)")
    agent, provider = accounts[1], accounts[2]
    start_block = chain.blocks.head.number + 1
    record: dict[str, manifests.DeployedContract] = {}

    def deployed(name: str, instance: Any) -> Any:
        record[name] = _record(instance)
        log(f"  {name:<18} {instance.address}")
        return instance

    log(f"{network.name}: placing Cronos stand-ins at the testnet addresses")
    usdc = place_standin(project.FiatTokenLocal, network.usdc, deployer)
    usdc.initialize(USDC_DOMAIN_NAME, "USDC.e", USDC_DECIMALS, deployer, sender=deployer)
    record["USDC"] = manifests.DeployedContract(address=usdc.address)
    wcro = place_standin(project.WCRO, network.wcro, deployer)
    record["WCRO"] = manifests.DeployedContract(address=wcro.address)
    place_standin(project.Multicall3, MULTICALL3, deployer)
    record["Multicall3"] = manifests.DeployedContract(address=MULTICALL3)
    check_token_domain(usdc, network)

    log(f"{network.name}: deploying Paygent")
    factory = deployed("VVSFactory", deployer.deploy(project.VVSFactory, deployer))
    vvs = deployed("VVSRouter", deployer.deploy(project.VVSRouter, factory, wcro))
    registry = deployed("ServiceRegistry", deployer.deploy(project.ServiceRegistry))
    router = deployed(
        "PaymentRouter",
        deployer.deploy(project.PaymentRouter, registry, deployer, deployer, ROUTER_FEE_BPS, ROUTER_MAX_FEE_BPS),
    )
    wallet = deployed("AgentWallet", deployer.deploy(project.AgentWallet, deployer, DEMO_REQUEST_TTL))

    log(f"{network.name}: seeding the USDC.e/WCRO pool")
    usdc.mint(deployer, POOL_USDC + DEMO_WALLET_FUNDING + 1_000 * ONE_USDC, sender=deployer)
    wcro.deposit(sender=deployer, value=POOL_WCRO)
    usdc.approve(vvs, POOL_USDC, sender=deployer)
    wcro.approve(vvs, POOL_WCRO, sender=deployer)
    deadline = chain.pending_timestamp + 3600
    vvs.addLiquidity(usdc, wcro, POOL_USDC, POOL_WCRO, 0, 0, deployer, deadline, sender=deployer)

    log(f"{network.name}: registering demo services")
    service_ids: dict[str, int] = {}
    for svc in DEMO_SERVICES:
        receipt = registry.register(
            svc.name,
            f"http://127.0.0.1:{DEMO_PORT}{svc.path}",
            0,  # PricingModel.PerCall
            usdc,
            svc.price,
            0,
            provider,
            f"data:,{svc.description}",
            sender=provider,
        )
        service_ids[svc.name] = receipt.return_value

    log(f"{network.name}: demo AgentWallet rules and funding")
    wallet.addAgent(agent, sender=deployer)
    wallet.setRule(agent, usdc, DEMO_LIMIT, DEMO_CAP, DAY, DEMO_FLOAT_CAP, sender=deployer)
    wallet.setRule(agent, wcro, 50_000 * ONE_CRO, 10_000 * ONE_CRO, DAY, 0, sender=deployer)
    wallet.setRouter(vvs, True, sender=deployer)
    usdc.transfer(wallet, DEMO_WALLET_FUNDING, sender=deployer)

    demo: dict[str, str | int] = {
        "owner": deployer.address,
        "agent": agent.address,
        "provider": provider.address,
        "service_port": DEMO_PORT,
    }
    demo.update({f"service:{name}": sid for name, sid in service_ids.items()})
    return manifests.Manifest(
        network=network.name,
        chain_id=chain.chain_id,
        genesis_hash=_genesis_hash(),
        deployment_block=start_block,
        deployer=deployer.address,
        contracts=record,
        demo=demo,
    )


def _record(instance: Any) -> manifests.DeployedContract:
    """Address, creation transaction and block of a contract ape just deployed."""
    from ape import chain

    receipt = chain.get_receipt(instance.txn_hash)
    return manifests.DeployedContract(address=instance.address, tx_hash=receipt.txn_hash, block=receipt.block_number)


def place_standin(contract_container: Any, address: str, deployer: Any) -> Any:
    """Deploy a stand-in normally, then copy its runtime code to `address` (anvil only).

    The stand-ins keep no constructor state, so the copy is initialised where it lands.
    """
    from ape import chain

    address = to_checksum_address(address)
    if chain.provider.get_code(address):
        raise DeployError(
            f"{contract_container.contract_type.name}: {address} already holds code on this chain; "
            "a local deploy needs a fresh chain (restart it: `make chain-stop chain`)"
        )
    template = deployer.deploy(contract_container)
    code = chain.provider.get_code(template.address)
    chain.provider.make_request("anvil_setCode", [address, "0x" + bytes(code).hex()])
    return contract_container.at(address)


# ------------------------------------------------------------------------------------------------
# Real networks


def _deploy_remote(network: Network, deployer: Any, log: Callable[[str], None]) -> manifests.Manifest:
    from ape import chain, project

    log(f"{network.name}: checking USDC.e at {network.usdc}")
    if not chain.provider.get_code(network.usdc):
        raise DeployError(f"no contract at the USDC.e address {network.usdc} on {network.name}")
    usdc = project.FiatTokenLocal.at(network.usdc)  # same ABI subset as FiatToken v2
    check_token_domain(usdc, network)
    balance = chain.provider.get_balance(deployer.address)
    if balance == 0:
        raise DeployError(f"deployer {deployer.address} has no CRO for gas on {network.name}")

    start_block = chain.blocks.head.number + 1
    record: dict[str, manifests.DeployedContract] = {
        "USDC": manifests.DeployedContract(address=network.usdc),
        "WCRO": manifests.DeployedContract(address=network.wcro),
    }
    if network.vvs_router:
        record["VVSRouter"] = manifests.DeployedContract(address=network.vvs_router)

    log(f"{network.name}: deploying Paygent from {deployer.address}")
    registry = deployer.deploy(project.ServiceRegistry)
    record["ServiceRegistry"] = _record(registry)
    router = deployer.deploy(project.PaymentRouter, registry, deployer, deployer, ROUTER_FEE_BPS, ROUTER_MAX_FEE_BPS)
    record["PaymentRouter"] = _record(router)
    return manifests.Manifest(
        network=network.name,
        chain_id=chain.chain_id,
        genesis_hash=_genesis_hash(),
        deployment_block=start_block,
        deployer=deployer.address,
        contracts=record,
    )


def check_token_domain(token: Any, network: Network) -> None:
    """The token's EIP-712 domain on chain must be the one x402 signatures will use.

    Reads name() and version(), and checks DOMAIN_SEPARATOR() equals the separator derived from them,
    the chain id and the token address — so signatures made from what we read will verify.
    """
    from ape import chain

    try:
        name = token.name()
        version = token.version()
        decimals = token.decimals()
        separator = bytes(token.DOMAIN_SEPARATOR())
    except Exception as exc:  # noqa: BLE001 - any failure here means "not the token we expect"
        raise DeployError(f"{token.address} on {network.name} does not answer as an EIP-3009 token: {exc}") from exc
    if decimals != USDC_DECIMALS:
        raise DeployError(f"USDC.e at {token.address} has {decimals} decimals, expected {USDC_DECIMALS}")
    if network.chain_id == 338 and name != USDC_DOMAIN_NAME:
        raise DeployError(f"USDC.e at {token.address} is named {name!r}, expected {USDC_DOMAIN_NAME!r}")
    expected = domain_separator(name, version, chain.chain_id, token.address)
    if separator != expected:
        raise DeployError(
            f"USDC.e at {token.address}: DOMAIN_SEPARATOR does not match (name {name!r}, version {version!r}, "
            f"chain {chain.chain_id}); refusing to deploy against it"
        )


def domain_separator(name: str, version: str, chain_id: int, address: str) -> bytes:
    typehash = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    return keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [typehash, keccak(text=name), keccak(text=version), chain_id, to_checksum_address(address)],
        )
    )


# ------------------------------------------------------------------------------------------------
# Choosing the network and the account (the CLI side)


def network_from_ape() -> Network:
    """Which Paygent network the connected ape provider is (ethereum:local -> local)."""
    from ape import chain

    net = chain.provider.network
    if net.name == "local":
        return LOCAL
    return get_network(f"{net.ecosystem.name}:{net.name}")


def resolve_deployer(network: Network, alias: str | None, env: dict[str, str] | None = None) -> Any:
    """The deploying account: ape's first test account locally; elsewhere the ape account `alias`
    (PAYGENT_DEPLOYER), unlocked non-interactively with APE_ACCOUNTS_<alias>_PASSPHRASE (ape's own
    variable, read from `env`, default the process environment)."""
    from ape import accounts

    env = dict(os.environ if env is None else env)
    if network.is_local:
        return accounts.test_accounts[0]
    if not alias:
        raise DeployError(
            f"deploying to {network.name} needs an ape account: set PAYGENT_DEPLOYER=<alias> "
            "(create one with `ape accounts import <alias>`) and APE_ACCOUNTS_<alias>_PASSPHRASE"
        )
    if alias not in accounts.aliases:
        known = ", ".join(accounts.aliases) or "none"
        raise DeployError(f"no ape account named {alias!r} (known: {known}); `ape accounts import {alias}`")
    account = accounts.load(alias)
    passphrase = env.get(f"APE_ACCOUNTS_{alias}_PASSPHRASE")
    if passphrase is None:
        raise DeployError(f"set APE_ACCOUNTS_{alias}_PASSPHRASE to unlock {alias!r} without a prompt")
    try:
        account.set_autosign(True, passphrase=passphrase)
    except Exception as exc:  # noqa: BLE001 - ape raises several types; the message must not leak the key
        raise DeployError(f"could not unlock ape account {alias!r}: wrong passphrase?") from exc
    return account


def summary(result: DeployResult) -> str:
    m = result.manifest
    rows = [("contract", "address", "block")]
    rows += [(name, c.address, "" if c.block is None else str(c.block)) for name, c in sorted(m.contracts.items())]
    rows += [(f"demo {k}", str(v), "") for k, v in sorted(m.demo.items())]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"Paygent on {m.network} (chain id {m.chain_id}, from block {m.deployment_block})"]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in width))
    lines.append("changed: " + ("yes" if result.changed else "no (already deployed)"))
    return "\n".join(lines)
