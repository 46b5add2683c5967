"""Settings of the agent program (`paygent ...`): environment variables with prefix PAYGENT_.

Nothing else in the agent reads the environment. Keys are held as secrets and never printed; the
Anthropic key is read from ANTHROPIC_API_KEY (the name the `anthropic` package documents) or
PAYGENT_ANTHROPIC_API_KEY.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ONE_USDC = 10**6


class AgentSettings(BaseSettings):
    """Everything the agent CLI, the planners and the demo are configured with."""

    model_config = SettingsConfigDict(env_prefix="PAYGENT_", extra="ignore", populate_by_name=True)

    # --- chain ------------------------------------------------------------------------------------
    network: str = "local"
    """Paygent network: local (default) or cronos-testnet (also cronos:testnet)."""
    rpc_url: str | None = None
    """JSON-RPC endpoint; default the network's (local: http://127.0.0.1:8545)."""
    deployments_dir: Path | None = None
    """Directory of deployment manifests (default ./deployments of the project)."""
    wallet: str | None = Field(default=None, pattern=r"^0[xX][0-9a-fA-F]{40}$")
    """AgentWallet address (0x + 40 hex digits); default the manifest's demo AgentWallet."""
    keeper_url: str = "http://127.0.0.1:8403"
    """Keeper operator API (services, payments, approvals). Unreachable -> the chain is read directly."""

    # --- keys (never shown) -----------------------------------------------------------------------
    agent_key: SecretStr | None = None
    """Hex private key of the agent's hot key (PAYGENT_AGENT_KEY)."""
    agent_account: str | None = None
    """Or: alias of an ape account for the agent key; passphrase in APE_ACCOUNTS_<alias>_PASSPHRASE."""
    owner_key: SecretStr | None = None
    """Hex private key of the wallet owner, for `paygent approvals approve|reject|edit`."""
    owner_account: str | None = None
    """Or: alias of an ape account for the owner."""

    # --- planner ----------------------------------------------------------------------------------
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_API_KEY", "PAYGENT_ANTHROPIC_API_KEY"))
    """Claude API key. Set -> the Claude tool-use planner; unset -> the offline planner."""
    model: str = "claude-sonnet-4-5"
    """Claude model used by the tool-use planner."""
    max_tokens: int = Field(default=1024, ge=64)
    """Max tokens per Claude reply."""
    offline: bool = False
    """Force the deterministic offline planner even when an API key is set."""
    max_steps: int = Field(default=12, ge=1, le=100)
    """Ceiling on tool calls per request (no runaway loops)."""

    # --- safety -----------------------------------------------------------------------------------
    session_budget: Decimal = Field(default=Decimal("10"), ge=0)
    """USDC.e the agent may spend in one session (x402 prices, payments, swap inputs, subscriptions),
    on top of the wallet's on-chain limits."""
    max_price_per_call: Decimal = Field(default=Decimal("0.5"), gt=0)
    """Most USDC.e the agent pays for one x402 call unless the request names a higher maximum."""
    confirm_above: Decimal = Field(default=Decimal("1"), ge=0)
    """Interactive mode asks before an action that moves more than this many USDC.e."""
    default_slippage_bps: int = Field(default=50, ge=0, le=1_000)
    """Slippage bound for swaps when the request names none (basis points)."""
    swap_deadline_seconds: int = Field(default=300, ge=10, le=1_800)
    """Swap deadline after the latest block's timestamp."""
    float_topup: Decimal = Field(default=Decimal("0.25"), gt=0)
    """USDC.e moved from the wallet to the agent's hot key when it cannot cover an x402 price
    (bounded by the wallet's float cap; counts against the on-chain limit)."""
    approval_wait_seconds: float = Field(default=120, ge=0)
    """How long the agent waits for the owner's decision on an approval request."""
    approval_poll_seconds: float = Field(default=1.0, gt=0)
    """How often the agent looks at a pending approval request."""

    # --- records ----------------------------------------------------------------------------------
    data_dir: Path = Path(".paygent/agent")
    """Where the JSONL tool-call log (tools.jsonl) and the memory (memory.sqlite) live."""

    @property
    def use_claude(self) -> bool:
        return self.anthropic_api_key is not None and not self.offline

    @property
    def log_path(self) -> Path:
        return self.data_dir / "tools.jsonl"

    @property
    def memory_path(self) -> Path:
        return self.data_dir / "memory.sqlite"
