"""x402 version 2: `PAYMENT-REQUIRED`, `PAYMENT-SIGNATURE`, `PAYMENT-RESPONSE` headers, CAIP-2
network ids, and the facilitator's verify / settle / supported messages (shared with v1)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue

from paygent.wire import v1
from paygent.wire.common import Address, AtomicAmount, Timeout, WireModel
from paygent.wire.exact import ExactEvmPayload, Extra

REQUIRED_HEADER = "PAYMENT-REQUIRED"
PAYMENT_HEADER = "PAYMENT-SIGNATURE"
RESPONSE_HEADER = "PAYMENT-RESPONSE"


class ResourceInfo(WireModel):
    url: str
    description: str | None = None
    mime_type: str | None = None


class PaymentRequirements(WireModel):
    scheme: str
    network: str
    """CAIP-2 id, e.g. ``eip155:338``."""
    asset: Address
    amount: AtomicAmount
    pay_to: Address
    max_timeout_seconds: Timeout
    extra: Extra = Field(default_factory=Extra)


class PaymentRequired(WireModel):
    """`PAYMENT-REQUIRED` header content (and the 402 body)."""

    x402_version: Literal[2] = 2
    error: str | None = None
    resource: ResourceInfo | None = None
    accepts: list[PaymentRequirements]
    extensions: dict[str, JsonValue] | None = None


class PaymentPayload(WireModel):
    """Decoded `PAYMENT-SIGNATURE` header: the signed payload and the requirements it accepted."""

    x402_version: Literal[2] = 2
    payload: ExactEvmPayload
    accepted: PaymentRequirements
    resource: ResourceInfo | None = None
    extensions: dict[str, JsonValue] | None = None


class SettleResponse(WireModel):
    """Facilitator /settle answer and the `PAYMENT-RESPONSE` header content."""

    success: bool
    error_reason: str | None = None
    error_message: str | None = None
    payer: str | None = None
    transaction: str = ""
    network: str
    amount: str | None = None
    status: Literal["settled", "failed", "pending"] | None = None
    """Paygent addition: the intent's state; ``pending`` means unknown yet (never retry-sign)."""
    payment_id: str | None = None
    """Paygent addition: the EIP-3009 nonce, for GET /payments/{id}."""


class VerifyResponse(WireModel):
    is_valid: bool
    invalid_reason: str | None = None
    invalid_message: str | None = None
    payer: str | None = None


class VerifyRequestV1(WireModel):
    x402_version: Literal[1]
    payment_payload: v1.PaymentPayload
    payment_requirements: v1.PaymentRequirements


class VerifyRequestV2(WireModel):
    x402_version: Literal[2]
    payment_payload: PaymentPayload
    payment_requirements: PaymentRequirements


class SupportedKind(WireModel):
    x402_version: int
    scheme: str
    network: str
    extra: Extra | None = None


class SupportedResponse(WireModel):
    kinds: list[SupportedKind]
    extensions: list[str] = Field(default_factory=list)
    signers: dict[str, list[str]] = Field(default_factory=dict)
