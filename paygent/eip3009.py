"""EIP-3009 typed data, shared by the signer (agent) and the facilitator (keeper).

The EIP-712 digest is computed directly from the fixed-size fields (no generic typed-data encoder
in the hot path); `typed_data()` gives the same message in eth-account's structured form, and the
tests check both agree. The token's domain (name, version, chain id, address) is read from the
chain and checked against its DOMAIN_SEPARATOR(), never assumed.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from eth_hash.auto import keccak
from eth_keys import KeyAPI
from eth_keys.backends import CoinCurveECCBackend
from eth_keys.exceptions import BadSignature, ValidationError as KeysValidationError
from eth_utils import to_checksum_address

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2

DOMAIN_TYPEHASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
_FIELDS = "address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce"


class AuthorizationKind(str, Enum):
    """Which EIP-3009 message is signed. Receive can only be redeemed by its payee (`to`)."""

    TRANSFER = "TransferWithAuthorization"
    RECEIVE = "ReceiveWithAuthorization"

    @property
    def typehash(self) -> bytes:
        return _TYPEHASHES[self]


_TYPEHASHES = {kind: keccak(f"{kind.value}({_FIELDS})".encode()) for kind in AuthorizationKind}

SERVICE_BITS = 64
"""Authorizations made out to the PaymentRouter commit to their service in the nonce's top 64 bits."""


def service_nonce(service_id: int, salt: bytes | None = None) -> bytes:
    """A nonce for a router payment: serviceId in the top 64 bits, 192 random (or `salt`) bits below.

    The router refuses to settle it for any other service (NonceNotBoundToService), and the signature
    covers the nonce, so nobody can redirect the payment to a look-alike service.
    """
    if not 0 < service_id < 1 << SERVICE_BITS:
        raise ValueError(f"service id {service_id} does not fit in {SERVICE_BITS} bits")
    low = secrets.token_bytes(24) if salt is None else salt[-24:].rjust(24, b"\0")
    return service_id.to_bytes(8, "big") + low


def nonce_service(nonce: bytes) -> int:
    """The service id a router-payment nonce commits to (its top 64 bits)."""
    return int.from_bytes(nonce[:8], "big")


# One coincurve-backed key API for the whole process (eth-keys would pick coincurve by default when
# it is importable; naming it makes a missing coincurve an import error instead of a 12x slowdown).
KEYS = KeyAPI(CoinCurveECCBackend)


@dataclass(frozen=True)
class TokenDomain:
    """The EIP-712 domain of an EIP-3009 token."""

    name: str
    version: str
    chain_id: int
    address: str
    separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", to_checksum_address(self.address))
        object.__setattr__(
            self,
            "separator",
            keccak(
                DOMAIN_TYPEHASH
                + keccak(self.name.encode())
                + keccak(self.version.encode())
                + self.chain_id.to_bytes(32, "big")
                + bytes(12)
                + bytes.fromhex(self.address[2:])
            ),
        )


@dataclass(frozen=True)
class AuthorizationMessage:
    """The six EIP-3009 fields, as Python values."""

    from_: str
    to: str
    value: int
    valid_after: int
    valid_before: int
    nonce: bytes

    def struct_hash(self, kind: AuthorizationKind) -> bytes:
        return keccak(
            kind.typehash
            + bytes(12) + bytes.fromhex(self.from_[2:])
            + bytes(12) + bytes.fromhex(self.to[2:])
            + self.value.to_bytes(32, "big")
            + self.valid_after.to_bytes(32, "big")
            + self.valid_before.to_bytes(32, "big")
            + self.nonce
        )


def digest(domain: TokenDomain, kind: AuthorizationKind, message: AuthorizationMessage) -> bytes:
    """The EIP-712 hash the token checks the signature against."""
    return keccak(b"\x19\x01" + domain.separator + message.struct_hash(kind))


def typed_data(domain: TokenDomain, kind: AuthorizationKind, message: AuthorizationMessage) -> dict[str, Any]:
    """The same message in EIP-712 JSON form (eth_account.messages.encode_typed_data(full_message=...))."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            kind.value: [{"name": n.split()[1], "type": n.split()[0]} for n in _FIELDS.split(",")],
        },
        "primaryType": kind.value,
        "domain": {"name": domain.name, "version": domain.version, "chainId": domain.chain_id,
                   "verifyingContract": domain.address},
        "message": {"from": message.from_, "to": message.to, "value": message.value,
                    "validAfter": message.valid_after, "validBefore": message.valid_before,
                    "nonce": message.nonce},
    }


def split_signature(signature: bytes) -> tuple[int, bytes, bytes]:
    """(v, r, s) of a 65-byte r||s||v signature."""
    if len(signature) != 65:
        raise ValueError("signature must be 65 bytes")
    return signature[64], signature[:32], signature[32:64]


def recover(message_hash: bytes, signature: bytes) -> str | None:
    """The signer's checksum address, or None when the signature is malformed, has a high s
    (the token rejects malleable signatures) or a v other than 27/28."""
    v, r, s = split_signature(signature)
    s_int = int.from_bytes(s, "big")
    r_int = int.from_bytes(r, "big")
    if v not in (27, 28) or not 0 < s_int <= _HALF_N or not 0 < r_int < SECP256K1_N:
        return None
    try:
        sig = KEYS.Signature(vrs=(v - 27, r_int, s_int))
        return sig.recover_public_key_from_msg_hash(message_hash).to_checksum_address()
    except (BadSignature, KeysValidationError, ValueError):
        return None


class DomainReader:
    """Reads (and caches) a token's EIP-712 domain from the chain through web3.

    The name and version come from name()/version(); the separator derived from them must equal the
    token's DOMAIN_SEPARATOR(), otherwise signatures made from them would not verify.
    """

    def __init__(self, w3: Any):
        self._w3 = w3
        self._cache: dict[tuple[int, str], TokenDomain] = {}
        self._lock = threading.Lock()
        self._chain_id: int | None = None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self._w3.eth.chain_id)
        return self._chain_id

    def domain(self, token: str) -> TokenDomain:
        key = (self.chain_id, token.lower())
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        from paygent.artifacts import abi

        contract = self._w3.eth.contract(address=to_checksum_address(token), abi=abi("FiatTokenLocal"))
        found = TokenDomain(contract.functions.name().call(), contract.functions.version().call(),
                            self.chain_id, token)
        on_chain = bytes(contract.functions.DOMAIN_SEPARATOR().call())
        if on_chain != found.separator:
            raise DomainMismatchError(
                f"token {found.address}: DOMAIN_SEPARATOR() does not match name {found.name!r}, "
                f"version {found.version!r}, chain {found.chain_id}"
            )
        with self._lock:
            self._cache[key] = found
        return found


class DomainMismatchError(RuntimeError):
    """The token's EIP-712 domain cannot be derived from what it reports."""
