"""Fixtures and helpers shared by the AgentWallet unit tests (tests/contracts/test_agent_wallet_*.py).

Import the fixtures a module needs by name (pytest collects fixtures imported into a test module).

Strict assertions, on purpose:
* `reverts_with(error, **inputs)` requires exactly that custom error and EVERY one of its inputs
  (ape's own `reverts` silently skips unknown input names and accepts a string revert when a custom
  error was expected, so a typo would make a test that cannot fail).
* `logs(receipt)` lists every log of the transaction, from every contract, in order, as
  (emitter address, event name, arguments): tests compare it with the full expected list.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from ape.exceptions import ContractLogicError
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

ZERO = "0x0000000000000000000000000000000000000000"
NATIVE = ZERO
DAY = 86_400
USDC = 10**6
CRO = 10**18
UINT96_MAX = 2**96 - 1
TTL = DAY

# The rules the `wallet` fixture gives `agent`.
USDC_LIMIT, USDC_CAP, USDC_FLOAT = 100 * USDC, 40 * USDC, 10 * USDC
CRO_LIMIT, CRO_CAP, CRO_FLOAT = 5 * CRO, 2 * CRO, 3 * CRO
WALLET_USDC = 1_000 * USDC
WALLET_CRO = 20 * CRO

# RequestStatus
NONE, PENDING, EXECUTED, REJECTED, CANCELLED, EXPIRED = range(6)

PAY_TYPE = "Pay(address agent,address token,address to,uint256 amount,bytes32 ref,uint256 nonce,uint256 deadline)"
PROPOSE_TYPE = (
    "Propose(address agent,address token,address to,uint256 amount,bytes32 ref,uint256 nonce,uint256 deadline)"
)
INTENT_FIELDS = [
    {"name": "agent", "type": "address"},
    {"name": "token", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "ref", "type": "bytes32"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

REF = keccak(text="invoice-1")


# ------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def payee(accounts):
    """Someone the agent pays (holds no role in the wallet)."""
    return accounts[7]


@pytest.fixture(scope="session")
def agent2(accounts):
    """A second agent key of the same wallet."""
    return accounts[6]


@pytest.fixture
def bare_wallet(project, owner):
    """A freshly deployed wallet: owner set, request TTL one day, nothing else."""
    return owner.deploy(project.AgentWallet, owner, TTL)


@pytest.fixture
def wallet(bare_wallet, owner, agent, usdc, payee):
    """`agent` is active with rules for USDC.e (limit 100, cap 40, float 10 per UTC day) and CRO
    (limit 5, cap 2 per UTC day); the wallet holds 1,000 USDC.e and 20 CRO; the payee already holds
    USDC.e (so payments to it are the steady-state case)."""
    w = bare_wallet
    w.addAgent(agent, sender=owner)
    w.setRule(agent, usdc, USDC_LIMIT, USDC_CAP, DAY, USDC_FLOAT, sender=owner)
    w.setRule(agent, NATIVE, CRO_LIMIT, CRO_CAP, DAY, CRO_FLOAT, sender=owner)
    usdc.mint(w, WALLET_USDC, sender=owner)
    usdc.mint(payee, 1 * USDC, sender=owner)
    owner.transfer(w, WALLET_CRO)
    return w


POOL_USDC = 100_000 * USDC
POOL_WCRO = 1_000_000 * CRO


@pytest.fixture
def factory(project, owner):
    return owner.deploy(project.VVSFactory, owner)


@pytest.fixture
def vvs(project, owner, factory, wcro):
    """The local VVS router (UniswapV2 Router02), over `factory` and `wcro`."""
    return owner.deploy(project.VVSRouter, factory, wcro)


@pytest.fixture
def pool(project, chain, owner, usdc, wcro, factory, vvs):
    """A USDC.e/WCRO pair holding 100,000 USDC.e and 1,000,000 WCRO (1 USDC.e ~ 10 WCRO)."""
    chain.set_balance(owner, 3 * POOL_WCRO)
    usdc.mint(owner, POOL_USDC, sender=owner)
    wcro.deposit(sender=owner, value=POOL_WCRO)
    usdc.approve(vvs, POOL_USDC, sender=owner)
    wcro.approve(vvs, POOL_WCRO, sender=owner)
    vvs.addLiquidity(usdc, wcro, POOL_USDC, POOL_WCRO, 0, 0, owner, chain.pending_timestamp + 3600, sender=owner)
    return project.VVSPair.at(factory.getPair(usdc, wcro))


@pytest.fixture
def swap_wallet(wallet, owner, agent, wcro, vvs, pool):
    """`wallet` with the VVS router allowlisted, a WCRO rule for `agent` (limit 1,000, cap 400 per
    day) and 500 WCRO in the wallet."""
    wallet.setRouter(vvs, True, sender=owner)
    wallet.setRule(agent, wcro, 1_000 * CRO, 400 * CRO, DAY, 0, sender=owner)
    wcro.deposit(sender=owner, value=500 * CRO)
    wcro.transfer(wallet, 500 * CRO, sender=owner)
    return wallet


def amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """UniswapV2's exact-input formula with the 0.3% fee."""
    with_fee = amount_in * 997
    return with_fee * reserve_out // (reserve_in * 1000 + with_fee)


# ------------------------------------------------------------------------------------------------
# Helpers


def addr(x: Any) -> str:
    """A checksum address from an account, a contract or a string."""
    return to_checksum_address(x if isinstance(x, str) else x.address)


def _norm(value: Any) -> Any:
    if hasattr(value, "address"):
        return addr(value)
    if isinstance(value, (bytes, bytearray)):
        return HexBytes(value)
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    return value


def norm_args(args: dict) -> dict:
    return {k: _norm(v) for k, v in dict(args).items()}


@contextmanager
def reverts_with(error: Any, **inputs: Any) -> Iterator[None]:
    """The block must revert with exactly custom error `error` and exactly these inputs (all of them)."""
    try:
        yield
    except ContractLogicError as exc:
        name = getattr(exc, "name", None)
        assert name == error.__name__, f"expected {error.__name__}{inputs}, got {name or exc.message!r}"
        actual = norm_args(getattr(exc, "inputs", {}) or {})
        assert actual == norm_args(inputs), f"{name}: inputs {actual} != expected {norm_args(inputs)}"
    else:
        raise AssertionError(f"expected revert {error.__name__}{inputs}, the call succeeded")


@contextmanager
def reverts_with_data(expected: str) -> Iterator[None]:
    """The block must revert with exactly this revert data (hex), e.g. an error bubbled up from another
    contract that ape cannot name (build it with `error_data`)."""
    try:
        yield
    except ContractLogicError as exc:
        actual = str(exc.message).lower()
        assert actual == expected.lower(), f"revert data {actual} != expected {expected}"
    else:
        raise AssertionError(f"expected revert {expected}, the call succeeded")


def logs(receipt: Any) -> list[tuple[str, str, dict]]:
    """Every log of the transaction in order: (emitter, event name, arguments)."""
    return [(addr(log.contract_address), log.event_name, norm_args(log.event_arguments)) for log in receipt.events]


def ev(emitter: Any, name: str, **args: Any) -> tuple[str, str, dict]:
    """An expected log for comparison with `logs(receipt)`."""
    return (addr(emitter), name, norm_args(args))


def error_data(contract_type: Any, name: str, *args: Any) -> str:
    """The revert data of custom error `name`(args) from the ABI: selector + ABI-encoded arguments."""
    (abi,) = [e for e in contract_type.abi if e.type == "error" and e.name == name]
    types = [i.canonical_type for i in abi.inputs]
    selector = keccak(text=f"{name}({','.join(types)})")[:4]
    return "0x" + (selector + encode(types, [_norm(a) for a in args])).hex()


def deploy_revert_data(chain: Any, container: Any, sender: Any, *args: Any) -> str:
    """What deploying `container`(args) reverts with (ape cannot decode constructor reverts)."""
    from web3.exceptions import ContractCustomError

    ctor = container.contract_type.constructor
    data = container.contract_type.deployment_bytecode.bytecode + encode(
        [i.canonical_type for i in ctor.inputs], [_norm(a) for a in args]
    ).hex()
    try:
        chain.provider.web3.eth.call({"from": addr(sender), "data": data})
    except ContractCustomError as exc:
        return str(exc.data)
    raise AssertionError("the deployment did not revert")


def storage_word(chain: Any, contract: Any, slot: int) -> int:
    return int.from_bytes(bytes(chain.provider.get_storage(addr(contract), slot)), "big")


def mapping_slot(key: Any, slot: int) -> int:
    """Storage slot of mapping[key] for a mapping at `slot` (address or uint256 key)."""
    k = int(addr(key), 16) if not isinstance(key, int) else key
    return int.from_bytes(keccak(encode(["uint256", "uint256"], [k, slot])), "big")


def at(chain: Any, timestamp: int) -> int:
    """The next transaction is mined at `timestamp`."""
    chain.pending_timestamp = timestamp
    return timestamp


def next_day(chain: Any, days: int = 1) -> int:
    """Start of a UTC day (a window edge for period = 1 day) at least `days` edges ahead of now."""
    return (chain.pending_timestamp // DAY + days) * DAY


def balance(token: Any, who: Any) -> int:
    """ERC-20 balance, or the native balance when token is NATIVE."""
    from ape import chain

    if isinstance(token, str) and token == NATIVE:
        return chain.provider.get_balance(addr(who))
    return int(token.balanceOf(who))


# ------------------------------------------------------------------------------------------------
# Keys and EIP-712 (the keys of ape's public test mnemonic: local chains only)


def test_mnemonic() -> str:
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "ape-config.yaml").read_text())
    return config["test"]["mnemonic"]


test_mnemonic.__test__ = False  # not a test


@lru_cache(maxsize=None)
def key_of(index: int) -> Any:
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(test_mnemonic(), account_path=f"m/44'/60'/0'/0/{index}")


def sign_intent(key: Any, wallet: Any, chain_id: int, primary: str, message: dict) -> bytes:
    """EIP-712 signature (r || s || v) of a Pay or Propose intent for `wallet`."""
    domain = {"name": "Paygent AgentWallet", "version": "1", "chainId": chain_id, "verifyingContract": addr(wallet)}
    signed = Account.sign_typed_data(key.key, domain, {primary: INTENT_FIELDS}, message)
    return bytes(signed.signature)
