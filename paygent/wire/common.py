"""The camelCase base model and the field types every x402 wire message is built from.

Parsing is strict where money is concerned: addresses are 20-byte hex, amounts are decimal
strings below 2**256, nonces 32 bytes, signatures 65 bytes. Unknown *top-level* fields are ignored
(x402 adds optional fields between minor versions); an `extra` object keeps unknown keys so a
requirement echoed back by a client compares equal to what the server advertised.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)
from pydantic.alias_generators import to_camel

MAX_UINT256 = 2**256 - 1
MAX_HEADER_BYTES = 16 * 1024
"""Largest base64 payment header accepted (a real one is < 2 KiB)."""

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BYTES32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,77})$")


class WireModel(BaseModel):
    """Base of every x402 message: snake_case in Python, camelCase on the wire, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
    )

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    def to_header(self) -> str:
        """Standard (not url-safe) base64 of the JSON, as x402 headers carry it."""
        return base64.b64encode(self.to_json().encode()).decode()


def _address(value: object) -> str:
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise ValueError("must be a 0x-prefixed 20-byte hex address")
    return value


def _bytes32(value: object) -> str:
    if not isinstance(value, str) or not _BYTES32.match(value):
        raise ValueError("must be a 0x-prefixed 32-byte hex string")
    return value.lower()


def _signature(value: object) -> str:
    if not isinstance(value, str) or not _SIGNATURE.match(value):
        raise ValueError("must be a 0x-prefixed 65-byte hex signature")
    return value.lower()


def _amount(value: object) -> str:
    if not isinstance(value, str) or not _DECIMAL.match(value) or int(value) > MAX_UINT256:
        raise ValueError("must be a decimal string of an unsigned 256-bit integer (atomic units)")
    return value


def _uint256(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an unsigned 256-bit integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DECIMAL.match(value):
        number = int(value)
    else:
        raise ValueError("must be an unsigned 256-bit integer (decimal string)")
    if not 0 <= number <= MAX_UINT256:
        raise ValueError("must be an unsigned 256-bit integer")
    return number


Address = Annotated[str, BeforeValidator(_address)]
"""An EVM address as written on the wire (case kept: servers compare echoed strings exactly)."""
Bytes32 = Annotated[str, BeforeValidator(_bytes32)]
"""0x + 64 hex digits, lower-cased."""
Signature = Annotated[str, BeforeValidator(_signature)]
"""0x + 130 hex digits (r, s, v), lower-cased."""
AtomicAmount = Annotated[str, BeforeValidator(_amount)]
"""An amount in the asset's smallest unit, as the decimal string x402 uses (kept verbatim)."""
Uint256 = Annotated[int, BeforeValidator(_uint256), PlainSerializer(lambda v: str(v), return_type=str)]
"""An unsigned 256-bit integer, read from a decimal string or number, written as a string."""
Timeout = Annotated[int, Field(gt=0, le=7 * 86_400, strict=True)]
"""maxTimeoutSeconds: positive and at most a week."""


def same_address(a: str, b: str) -> bool:
    return a.lower() == b.lower()


class WireError(ValueError):
    """A message that cannot be parsed. `reason` is a stable code, `detail` says what was wrong."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


M = TypeVar("M", bound=BaseModel)


def parse_json(raw: bytes | str) -> Any:
    """json.loads for untrusted input: every failure — bad UTF-8, bad JSON, nesting deeper than the
    parser recurses — is a ValueError (json.loads raises RecursionError for the last)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def decode_header(value: str) -> Any:
    """base64 → JSON, with the failure named (`invalid_payment_header`)."""
    if len(value) > MAX_HEADER_BYTES:
        raise WireError("invalid_payment_header", f"header is {len(value)} bytes; at most {MAX_HEADER_BYTES}")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WireError("invalid_payment_header", "not valid base64") from None
    try:
        return parse_json(raw.decode("utf-8"))
    except ValueError:
        raise WireError("invalid_payment_header", "base64 content is not JSON") from None


def parse_model(model: type[M], data: Any, reason: str = "invalid_payload") -> M:
    """Validate JSON data into a model; validation errors become a WireError listing the fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise WireError(reason, describe(exc)) from None


def describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
