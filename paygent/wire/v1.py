"""x402 version 1: 402 JSON body, `X-PAYMENT` request header, `X-PAYMENT-RESPONSE` answer."""

from __future__ import annotations

from typing import Literal

from pydantic import JsonValue

from paygent.wire.common import Address, AtomicAmount, Timeout, WireModel
from paygent.wire.exact import ExactEvmPayload, Extra

PAYMENT_HEADER = "X-PAYMENT"
RESPONSE_HEADER = "X-PAYMENT-RESPONSE"


class PaymentRequirements(WireModel):
    scheme: str
    network: str
    """v1 network name, e.g. ``cronos-testnet``."""
    max_amount_required: AtomicAmount
    resource: str
    description: str = ""
    mime_type: str = ""
    pay_to: Address
    max_timeout_seconds: Timeout
    asset: Address
    output_schema: JsonValue | None = None
    extra: Extra | None = None

    @property
    def amount(self) -> str:
        return self.max_amount_required


class PaymentRequired(WireModel):
    """The HTTP 402 response body."""

    x402_version: Literal[1] = 1
    error: str | None = None
    accepts: list[PaymentRequirements]


class PaymentPayload(WireModel):
    """Decoded `X-PAYMENT` header."""

    x402_version: Literal[1] = 1
    scheme: str
    network: str
    payload: ExactEvmPayload


class SettlementResponse(WireModel):
    """Decoded `X-PAYMENT-RESPONSE` header."""

    success: bool
    transaction: str
    network: str
    payer: str | None = None
    error_reason: str | None = None
