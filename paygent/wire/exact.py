"""The "exact" EVM scheme payload shared by x402 v1 and v2: an EIP-3009 authorization + signature."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from paygent.wire.common import Address, Bytes32, Signature, Uint256, WireModel


class Authorization(WireModel):
    """EIP-3009 TransferWithAuthorization / ReceiveWithAuthorization message fields."""

    from_: Address = Field(alias="from")
    to: Address
    value: Uint256
    valid_after: Uint256
    valid_before: Uint256
    nonce: Bytes32


class ExactEvmPayload(WireModel):
    """`payload` of an exact-scheme EVM payment (v1 and v2)."""

    model_config = ConfigDict(extra="forbid")

    signature: Signature
    authorization: Authorization


NONCE_USED = "invalid_exact_evm_nonce_already_used"
"""The reason code for an authorization that was used already (the reference SDK's spelling)."""


class Extra(WireModel):
    """`extra` of exact-scheme requirements: the token's EIP-712 domain and, for payments made
    out to the PaymentRouter, the ServiceRegistry id. Other keys are kept as they came."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    """EIP-712 domain name of the asset (e.g. "Bridged USDC (Stargate)")."""
    version: str | None = None
    """EIP-712 domain version of the asset."""
    service_id: int | None = Field(default=None, ge=1, lt=2**64, strict=True)
    """ServiceRegistry id; present when payTo is the PaymentRouter (ReceiveWithAuthorization). Below
    2^64: the router binds an authorization to its service through the nonce's top 64 bits."""
