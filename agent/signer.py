"""EIP-3009 signer for x402 payments (the agent's hot key).

Signs TransferWithAuthorization (payee redeems or anyone relays) or ReceiveWithAuthorization (only
the payee contract, e.g. the PaymentRouter, can redeem) over the token domain read from the chain.
Signing goes through eth-keys' coincurve backend on a digest computed directly from the fields —
the generic typed-data encoder is the slow part of eth-account's path.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from eth_account.signers.local import LocalAccount

from paygent.eip3009 import KEYS, AuthorizationKind, AuthorizationMessage, TokenDomain, digest
from paygent.wire.exact import Authorization, ExactEvmPayload

DEFAULT_CLOCK_SKEW = 60
"""Seconds validAfter is set in the past, so a facilitator whose clock runs behind still accepts."""


@dataclass(frozen=True)
class SignedAuthorization:
    kind: AuthorizationKind
    domain: TokenDomain
    message: AuthorizationMessage
    signature: bytes

    @property
    def nonce_hex(self) -> str:
        return "0x" + self.message.nonce.hex()

    def payload(self) -> ExactEvmPayload:
        m = self.message
        return ExactEvmPayload(
            signature="0x" + self.signature.hex(),
            authorization=Authorization.model_validate(
                {"from": m.from_, "to": m.to, "value": m.value, "validAfter": m.valid_after,
                 "validBefore": m.valid_before, "nonce": self.nonce_hex}
            ),
        )


class Signer(Protocol):
    """Signs EIP-3009 authorizations for one address."""

    @property
    def address(self) -> str: ...

    def sign_digest(self, message_hash: bytes) -> bytes: ...

    def authorize(self, domain: TokenDomain, kind: AuthorizationKind, to: str, value: int,
                  timeout_seconds: int, now: int | None = None, nonce: bytes | None = None) -> SignedAuthorization: ...


class LocalSigner:
    """A Signer over a local private key. The key is held privately and never shown."""

    __slots__ = ("_key", "_address", "clock", "clock_skew")

    def __init__(self, account: LocalAccount, clock: Callable[[], float] = time.time,
                 clock_skew: int = DEFAULT_CLOCK_SKEW):
        self._key = KEYS.PrivateKey(bytes(account.key))
        self._address = self._key.public_key.to_checksum_address()
        self.clock = clock
        self.clock_skew = clock_skew

    def __repr__(self) -> str:
        return f"LocalSigner({self._address})"

    __str__ = __repr__

    @property
    def address(self) -> str:
        return self._address

    def sign_digest(self, message_hash: bytes) -> bytes:
        """65-byte r||s||v (v = 27/28; s is low, as coincurve always produces)."""
        sig = self._key.sign_msg_hash(message_hash)
        return sig.r.to_bytes(32, "big") + sig.s.to_bytes(32, "big") + bytes([sig.v + 27])

    def authorize(self, domain: TokenDomain, kind: AuthorizationKind, to: str, value: int,
                  timeout_seconds: int, now: int | None = None, nonce: bytes | None = None) -> SignedAuthorization:
        """Sign `value` to `to`, valid from now - clock_skew until now + timeout_seconds, with a fresh
        random 32-byte nonce unless one is given."""
        if value < 0 or timeout_seconds <= 0:
            raise ValueError("value must be >= 0 and timeout_seconds > 0")
        moment = int(self.clock() if now is None else now)
        message = AuthorizationMessage(
            from_=self._address,
            to=to,
            value=value,
            valid_after=max(0, moment - self.clock_skew),
            valid_before=moment + timeout_seconds,
            nonce=secrets.token_bytes(32) if nonce is None else nonce,
        )
        return SignedAuthorization(kind, domain, message, self.sign_digest(digest(domain, kind, message)))
