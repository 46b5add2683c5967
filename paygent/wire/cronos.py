"""The Cronos facilitator variant (facilitator.cronoslabs.org/v2/x402): POST /v2/x402/verify|settle,
GET /v2/x402/supported. Requests carry the base64 `paymentHeader` as sent by the client and the v1
requirements; the header's payload is flat (authorization fields, signature and asset together)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from paygent.wire import v1
from paygent.wire.common import Address, Bytes32, Signature, Uint256, WireModel
from paygent.wire.exact import Authorization, ExactEvmPayload


class FlatPayload(WireModel):
    model_config = ConfigDict(extra="forbid")

    from_: Address = Field(alias="from")
    to: Address
    value: Uint256
    valid_after: Uint256
    valid_before: Uint256
    nonce: Bytes32
    signature: Signature
    asset: Address

    def to_exact(self) -> ExactEvmPayload:
        return ExactEvmPayload(
            signature=self.signature,
            authorization=Authorization.model_validate(
                {"from": self.from_, "to": self.to, "value": self.value, "validAfter": self.valid_after,
                 "validBefore": self.valid_before, "nonce": self.nonce}
            ),
        )

    @classmethod
    def from_exact(cls, payload: ExactEvmPayload, asset: str) -> "FlatPayload":
        auth = payload.authorization
        return cls.model_validate(
            {"from": auth.from_, "to": auth.to, "value": auth.value, "validAfter": auth.valid_after,
             "validBefore": auth.valid_before, "nonce": auth.nonce, "signature": payload.signature, "asset": asset}
        )


class PaymentHeader(WireModel):
    """Decoded `paymentHeader`."""

    x402_version: Literal[1] = 1
    scheme: str
    network: str
    payload: FlatPayload


class Request(WireModel):
    """Body of POST /v2/x402/verify and /v2/x402/settle."""

    x402_version: Literal[1] = 1
    payment_header: str = Field(max_length=16 * 1024)
    payment_requirements: v1.PaymentRequirements


class VerifyResponse(WireModel):
    is_valid: bool
    invalid_reason: str | None = None


class SettleResponse(WireModel):
    x402_version: Literal[1] = 1
    event: Literal["payment.settled", "payment.failed", "payment.pending"]
    tx_hash: str | None = None
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    value: str | None = None
    network: str
    timestamp: int | None = None
    error: str | None = None
