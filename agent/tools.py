"""The agent's tools: validated inputs, structured errors, and the `Toolbox` role.

Every tool takes one pydantic model (so Claude's tool schemas and the offline planner share one
definition) and returns a JSON-able dict, or raises `ToolError` with a code the planner can act on
(`over_limit` -> propose an approval, `unknown_service` -> discover first, ...). Amounts are human
units as decimal strings ("2.5" USDC.e); the chain side converts with the token's decimals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")


class ToolError(Exception):
    """A tool could not do what was asked. `code` is stable; `hint` says what to do instead."""

    def __init__(self, code: str, message: str, hint: str | None = None, **details: Any):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.hint = hint
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out


class ToolInput(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Amount = Field(gt=0, max_digits=30, decimal_places=18)


def _address(value: str) -> str:
    if not ADDRESS_RE.match(value):
        raise ValueError("must be a 0x-prefixed 20-byte hex address")
    return value


class DiscoverServices(ToolInput):
    """Find registered services, cheapest and most reliable first."""

    query: str | None = Field(default=None, description="Words to match in the service name/description, e.g. 'price oracle'.")
    max_price: Decimal | None = Field(default=None, ge=0, description="Highest acceptable price per call, in the service's token (USDC.e).")
    model: Literal["per-call", "metered", "subscription"] | None = Field(default=None, description="Pricing model filter.")


class CallService(ToolInput):
    """Call a service's HTTP endpoint, paying its x402 price from the agent's hot key."""

    service: str = Field(min_length=1, description="Service name or numeric id from discover_services.")
    path: str | None = Field(default=None, description="Optional query string to append, e.g. '?pair=BTC/USDC'.")
    max_price: Decimal | None = Field(default=None, gt=0, description="Refuse to pay more than this (USDC.e).")


class PayService(ToolInput):
    """Pay a registered service from the AgentWallet (to its registered payTo, at its registered price)."""

    service: str = Field(min_length=1, description="Service name or numeric id.")
    units: int = Field(default=1, ge=1, le=1_000_000, description="Units (metered services); 1 for per-call.")
    reference: str | None = Field(default=None, max_length=64, description="Free-text reference recorded on chain (hashed).")


class PayAddress(ToolInput):
    """Pay an address from the AgentWallet. Only addresses the user gave or registered payees are accepted."""

    to: str = Field(description="Recipient address (0x...).")
    amount: Decimal = Amount
    token: str = Field(default="USDC", description="Token symbol: USDC (USDC.e) or WCRO.")
    reference: str | None = Field(default=None, max_length=64)

    @field_validator("to")
    @classmethod
    def _check_to(cls, v: str) -> str:
        return _address(v)


class QuoteSwap(ToolInput):
    """Quote a swap on the VVS-compatible router (router.getAmountsOut)."""

    token_in: str = Field(description="Symbol of the token sold: USDC or WCRO (CRO means WCRO).")
    token_out: str = Field(description="Symbol of the token bought.")
    amount_in: Decimal = Amount


class Swap(ToolInput):
    """Swap through the AgentWallet on the allowlisted VVS router; output returns to the wallet."""

    token_in: str
    token_out: str
    amount_in: Decimal = Amount
    slippage_bps: int = Field(default=50, ge=0, le=1_000,
                              description="Max slippage in basis points (50 = 0.5%; at most 1000 = 10%).")
    deadline_seconds: int = Field(default=300, ge=10, le=1_800,
                                  description="Deadline after the latest block, seconds (at most 30 minutes).")
    expected_out: Decimal | None = Field(default=None, gt=0, description=(
        "amount_out of the quote_swap the user saw. The slippage bound is taken from the higher of it "
        "and a fresh quote, so a pool moved against the user since the quote cannot widen the bound."))


class Subscribe(ToolInput):
    """Subscribe to a subscription-priced service (pays price x periods from the hot key's float)."""

    service: str = Field(min_length=1)
    periods: int = Field(default=1, ge=1, le=365)


class RequestApproval(ToolInput):
    """Ask the wallet owner to approve a payment above the agent's limits, then wait for the decision."""

    amount: Decimal = Amount
    service: str | None = Field(default=None, description="Pay this registered service's payTo ...")
    to: str | None = Field(default=None, description="... or this address (one of the two).")
    token: str = "USDC"
    reason: str = Field(default="", max_length=200, description="Why, shown to the owner (hashed into the request's ref).")
    wait_seconds: float | None = Field(default=None, ge=0, le=3_600, description="How long to wait for the decision.")

    @field_validator("to")
    @classmethod
    def _check_to(cls, v: str | None) -> str | None:
        return None if v is None else _address(v)


class GetBalances(ToolInput):
    """Balances of the AgentWallet and of the agent's hot key (float)."""


class GetLimits(ToolInput):
    """The agent's on-chain rule for a token: limit, cap, spent in this window, available now."""

    token: str = "USDC"


class GetHistory(ToolInput):
    """Recent payments, swaps, top-ups and approval requests of this agent."""

    limit: int = Field(default=10, ge=1, le=100)


class PlanStep(ToolInput):
    step: str = Field(min_length=1, max_length=200)
    tool: str = Field(description="The tool this step will use.")


class SetPlan(ToolInput):
    """Show the user the plan (a todo list) before acting; steps are ticked off as their tools finish."""

    steps: list[PlanStep] = Field(min_length=1, max_length=20)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    model: type[ToolInput]
    spends: bool
    """Moves money (subject to the session budget, confirmation and recipient checks)."""

    @property
    def description(self) -> str:
        return (self.model.__doc__ or self.name).strip()

    def input_schema(self) -> dict[str, Any]:
        schema = self.model.model_json_schema()
        schema.pop("title", None)
        schema.pop("description", None)
        return schema


TOOLS: dict[str, ToolSpec] = {s.name: s for s in (
    ToolSpec("set_plan", SetPlan, False),
    ToolSpec("discover_services", DiscoverServices, False),
    ToolSpec("call_service", CallService, True),
    ToolSpec("pay_service", PayService, True),
    ToolSpec("pay_address", PayAddress, True),
    ToolSpec("quote_swap", QuoteSwap, False),
    ToolSpec("swap", Swap, True),
    ToolSpec("subscribe", Subscribe, True),
    ToolSpec("request_approval", RequestApproval, True),
    ToolSpec("get_balances", GetBalances, False),
    ToolSpec("get_limits", GetLimits, False),
    ToolSpec("get_history", GetHistory, False),
)}


@dataclass
class Cost:
    """What a spending call is expected to move, before it runs."""

    usdc: int = 0
    """Atomic USDC.e (counts against the session budget)."""
    label: str = ""
    """Human description for confirmations, e.g. '2 USDC.e -> WCRO swap'."""
    recipients: list[str] = field(default_factory=list)
    """Addresses that would receive money directly (checked against the trusted set)."""


class Toolbox(Protocol):
    """What the tools do. `ChainToolbox` is the real one; tests may pass a documented fake."""

    def cost(self, name: str, args: ToolInput) -> Cost:
        """Expected spend of a call (raises ToolError when it cannot be known, e.g. unknown service)."""
        ...

    def known_payees(self) -> set[str]:
        """Lower-case addresses that may receive money without the user naming them (registered payTos)."""
        ...

    def io_seconds(self) -> float:
        """Cumulative seconds spent waiting on the chain and HTTP (to measure the agent's own overhead)."""
        ...

    def discover_services(self, args: DiscoverServices) -> dict[str, Any]: ...
    def call_service(self, args: CallService) -> dict[str, Any]: ...
    def pay_service(self, args: PayService) -> dict[str, Any]: ...
    def pay_address(self, args: PayAddress) -> dict[str, Any]: ...
    def quote_swap(self, args: QuoteSwap) -> dict[str, Any]: ...
    def swap(self, args: Swap) -> dict[str, Any]: ...
    def subscribe(self, args: Subscribe) -> dict[str, Any]: ...
    def request_approval(self, args: RequestApproval) -> dict[str, Any]: ...
    def get_balances(self, args: GetBalances) -> dict[str, Any]: ...
    def get_limits(self, args: GetLimits) -> dict[str, Any]: ...
    def get_history(self, args: GetHistory) -> dict[str, Any]: ...
