"""`ape run deploy`: what it builds, that it is idempotent, and that bad input stops it cleanly.

The CLI tests run the real command in a subprocess against a private anvil (tools/anvil, chain id
338); the real-network path runs in-process against this session's chain, where the stand-ins sit at
the Cronos testnet addresses exactly as the real tokens do on testnet.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from paygent import manifest as manifests
from paygent.deployment import (
    DEMO_CAP,
    DEMO_LIMIT,
    DEMO_WALLET_FUNDING,
    DeployError,
    check_token_domain,
    deploy,
    place_standin,
    resolve_deployer,
)
from paygent.localchain import LocalChain
from paygent.networks import CRONOS_TESTNET, LOCAL, UnknownNetworkError, get_network

ROOT = Path(__file__).resolve().parents[2]
APE = str(Path(sys.executable).with_name("ape"))


def run_deploy(url: str, directory: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PAYGENT_")}
    environ.update(APE_FOUNDRY_HOST=url, PAYGENT_DEPLOYMENTS_DIR=str(directory), **(env or {}))
    return subprocess.run(
        [APE, "run", "deploy", *extra], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def node():
    with LocalChain() as chain:
        yield chain


@pytest.fixture(scope="module")
def first_deploy(node, tmp_path_factory):
    directory = tmp_path_factory.mktemp("deployments")
    result = run_deploy(node.url, directory)
    return directory, result


# --- the command, end to end ------------------------------------------------------------------


def test_first_local_deploy_writes_a_manifest_and_prints_the_addresses(first_deploy):
    directory, result = first_deploy
    assert result.returncode == 0, result.stderr
    manifest = manifests.load("local", directory)
    assert manifest is not None and manifest.chain_id == 338
    for name in ("USDC", "WCRO", "Multicall3", "VVSFactory", "VVSRouter", "ServiceRegistry", "PaymentRouter",
                 "AgentWallet"):
        assert manifest.address(name) in result.stdout
    assert manifest.address("USDC") == LOCAL.usdc
    assert manifest.address("WCRO") == LOCAL.wcro
    assert "changed: yes" in result.stdout


def test_second_deploy_changes_nothing(node, first_deploy):
    directory, _ = first_deploy
    path = manifests.manifest_path("local", directory)
    before = path.read_bytes()
    block_before = _block_number(node.url)
    again = run_deploy(node.url, directory)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout and "changed: no" in again.stdout
    assert path.read_bytes() == before
    assert _block_number(node.url) == block_before  # not one transaction sent


def test_manifest_from_a_restarted_chain_is_refused_and_kept(first_deploy, tmp_path):
    directory, _ = first_deploy
    copy = tmp_path / "deployments"
    copy.mkdir()
    original = manifests.manifest_path("local", directory).read_bytes()
    (copy / "local.json").write_bytes(original)
    with LocalChain() as other:  # a new chain: other genesis, nothing deployed
        result = run_deploy(other.url, copy)
    assert result.returncode == 1
    assert "another genesis block" in result.stderr
    assert (copy / "local.json").read_bytes() == original


def test_contract_missing_at_recorded_address_stops_with_clear_message(node, first_deploy, tmp_path):
    directory, _ = first_deploy
    manifest = manifests.load("local", directory)
    manifest.contracts["PaymentRouter"].address = "0x000000000000000000000000000000000000dEaD"
    copy = tmp_path / "deployments"
    manifests.save(manifest, copy)
    before = (copy / "local.json").read_bytes()
    result = run_deploy(node.url, copy)
    assert result.returncode == 1
    assert "PaymentRouter is missing at 0x000000000000000000000000000000000000dEaD" in result.stderr
    assert (copy / "local.json").read_bytes() == before


def test_chain_id_that_is_not_the_network_s_stops_before_sending_anything(tmp_path):
    with LocalChain(extra_args=["--chain-id", "31337"]) as wrong:
        result = run_deploy(wrong.url, tmp_path)
        assert _block_number(wrong.url) == 0
    assert result.returncode == 1
    assert "chain id 31337" in result.stderr and "338" in result.stderr
    assert not any(tmp_path.iterdir())


def test_corrupt_manifest_is_an_error_not_a_redeploy(node, tmp_path):
    (tmp_path / "local.json").write_text("{not json")
    result = run_deploy(node.url, tmp_path)
    assert result.returncode == 1
    assert "unreadable" in result.stderr
    assert (tmp_path / "local.json").read_text() == "{not json"


def test_a_manifest_with_a_bad_address_is_refused_in_one_line(first_deploy, tmp_path):
    directory, _result = first_deploy
    data = json.loads((directory / "local.json").read_text())
    data["contracts"]["AgentWallet"]["address"] = "0x1234"
    (tmp_path / "local.json").write_text(json.dumps(data))
    with pytest.raises(manifests.ManifestError) as err:
        manifests.load("local", tmp_path)
    message = str(err.value)
    assert "contracts.AgentWallet.address" in message and "'0x1234' is not an address" in message
    assert "\n" not in message and "pydantic" not in message


def test_manifests_are_written_readable_by_the_keeper_s_user(first_deploy):
    directory, _result = first_deploy
    assert (directory / "local.json").stat().st_mode & 0o777 == 0o644


def test_an_unwritable_manifest_directory_stops_before_anything_is_sent(testnet_like, owner, chain, tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    nonce = owner.nonce
    with pytest.raises(manifests.ManifestError, match="cannot write deployment manifests in"):
        deploy(CRONOS_TESTNET, owner, directory=tmp_path / "afile" / "sub", log=lambda _m: None)
    assert owner.nonce == nonce  # no contract orphaned


# --- what the local deploy builds ---------------------------------------------------------------


def test_local_stack_has_demo_services_wallet_rules_and_liquidity(stack, agent, provider):
    usdc, wallet = stack.usdc, stack.wallet
    assert usdc.address == LOCAL.usdc and usdc.decimals() == 6
    assert wallet.rule(agent, usdc).limit == DEMO_LIMIT
    assert wallet.rule(agent, usdc).cap == DEMO_CAP
    assert wallet.isRouterAllowed(stack.vvs)
    assert usdc.balanceOf(wallet) == DEMO_WALLET_FUNDING
    assert set(stack.service_ids) == {"vvs-price-oracle", "premium-price-oracle"}
    for service_id in stack.service_ids.values():
        service = stack.registry.getService(service_id)
        assert service.active and service.provider == provider.address and service.token == usdc.address
    amounts = stack.vvs.getAmountsOut(10**6, [usdc, stack.wcro])
    assert amounts[1] > 0  # the pool quotes


# --- the real-network path (no stand-ins deployed, token domain checked) ------------------------


@pytest.fixture
def testnet_like(project, owner, chain):
    """This session's chain holding the USDC.e stand-in at the testnet address, as testnet does."""
    if not chain.provider.get_code(CRONOS_TESTNET.usdc):
        token = place_standin(project.FiatTokenLocal, CRONOS_TESTNET.usdc, owner)
        token.initialize("Bridged USDC (Stargate)", "USDC.e", 6, owner, sender=owner)
    return project.FiatTokenLocal.at(CRONOS_TESTNET.usdc)


def test_real_network_path_deploys_core_contracts_against_the_existing_token(testnet_like, owner, chain, tmp_path):
    code_before = chain.provider.get_code(CRONOS_TESTNET.usdc)
    result = deploy(CRONOS_TESTNET, owner, directory=tmp_path, log=lambda _m: None)
    assert result.changed
    m = result.manifest
    assert set(m.contracts) == {"USDC", "WCRO", "ServiceRegistry", "PaymentRouter"}
    assert m.contracts["USDC"].tx_hash is None  # not ours: never deployed
    assert chain.provider.get_code(CRONOS_TESTNET.usdc) == code_before
    assert json.loads((tmp_path / "cronos-testnet.json").read_text())["network"] == "cronos-testnet"
    again = deploy(CRONOS_TESTNET, owner, directory=tmp_path, log=lambda _m: None)
    assert not again.changed


def test_real_network_path_refuses_a_token_with_another_domain(project, owner, tmp_path):
    impostor = owner.deploy(project.FiatTokenLocal)
    impostor.initialize("USD Coin", "USDC", 6, owner, sender=owner)
    network = dataclasses.replace(CRONOS_TESTNET, usdc=impostor.address)
    with pytest.raises(DeployError, match="named 'USD Coin'"):
        deploy(network, owner, directory=tmp_path, log=lambda _m: None)
    assert not any(tmp_path.iterdir())


def test_real_network_path_refuses_when_no_token_is_at_the_address(owner, tmp_path):
    network = dataclasses.replace(CRONOS_TESTNET, usdc="0x000000000000000000000000000000000000bEEF")
    with pytest.raises(DeployError, match="no contract at the USDC.e address"):
        deploy(network, owner, directory=tmp_path, log=lambda _m: None)
    assert not any(tmp_path.iterdir())


def test_real_network_path_refuses_a_deployer_without_gas(testnet_like, accounts, tmp_path):
    broke = accounts.generate_test_account()
    with pytest.raises(DeployError, match="no CRO for gas"):
        deploy(CRONOS_TESTNET, broke, directory=tmp_path, log=lambda _m: None)


def test_token_domain_check_accepts_the_stand_in(testnet_like):
    check_token_domain(testnet_like, CRONOS_TESTNET)


# --- choosing network and account ----------------------------------------------------------------


def test_real_network_without_an_account_is_refused_with_a_hint():
    with pytest.raises(DeployError, match="PAYGENT_DEPLOYER"):
        resolve_deployer(CRONOS_TESTNET, None, env={})


def test_unknown_ape_account_alias_is_refused():
    with pytest.raises(DeployError, match="no ape account named 'nobody-here'"):
        resolve_deployer(CRONOS_TESTNET, "nobody-here", env={})


@pytest.mark.parametrize("name", ["ethereum:sepolia", "polygon", "", "cronos:devnet"])
def test_unknown_network_names_are_refused(name):
    with pytest.raises(UnknownNetworkError, match="unknown network"):
        get_network(name)


@pytest.mark.parametrize(
    "name,expected",
    [("local", LOCAL), ("cronos:testnet:node", CRONOS_TESTNET), ("cronos-testnet", CRONOS_TESTNET)],
)
def test_known_network_names_resolve(name, expected):
    assert get_network(name) is expected


def _block_number(url: str) -> int:
    from paygent.localchain import rpc

    return int(rpc(url, "eth_blockNumber"), 16)
