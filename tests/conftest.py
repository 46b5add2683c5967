"""Shared fixtures: named accounts and fresh Cronos stand-ins on the test session's private anvil.

Ape isolates every test in a chain snapshot, so function-scoped deployments cost one deploy and
are reverted afterwards.
"""

import pytest

USDC_NAME = "Bridged USDC (Stargate)"
USDC_SYMBOL = "USDC.e"
USDC_DECIMALS = 6
ONE_USDC = 10**USDC_DECIMALS


@pytest.fixture(scope="session")
def owner(accounts):
    """The person who funds an AgentWallet and sets its rules."""
    return accounts[0]


@pytest.fixture(scope="session")
def agent(accounts):
    """An agent key of the owner's wallet (also its hot key for x402 signatures)."""
    return accounts[1]


@pytest.fixture(scope="session")
def provider(accounts):
    """A service provider registered in the ServiceRegistry."""
    return accounts[2]


@pytest.fixture(scope="session")
def payer(accounts):
    """Someone paying for a service directly (not through a wallet)."""
    return accounts[3]


@pytest.fixture(scope="session")
def stranger(accounts):
    """An account with no role anywhere: every privileged call from it must revert."""
    return accounts[4]


@pytest.fixture(scope="session")
def fee_recipient(accounts):
    return accounts[5]


@pytest.fixture
def usdc(project, owner):
    """The local USDC.e stand-in (6 decimals, EIP-3009, EIP-2612), at a fresh address."""
    token = owner.deploy(project.FiatTokenLocal)
    token.initialize(USDC_NAME, USDC_SYMBOL, USDC_DECIMALS, owner, sender=owner)
    return token


@pytest.fixture
def wcro(project, owner):
    return owner.deploy(project.WCRO)


class Stack:
    """The whole local deployment (what `ape run deploy` builds), as ape contract instances."""

    def __init__(self, project, manifest):
        self.manifest = manifest
        m = manifest
        self.usdc = project.FiatTokenLocal.at(m.address("USDC"))
        self.wcro = project.WCRO.at(m.address("WCRO"))
        self.factory = project.VVSFactory.at(m.address("VVSFactory"))
        self.vvs = project.VVSRouter.at(m.address("VVSRouter"))
        self.registry = project.ServiceRegistry.at(m.address("ServiceRegistry"))
        self.router = project.PaymentRouter.at(m.address("PaymentRouter"))
        self.wallet = project.AgentWallet.at(m.address("AgentWallet"))
        self.service_ids = {k.split(":", 1)[1]: v for k, v in m.demo.items() if k.startswith("service:")}


@pytest.fixture(scope="module")
def stack(project, accounts, tmp_path_factory):
    """Deploy the full local stack once per test module (ape reverts each test's changes, and the
    whole deployment at the end of the module, so the Cronos testnet addresses are free again for
    modules that test placing stand-ins there)."""
    from paygent.deployment import deploy
    from paygent.networks import LOCAL

    directory = tmp_path_factory.mktemp("deployments")
    result = deploy(LOCAL, accounts[0], directory=directory, accounts=accounts, log=lambda _msg: None)
    return Stack(project, result.manifest)
