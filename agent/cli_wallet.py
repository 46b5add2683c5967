"""`paygent wallet status|limits|history` — the agent's wallet, read from the chain."""

from __future__ import annotations

import click

from agent.cli_common import CliContext, friendly, pass_ctx
from agent.tools import GetBalances, GetHistory, GetLimits


@click.group("wallet")
def wallet() -> None:
    """The AgentWallet the agent spends from: balances, limits, history."""


@wallet.command("status")
@pass_ctx
@friendly
def status(ctx: CliContext) -> None:
    """Balances of the wallet and of the agent's hot key, and today's USDC.e limit."""
    tb = ctx.runtime().toolbox
    balances = tb.get_balances(GetBalances())
    limits = tb.get_limits(GetLimits(token="USDC"))
    ctx.emit({"balances": balances, "limits": limits}, f"{balances['summary']}\n{limits['summary']}")


@wallet.command("limits")
@click.option("--token", default="USDC", show_default=True, help="USDC (USDC.e) or WCRO.")
@pass_ctx
@friendly
def limits(ctx: CliContext, token: str) -> None:
    """The agent's on-chain rule: limit, cap, spent in this window, available now."""
    out = ctx.runtime().toolbox.get_limits(GetLimits(token=token))
    ctx.emit(out, out["summary"])


@wallet.command("history")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100))
@pass_ctx
@friendly
def history(ctx: CliContext, limit: int) -> None:
    """Payments, swaps, top-ups and approval requests of this agent (from chain events)."""
    out = ctx.runtime().toolbox.get_history(GetHistory(limit=limit))
    ctx.emit(out, out["summary"])
