"""x402 facilitator: verify and settle EIP-3009 payments on Cronos (or the local chain).

HTTP (a Starlette app, mounted by the keeper or run alone with `python -m keeper.facilitator`):
  POST /verify, POST /settle, GET /supported          x402 v1 and v2 messages
  POST /v2/x402/verify|settle, GET /v2/x402/supported  the Cronos facilitator variant
  GET  /payments/{id}                                  settled / failed / pending (id = EIP-3009 nonce)

Verification answers a reason code (the reference SDK's spellings); an exception is a bug or an
infrastructure failure and becomes a 5xx, never an "invalid" verdict.

Settlement records an intent (keeper.intents) before anything is broadcast; the signed transaction
is stored before it is sent. Authorizations made out to the PaymentRouter are
ReceiveWithAuthorization and go through `router.settleAuthorization(serviceId, ...)`; all others
are TransferWithAuthorization sent to the token. The same authorization settled twice, or
concurrently, moves money once; an RPC timeout answers "pending" and is reconciled from the chain.

With several keepers on one PostgreSQL database only the leader settles: a follower answers
/settle with 503 {"error": "not_leader"} and Retry-After (the payer's authorization is untouched:
retry it, against the leader or later), and its /payments/{id} reports without reconciling.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from eth_hash.auto import keccak
from eth_utils import event_abi_to_log_topic, function_abi_to_4byte_selector, to_checksum_address
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from paygent.eip3009 import (
    AuthorizationKind,
    AuthorizationMessage,
    DomainMismatchError,
    TokenDomain,
    digest,
    nonce_service,
    recover,
)
from paygent.networks import Network, network_for_x402
from paygent.wire import cronos, v1, v2
from paygent.wire.common import WireError, decode_header, parse_json, parse_model, same_address
from paygent.wire.exact import NONCE_USED, ExactEvmPayload, Extra
from keeper import db as dbapi
from keeper.intents import ANY_TX, Intent, IntentKey, IntentStore, Status

log = logging.getLogger("paygent.facilitator")

# Reason codes — the reference SDK's spellings where it has one.
UNSUPPORTED_SCHEME = "unsupported_scheme"
UNSUPPORTED_NETWORK = "unsupported_network"
NETWORK_MISMATCH = "network_mismatch"
INVALID_SIGNATURE = "invalid_exact_evm_payload_signature"
RECIPIENT_MISMATCH = "invalid_exact_evm_payload_recipient_mismatch"
VALUE_MISMATCH = "invalid_exact_evm_payload_authorization_value_mismatch"
VALID_BEFORE = "invalid_exact_evm_payload_authorization_valid_before"
VALID_AFTER = "invalid_exact_evm_payload_authorization_valid_after"
INSUFFICIENT_BALANCE = "invalid_exact_evm_insufficient_balance"
TOKEN_NAME_MISMATCH = "invalid_exact_evm_token_name_mismatch"
TOKEN_VERSION_MISMATCH = "invalid_exact_evm_token_version_mismatch"
ASSET_INFO = "invalid_exact_evm_failed_to_get_asset_info"
TRANSACTION_FAILED = "transaction_failed"
SETTLEMENT_PENDING = "settlement_pending"
# Paygent's own (no reference equivalent).
UNSUPPORTED_ASSET = "unsupported_asset"
ASSET_MISMATCH = "asset_mismatch"
MISSING_SERVICE_ID = "missing_service_id"
SERVICE_INACTIVE = "service_inactive"
SERVICE_TERMS_MISMATCH = "service_terms_mismatch"
NONCE_NOT_BOUND = "nonce_not_bound_to_service"
INVALID_PAYLOAD = "invalid_payload"
INVALID_PAYMENT_HEADER = "invalid_payment_header"

_REVERTS = (
    ("authorization is expired", VALID_BEFORE),
    ("authorization is not yet valid", VALID_AFTER),
    ("authorization is used", NONCE_USED),
    ("transfer amount exceeds balance", INSUFFICIENT_BALANCE),
    ("invalid signature", INVALID_SIGNATURE),
    ("serviceinactive", SERVICE_INACTIVE),
    ("amountmismatch", VALUE_MISMATCH),
    ("noncenotboundtoservice", NONCE_NOT_BOUND),
)


def reason_for_revert(message: str) -> str:
    """Map a token / router revert message to a reason code (FiatToken's strings)."""
    lowered = message.lower()
    for needle, reason in _REVERTS:
        if needle in lowered:
            return reason
    return TRANSACTION_FAILED


class InfrastructureError(RuntimeError):
    """The chain or the store could not be reached; nothing was decided. HTTP 503."""


class NotLeader(InfrastructureError):
    """This keeper is a follower; settlement runs on the leader. HTTP 503 not_leader."""


NOT_LEADER_RETRY_AFTER = 2
"""Seconds a client is told to wait before retrying a settle a follower refused."""


class SimulationReverted(RuntimeError):
    """The settlement transaction would revert (found before broadcast; nothing was sent)."""


# ------------------------------------------------------------------------------------------------
# The normalized payment every wire form becomes


@dataclass(frozen=True)
class Payment:
    """One payment to verify or settle, whatever wire form it came in."""

    x402_version: int
    scheme: str
    """Scheme the payer signed for (v1 top-level, v2 accepted.scheme)."""
    network: str
    """Network the payer signed for."""
    requirements_scheme: str
    requirements_network: str
    asset: str
    amount: int
    pay_to: str
    extra: Extra
    payload: ExactEvmPayload
    request_hash: str
    """keccak of the requirements the seller sent (they name the resource): binds the intent."""
    accepted_asset: str | None = None

    @property
    def payer(self) -> str:
        return self.payload.authorization.from_

    @property
    def nonce(self) -> str:
        return self.payload.authorization.nonce

    @property
    def key(self) -> IntentKey:
        return IntentKey.of(self.asset, self.payer, self.nonce)

    @classmethod
    def from_v1(cls, payload: v1.PaymentPayload, requirements: v1.PaymentRequirements) -> "Payment":
        return cls(
            x402_version=1, scheme=payload.scheme, network=payload.network,
            requirements_scheme=requirements.scheme, requirements_network=requirements.network,
            asset=requirements.asset, amount=int(requirements.max_amount_required), pay_to=requirements.pay_to,
            extra=requirements.extra or Extra(), payload=payload.payload,
            request_hash=request_hash(requirements),
        )

    @classmethod
    def from_v2(cls, payload: v2.PaymentPayload, requirements: v2.PaymentRequirements) -> "Payment":
        resource = payload.resource.url if payload.resource else ""
        return cls(
            x402_version=2, scheme=payload.accepted.scheme, network=payload.accepted.network,
            requirements_scheme=requirements.scheme, requirements_network=requirements.network,
            asset=requirements.asset, amount=int(requirements.amount), pay_to=requirements.pay_to,
            extra=requirements.extra, payload=payload.payload,
            request_hash=request_hash(requirements, resource), accepted_asset=payload.accepted.asset,
        )

    @classmethod
    def from_cronos(cls, header: cronos.PaymentHeader, requirements: v1.PaymentRequirements) -> "Payment":
        return cls(
            x402_version=1, scheme=header.scheme, network=header.network,
            requirements_scheme=requirements.scheme, requirements_network=requirements.network,
            asset=requirements.asset, amount=int(requirements.max_amount_required), pay_to=requirements.pay_to,
            extra=requirements.extra or Extra(), payload=header.payload.to_exact(),
            request_hash=request_hash(requirements), accepted_asset=header.payload.asset,
        )


def request_hash(requirements: v1.PaymentRequirements | v2.PaymentRequirements, resource: str = "") -> str:
    """The hash an intent is bound to: the seller's requirements (v1 name the resource; for v2 the
    resource URL is added)."""
    return "0x" + keccak((resource + "\n" + requirements.to_json()).encode()).hex()


# ------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Verdict:
    is_valid: bool
    reason: str | None = None
    message: str | None = None
    payer: str | None = None
    kind: AuthorizationKind | None = None


@dataclass(frozen=True)
class Settlement:
    status: Status
    payer: str
    network: str
    amount: int
    payment_id: str
    transaction: str = ""
    reason: str | None = None

    @property
    def success(self) -> bool:
        return self.status is Status.SETTLED


# ------------------------------------------------------------------------------------------------
# The chain side


@dataclass(frozen=True)
class ServiceTerms:
    active: bool
    model: int
    token: str
    price: int
    period: int
    pay_to: str


@dataclass(frozen=True)
class ChainView:
    timestamp: int
    balance: int
    authorization_used: bool
    terms: ServiceTerms | None = None


@dataclass(frozen=True)
class SettlementCall:
    kind: AuthorizationKind
    token: str
    message: AuthorizationMessage
    signature: bytes
    service_id: int | None = None
    ref: bytes = bytes(32)


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    succeeded: bool
    block_number: int


class FacilitatorBackend(Protocol):
    """What the facilitator needs from the chain."""

    chain_id: int
    router: str | None
    relayer: str

    def domain(self, token: str) -> TokenDomain: ...

    def view(self, token: str, payer: str, nonce: bytes, service_id: int | None) -> ChainView: ...

    def send(self, call: SettlementCall, before_broadcast: Callable[[str, str], bool]) -> str:
        """Simulate, sign, call `before_broadcast(tx_hash, raw_tx)` (False → do not send), send.
        Raises SimulationReverted when the call would revert (nothing sent)."""
        ...

    def wait(self, tx_hash: str, timeout: float) -> Receipt | None: ...

    def rebroadcast(self, raw_tx: str) -> None: ...

    def superseded(self, tx_hash: str, raw_tx: str) -> bool:
        """True if the signed transaction can never be mined: its sender's nonce went to another
        transaction that is mined (e.g. sent by another keeper with the same relayer key)."""
        ...

    def resend(self, raw_tx: str, before_broadcast: Callable[[str, str], bool]) -> str:
        """Send the call of a superseded transaction again, with a fresh nonce, like `send`."""
        ...

    def authorization_used(self, token: str, payer: str, nonce: bytes) -> bool: ...

    def authorization_use(self, token: str, payer: str, nonce: bytes, payee: str, value: int,
                          service_id: int | None = None) -> str | None:
        """The transaction in which THIS authorization moved the money: the token's
        AuthorizationUsed(payer, nonce) log directly followed by its Transfer(payer -> payee, value)
        (FiatToken emits them in that order for one authorization), and for a router payment
        (`service_id`) the router's PaymentMade for that service, payer and amount in the same
        transaction — within the last AUTHORIZATION_LOOKBACK blocks; None if there is none. RPC
        errors propagate."""
        ...


AUTHORIZATION_LOOKBACK = 20_000
"""Blocks searched for an authorization's use (~30 h on Cronos): authorizations live minutes."""
USE_LOOKUP_GRACE = 120.0
"""Seconds a used-but-not-found authorization stays pending before it is closed as used elsewhere."""
LOOKBACK_STEP = 2_000
"""Blocks per eth_getLogs call of that search (public Cronos RPCs refuse wider ranges)."""


def _topic(abi: list[dict[str, Any]], name: str) -> str:
    """topic0 of event `name` of a compiled ABI."""
    return "0x" + event_abi_to_log_topic(next(e for e in abi if e.get("type") == "event" and e["name"] == name)).hex()


def _hex(value: Any) -> str:
    return (value if isinstance(value, str) else "0x" + bytes(value).hex()).lower()


def _word_of(address: str) -> str:
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")

_SENDER_LOCKS: dict[str, threading.Lock] = {}
_SENDER_LOCKS_GUARD = threading.Lock()


def sender_lock(address: str) -> threading.Lock:
    """One lock per sending address in this process: whoever signs for it (the facilitator, the
    jobs, the renewal backend) reads its pending nonce and broadcasts under this lock, so two
    transactions never take the same nonce."""
    key = address.lower()
    with _SENDER_LOCKS_GUARD:
        lock = _SENDER_LOCKS.get(key)
        if lock is None:
            lock = _SENDER_LOCKS[key] = threading.Lock()
        return lock


class Web3Backend:
    """FacilitatorBackend over web3.py, with ABIs from the compiled artifacts."""

    _TRANSFER_SIG = ("transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,"
                     "uint8,bytes32,bytes32)")

    def __init__(self, w3: Any, relayer: Any, *, router: str | None = None, registry: str | None = None,
                 poll_latency: float = 0.02, chain_id: int | None = None):
        """`chain_id`: the deployment's (the keeper passes its manifest's, so it starts while the RPC
        is down); None asks the node now."""
        from paygent.artifacts import abi
        from paygent.eip3009 import DomainReader

        self._w3 = w3
        self._relayer = relayer
        self.relayer = relayer.address
        self.chain_id = int(chain_id if chain_id is not None else w3.eth.chain_id)
        self.router = to_checksum_address(router) if router else None
        self._token_abi = abi("FiatTokenLocal")
        self._router_abi = abi("PaymentRouter") if router else None
        self._registry = (w3.eth.contract(address=to_checksum_address(registry), abi=abi("ServiceRegistry"))
                          if registry else None)
        self._domains = DomainReader(w3)
        self._tokens: dict[str, Any] = {}
        self._selectors = {fn["name"]: function_abi_to_4byte_selector(fn) for fn in self._token_abi
                           if fn.get("type") == "function" and fn["name"] in ("balanceOf", "authorizationState")}
        self._send_lock = sender_lock(self.relayer)
        # What authorization_use looks for, from the artifacts: the token's two events, the router's
        # PaymentMade and the data word that holds its amount.
        self._used_topic = _topic(self._token_abi, "AuthorizationUsed")
        self._transfer_topic = _topic(self._token_abi, "Transfer")
        if self._router_abi is not None:
            paid = next(e for e in self._router_abi if e.get("type") == "event" and e["name"] == "PaymentMade")
            self._paid_topic = _topic(self._router_abi, "PaymentMade")
            self._paid_amount_word = [i["name"] for i in paid["inputs"] if not i.get("indexed")].index("amount")
        self._poll = poll_latency
        self._gas_price: tuple[float, int] | None = None

    def __repr__(self) -> str:
        return f"Web3Backend(chain {self.chain_id}, relayer {self.relayer})"

    def _token(self, token: str) -> Any:
        address = to_checksum_address(token)
        contract = self._tokens.get(address)
        if contract is None:
            contract = self._tokens[address] = self._w3.eth.contract(address=address, abi=self._token_abi)
        return contract

    def domain(self, token: str) -> TokenDomain:
        return self._domains.domain(token)

    def view(self, token: str, payer: str, nonce: bytes, service_id: int | None) -> ChainView:
        """Chain time, balance and authorizationState in one JSON-RPC batch (calldata built from the
        artifact ABI's selectors: web3's generic contract-call path costs more than the RPC here)."""
        address = to_checksum_address(token)
        owner = bytes(12) + bytes.fromhex(payer[2:])
        calls = [
            ("eth_getBlockByNumber", ["latest", False]),
            ("eth_call", [{"to": address, "data": "0x" + (self._selectors["balanceOf"] + owner).hex()}, "latest"]),
            ("eth_call", [{"to": address, "data": "0x" + (self._selectors["authorizationState"] + owner
                                                          + nonce).hex()}, "latest"]),
        ]
        replies = self._w3.provider.make_batch_request(calls)
        if not isinstance(replies, list) or any("error" in r for r in replies):
            raise InfrastructureError(f"chain read failed: {replies!r}"[:300])
        block, balance, used = (r["result"] for r in sorted(replies, key=lambda r: r["id"]))
        terms = None
        if service_id is not None and self._registry is not None:
            active, model, token_addr, price, period, pay_to = self._registry.functions.paymentTerms(service_id).call()
            terms = ServiceTerms(bool(active), int(model), token_addr, int(price), int(period), pay_to)
        return ChainView(_int(block["timestamp"]), _int(balance), _int(used) != 0, terms)

    def authorization_used(self, token: str, payer: str, nonce: bytes) -> bool:
        return bool(self._token(token).functions.authorizationState(to_checksum_address(payer), nonce).call())

    def authorization_use(self, token: str, payer: str, nonce: bytes, payee: str, value: int,
                          service_id: int | None = None) -> str | None:
        address = to_checksum_address(token)
        head = int(self._w3.eth.block_number)
        floor = max(0, head - AUTHORIZATION_LOOKBACK)
        used = None
        hi = head
        while hi >= floor and used is None:  # newest first, in ranges a public RPC accepts
            lo = max(floor, hi - LOOKBACK_STEP + 1)
            found = self._w3.eth.get_logs({"address": address, "fromBlock": lo, "toBlock": hi,
                                           "topics": [self._used_topic, _word_of(payer), "0x" + nonce.hex()]})
            if found:
                used = found[0]
            hi = lo - 1
        if used is None:
            return None
        tx = _hex(used["transactionHash"])
        logs = {int(e["logIndex"]): e for e in self._w3.eth.get_transaction_receipt(tx)["logs"]}
        transfer = logs.get(int(used["logIndex"]) + 1)  # the Transfer of THIS authorization
        if transfer is None or transfer["address"].lower() != token.lower():
            return None
        if ([_hex(t) for t in transfer["topics"]][:3] != [self._transfer_topic, _word_of(payer), _word_of(payee)]
                or int(_hex(transfer["data"]), 16) != value):
            return None  # the payer's nonce went to some other authorization (e.g. to themselves)
        if service_id is not None and not self._router_paid(logs.values(), service_id, payer, value):
            return None  # paid to the router's address, but not through it for that service
        return tx

    def _router_paid(self, logs: Any, service_id: int, payer: str, value: int) -> bool:
        if self.router is None or self._router_abi is None:
            return False
        at = self._paid_amount_word
        for entry in logs:
            topics = [_hex(t) for t in entry["topics"]]
            data = _hex(entry["data"])[2:]
            if (entry["address"].lower() == self.router.lower() and topics[:1] == [self._paid_topic]
                    and topics[2:4] == ["0x%064x" % service_id, _word_of(payer)]
                    and int(data[64 * at:64 * at + 64], 16) == value):
                return True
        return False

    def _calldata(self, call: SettlementCall) -> tuple[str, str]:
        m = call.message
        v, r, s = call.signature[64], call.signature[:32], call.signature[32:64]
        if call.kind is AuthorizationKind.RECEIVE:
            if self.router is None or self._router_abi is None or call.service_id is None:
                raise ValueError("ReceiveWithAuthorization settles through the PaymentRouter with a service id")
            router = self._w3.eth.contract(address=self.router, abi=self._router_abi)
            fn = router.functions.settleAuthorization(call.service_id, m.from_, m.value, m.valid_after,
                                                      m.valid_before, m.nonce, v, r, s, call.ref)
            return self.router, fn._encode_transaction_data()
        token = self._token(call.token)
        fn = token.get_function_by_signature(self._TRANSFER_SIG)(
            to_checksum_address(m.from_), to_checksum_address(m.to), m.value, m.valid_after, m.valid_before,
            m.nonce, v, r, s)
        return token.address, fn._encode_transaction_data()

    def _price(self) -> int:
        now = time.monotonic()
        if self._gas_price is None or now - self._gas_price[0] > 10:
            self._gas_price = (now, int(self._w3.eth.gas_price))
        return self._gas_price[1]

    def send(self, call: SettlementCall, before_broadcast: Callable[[str, str], bool]) -> str:
        to, data = self._calldata(call)
        return self._broadcast(to, data, before_broadcast)

    def resend(self, raw_tx: str, before_broadcast: Callable[[str, str], bool]) -> str:
        _sender, _nonce, to, data = _decode_transaction(raw_tx)
        return self._broadcast(to, data, before_broadcast)

    def _broadcast(self, to: str, data: str, before_broadcast: Callable[[str, str], bool]) -> str:
        from web3.exceptions import ContractLogicError

        with self._send_lock:  # one relayer nonce at a time
            tx = {"from": self.relayer, "to": to, "data": data, "chainId": self.chain_id, "value": 0}
            try:
                gas = int(self._w3.eth.estimate_gas(tx))
            except ContractLogicError as exc:
                raise SimulationReverted(str(exc.message or exc)) from None
            tx.pop("from")
            tx.update(gas=gas + gas // 5, gasPrice=self._price(),
                      nonce=self._w3.eth.get_transaction_count(self.relayer, "pending"))
            signed = self._relayer.sign_transaction(tx)
            tx_hash = "0x" + bytes(signed.hash).hex()
            raw = "0x" + bytes(signed.raw_transaction).hex()
            if not before_broadcast(tx_hash, raw):
                raise RuntimeError("intent is no longer pending; transaction not sent")
            self._w3.eth.send_raw_transaction(raw)
        return tx_hash

    def wait(self, tx_hash: str, timeout: float) -> Receipt | None:
        from web3.exceptions import TimeExhausted, TransactionNotFound

        try:
            if timeout <= 0:
                rcpt = self._w3.eth.get_transaction_receipt(tx_hash)
            else:
                rcpt = self._w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=self._poll)
        except (TimeExhausted, TransactionNotFound):
            return None
        return Receipt(tx_hash, rcpt["status"] == 1, int(rcpt["blockNumber"]))

    def rebroadcast(self, raw_tx: str) -> None:
        try:
            self._w3.eth.send_raw_transaction(raw_tx)
        except Exception as exc:  # noqa: BLE001 - "already known" / "nonce too low" mean it was sent before
            log.info("rebroadcast: %s", exc)

    def superseded(self, tx_hash: str, raw_tx: str) -> bool:
        sender, nonce, _to, _data = _decode_transaction(raw_tx)
        if int(self._w3.eth.get_transaction_count(to_checksum_address(sender), "latest")) <= nonce:
            return False  # its nonce is still free: it may yet be mined
        # The nonce is used by a mined transaction; asked only now, a missing receipt means that
        # transaction is not this one.
        return self.wait(tx_hash, 0) is None


def _decode_transaction(raw_tx: str) -> tuple[str, int, str, str]:
    """(sender, nonce, to, data) of a signed transaction, legacy or typed (EIP-2718)."""
    from eth_account import Account
    from eth_account.typed_transactions import TypedTransaction

    blob = bytes.fromhex(raw_tx.removeprefix("0x"))
    sender = Account.recover_transaction(blob)
    if blob[0] >= 0xC0:  # an RLP list: [nonce, gasPrice, gas, to, value, data, v, r, s]
        import rlp

        nonce, _price, _gas, to, _value, data, *_signature = rlp.decode(blob)
        return sender, int.from_bytes(nonce, "big"), to_checksum_address(to), "0x" + bytes(data).hex()
    fields = TypedTransaction.from_bytes(blob).as_dict()
    data = fields["data"]
    return (sender, int(fields["nonce"]), to_checksum_address(fields["to"]),
            data if isinstance(data, str) else "0x" + bytes(data).hex())


def _int(value: Any) -> int:
    if isinstance(value, int):
        return value
    text = value if isinstance(value, str) else "0x" + bytes(value).hex()
    return int(text, 16) if text not in ("0x", "") else 0


# ------------------------------------------------------------------------------------------------
# The facilitator


@dataclass
class Facilitator:
    """Verify and settle; the chain side is a FacilitatorBackend, intents an IntentStore."""

    backend: FacilitatorBackend
    store: IntentStore
    network: Network
    assets: frozenset[str]
    """Token addresses this facilitator settles (lower-case)."""
    min_valid_seconds: int = 6
    """validBefore must be at least this far ahead of the chain's time (room to get mined)."""
    receipt_timeout: float = 30.0
    """Seconds to wait for a receipt before answering "pending"."""
    claim_wait: float = 30.0
    """Seconds a concurrent settle of the same authorization waits for the first one to finish."""
    leader: Callable[[], bool] | None = None
    """Whether this keeper may settle now (None: always; the keeper passes its leader state)."""
    _now: Callable[[], float] = field(default=time.time, repr=False)

    def may_settle(self) -> bool:
        return self.leader is None or self.leader()

    def __post_init__(self) -> None:
        self.assets = frozenset(a.lower() for a in self.assets)

    # --- verify --------------------------------------------------------------------------------

    def kind_for(self, pay_to: str) -> AuthorizationKind:
        router = self.backend.router
        return AuthorizationKind.RECEIVE if router and same_address(pay_to, router) else AuthorizationKind.TRANSFER

    def verify(self, p: Payment) -> Verdict:
        payer = p.payer

        def bad(reason: str, message: str | None = None) -> Verdict:
            return Verdict(False, reason, message, payer)

        if p.scheme != "exact" or p.requirements_scheme != "exact":
            return bad(UNSUPPORTED_SCHEME, f"scheme {p.scheme!r}; this facilitator settles 'exact'")
        if p.network != p.requirements_network:
            return bad(NETWORK_MISMATCH, f"payload is for {p.network!r}, requirements for {p.requirements_network!r}")
        net = network_for_x402(p.requirements_network)
        if net is None or net.chain_id != self.backend.chain_id:
            return bad(UNSUPPORTED_NETWORK, f"network {p.requirements_network!r} is not served here "
                                            f"(chain id {self.backend.chain_id})")
        if p.accepted_asset is not None and not same_address(p.accepted_asset, p.asset):
            return bad(ASSET_MISMATCH, "the payload names another asset than the requirements")
        if p.asset.lower() not in self.assets:
            return bad(UNSUPPORTED_ASSET, f"asset {p.asset} is not settled by this facilitator")
        auth = p.payload.authorization
        if not same_address(auth.to, p.pay_to):
            return bad(RECIPIENT_MISMATCH, "authorization.to differs from payTo")
        if auth.value != p.amount:
            return bad(VALUE_MISMATCH, f"authorization value {auth.value} != required amount {p.amount}")
        kind = self.kind_for(p.pay_to)
        if kind is AuthorizationKind.RECEIVE and p.extra.service_id is None:
            return bad(MISSING_SERVICE_ID, "payments to the PaymentRouter name extra.serviceId")
        try:
            domain = self.backend.domain(p.asset)
        except DomainMismatchError as exc:
            return bad(ASSET_INFO, str(exc))
        if p.extra.name is not None and p.extra.name != domain.name:
            return bad(TOKEN_NAME_MISMATCH, f"token name is {domain.name!r}")
        if p.extra.version is not None and p.extra.version != domain.version:
            return bad(TOKEN_VERSION_MISMATCH, f"token version is {domain.version!r}")
        message = AuthorizationMessage(auth.from_, auth.to, auth.value, auth.valid_after, auth.valid_before,
                                       bytes.fromhex(auth.nonce[2:]))
        if kind is AuthorizationKind.RECEIVE and nonce_service(message.nonce) != p.extra.service_id:
            return bad(NONCE_NOT_BOUND, f"the nonce names service {nonce_service(message.nonce)}, "
                                        f"not {p.extra.service_id} (top 64 bits must be the service id)")
        signer = recover(digest(domain, kind, message), bytes.fromhex(p.payload.signature[2:]))
        if signer is None or not same_address(signer, auth.from_):
            return bad(INVALID_SIGNATURE, f"not signed by authorization.from as {kind.value}")
        view = self.backend.view(p.asset, payer, message.nonce, p.extra.service_id if kind is
                                 AuthorizationKind.RECEIVE else None)
        if auth.valid_before < view.timestamp + self.min_valid_seconds:
            return bad(VALID_BEFORE, f"validBefore {auth.valid_before} is not {self.min_valid_seconds}s after "
                                     f"chain time {view.timestamp}")
        if auth.valid_after > view.timestamp:
            return bad(VALID_AFTER, f"validAfter {auth.valid_after} is after chain time {view.timestamp}")
        if view.authorization_used:
            return bad(NONCE_USED, "the token reports this authorization as used or canceled")
        if view.balance < auth.value:
            return bad(INSUFFICIENT_BALANCE, f"balance {view.balance} < {auth.value}")
        if kind is AuthorizationKind.RECEIVE:
            terms = view.terms
            if terms is None or not terms.active:
                return bad(SERVICE_INACTIVE, f"service {p.extra.service_id} is not active")
            if not same_address(terms.token, p.asset) or (terms.model == 0 and terms.price != auth.value) or (
                terms.price == 0 or auth.value % terms.price != 0
            ):
                return bad(SERVICE_TERMS_MISMATCH, f"service {p.extra.service_id} is priced {terms.price} of "
                                                   f"{terms.token}")
        return Verdict(True, payer=payer, kind=kind)

    # --- settle --------------------------------------------------------------------------------

    def _result(self, intent: Intent, p: Payment) -> Settlement:
        reason = None
        if intent.status is Status.FAILED:
            reason = intent.error or TRANSACTION_FAILED
        elif intent.status is Status.PENDING:
            reason = SETTLEMENT_PENDING
        return Settlement(intent.status, p.payer, p.requirements_network, intent.value, p.nonce,
                          intent.tx_hash or "", reason)

    def _failed(self, p: Payment, reason: str) -> Settlement:
        return Settlement(Status.FAILED, p.payer, p.requirements_network, p.amount, p.nonce, "", reason)

    def settle(self, p: Payment) -> Settlement:
        if not self.may_settle():
            raise NotLeader("this keeper is a follower; settlement runs on the leader")
        existing = self.store.get(p.key)
        if existing is not None:
            return self._existing(existing, p)
        verdict = self.verify(p)
        if not verdict.is_valid:
            assert verdict.reason is not None
            existing = self.store.get(p.key)  # settled meanwhile by a concurrent call: its answer
            if existing is not None:
                return self._existing(existing, p)
            return self._failed(p, verdict.reason)
        assert verdict.kind is not None
        auth = p.payload.authorization
        intent, created = self.store.claim(Intent(
            key=p.key, request_hash=p.request_hash, kind=verdict.kind.value, payee=p.pay_to, value=auth.value,
            network=p.requirements_network, service_id=p.extra.service_id, status=Status.PENDING))
        if not created:
            return self._existing(intent, p)
        call = SettlementCall(
            kind=verdict.kind, token=p.asset,
            message=AuthorizationMessage(auth.from_, auth.to, auth.value, auth.valid_after, auth.valid_before,
                                         bytes.fromhex(auth.nonce[2:])),
            signature=bytes.fromhex(p.payload.signature[2:]), service_id=p.extra.service_id,
            ref=bytes.fromhex(p.request_hash[2:]),
        )
        try:
            tx_hash = self.backend.send(call, lambda h, raw: self.store.record_tx(p.key, h, raw))
        except SimulationReverted as exc:
            log.info("settle %s: would revert: %s", p.nonce, exc)
            return self._result(self.store.finish(p.key, Status.FAILED, error=reason_for_revert(str(exc))), p)
        except Exception as exc:
            stored = self.store.get(p.key)
            if stored is None or stored.raw_tx is None:
                self.store.forget_unbroadcast(p.key)
                raise InfrastructureError(f"settlement not sent: {type(exc).__name__}") from exc
            log.warning("settle %s: broadcast of %s uncertain (%s): pending", p.nonce, stored.tx_hash, exc)
            return self._result(stored, p)
        return self._conclude(p.key, tx_hash, p, self.receipt_timeout)

    def _conclude(self, key: IntentKey, tx_hash: str, p: Payment, timeout: float) -> Settlement:
        try:
            receipt = self.backend.wait(tx_hash, timeout)
        except Exception as exc:  # noqa: BLE001 - RPC trouble after broadcast: unknown, not failed
            log.warning("settle %s: receipt of %s unknown (%s): pending", p.nonce, tx_hash, exc)
            receipt = None
        return self._result(close_by_receipt(self.backend, self.store, key, tx_hash, receipt), p)

    def _existing(self, intent: Intent, p: Payment) -> Settlement:
        """A settle of an authorization we already hold an intent for."""
        if intent.request_hash != p.request_hash:
            return self._failed(p, NONCE_USED)
        deadline = time.monotonic() + self.claim_wait
        while intent.status is Status.PENDING and intent.raw_tx is None and time.monotonic() < deadline:
            time.sleep(0.02)  # the first settle is verifying / signing right now
            fresh = self.store.get(intent.key)
            if fresh is None:  # it gave up before broadcasting (infrastructure); nothing moved
                raise InfrastructureError("a concurrent settlement of this authorization could not be sent")
            intent = fresh
        if intent.status is Status.PENDING:
            intent = self.reconcile(intent, timeout=max(0.0, deadline - time.monotonic()))
        return self._result(intent, p)

    # --- reconcile -------------------------------------------------------------------------------

    def reconcile(self, intent: Intent, timeout: float = 0.0) -> Intent:
        """Close a pending intent from chain evidence, if there is any yet (see reconcile_intent)."""
        return reconcile_intent(self.backend, self.store, intent, timeout, unsigned_grace=max(self.claim_wait, 60))

    def reconcile_pending(self) -> int:
        """Try to close every pending intent (a keeper job). Returns how many were closed."""
        closed = 0
        for intent in self.store.pending():
            try:
                if self.reconcile(intent).status is not Status.PENDING:
                    closed += 1
            except Exception as exc:  # noqa: BLE001 - one stuck intent never blocks the others
                log.warning("reconcile %s: %s", intent.key.nonce, exc)
        return closed

    def status(self, payment_id: str) -> list[Intent]:
        intents = self.store.by_nonce(payment_id)
        if not self.may_settle():  # a follower reports; the leader reconciles
            return intents
        return [self.reconcile(i) if i.status is Status.PENDING else i for i in intents]

    def supported(self) -> v2.SupportedResponse:
        net = self.network
        return v2.SupportedResponse(
            kinds=[v2.SupportedKind(x402_version=1, scheme="exact", network=net.x402_v1),
                   v2.SupportedKind(x402_version=2, scheme="exact", network=net.caip2)],
            signers={"eip155:*": [self.backend.relayer]},
        )



# ------------------------------------------------------------------------------------------------
# Reconciling a pending intent (the facilitator's, and the renewal job's)


def reconcile_intent(backend: FacilitatorBackend, store: IntentStore, intent: Intent, timeout: float = 0.0,
                     unsigned_grace: float = 60.0) -> Intent:
    """Close a pending intent from chain evidence, if there is any yet: its transaction's receipt,
    or the authorization's state. A transaction the node forgot is sent again unchanged; one whose
    relayer nonce went to another transaction (it can never be mined) is sent again as the same
    call under a fresh nonce. An intent claimed but never signed fails after `unsigned_grace` s."""
    if intent.status is not Status.PENDING:
        return intent
    key = intent.key
    if intent.raw_tx is None or intent.tx_hash is None:
        # Claimed but never signed: only a crashed settle leaves this behind for long.
        if time.time() - intent.updated_at < unsigned_grace:
            return intent
        # Closed only if it is still unsigned: the settle may have stored its transaction meanwhile.
        used = backend.authorization_used(key.token, key.payer, bytes.fromhex(key.nonce[2:]))
        return store.finish(key, Status.FAILED, error=NONCE_USED if used else "settlement_not_broadcast", holding=None)
    tx_hash = intent.tx_hash
    receipt = backend.wait(tx_hash, 0)
    try:
        superseded = receipt is None and backend.superseded(tx_hash, intent.raw_tx)
    except Exception as exc:  # noqa: BLE001 - cannot tell now: treated as still in flight
        log.warning("settle %s: cannot check the relayer nonce (%s)", key.nonce, exc)
        superseded = False
    if superseded:
        log.warning("settle %s: transaction %s lost its relayer nonce to another one: sending again", key.nonce, tx_hash)
        try:  # safe: the token lets the authorization move money once, whichever transaction carries it
            tx_hash = backend.resend(intent.raw_tx, lambda h, raw: store.replace_tx(key, intent.tx_hash, h, raw))
        except SimulationReverted as exc:  # expired meanwhile, or used by someone else: closed by the chain
            return close_failed(backend, store, key, intent.tx_hash, reason_for_revert(str(exc)))
        except Exception as exc:  # noqa: BLE001 - RPC trouble or a concurrent change: still pending, next pass
            log.warning("settle %s: sending again failed (%s): pending", key.nonce, exc)
            return store.get(key) or intent
    elif receipt is None:
        backend.rebroadcast(intent.raw_tx)
    if receipt is None:
        receipt = backend.wait(tx_hash, timeout)
    return close_by_receipt(backend, store, key, tx_hash, receipt)


def close_by_receipt(backend: FacilitatorBackend, store: IntentStore, key: IntentKey, tx_hash: str,
                     receipt: Receipt | None) -> Intent:
    """The intent as `tx_hash`'s receipt decides it: still pending without one, settled if it
    succeeded, else as close_failed decides (a copy relayed first may have paid it)."""
    if receipt is None:
        stored = store.get(key)
        assert stored is not None
        return stored
    if receipt.succeeded:
        return store.finish(key, Status.SETTLED, tx_hash=tx_hash)
    return close_failed(backend, store, key, tx_hash)


def close_failed(backend: FacilitatorBackend, store: IntentStore, key: IntentKey, tx_hash: str | None,
                 reason: str = TRANSACTION_FAILED) -> Intent:
    """Our transaction for the intent failed (or would). If the authorization was used anyway, by
    whoever relayed the same signed authorization first (a mempool watcher copying ours), the money
    moved exactly as signed — to the signed payee; for the router, to the service the nonce names —
    so the intent is settled by that transaction. Otherwise it failed with `reason`."""
    nonce = bytes.fromhex(key.nonce[2:])
    holding: Any = tx_hash if tx_hash is not None else ANY_TX
    intent = store.get(key)
    try:
        used = backend.authorization_used(key.token, key.payer, nonce)
        other = (backend.authorization_use(key.token, key.payer, nonce, intent.payee, intent.value,
                                           intent.service_id if intent.kind == AuthorizationKind.RECEIVE.value else None)
                 if used and intent is not None else None)
    except Exception as exc:  # noqa: BLE001 - unknown now: still pending, the next reconcile decides
        log.warning("settle %s: cannot tell how the authorization was used (%s): pending", key.nonce, exc)
        return intent or store.finish(key, Status.FAILED, error=reason, holding=holding)
    if not used:
        return store.finish(key, Status.FAILED, error=reason, holding=holding)
    if other is not None and other != tx_hash:
        log.warning("settle %s: settled by another relayer's transaction %s (ours: %s)", key.nonce, other, tx_hash)
        return store.finish(key, Status.SETTLED, tx_hash=other, holding=holding)
    if intent is not None and time.time() - intent.updated_at < USE_LOOKUP_GRACE:
        return intent  # used, but its use not found yet: a lagging node's logs get the benefit of the doubt
    return store.finish(key, Status.FAILED, error=NONCE_USED, holding=holding)

# ------------------------------------------------------------------------------------------------
# HTTP

MAX_BODY = 64 * 1024


def _json(model: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", by_alias=True, exclude_none=True), status_code=status)


async def _body(request: Request) -> Any:
    """The request's JSON, read only up to MAX_BODY bytes (a bigger body is refused unread)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise WireError(INVALID_PAYLOAD, f"body is {declared} bytes; at most {MAX_BODY}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise WireError(INVALID_PAYLOAD, f"body is over {MAX_BODY} bytes")
        chunks.append(chunk)
    try:
        return parse_json(b"".join(chunks))
    except ValueError:
        raise WireError(INVALID_PAYLOAD, "body is not JSON") from None


def parse_standard(data: Any) -> Payment:
    """A /verify or /settle body (v1 or v2) as a Payment; malformed → WireError."""
    version = data.get("x402Version") if isinstance(data, dict) else None
    if version == 1:
        req1 = parse_model(v2.VerifyRequestV1, data)
        return Payment.from_v1(req1.payment_payload, req1.payment_requirements)
    if version == 2:
        req2 = parse_model(v2.VerifyRequestV2, data)
        return Payment.from_v2(req2.payment_payload, req2.payment_requirements)
    raise WireError(INVALID_PAYLOAD, "x402Version must be 1 or 2")


def parse_cronos(data: Any) -> Payment:
    body = parse_model(cronos.Request, data)
    header = parse_model(cronos.PaymentHeader, decode_header(body.payment_header), INVALID_PAYMENT_HEADER)
    return Payment.from_cronos(header, body.payment_requirements)


def settle_response(s: Settlement) -> v2.SettleResponse:
    return v2.SettleResponse(success=s.success, error_reason=s.reason, payer=s.payer, transaction=s.transaction,
                             network=s.network, amount=str(s.amount), status=s.status.value,
                             payment_id=s.payment_id)


def create_app(facilitator: Facilitator) -> Starlette:
    """The facilitator's HTTP API as a Starlette app (mount it anywhere)."""

    async def guarded(fn: Callable[[], Any]) -> JSONResponse:
        try:
            return await fn()
        except WireError as exc:
            return JSONResponse({"isValid": False, "success": False, "invalidReason": exc.reason,
                                 "errorReason": exc.reason, "invalidMessage": exc.detail}, status_code=400)
        except NotLeader:
            return not_leader()
        except InfrastructureError as exc:
            return JSONResponse({"error": "unavailable", "message": str(exc)}, status_code=503)
        except dbapi.ERRORS as exc:  # intents database down: the recorded intent decides on retry
            return JSONResponse({"error": "unavailable", "message": f"intents database: {exc}; retry with the same "
                                 "payment"}, status_code=503)

    def not_leader() -> JSONResponse:
        return JSONResponse({"error": "not_leader", "reason": "not_leader", "success": False,
                             "message": "this keeper is a follower; settlement runs on the leader: retry with the "
                                        "same payment"},
                            status_code=503, headers={"Retry-After": str(NOT_LEADER_RETRY_AFTER)})

    async def verify(request: Request) -> JSONResponse:
        async def run() -> JSONResponse:
            p = parse_standard(await _body(request))
            verdict = await run_in_threadpool(facilitator.verify, p)
            return _json(v2.VerifyResponse(is_valid=verdict.is_valid, invalid_reason=verdict.reason,
                                           invalid_message=verdict.message, payer=verdict.payer))
        return await guarded(run)

    async def settle(request: Request) -> JSONResponse:
        if not facilitator.may_settle():
            return not_leader()

        async def run() -> JSONResponse:
            p = parse_standard(await _body(request))
            return _json(settle_response(await run_in_threadpool(facilitator.settle, p)))
        return await guarded(run)

    async def supported(_request: Request) -> JSONResponse:
        return _json(facilitator.supported())

    async def cronos_verify(request: Request) -> JSONResponse:
        async def run() -> JSONResponse:
            p = parse_cronos(await _body(request))
            verdict = await run_in_threadpool(facilitator.verify, p)
            return _json(cronos.VerifyResponse(is_valid=verdict.is_valid, invalid_reason=verdict.reason))
        return await guarded(run)

    async def cronos_settle(request: Request) -> JSONResponse:
        if not facilitator.may_settle():
            return not_leader()

        async def run() -> JSONResponse:
            p = parse_cronos(await _body(request))
            s = await run_in_threadpool(facilitator.settle, p)
            event = {Status.SETTLED: "payment.settled", Status.FAILED: "payment.failed",
                     Status.PENDING: "payment.pending"}[s.status]
            auth = p.payload.authorization
            return _json(cronos.SettleResponse.model_validate({
                "event": event, "txHash": s.transaction or None, "from": auth.from_, "to": auth.to,
                "value": str(auth.value), "network": s.network, "timestamp": int(time.time()),
                "error": s.reason}))
        return await guarded(run)

    async def cronos_supported(_request: Request) -> JSONResponse:
        net = facilitator.network
        return JSONResponse({"kinds": [{"x402Version": 1, "scheme": "exact", "network": net.x402_v1}]})

    async def payment(request: Request) -> JSONResponse:
        payment_id = request.path_params["payment_id"].lower()
        if len(payment_id) != 66 or not payment_id.startswith("0x"):
            return JSONResponse({"error": "payment id is the 0x-prefixed 32-byte EIP-3009 nonce"}, status_code=400)
        intents = await run_in_threadpool(facilitator.status, payment_id)
        if not intents:
            return JSONResponse({"id": payment_id, "error": "unknown payment"}, status_code=404)
        i = intents[0]
        return JSONResponse({
            "id": payment_id, "status": i.status.value, "txHash": i.tx_hash, "payer": i.key.payer,
            "token": i.key.token, "payee": i.payee, "value": str(i.value), "network": i.network,
            "serviceId": i.service_id, "requestHash": i.request_hash, "error": i.error,
        })

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/verify", verify, methods=["POST"]),
        Route("/settle", settle, methods=["POST"]),
        Route("/supported", supported, methods=["GET"]),
        Route("/v2/x402/verify", cronos_verify, methods=["POST"]),
        Route("/v2/x402/settle", cronos_settle, methods=["POST"]),
        Route("/v2/x402/supported", cronos_supported, methods=["GET"]),
        Route("/payments/{payment_id}", payment, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ])


# ------------------------------------------------------------------------------------------------
# Running on its own


class FacilitatorSettings(BaseSettings):
    """Settings of the standalone facilitator (environment, prefix PAYGENT_)."""

    model_config = SettingsConfigDict(env_prefix="PAYGENT_", extra="ignore")

    network: str = "local"
    """Paygent network whose manifest names the token, router and registry."""
    rpc_url: str | None = None
    """JSON-RPC endpoint; default the network's."""
    deployments_dir: Path | None = None
    """Where the deployment manifests are (default: the project's deployments/, whatever the working directory)."""
    relayer_key: SecretStr | None = None
    """Hex private key of the account that pays gas for settlements (never logged)."""
    relayer_account: str | None = None
    """Or: alias of an ape account (passphrase in APE_ACCOUNTS_<alias>_PASSPHRASE)."""
    intents_db: Path = Path(".paygent/intents.sqlite")
    """SQLite file holding settlement intents."""
    host: str = "127.0.0.1"
    """Address the HTTP server listens on."""
    port: int = 8403
    """Port the HTTP server listens on."""
    receipt_timeout: float = Field(default=30.0, gt=0)
    """Seconds to wait for a settlement receipt before answering pending."""
    min_valid_seconds: int = Field(default=6, ge=0)
    """validBefore must be at least this many seconds ahead of chain time."""


def build(settings: FacilitatorSettings) -> Facilitator:
    from web3 import Web3

    from paygent import keys, manifest
    from paygent.networks import get_network

    net = get_network(settings.network)
    m = manifest.require(net.name, settings.deployments_dir)
    if settings.relayer_account:
        relayer = keys.from_ape_keystore(settings.relayer_account)
    elif settings.relayer_key is not None:
        relayer = keys.from_env("key", {"key": settings.relayer_key.get_secret_value()})
    else:
        raise keys.KeyLoadError("set PAYGENT_RELAYER_ACCOUNT (ape alias) or PAYGENT_RELAYER_KEY")
    w3 = Web3(Web3.HTTPProvider(settings.rpc_url or net.rpc_url, request_kwargs={"timeout": 10}))
    backend = Web3Backend(w3, relayer, router=m.contracts.get("PaymentRouter") and m.address("PaymentRouter"),
                          registry=m.contracts.get("ServiceRegistry") and m.address("ServiceRegistry"))
    return Facilitator(backend, IntentStore(settings.intents_db), net, frozenset({m.address("USDC")}),
                       min_valid_seconds=settings.min_valid_seconds, receipt_timeout=settings.receipt_timeout)


def main() -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    settings = FacilitatorSettings()
    facilitator = build(settings)
    closed = facilitator.reconcile_pending()
    log.info("facilitator for %s, relayer %s; %d pending intents closed at start", facilitator.network.name,
             facilitator.backend.relayer, closed)
    uvicorn.run(create_app(facilitator), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
